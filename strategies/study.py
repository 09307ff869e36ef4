"""The study's life cycle: create or load it, check a resume, recover what a dead process left.

The study lives in ``runs/<study>/`` (a journal file; see ``storage.py``) or in a database
given by ``--storage``. Rerunning the same command loads it: trials a killed process left
RUNNING are failed ("interrupted") and their parameters queued again, completed trials are
never trained again. Every backend (``backends/``) opens its study through this module.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna
import torch
from optuna.trial import TrialState

from optinas.evaluator import Fidelity, load_task, resolve_device
from optinas.search_space import InputSpec, SearchSpace
from optinas.search_space.errors import ConfigError
from optinas.search_space.presets import preset
from optinas.strategies.config import SearchConfig
from optinas.strategies.files import read_toml, write_toml_atomic
from optinas.strategies.objectives import DEFAULT_OBJECTIVES
from optinas.strategies.samplers import make_sampler
from optinas.strategies.status import counts_toward
from optinas.strategies.storage import is_database_url, open_storage
from optinas.strategies.trial import TrialContext

__all__ = ["open_study", "create_study", "finished_trials", "prepare", "prepare_run_dir", "start_study",
           "recover_interrupted", "retry_trial", "make_pruner", "CONFIG_ATTR"]

CONFIG_ATTR = "optinas.config"  # the study's user attribute holding its SearchConfig


def make_pruner(config: SearchConfig):
    """The pruner of a single-objective search (Optuna prunes on one reported value)."""
    if not config.prunes:
        return optuna.pruners.NopPruner()
    if config.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=config.epochs)
    # Median: stop a trial whose accuracy after an epoch is below the median of earlier
    # trials at that epoch; the first epoch is never judged (it is mostly warm-up).
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)


def retry_trial(study, trial, mark: bool = True) -> None:
    """Hand a lost trial's parameters (or preset) back to the queue, once.

    With ``mark``, the trial (still RUNNING, its process dead) is first failed through the
    public ``Study.tell(number, state=FAIL)``; a FAIL without a reason of its own reads as
    interrupted (``status.trial_status``). The heartbeat path calls this after Optuna already
    failed the trial (``mark=False``).
    """
    if mark:
        study.tell(trial.number, state=TrialState.FAIL)
    preset_name = trial.user_attrs.get("preset")
    if trial.params or preset_name:
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number,
                                                      **({"preset": preset_name} if preset_name else {})})


def retry_stale(study, trial) -> None:
    """Heartbeat callback: a worker went silent mid-trial; queue its parameters again."""
    retry_trial(study, trial, mark=False)


def open_study(run_dir: Path, study_name: str, sampler=None, url: str | None = None, pruner=None):
    """Load the existing study stored in ``run_dir`` (or at the database ``url``)."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if url is None and (run_dir / "config.toml").exists():
        url = read_toml(run_dir / "config.toml").get("storage")
    storage = open_storage(run_dir, url, on_stale=retry_stale)
    return optuna.load_study(storage=storage, study_name=study_name, sampler=sampler, pruner=pruner)


def create_study(config: SearchConfig, sampler=None):
    """Create the study of ``config`` (or load it when it exists), with its config attached."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = open_storage(config.run_dir, config.storage, on_stale=retry_stale)
    directions = [objective.direction for objective in config.objective_list]
    study = optuna.create_study(storage=storage, study_name=config.study, directions=directions,
                                sampler=sampler, pruner=make_pruner(config), load_if_exists=True)
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


def recover_interrupted(study, worker: str | None = None) -> int:
    """Fail and re-queue the RUNNING trials of a dead process (all, or those of ``worker``)."""
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
    device = resolve_device(config.device)
    if device.type == "cpu":
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
    channels, height, width = task.input_shape
    return InputSpec(channels=channels, height=height, width=width, classes=task.num_classes)


def prepare_run_dir(config: SearchConfig, presets=(), threads: int | None = None) -> TrialContext:
    """Validate every input (presets included), then create runs/<study>/ with its config.toml."""
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
