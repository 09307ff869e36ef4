"""optinas.strategies: how to choose. Objectives and budgets, the Optuna driver, results and
reports, and the ``optinas`` command line. The only package that writes to runs/."""

from .config import Budget, SearchConfig

__all__ = ["Budget", "SearchConfig", "run_search"]


def run_search(config, show_progress=True, presets=()):
    """Run or resume a search (see ``strategies.optuna_driver.run_search``)."""
    from .optuna_driver import run_search as _run

    return _run(config, show_progress, presets)
