"""optinas.strategies: how to choose. Objectives and budgets, the study's life cycle, the
backends that run trials, results and reports, the reproductions, and the ``optinas`` command
line. The only package that writes to runs/."""

from optinas.strategies.config import Budget, SearchConfig
from optinas.strategies.finish import SearchSummary
from optinas.strategies.search import run_search

__all__ = ["Budget", "SearchConfig", "SearchSummary", "run_search"]
