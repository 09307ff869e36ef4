"""Ray Tune results into the optinas study: the searcher subclass and the recording callback.

Imported only by ``ray_backend`` (it imports Ray at module level).

A finished Tune trial becomes one ``optuna.trial.FrozenTrial`` of the optinas study
(``optuna.trial.create_trial``: parameters, distributions, values, state, constraints,
user attributes), numbered in the order trials finish; its weights are copied to
``runs/<study>/checkpoints/<number>.pt`` first, so a recorded trial always has them.

Kill -9 safety: a trial is written into the study only once the newest experiment snapshot
in ``runs/<study>/ray/`` lists it as finished (``RayRecorder.on_step_end``).
A driver killed in between leaves the trial out of the study but finished in the snapshot;
the restored experiment does not run it again and ``reconcile`` records it from its
checkpoint. Trials are keyed by their Tune trial id (user attribute ``ray_trial``), so no
trial is ever recorded twice.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import json_to_distribution
from optuna.trial import TrialState
from ray.tune import Callback
from ray.tune.search.optuna import OptunaSearch

from optinas.strategies.backends.ray.compat import searcher_study
from optinas.strategies.backends.ray.trainable import INDEX_KEY, PRESET_KEY, RECORD, WEIGHTS
from optinas.strategies.results.records import append_trials
from optinas.strategies.status import TrialStatus
from optinas.strategies.study import CRASHED
from optinas.strategies.trial import checkpoint_path

__all__ = ["OptinasSearch", "RayRecorder"]


class OptinasSearch(OptunaSearch):
    """``OptunaSearch`` that tells Optuna what the Optuna backend tells it.

    The stock searcher tells a failed candidate's missing values as a crash, and drops the
    budget constraints; this one tells failed trials FAIL, trials ASHA stopped PRUNED, and
    sets each trial's constraints and user attributes before telling it, so constrained
    samplers (TPE, NSGA-II, GP) and the Gibbs sampler see what they see in the Optuna backend.
    """

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:

        study, trials, completed, metrics = searcher_study(self)
        if trial_id in completed or trial_id not in trials:
            return
        ot_trial = trials[trial_id]
        result = result or {}
        if result.get("optinas_final"):
            for name, value in json.loads(result.get("optinas_constraints", "{}")).items():
                ot_trial.set_constraint(name, value)
            for key, value in json.loads(result.get("optinas_attrs", "{}")).items():
                ot_trial.set_user_attr(key, value)
        values = [result.get(name) for name in metrics]
        if result.get("optinas_final") and result.get("optinas_status") != TrialStatus.FAILED and None not in values:
            study.tell(ot_trial, values if len(values) > 1 else values[0])
        elif not error and not result.get("optinas_final") and len(metrics) == 1 and None not in values:
            study.tell(ot_trial, state=TrialState.PRUNED)  # stopped by ASHA
        else:
            study.tell(ot_trial, state=TrialState.FAIL)
        completed.add(trial_id)


def _load_checkpoint(checkpoint) -> tuple[dict | None, Path | None]:
    """The record in a trial's final checkpoint, and a local copy of the folder."""
    if checkpoint is None:
        return None, None

    local = Path(tempfile.mkdtemp(prefix="optinas-checkpoint-"))
    checkpoint.to_directory(str(local))
    record = local / RECORD
    return (json.loads(record.read_text()) if record.exists() else None), local


_PROCESS_DIED = "worker process has died"  # Ray's ActorDiedError: the trial's process ended
_parsed: dict[Path, tuple[tuple[int, int], set[str]]] = {}  # snapshot -> ((mtime, size), finished ids)


def _finished_in_snapshot(experiment: Path) -> set[str]:
    """Ids of the trials that the newest experiment snapshot on disk has as finished.

    Called on every Tune step while a finished trial waits; the snapshot (which grows with
    the trials) is parsed again only once Tune has rewritten it.
    """
    snapshots = sorted(experiment.glob("experiment_state-*.json"))  # named by session start
    if not snapshots:
        return set()
    try:
        stat = snapshots[-1].stat()
        version = (stat.st_mtime_ns, stat.st_size)
        cached = _parsed.get(snapshots[-1])
        if cached is not None and cached[0] == version:
            return cached[1]
        state = json.loads(snapshots[-1].read_text())
        trials = [json.loads(entry[0]) for entry in state["trial_data"]]
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return set()  # being copied right now; the next step looks again
    finished = {trial["trial_id"] for trial in trials if trial.get("status") in ("TERMINATED", "ERROR")}
    _parsed.clear()  # only the newest snapshot is ever asked again
    _parsed[snapshots[-1]] = (version, finished)
    return finished


def _failure(error: str | None) -> str:
    """Why Ray gave up on a trial; a trial whose process died on every try (``MAX_FAILURES``
    retries) was killed by its candidate: a native crash, or the OOM killer."""
    if error and _PROCESS_DIED in error:
        return f"{CRASHED} (ray: {error.split('. ')[0].rstrip('.')})"
    return f"ray: {error or 'the trial ended without a result'}"


