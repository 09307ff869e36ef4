"""``optinas worker``: join a study kept in a database, with the settings it was created with.

``optinas search --storage URL`` stores its settings in the study (user attribute
``optinas.config``), so a worker on another machine needs only the study name and the URL.
The worker keeps its checkpoints, trials.jsonl, exports and report under its own
``--runs-dir`` (a shared file system makes them one folder).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import optuna

from optinas.search_space.errors import ConfigError
from optinas.strategies.backends.inprocess import live_updates
from optinas.strategies.backends.processes import worker_seed
from optinas.strategies.backends.worker_loop import run_worker
from optinas.strategies.config import SearchConfig
from optinas.strategies.files import write_toml_atomic
from optinas.strategies.finish import summarize
from optinas.strategies.progress import SearchProgress
from optinas.strategies.samplers import make_sampler
from optinas.strategies.storage import describe, is_database_url, open_storage
from optinas.strategies.study import CONFIG_ATTR, finished_trials, make_pruner, open_study, prepare, retry_stale
from optinas.strategies.trial import warm_up_kernels

__all__ = ["join_study"]


def _load(study_name: str, url: str, run_dir: Path):

    if not is_database_url(url):
        raise ConfigError(f"--storage must be a database URL such as postgresql://user@host/db; got {url!r}")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        storage = open_storage(run_dir, url, on_stale=retry_stale)
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
               threads: int | None = None, show_progress: bool = True, worker_index: int | None = None):
    """Run trials of the database study ``study_name`` until it is full; returns a SearchSummary.

    ``worker_index`` (1, 2, ...; the ``optinas search`` process is worker 0) seeds this
    worker's sampler with ``processes.worker_seed(study seed, index)``, as ``--workers`` does,
    so a database search is reproducible. Without it the process id picks a seed: workers
    still differ, but a rerun samples differently.
    """

    started = time.perf_counter()
    if worker_index is not None and (isinstance(worker_index, bool) or worker_index < 1):
        raise ConfigError(f"--worker-index must be a whole number >= 1 (0 is the optinas search process); "
                          f"got {worker_index!r}")
    study = _load(study_name, url, Path(runs_dir) / study_name)
    stored = study.user_attrs.get(CONFIG_ATTR)
    if stored is None:
        raise ConfigError(f"study {study_name!r} was not created by optinas search (it holds no settings)")
    overrides = {"runs_dir": Path(runs_dir), "threads": threads, "workers": 1, "storage": url}
    if device is not None:
        overrides["device"] = device
    config = SearchConfig.from_dict(stored, **overrides)
    context = prepare(config)
    warm_up_kernels(context)
    config.run_dir.mkdir(parents=True, exist_ok=True)
    if not (config.run_dir / "config.toml").exists():
        write_toml_atomic(config.run_dir / "config.toml", config.to_dict())
    # Each worker samples with its own seed, so workers do not propose the same candidates.
    seed = worker_seed(config.seed, worker_index) if worker_index is not None else config.seed + os.getpid()
    sampler = make_sampler(config.sampler, seed, len(config.objectives))
    study = open_study(config.run_dir, study_name, sampler=sampler, url=url, pruner=make_pruner(config))
    with SearchProgress(config, already=len(finished_trials(study)), enabled=show_progress) as progress:
        run_worker(study, context, config.trials, on_trial=live_updates(config, progress, study))
    return summarize(config, study, started)
