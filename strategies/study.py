"""The study's life cycle: create or load it, check a resume, recover what a dead process left.

The study lives in ``runs/<study>/`` (a journal file; see ``storage.py``) or in a database
given by ``--storage``. Rerunning the same command loads it: trials a killed process left
RUNNING are failed ("interrupted") and their parameters queued again (a candidate that was
running in two processes that died is recorded as failed instead), completed trials are
never trained again. Every backend (``backends/``) opens its study through this module.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna
import torch
from optuna.trial import TrialState

from optinas.evaluator import Fidelity, load_task, resolve_device
from optinas.search_space import InputSpec, SearchSpace, default_space_for
from optinas.search_space.errors import ConfigError
from optinas.search_space.packaged_spaces import space_label
from optinas.search_space.presets import preset
from optinas.strategies.config import SearchConfig
from optinas.strategies.files import read_toml, write_toml_atomic
from optinas.strategies.objectives import DEFAULT_OBJECTIVES
from optinas.strategies.samplers import make_sampler
from optinas.strategies.status import TrialStatus, counts_toward
from optinas.strategies.storage import is_database_url, open_storage
from optinas.strategies.study_index import track
from optinas.strategies.trial import TrialContext

__all__ = ["open_study", "create_study", "finished_trials", "prepare", "prepare_run_dir", "start_study",
           "recover_interrupted", "retry_trial", "make_pruner", "CONFIG_ATTR", "MAX_CRASHES", "CRASHED"]

CONFIG_ATTR = "optinas.config"  # the study's user attribute holding its SearchConfig
MAX_CRASHES = 2  # deaths of a process running one candidate before the candidate is failed
CRASHED = "the candidate crashed the process twice"
# Marks of the dead process's attempt that the failed record of a crashing candidate drops.
_NOT_CARRIED = ("worker", "surplus", "interrupted", "failure", "status", "retry_of", "crashes")


def make_pruner(config: SearchConfig):
    """The pruner of a single-objective search (Optuna prunes on one reported value)."""
    if not config.prunes:
        return optuna.pruners.NopPruner()
    if config.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=config.epochs)
    # Median: stop a trial whose accuracy after an epoch is below the median of earlier
    # trials at that epoch; the first epoch is never judged (it is mostly warm-up).
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)


def retry_trial(study, trial, mark: bool = True, crashed: bool = True) -> None:
    """Hand a lost trial's parameters (or preset) back to the queue, or fail a crashing candidate.

    With ``mark``, the trial (still RUNNING, its process dead) is first failed through the
    public ``Study.tell(number, state=FAIL)``; a FAIL without a reason of its own reads as
    interrupted (``status.trial_status``). The heartbeat path calls this after Optuna already
    failed the trial (``mark=False``).

    The retry carries the user attribute ``crashes``: how many processes died while running
    this candidate (its genotype complete). A candidate that kills its process (a segfault in
    a native kernel, the OOM killer) would crash every retry, so at the second death it is not
    queued again: a failed trial (``CRASHED``) takes its place and the search goes on. Trials
    handed back for another reason (marked ``surplus``, or ``interrupted`` by Ctrl-C) keep
    their count, as do trials of processes this one stopped (``crashed=False``).
    """
    if mark:
        study.tell(trial.number, state=TrialState.FAIL)
    attrs = trial.user_attrs
    preset_name = attrs.get("preset")
    if not (trial.params or preset_name):
        return  # it died before sampling anything: nothing to hand back
    crashes = attrs.get("crashes", 0)
    if crashed and "hash" in attrs and not (attrs.get("surplus") or attrs.get("interrupted")):
        crashes += 1
    if crashes >= MAX_CRASHES:
        _record_crash(study, trial)
        return
    study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number,
                                                  **({"crashes": crashes} if crashes else {}),
                                                  **({"preset": preset_name} if preset_name else {})})


def _record_crash(study, trial) -> None:
    """Add the failed trial that ends the retries of a candidate that crashed ``MAX_CRASHES`` times.

    The interrupted trial itself stays as it is (a finished trial cannot be changed); the new
    one counts toward the requested trials, with the candidate's genotype, cost and
    constraints, unless the study filled up meanwhile (then nothing is left to run anyway).
    """
    requested = study.user_attrs.get(CONFIG_ATTR, {}).get("trials")
    if requested is not None and len(finished_trials(study)) >= requested:
        return
    first = trial.user_attrs.get("retry_of")
    attrs = {key: value for key, value in trial.user_attrs.items() if key not in _NOT_CARRIED}
    attrs.update(status=TrialStatus.FAILED.value, retry_of=trial.number, crashes=MAX_CRASHES,
                 failure=CRASHED + (f" (trials {first} and {trial.number})" if first is not None else ""))
    record = optuna.trial.create_trial(state=TrialState.FAIL, params=trial.params,
                                       distributions=trial.distributions, user_attrs=attrs,
                                       constraints=trial.constraints or None)
    study.add_trial(record)


def retry_stale(study, trial) -> None:
    """Heartbeat callback: a worker went silent mid-trial; queue its parameters again."""
    retry_trial(study, trial, mark=False)


def open_study(run_dir: Path, study_name: str, sampler=None, url: str | None = None, pruner=None):
    """Load the existing study stored in ``run_dir`` (or at the database ``url``)."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if url is None and (run_dir / "config.toml").exists():
        url = read_toml(run_dir / "config.toml").get("storage")
    storage = open_storage(run_dir, url, on_stale=retry_stale)
    study = optuna.load_study(storage=storage, study_name=study_name, sampler=sampler, pruner=pruner)
    track(study, storage)
    return study


