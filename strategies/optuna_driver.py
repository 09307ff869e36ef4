"""The Optuna driver: a resumable, budgeted search over one study, in one or many processes.

The study lives in ``runs/<study>/`` (a journal file; see ``storage.py``) or in a database
given by ``--storage``. Rerunning the same command loads it: trials a killed process left
RUNNING are failed ("interrupted") and their parameters queued again, completed trials are
never trained again, and the workers run until the study holds the requested number of
counted trials (see ``worker.py``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from search_space.errors import ConfigError

from .config import SearchConfig
from .files import read_toml, write_toml_atomic
from .objectives import DEFAULT_OBJECTIVES
from .samplers import make_sampler
from .storage import is_database_url, open_storage
from .trial import TrialContext
from .worker import counts_toward, retry_trial, run_worker, trial_status

__all__ = ["run_search", "open_study", "create_study", "SearchSummary", "finished_trials", "prepare",
           "make_sampler", "CONFIG_ATTR"]

CONFIG_ATTR = "optinas.config"  # the study's user attribute holding its SearchConfig


@dataclass(frozen=True)
class SearchSummary:
    run_dir: Path
    finished: int
    trained: int
    infeasible: int
    failed: int
    front: tuple[int, ...]
    seconds: float
    pruned: int = 0


def make_pruner(config: SearchConfig):
    """The pruner of a single-objective search (Optuna prunes on one reported value)."""
    import optuna

    if not config.prunes:
        return optuna.pruners.NopPruner()
    if config.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=config.epochs)
    # Median: stop a trial whose accuracy after an epoch is below the median of earlier
    # trials at that epoch; the first epoch is never judged (it is mostly warm-up).
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)


def _retry_stale(study, trial) -> None:
    """Heartbeat callback: a worker went silent mid-trial; queue its parameters again."""
    retry_trial(study, trial, mark=False)


def open_study(run_dir: Path, study_name: str, sampler=None, url: str | None = None, pruner=None):
    """Load the existing study stored in ``run_dir`` (or at the database ``url``)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if url is None and (run_dir / "config.toml").exists():
        url = read_toml(run_dir / "config.toml").get("storage")
    storage = open_storage(run_dir, url, on_stale=_retry_stale)
    return optuna.load_study(storage=storage, study_name=study_name, sampler=sampler, pruner=pruner)


