"""The Optuna driver: accuracy against multiplications, resumable, under hard budgets.

The study lives in ``runs/<study>/study.db`` (SQLite). Rerunning the same command loads it:
trials a killed process left RUNNING are marked failed ("interrupted") and enqueued again
with the same parameters, completed trials are never trained again, and the loop runs until
the study holds the requested number of finished trials.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from search_space.errors import ConfigError

from .config import SearchConfig
from .files import read_toml, write_toml_atomic
from .trial import TrialContext, TrialOutcome, run_trial

__all__ = ["DIRECTIONS", "run_search", "open_study", "SearchSummary", "finished_trials"]

DIRECTIONS = ("maximize", "minimize")  # validation accuracy, multiplications
INTERRUPTED = "interrupted: the search process stopped during this trial; it was retried"


@dataclass(frozen=True)
class SearchSummary:
    run_dir: Path
    finished: int
    trained: int
    infeasible: int
    failed: int
    front: tuple[int, ...]
    seconds: float


def make_sampler(name: str, seed: int):
    """The sampler chosen by name. Budgets reach every sampler as trial constraints."""
    import warnings

    import optuna

    samplers = {
        # Multivariate, grouped TPE models the conditional per-pattern parameters jointly.
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, n_startup_trials=8),
        "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed, population_size=16),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
    }
    if name not in samplers:
        raise ConfigError(f"--sampler must be one of {', '.join(samplers)}; got {name!r}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # ``group`` is stable in use
        return samplers[name]()


def storage_url(run_dir: Path) -> str:
    return f"sqlite:///{(run_dir / 'study.db').resolve()}"


def open_study(run_dir: Path, study_name: str, sampler=None, create: bool = False):
    """Load (or with ``create``, create or load) the study stored in ``run_dir``."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(storage_url(run_dir))
    if create:
        return optuna.create_study(storage=storage, study_name=study_name, directions=list(DIRECTIONS),
                                   sampler=sampler, load_if_exists=True)
    return optuna.load_study(storage=storage, study_name=study_name, sampler=sampler)


def _is_counted(frozen_trial) -> bool:
    from optuna.trial import TrialState

    if frozen_trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return frozen_trial.state == TrialState.FAIL and not frozen_trial.user_attrs.get("interrupted")


def finished_trials(study) -> list:
    """Trials that count toward the requested number (interrupted ones are retried, not counted)."""
    return [t for t in study.get_trials(deepcopy=False) if _is_counted(t)]


def recover_interrupted(study) -> int:
    """Fail and re-enqueue the trials a killed process left RUNNING; returns how many."""
    from optuna.trial import TrialState

    storage = study._storage  # the study's own storage object; its methods are public API
    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in stale:
        storage.set_trial_user_attr(trial._trial_id, "interrupted", True)
        storage.set_trial_user_attr(trial._trial_id, "failure", INTERRUPTED)
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        if trial.params or trial.user_attrs.get("preset"):
            study.enqueue_trial(trial.params, user_attrs=_retry_attrs(trial))
    return len(stale)


def _retry_attrs(trial) -> dict:
    """User attributes of a retried trial: where it came from, and the preset it evaluates."""
    preset = trial.user_attrs.get("preset")
    return {"retry_of": trial.number, **({"preset": preset} if preset else {})}


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


def _check_resume(config: SearchConfig) -> None:
    """A resumed study must have been created with the same search-defining settings."""
    path = config.run_dir / "config.toml"
    if not path.exists():
        return
    stored = read_toml(path)
    for key, value in config.identity().items():
        if stored.get(key) != value:
            raise ConfigError(
                f"runs/{config.study} was created with {key} = {stored.get(key)!r}, not {value!r}; "
                f"rerun with the same settings to resume, or choose a new --study"
            )
    for key in stored:
        if key.startswith(("budget.", "proxy.", "space.")) and key not in config.identity():
            raise ConfigError(
                f"runs/{config.study} was created with {key} = {stored[key]!r}; rerun with the same "
                "budget to resume, or choose a new --study"
            )