def create_study(config: SearchConfig, sampler=None):
    """Create the study of ``config`` (or load it when it exists), with its config attached."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = open_storage(config.run_dir, config.storage, on_stale=retry_stale)
    directions = [objective.direction for objective in config.objective_list]
    study = optuna.create_study(storage=storage, study_name=config.study, directions=directions,
                                sampler=sampler, pruner=make_pruner(config), load_if_exists=True)
    track(study, storage)
    stored = study.user_attrs.get(CONFIG_ATTR)
    if stored is not None:
        _check_same(stored, config)
    if study.metric_names is None:  # optuna-dashboard and optuna.visualization then label the objectives
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([objective.name for objective in config.objective_list])
    study.set_user_attr(CONFIG_ATTR, config.to_dict())  # workers elsewhere read it (trials may grow)
    return study


def finished_trials(study) -> list:
    """Trials that count toward the requested number (interrupted and surplus ones do not)."""
    return [trial for trial in study.get_trials(deepcopy=False) if counts_toward(trial)]


def recover_interrupted(study, worker: str | None = None, crashed: bool = True) -> int:
    """Fail and re-queue the RUNNING trials of a dead process (all, or those of ``worker``).

    ``crashed=False`` when this process stopped that one itself (then its candidates keep
    their crash counts, see ``retry_trial``)."""
    stale = [trial for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
             if worker is None or trial.user_attrs.get("worker") == worker]
    for trial in stale:
        retry_trial(study, trial, crashed=crashed)
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
    device = resolve_device(config.device)
    if config.cuda_graphs and device.type != "cuda":
        raise ConfigError(f"--cuda-graphs captures the training step on a GPU, but this search runs on "
                          f"{device.type} (--device {config.device}); drop --cuda-graphs or run on a CUDA device")
    if device.type == "cpu":
        torch.set_num_threads(threads or config.cpu_threads)
    task = load_task(config.task, seed=config.seed, data_dir=config.data_dir,
                     download=config.download)
    if task.kind != "classification":
        raise ConfigError(
            f"task {config.task!r} is a {task.kind} task; optinas search optimises "
            "classification accuracy, so use it through evaluator.evaluate instead"
        )
    input_spec = _input_spec(task)
    # No --space: the packaged space sized for the task's images (cifar for 3x32x32, ...).
    source = config.space if config.space is not None else default_space_for(input_spec)
    space = SearchSpace.from_toml(input_spec, source)
    label = space_label(source) if config.space is not None else (
        f"{source} (the packaged space for the task's {input_spec.channels}x{input_spec.height}x"
        f"{input_spec.width} images; --space chooses another)")
    fidelity = Fidelity(epochs=config.epochs, train_fraction=config.train_fraction,
                        cuda_graphs=config.cuda_graphs, width_multiplier=config.width_multiplier,
                        resolution=config.resolution, time_limit_s=config.trial_time_limit_s)
    _check_resume(config)
    return TrialContext(space=space, task=task, fidelity=fidelity, budget=config.budget,
                        device=device, seed=config.seed, run_dir=config.run_dir,
                        objectives=config.objective_list, prunes=config.prunes, space_label=label)


def _input_spec(task):
    channels, height, width = task.input_shape
    return InputSpec(channels=channels, height=height, width=width, classes=task.num_classes)


def prepare_run_dir(config: SearchConfig, presets=(), threads: int | None = None) -> TrialContext:
    """Validate every input (presets included), then create runs/<study>/ with its config.toml."""
    context = prepare(config, threads=threads)
    for name in presets:  # every preset must fit the task before anything is written
        preset(name, context.space.input)
    if is_database_url(config.storage):
        open_storage(config.run_dir, config.storage)  # a server that does not answer fails here, not later
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
    # Alone in its study: one in-process search on a local journal (workers, a database or Ray
    # run trials side by side; their samplers are made where they sample).
    alone = config.workers == 1 and config.backend == "optuna" and not is_database_url(config.storage)
    sampler = make_sampler(config.sampler, config.seed, len(config.objectives), concurrent=not alone)
    study = create_study(config, sampler)
    retried = 0 if is_database_url(config.storage) else recover_interrupted(study)
    enqueue_presets(study, presets)
    return context, study, retried
