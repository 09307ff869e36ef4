"""What runs inside a Ray Tune trial: the define-by-run space, the trial adapter, the trainable.

Ray Tune's ``OptunaSearch`` samples the parameters in the driver by calling
``SpaceFunction`` (define-by-run, ``SearchSpace.sample``); the trainable, on whichever node
Ray places it, replays them through ``RayTrial`` (like ``optuna.trial.FixedTrial``) and runs
the ordinary ``strategies.trial.run_trial``, so the space, budgets, objectives and evaluator
are exactly those of the Optuna backend. Per-epoch validation accuracy goes to Tune
(``tune.report``) for ASHA; the final report carries a checkpoint holding ``record.json``
(everything the optinas study stores about the trial) and the weights, which Ray persists
under ``runs/<study>/ray/`` for the driver to copy into ``runs/<study>/checkpoints/``.

Nothing here imports Ray at module level; the trainable imports it when it runs.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["SpaceFunction", "RayTrial", "train_candidate", "RECORD", "WEIGHTS", "INDEX_KEY", "PRESET_KEY"]

RECORD = "record.json"  # in each trial's final checkpoint: the study record of the trial
WEIGHTS = "weights.pt"
INDEX_KEY = "optinas_index"  # Tune config entries the space function adds beside the parameters
PRESET_KEY = "optinas_preset"


class SpaceFunction:
    """Ray's define-by-run space: the first trials evaluate the presets, the rest sample.

    A class rather than a closure because ``OptunaSearch.save`` pickles it with the
    standard pickle when Tune snapshots the experiment.

    Args:
        space: The ``search_space.SearchSpace`` of the study.
        presets: Preset names evaluated as the first trials of a fresh experiment.
        offset: Added to the searcher's trial number to number the trial within the
            optinas study (seed and log names), so a later experiment of the same study
            (more trials requested) does not reuse numbers.
    """

    def __init__(self, space, presets=(), offset: int = 0):
        self.space, self.presets, self.offset = space, tuple(presets), offset

    def __call__(self, trial) -> dict[str, Any]:
        extra: dict[str, Any] = {INDEX_KEY: self.offset + trial.number}
        if trial.number < len(self.presets):
            extra[PRESET_KEY] = self.presets[trial.number]  # no parameters: trial.candidate builds it
        else:
            self.space.sample(trial)  # the suggest_* calls are captured as the trial's parameters
        return extra


class RayTrial:
    """The duck-typed trial ``run_trial`` needs, replaying the searcher's parameters.

    Records the distribution of each ``suggest_*`` call (for ``optuna.trial.create_trial``
    in the driver) and sends per-epoch reports to Tune. It never prunes by itself: ASHA
    stops a weak trial from the driver, which ends this process.
    """

    def __init__(self, number: int, params: dict[str, Any], preset: str | None = None):
        self.number = number
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
        import optuna

        return self._replay(name, optuna.distributions.CategoricalDistribution(list(choices)))

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> int:
        import optuna

        return self._replay(name, optuna.distributions.IntDistribution(low, high, step=step, log=log))

    def suggest_float(self, name: str, low: float, high: float, step: float | None = None,
                      log: bool = False) -> float:
        import optuna

        return self._replay(name, optuna.distributions.FloatDistribution(low, high, step=step, log=log))

    def report(self, value: float, step: int) -> None:
        from ray import tune

        self.intermediate[int(step)] = float(value)
        # Every report carries the record so far: a trial ASHA stops never sends a final one.
        tune.report({"accuracy": float(value), "epoch": int(step) + 1, "optinas_record": json.dumps(self.record())})

    def should_prune(self) -> bool:
        return False

    def record(self, status: str | None = None, values=None) -> dict[str, Any]:
        """Everything the driver writes into the optinas study for this trial."""
        from optuna.distributions import distribution_to_json

        return {"index": self.number, "params": self.params, "user_attrs": self.user_attrs,
                "constraints": self.constraints, "intermediate": self.intermediate,
                "distributions": {name: distribution_to_json(d) for name, d in self.distributions.items()},
                "status": status, "values": list(values) if values is not None else None}


def _final_metrics(record: dict, objectives) -> dict[str, Any]:
    metrics = {"optinas_status": record["status"], "optinas_final": True,
               "optinas_constraints": json.dumps(record["constraints"]),
               "optinas_attrs": json.dumps(record["user_attrs"])}
    if record["values"] is not None:  # a failed trial reports no objective values
        metrics.update({o.name: value for o, value in zip(objectives, record["values"])})
    return metrics


def train_candidate(tune_config: dict[str, Any], search=None) -> None:
    """The Tune function trainable: one candidate, trained by ``strategies.trial.run_trial``.

    A restarted trial (driver restored, or retried by ``FailureConfig``) whose final
    checkpoint already exists reports that result again instead of training a second time.

    Args:
        tune_config: The parameters the searcher sampled plus ``INDEX_KEY``/``PRESET_KEY``.
        search: The study's ``SearchConfig`` (bound with ``tune.with_parameters``).
    """
    from ray import tune
    from ray.tune.utils.util import flatten_dict

    previous = tune.get_checkpoint()
    if previous is not None:
        with previous.as_directory() as folder:
            if (Path(folder) / RECORD).exists():
                record = json.loads((Path(folder) / RECORD).read_text())
                staging = Path(tempfile.mkdtemp(prefix="optinas-ray-"))
                shutil.copytree(folder, staging, dirs_exist_ok=True)
                tune.report(_final_metrics(record, search.objective_list),
                            checkpoint=tune.Checkpoint.from_directory(str(staging)))
                return
    params = flatten_dict(dict(tune_config), delimiter="/")
    index = int(params.pop(INDEX_KEY))
    trial = RayTrial(index, params, preset=params.pop(PRESET_KEY, None))
    staging = Path(tempfile.mkdtemp(prefix="optinas-ray-"))
    context = _context(search, staging)
    from .trial import checkpoint_path, run_trial

    outcome = run_trial(trial, context)
    record = trial.record(outcome.status, outcome.values)
    weights = checkpoint_path(staging, index)
    if weights.exists():
        weights.replace(staging / WEIGHTS)
    (staging / RECORD).write_text(json.dumps(record))
    tune.report(_final_metrics(record, search.objective_list),
                checkpoint=tune.Checkpoint.from_directory(str(staging)))


def _context(search, staging: Path):
    """The trial context on this node; checkpoints and logs go to ``staging`` (sent back)."""
    import os

    from .optuna_driver import prepare

    if search.device == "auto" and search.gpus_per_trial == 0:
        # Ray reserved no GPU for this trial, so it must not use one it may share with others.
        search = dataclasses.replace(search, device="cpu")
    cpus = max(1, int(search.cpus_per_trial))
    context = prepare(search, threads=search.threads or min(cpus, os.cpu_count() or 1))
    return dataclasses.replace(context, run_dir=staging, prunes=search.prunes)
