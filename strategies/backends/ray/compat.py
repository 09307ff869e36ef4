"""The private Ray Tune attributes optinas relies on, in one place, behind a version check.

Ray has no public way to (a) tell Optuna a trial's constraints, user attributes and final
state from an ``OptunaSearch`` subclass (the searcher keeps its Optuna study and trials in
private attributes), or (b) give a restored ``Tuner`` this run's callbacks (Tune pickles the
callbacks with the experiment). Everything else uses Ray's public API. The attributes below
were checked against the Ray versions in ``TESTED_RAY``; pyproject.toml pins Ray to them, and
``check_ray_version`` refuses others with one sentence instead of failing mid-search.
"""

from __future__ import annotations

from optinas.search_space.errors import ConfigError

__all__ = ["TESTED_RAY", "check_ray_version", "searcher_study", "restored_run_config"]

TESTED_RAY = ((2, 60), (2, 61))  # [lowest, first untested) (major, minor), as in pyproject.toml


def check_ray_version(version: str | None = None) -> None:
    """Raise ``ConfigError`` unless ``version`` (default: the installed Ray) is a tested one."""
    if version is None:
        import ray  # heavy; imported only by the Ray backend

        version = ray.__version__
    major_minor = tuple(int(part) for part in version.split(".")[:2])
    low, high = TESTED_RAY
    if not low <= major_minor < high:
        raise ConfigError(f"--backend ray was tested with Ray {low[0]}.{low[1]}.x only; Ray {version} is "
                          f"installed (pip install 'ray[tune]>={low[0]}.{low[1]},<{high[0]}.{high[1]}')")


def searcher_study(searcher):
    """(Optuna study, {Tune trial id: optuna.Trial}, completed Tune trial ids, metric names)
    of an ``OptunaSearch`` (private attributes ``_ot_study``, ``_ot_trials``,
    ``_completed_trials`` and ``_metric``)."""
    metric = searcher._metric
    return (searcher._ot_study, searcher._ot_trials, searcher._completed_trials,
            metric if isinstance(metric, list) else [metric])


def restored_run_config(tuner):
    """The ``RunConfig`` a restored ``Tuner`` will run with (private ``_local_tuner``)."""
    return tuner._local_tuner.get_run_config()
