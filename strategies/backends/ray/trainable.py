"""What runs inside a Ray Tune trial: the define-by-run space, the trial adapter, the trainable.

Ray Tune's ``OptunaSearch`` samples the parameters in the driver by calling
``SpaceFunction`` (define-by-run, ``SearchSpace.sample``); the trainable, on whichever node
Ray places it, replays them through ``RayTrial`` (like ``optuna.trial.FixedTrial``) and runs
the ordinary ``optinas.strategies.trial.run_trial``, so the space, budgets, objectives and evaluator
are exactly those of the Optuna backend. Per-epoch validation accuracy goes to Tune
(``tune.report``) for ASHA; the final report carries a checkpoint holding ``record.json``
(everything the optinas study stores about the trial) and the weights, which Ray persists
under ``runs/<study>/ray/`` for the driver to copy into ``runs/<study>/checkpoints/``.

Nothing here imports Ray at module level; the trainable imports it when it runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import distribution_to_json

from optinas.strategies.storage import open_storage
from optinas.strategies.study import prepare
from optinas.strategies.trial import checkpoint_path, run_trial, warm_up_kernels

__all__ = ["SpaceFunction", "RayTrial", "train_candidate", "RECORD", "WEIGHTS", "INDEX_KEY", "PRESET_KEY"]

RECORD = "record.json"  # in each trial's final checkpoint: the study record of the trial
WEIGHTS = "weights.pt"
INDEX_KEY = "optinas_index"  # Tune config entries the space function adds beside the parameters
PRESET_KEY = "optinas_preset"


class SpaceFunction:
    """Ray's define-by-run space: the first trials evaluate the presets, the rest sample.

    A class rather than a closure because ``OptunaSearch.save`` pickles it with the
    standard pickle when Tune snapshots the experiment. It runs in the driver only.

    Each trial gets an index, unique within the optinas study (its seed and log names):
    ``offset`` plus a count, continued after ``resume_after``. A restored experiment
    brings back a pickled instance whose count may predate the kill (Tune's snapshot of
    the searcher can lag or be lost), so the driver tells the process-wide ``_resumed``
    which indices and presets the experiment's trials already used.

    Args:
        space: The ``search_space.SearchSpace`` of the study.
        presets: Preset names evaluated as the first trials of a fresh experiment.
        offset: The first index (one past the indices of earlier experiments of the study).
    """

    _resumed: dict[str, Any] = {"next": 0, "presets": ()}

    def __init__(self, space, presets=(), offset: int = 0):
        self.space, self.presets, self.offset = space, tuple(presets), offset
        self.next, self.used = offset, set()

    @classmethod
    def resume_after(cls, indices, presets) -> None:
        """Before a restored experiment runs: the indices and presets its trials used."""
        cls._resumed = {"next": max(indices, default=-1) + 1, "presets": tuple(presets)}

    def __call__(self, trial) -> dict[str, Any]:
        index = max(self.next, type(self)._resumed["next"])
        self.next = index + 1
        type(self)._resumed["next"] = index + 1
        extra: dict[str, Any] = {INDEX_KEY: index}
        done = set(self.used) | set(type(self)._resumed["presets"])
        todo = [name for name in self.presets if name not in done]
        if todo:
            self.used.add(todo[0])
            extra[PRESET_KEY] = todo[0]  # no parameters: trial.candidate builds the preset
        else:
            self.space.sample(trial)  # the suggest_* calls are captured as the trial's parameters
        return extra


class RayTrial:
    """The duck-typed trial ``run_trial`` needs, replaying the searcher's parameters.

    Records the distribution of each ``suggest_*`` call (for ``optuna.trial.create_trial``
    in the driver) and sends per-epoch reports to Tune. It never prunes by itself: ASHA
    stops a weak trial from the driver, which ends this process. The last epoch is not
    reported on its own: the final report carries it with the checkpoint (ASHA stops a
    trial at ``max_t`` epochs, which would otherwise come before the checkpoint).
    """

    def __init__(self, number: int, params: dict[str, Any], preset: str | None = None, last_step: int = -1,
                 study=None):
        self.number, self.last_step = number, last_step
        self.study = study  # the optinas study, read-only: an identical genotype's result is reused
        self.params = dict(params)
        self.user_attrs: dict[str, Any] = {"preset": preset} if preset else {}
        self.constraints: dict[str, float] = {}
        self.distributions: dict[str, Any] = {}
        self.intermediate: dict[int, float] = {}

    def set_user_attr(self, key: str, value: Any) -> None:
        self.user_attrs[key] = value

    def set_constraint(self, name: str, value: float) -> None:
        self.constraints[name] = float(value)

    def _replay(self, name: str, distribution) -> Any:
        if name not in self.params:
            raise KeyError(f"the searcher sent no value for parameter {name!r}")
        self.distributions[name] = distribution
        return self.params[name]

    def suggest_categorical(self, name: str, choices) -> Any:

        return self._replay(name, optuna.distributions.CategoricalDistribution(list(choices)))

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> int:

        return self._replay(name, optuna.distributions.IntDistribution(low, high, step=step, log=log))

    def suggest_float(self, name: str, low: float, high: float, step: float | None = None,
                      log: bool = False) -> float:

        return self._replay(name, optuna.distributions.FloatDistribution(low, high, step=step, log=log))

    def report(self, value: float, step: int) -> None:
        from ray import tune

        self.intermediate[int(step)] = float(value)
        if step == self.last_step:
            return
        # Every report carries the record so far: a trial ASHA stops never sends a final one.
        tune.report({"accuracy": float(value), "epoch": int(step) + 1, "optinas_record": json.dumps(self.record())})

    def should_prune(self) -> bool:
        return False

    def record(self, status: str | None = None, values=None) -> dict[str, Any]:
        """Everything the driver writes into the optinas study for this trial."""

        return {"index": self.number, "params": self.params, "user_attrs": self.user_attrs,
                "constraints": self.constraints, "intermediate": self.intermediate,
                "distributions": {name: distribution_to_json(d) for name, d in self.distributions.items()},
                "status": status, "values": list(values) if values is not None else None}


def _final_metrics(record: dict, objectives, trained_here: bool) -> dict[str, Any]:
    # optinas_trained_here: False when a restarted trial only re-reports its checkpoint
    # (each Tune trial's result.json thus shows how often it really ran).
    metrics = {"optinas_status": record["status"], "optinas_final": True, "optinas_trained_here": trained_here,
               "optinas_constraints": json.dumps(record["constraints"]),
               "optinas_attrs": json.dumps(record["user_attrs"])}
    if record["intermediate"]:  # ASHA's time attribute: the epochs trained
        metrics["epoch"] = len(record["intermediate"])
    if record["values"] is not None:  # a failed trial reports no objective values
        metrics.update({o.name: value for o, value in zip(objectives, record["values"])})
    return metrics


def train_candidate(tune_config: dict[str, Any], search=None, cwd: str | None = None) -> None:
    """The Tune function trainable: one candidate, trained by ``optinas.strategies.trial.run_trial``.

    A restarted trial (driver restored, or retried by ``FailureConfig``) whose final
    checkpoint already exists reports that result again instead of training a second time.

    Args:
        tune_config: The parameters the searcher sampled plus ``INDEX_KEY``/``PRESET_KEY``.
        search: The study's ``SearchConfig`` (bound with ``tune.with_parameters``).
        cwd: The driver's working folder: relative ``--runs-dir``, ``--space``, ``--data-dir``
            and task paths mean the same here, on a node that has it (Tune starts each
            trial in its own trial folder).
    """

    from ray import tune
    from ray.tune.utils.util import flatten_dict

    if cwd and os.path.isdir(cwd):
        os.chdir(cwd)

    previous = tune.get_checkpoint()
    if previous is not None:
        with previous.as_directory() as folder:
            if (Path(folder) / RECORD).exists():
                record = json.loads((Path(folder) / RECORD).read_text())
                staging = Path(tempfile.mkdtemp(prefix="optinas-trial-"))
                shutil.copytree(folder, staging, dirs_exist_ok=True)
                _report(_final_metrics(record, search.objective_list, trained_here=False), staging)
                return

    params = flatten_dict(dict(tune_config), delimiter="/")
    index = int(params.pop(INDEX_KEY))
    trial = RayTrial(index, params, preset=params.pop(PRESET_KEY, None), last_step=search.epochs - 1,
                     study=_recorded_study(search))
    staging = Path(tempfile.mkdtemp(prefix="optinas-trial-"))
    try:  # (ASHA stopping the trial mid-training ends it here too)
        outcome = run_trial(trial, _context(search, staging))
        record = trial.record(outcome.status, outcome.values)
        weights = checkpoint_path(staging, index)
        if weights.exists():
            weights.replace(staging / WEIGHTS)
            weights.parent.rmdir()
        (staging / RECORD).write_text(json.dumps(record))
        _report(_final_metrics(record, search.objective_list, trained_here=True), staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _report(metrics: dict[str, Any], staging: Path) -> None:
    """The final report; Tune persists the checkpoint before ``report`` returns."""
    from ray import tune

    try:
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(staging)))
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # the persisted copy is under runs/<study>/ray/


_studies: dict[tuple[str, str], Any] = {}  # per worker process, like _contexts


def _recorded_study(search):
    """The optinas study the driver records trials into, when this node sees runs/ (a local
    cluster, or a shared file system); None otherwise, and then nothing is reused.

    Opened once per worker process: the journal storage reads only what the driver appended
    since, where loading it afresh for every trial would replay the whole journal each time.
    """

    key = (str(search.run_dir.resolve()), search.study)
    if key in _studies:
        return _studies[key]
    if not (search.run_dir / "study.journal").is_file():
        return None
    try:
        study = optuna.load_study(study_name=search.study, storage=open_storage(search.run_dir))
    except Exception:  # unreadable here: train instead of reusing
        return None
    _studies.clear()
    _studies[key] = study
    return study


_contexts: dict[Any, Any] = {}  # per worker process: Tune reuses it for the next trial


def _context(search, staging: Path):
    """The trial context on this node; checkpoints and logs go to ``staging`` (sent back)."""

    if search.device == "auto" and search.gpus_per_trial == 0:
        # Ray reserved no GPU for this trial, so it must not use one it may share with others.
        search = dataclasses.replace(search, device="cpu")
    if search not in _contexts:  # the task's tensors and the space, loaded once per process
        cpus = max(1, int(search.cpus_per_trial))
        _contexts.clear()
        _contexts[search] = prepare(search, threads=search.threads or min(cpus, os.cpu_count() or 1))
        warm_up_kernels(_contexts[search])  # once per Ray worker process, like the context
    return dataclasses.replace(_contexts[search], run_dir=staging, prunes=search.prunes)
