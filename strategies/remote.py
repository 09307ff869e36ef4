"""``optinas worker``: join a study kept in a database, with the settings it was created with.

``optinas search --storage URL`` stores its settings in the study (user attribute
``optinas.config``), so a worker on another machine needs only the study name and the URL.
The worker keeps its checkpoints, trials.jsonl, exports and report under its own
``--runs-dir`` (a shared file system makes them one folder).
"""

from __future__ import annotations

import time
from pathlib import Path

from search_space.errors import ConfigError

__all__ = ["join_study"]


def _load(study_name: str, url: str, run_dir: Path):
    import optuna

    from .optuna_driver import _retry_stale
    from .storage import describe, is_database_url, open_storage

    if not is_database_url(url):
        raise ConfigError(f"--storage must be a database URL such as postgresql://user@host/db; got {url!r}")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        storage = open_storage(run_dir, url, on_stale=_retry_stale)
        return optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        raise ConfigError(f"no study {study_name!r} in {describe(run_dir, url)}; create it with "
                          f"optinas search --study {study_name} --storage URL") from None
    except ImportError as error:
        raise ConfigError(f"the database driver for {describe(run_dir, url)} is not installed ({error})") from None
    except Exception as error:  # sqlalchemy's connection errors: one line, not a traceback
        if type(error).__module__.startswith("sqlalchemy"):
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ConfigError(f"cannot open {describe(run_dir, url)}: {first}") from None
        raise


def join_study(study_name: str, url: str, runs_dir: Path = Path("runs"), device: str | None = None,
               threads: int | None = None, show_progress: bool = True):
    """Run trials of the database study ``study_name`` until it is full; returns a SearchSummary."""
    import os

    from .config import SearchConfig
    from .files import write_toml_atomic
    from .optuna_driver import (CONFIG_ATTR, finished_trials, live_updates, make_pruner, open_study, prepare,
                                summarize)
    from .progress import SearchProgress
    from .samplers import make_sampler
    from .worker import run_worker

    started = time.perf_counter()
    study = _load(study_name, url, Path(runs_dir) / study_name)
    stored = study.user_attrs.get(CONFIG_ATTR)
    if stored is None:
        raise ConfigError(f"study {study_name!r} was not created by optinas search (it holds no settings)")
    overrides = {"runs_dir": Path(runs_dir), "threads": threads, "workers": 1, "storage": url}
    if device is not None:
        overrides["device"] = device
    config = SearchConfig.from_dict(stored, **overrides)
    context = prepare(config)
    config.run_dir.mkdir(parents=True, exist_ok=True)
    if not (config.run_dir / "config.toml").exists():
        write_toml_atomic(config.run_dir / "config.toml", config.to_dict())
    # Each worker samples with its own seed, so workers do not propose the same candidates.
    sampler = make_sampler(config.sampler, config.seed + os.getpid(), len(config.objectives))
    study = open_study(config.run_dir, study_name, sampler=sampler, url=url, pruner=make_pruner(config))
    with SearchProgress(config, already=len(finished_trials(study)), enabled=show_progress) as progress:
        run_worker(study, context, config.trials, on_trial=live_updates(config, progress))
    return summarize(config, study, started)