def create_study(config: SearchConfig, sampler=None):
    """Create the study of ``config`` (or load it when it exists), with its config attached."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = open_storage(config.run_dir, config.storage, on_stale=_retry_stale)
    directions = [objective.direction for objective in config.objective_list]
    study = optuna.create_study(storage=storage, study_name=config.study, directions=directions,
                                sampler=sampler, pruner=make_pruner(config), load_if_exists=True)
    stored = study.user_attrs.get(CONFIG_ATTR)
    if stored is not None:
        _check_same(stored, config)
    study.set_user_attr(CONFIG_ATTR, config.to_dict())  # workers elsewhere read it (trials may grow)
    return study


def finished_trials(study) -> list:
    """Trials that count toward the requested number (interrupted and surplus ones do not)."""
    return [trial for trial in study.get_trials(deepcopy=False) if counts_toward(trial)]


def recover_interrupted(study, worker: str | None = None) -> int:
    """Fail and re-queue the RUNNING trials of a dead process (all, or those of ``worker``)."""
    from optuna.trial import TrialState

    stale = [trial for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
             if worker is None or trial.user_attrs.get("worker") == worker]
    for trial in stale:
        retry_trial(study, trial)
    return len(stale)


def enqueue_presets(study, names) -> int:
    """Enqueue each named preset as a trial, once per study; returns how many were added.

    A preset trial has no parameters and the user attribute "preset"; ``trial.candidate``
    builds the preset for the task's input instead of sampling, so the seed baselines are
    evaluated like any candidate and appear on every Pareto front.
    """
    present = {trial.user_attrs.get("preset") for trial in study.get_trials(deepcopy=False)}
    added = 0
    for name in names:
        if name not in present:
            study.enqueue_trial({}, user_attrs={"preset": name})
            added += 1
    return added


def _check_same(stored: dict, config: SearchConfig) -> None:
    """A study joined or resumed must have been created with the same search-defining settings."""
    stored = {"objectives": list(DEFAULT_OBJECTIVES), **stored}  # studies older than --objectives
    for key, value in config.identity().items():
        if stored.get(key) != value:
            raise ConfigError(
                f"study {config.study!r} was created with {key} = {stored.get(key)!r}, not {value!r}; "
                f"rerun with the same settings to resume, or choose a new --study"
            )
    for key in stored:
        if key.startswith(("budget.", "proxy.", "space.")) or key == "pruner":
            if key not in config.identity():
                raise ConfigError(
                    f"study {config.study!r} was created with {key} = {stored[key]!r}; rerun with the "
                    "same settings to resume, or choose a new --study"
                )


def _check_resume(config: SearchConfig) -> None:
    """The settings in runs/<study>/config.toml must match, before anything is written."""
    path = config.run_dir / "config.toml"
    if path.exists():
        _check_same(read_toml(path), config)


def prepare(config: SearchConfig, threads: int | None = None) -> TrialContext:
    """Validate every input and load the task; nothing is written under runs/."""
    from evaluator import Fidelity, load_task, resolve_device

    from search_space import SearchSpace

    device = resolve_device(config.device)
    if device.type == "cpu":
        import torch

        torch.set_num_threads(threads or config.cpu_threads)
    task = load_task(config.task, seed=config.seed, data_dir=config.data_dir,
                     download=config.download)
    if task.kind != "classification":
        raise ConfigError(
            f"task {config.task!r} is a {task.kind} task; optinas search optimises "
            "classification accuracy, so use it through evaluator.evaluate instead"
        )
    space = SearchSpace.from_toml(_input_spec(task), config.space)
    fidelity = Fidelity(epochs=config.epochs, train_fraction=config.train_fraction,
                        cuda_graphs=config.cuda_graphs, width_multiplier=config.width_multiplier,
                        resolution=config.resolution, time_limit_s=config.trial_time_limit_s)
    _check_resume(config)
    return TrialContext(space=space, task=task, fidelity=fidelity, budget=config.budget,
                        device=device, seed=config.seed, run_dir=config.run_dir,
                        objectives=config.objective_list, prunes=config.prunes)


def _input_spec(task):
    from search_space import InputSpec

    channels, height, width = task.input_shape
    return InputSpec(channels=channels, height=height, width=width, classes=task.num_classes)


def prepare_run_dir(config: SearchConfig, presets=(), threads: int | None = None) -> TrialContext:
    """Validate every input (presets included), then create runs/<study>/ with its config.toml."""
    from search_space.presets import preset

    context = prepare(config, threads=threads)
    for name in presets:  # every preset must fit the task before anything is written
        preset(name, context.space.input)
    config.run_dir.mkdir(parents=True, exist_ok=True)
    if not (config.run_dir / "config.toml").exists():
        write_toml_atomic(config.run_dir / "config.toml", config.to_dict())
    return context


def start_study(config: SearchConfig, presets=()):
    """Validate, then create or resume the study: (context, study, interrupted trials retried).

    On a local storage no other process can be running trials of this study, so every
    RUNNING trial was left by a killed process and is retried now. In a database, workers
    elsewhere may be alive: there the heartbeat decides.
    """
    context = prepare_run_dir(config, presets, threads=max(1, config.cpu_threads // config.workers))
    study = create_study(config, make_sampler(config.sampler, config.seed, len(config.objectives)))
    retried = 0 if is_database_url(config.storage) else recover_interrupted(study)
    enqueue_presets(study, presets)
    return context, study, retried


def run_search(config: SearchConfig, show_progress: bool = True, presets=()) -> SearchSummary:
    """Run (or resume) the search until the study holds ``config.trials`` counted trials.

    ``presets`` (names from ``search_space.presets.PRESETS``) are enqueued as the first
    trials, adapted to the task's input; a resumed study does not enqueue them twice.
    With ``config.workers`` > 1 the trials run in that many worker processes.
    """
    if config.backend == "ray":
        from .ray_backend import run_ray_search

        return run_ray_search(config, show_progress=show_progress, presets=presets)
    from .progress import SearchProgress

    started = time.perf_counter()
    context, study, retried = start_study(config, presets)
    logging.getLogger("optinas").info("resumed %s (%d interrupted trials retried)", config.study, retried)
    with SearchProgress(config, already=len(finished_trials(study)), enabled=show_progress) as progress:
        if retried:
            progress.note(f"resuming: {retried} interrupted trial(s) will be retried")
        if config.workers == 1:
            run_worker(study, context, config.trials, on_trial=live_updates(config, progress))
        else:
            from .parallel import run_worker_processes

            run_worker_processes(config, study, progress)
    return summarize(config, study, started)


def live_updates(config: SearchConfig, progress):
    """The callback of an in-process worker: a progress line and a fresh trials.jsonl per trial."""
    from .results import finalize

    def on_trial(study, frozen) -> None:
        progress.trial_done(frozen)
        finalize(config.run_dir, study, exports=False)
    return on_trial


def summarize(config: SearchConfig, study, started: float) -> SearchSummary:
    """Write the final trials.jsonl, best/ and report, and count how the trials ended."""
    from .results import finalize

    front = finalize(config.run_dir, study, exports=True)
    counted = finished_trials(study)
    counts: dict[str, int] = {}
    for trial in counted:
        status = trial_status(trial)
        counts[status] = counts.get(status, 0) + 1
    return SearchSummary(run_dir=config.run_dir, finished=len(counted),
                         trained=counts.get("trained", 0) + counts.get("reused", 0),
                         infeasible=counts.get("infeasible", 0), failed=counts.get("failed", 0),
                         pruned=counts.get("pruned", 0), front=tuple(front),
                         seconds=time.perf_counter() - started)