class RayRecorder(Callback):
    """Writes each finished Tune trial into the optinas study (see the module docstring).

    Pickled with the Tuner by Tune; it pickles as an empty stub (the study and the progress
    bar stay in this process) and ``ray_backend`` gives a restored Tuner a live one.
    """

    def __init__(self, config, study, progress):
        self.config, self.study, self.progress = config, study, progress
        self.experiment: Path | None = None
        self.pending: dict[str, Any] = {}  # trial id -> finished Tune trial, not yet recorded
        self.recorded = {t.user_attrs["ray_trial"] for t in study.get_trials(deepcopy=False)
                         if "ray_trial" in t.user_attrs}

    def __getstate__(self) -> dict:
        return {}

    def next_index(self) -> int:
        """One past the largest trial index used so far in this study."""
        indices = [t.user_attrs.get("ray_index", -1) for t in self.study.get_trials(deepcopy=False)]
        return max(indices, default=-1) + 1

    # Tune callback hooks ------------------------------------------------------------------
    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.pending[trial.trial_id] = trial

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.pending[trial.trial_id] = trial

    def on_step_end(self, iteration, trials, **info) -> None:
        if not self.pending or self.experiment is None:
            return
        finished = _finished_in_snapshot(self.experiment)
        for trial_id, trial in list(self.pending.items()):
            if trial_id in finished:  # a restored experiment will not run this trial again
                self._record_tune_trial(trial)
                del self.pending[trial_id]

    def on_experiment_end(self, trials, **info) -> None:
        for trial in list(self.pending.values()):
            self._record_tune_trial(trial)
        self.pending.clear()

    # Recording ----------------------------------------------------------------------------
    def reconcile(self, grid) -> None:
        """Record every trial of a finished experiment that the study does not hold yet."""
        for result in grid:
            trial_id = (result.metrics or {}).get("trial_id") or Path(result.path).name.removeprefix("trial-")
            error = str(result.error).strip().splitlines()[-1] if result.error else None
            self._record(trial_id, result.metrics or {}, result.checkpoint, error, result.config or {})

    def _record_tune_trial(self, trial) -> None:
        error = None
        if trial.status == "ERROR":
            error = "the trial's Ray worker failed repeatedly"
            path = getattr(trial, "error_file", None)
            if path and Path(path).exists():
                lines = Path(path).read_text(errors="replace").strip().splitlines()
                error = lines[-1] if lines else error
        self._record(trial.trial_id, trial.last_result or {}, trial.checkpoint, error, trial.config or {})

    def _record(self, trial_id: str, last: dict, checkpoint, error: str | None, tune_config: dict) -> None:

        if trial_id in self.recorded:
            return
        record, local = _load_checkpoint(checkpoint)
        attrs: dict[str, Any] = {}
        if record is not None:
            state = TrialState.FAIL if record["status"] == TrialStatus.FAILED else TrialState.COMPLETE
        elif "optinas_record" in last and error is None:
            record = json.loads(last["optinas_record"])  # stopped by ASHA after an epoch report
            state, attrs = TrialState.PRUNED, {"status": TrialStatus.PRUNED.value, "pruned_at_epoch": last.get("epoch")}
        else:
            record = json.loads(last["optinas_record"]) if "optinas_record" in last else {
                "index": tune_config.get(INDEX_KEY, -1), "params": {}, "distributions": {},
                "user_attrs": {"preset": tune_config[PRESET_KEY]} if tune_config.get(PRESET_KEY) else {},
                "constraints": {}, "intermediate": {}}
            state = TrialState.FAIL
            attrs = {"status": TrialStatus.FAILED.value, "failure": _failure(error)}
        try:  # the checkpoint copy in ``local`` is removed by _store, or here if building fails
            distributions = {name: json_to_distribution(text) for name, text in record["distributions"].items()}
            params = {name: value for name, value in record["params"].items() if name in distributions}
            user_attrs = {**record["user_attrs"], **attrs, "ray_trial": trial_id, "ray_index": record["index"],
                          "worker": f"ray:{last.get('node_ip', '?')}"}
            frozen = optuna.trial.create_trial(
                state=state, values=record.get("values") if state == TrialState.COMPLETE else None,
                params=params, distributions=distributions, user_attrs=user_attrs,
                intermediate_values={int(step): value for step, value in record["intermediate"].items()},
                constraints=record["constraints"] or None)
            if "timestamp" in last:
                finished = datetime.fromtimestamp(last["timestamp"])
                frozen.datetime_start = finished - timedelta(seconds=float(last.get("time_total_s", 0.0)))
                frozen.datetime_complete = finished
            number = self._store(frozen, local)
        except BaseException:
            if local is not None:
                shutil.rmtree(local, ignore_errors=True)
            raise
        self.recorded.add(trial_id)
        stored = self.study.get_trials(deepcopy=False)[number]
        if self.progress is not None:
            self.progress.trial_done(stored)
        append_trials(self.config.run_dir, [stored])  # one row; summarize rewrites the file at the end

    def _store(self, frozen, local: Path | None) -> int:
        """Copy the weights and logs, then add the trial; returns its number in the study."""

        run_dir = self.config.run_dir
        number = len(self.study.get_trials(deepcopy=False))  # this driver is the study's only writer
        if local is not None:
            if (local / WEIGHTS).exists():
                target = checkpoint_path(run_dir, number)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(local / WEIGHTS, target)
            if (local / "logs").is_dir():
                shutil.copytree(local / "logs", run_dir / "logs", dirs_exist_ok=True)
            shutil.rmtree(local, ignore_errors=True)
        self.study.add_trial(frozen)
        return number
