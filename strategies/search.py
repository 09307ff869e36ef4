"""``run_search``: run or resume a search on the backend its settings name."""

from __future__ import annotations

from optinas.strategies.backends.inprocess import run_local_search
from optinas.strategies.backends.ray.backend import run_ray_search
from optinas.strategies.config import SearchConfig
from optinas.strategies.finish import SearchSummary

__all__ = ["run_search", "BACKENDS"]

#: ``--backend`` name -> the function that runs a search there (Ray is imported only when used).
BACKENDS = {"optuna": run_local_search, "ray": run_ray_search}


def run_search(config: SearchConfig, show_progress: bool = True, presets=()) -> SearchSummary:
    """Run (or resume) the search until the study holds ``config.trials`` counted trials.

    ``presets`` (names of ``optinas.search_space.presets.PRESETS``) are enqueued as the first
    trials, adapted to the task's input; a resumed study does not enqueue them twice.
    With ``config.workers`` > 1 the trials run in that many worker processes.
    """
    return BACKENDS[config.backend](config, show_progress=show_progress, presets=presets)