def prepare(config: SearchConfig):
    """Validate every input before anything is written under runs/."""
    from evaluator import Fidelity, load_task, resolve_device

    from search_space import SearchSpace

    device = resolve_device(config.device)
    if device.type == "cpu":
        import torch

        torch.set_num_threads(config.cpu_threads)
    task = load_task(config.task, seed=config.seed, data_dir=config.data_dir,
                     download=config.download)
    if task.kind != "classification":
        raise ConfigError(
            f"task {config.task!r} is a {task.kind} task; optinas search optimises "
            "classification accuracy, so use it through evaluator.evaluate instead"
        )
    space = SearchSpace.from_toml(_input_spec(task), config.space)
    fidelity = Fidelity(epochs=config.epochs, train_fraction=config.train_fraction,
                        cuda_graphs=config.cuda_graphs)
    _check_resume(config)
    return TrialContext(space=space, task=task, fidelity=fidelity, budget=config.budget,
                        device=device, seed=config.seed, run_dir=config.run_dir)


def _input_spec(task):
    from search_space import InputSpec

    channels, height, width = task.input_shape
    return InputSpec(channels=channels, height=height, width=width, classes=task.num_classes)


def run_search(config: SearchConfig, show_progress: bool = True, presets=()) -> SearchSummary:
    """Run (or resume) the search until ``config.trials`` trials have finished.

    ``presets`` (names from ``search_space.presets.PRESETS``) are enqueued as the first
    trials, adapted to the task's input; a resumed study does not enqueue them twice.
    """
    from search_space.presets import preset

    from .progress import SearchProgress
    from .results import finalize

    context = prepare(config)
    for name in presets:  # every preset must fit the task before anything is written
        preset(name, context.space.input)
    started = time.perf_counter()
    config.run_dir.mkdir(parents=True, exist_ok=True)
    if not (config.run_dir / "config.toml").exists():
        write_toml_atomic(config.run_dir / "config.toml", config.to_dict())
    study = open_study(config.run_dir, config.study, make_sampler(config.sampler, config.seed), create=True)
    retried = recover_interrupted(study)
    enqueue_presets(study, presets)
    logging.getLogger("optinas").info("resumed %s (%d interrupted trials retried)", config.study, retried)

    with SearchProgress(config, already=len(finished_trials(study)), enabled=show_progress) as progress:
        if retried:
            progress.note(f"resuming: {retried} interrupted trial(s) will be retried")
        while len(finished_trials(study)) < config.trials:
            trial = study.ask()
            try:
                outcome = run_trial(trial, context)
            except BaseException:
                # Ctrl-C or a bug in optinas itself: leave the trial retryable, then stop.
                study._storage.set_trial_user_attr(trial._trial_id, "interrupted", True)
                study._storage.set_trial_user_attr(trial._trial_id, "failure", INTERRUPTED)
                study.tell(trial, state=_fail_state())
                study.enqueue_trial(trial.params, user_attrs=_retry_attrs(trial))
                raise
            _tell(study, trial, outcome)
            progress.trial_done(trial.number, outcome, trial.user_attrs)
            finalize(config.run_dir, study, exports=False)

    front = finalize(config.run_dir, study, exports=True)
    counts = _status_counts(study)
    return SearchSummary(run_dir=config.run_dir, finished=len(finished_trials(study)),
                         trained=counts.get("trained", 0) + counts.get("reused", 0),
                         infeasible=counts.get("infeasible", 0), failed=counts.get("failed", 0),
                         front=tuple(front), seconds=time.perf_counter() - started)


def _fail_state():
    from optuna.trial import TrialState

    return TrialState.FAIL


def _tell(study, trial, outcome: TrialOutcome) -> None:
    if outcome.values is None:
        study.tell(trial, state=_fail_state())
    else:
        study.tell(trial, list(outcome.values))


def _status_counts(study) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trial in finished_trials(study):
        status = trial.user_attrs.get("status", "failed")
        counts[status] = counts.get(status, 0) + 1
    return counts
