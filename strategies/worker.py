"""The worker loop: ask the study for a trial, run it, tell the result, until the study is full.

One loop serves every way of running a search: in the ``optinas search`` process itself,
in each of ``--workers K`` processes on one machine, and in ``optinas worker`` on other
machines sharing a database. Workers coordinate only through the study's storage:

- A trial *counts* toward the requested number when it completed, was pruned, or failed
  for a reason of its own (NaN, OOM, crash). Trials a dead process left behind
  ("interrupted") and trials asked for after the study was already full ("surplus") do not;
  both hand their parameters back to the queue.
- A worker asks for a trial only while counted + running trials are fewer than requested.
  Two workers can still ask at the same moment; the later-numbered trial then finds itself
  beyond the requested number and steps back as surplus, so a study never overshoots.
- Each trial carries the user attribute ``worker`` (host:pid), so the process that started
  the workers can retry exactly the trials of a worker that died.
"""

from __future__ import annotations

import logging
import os
import socket
import time

__all__ = ["NOT_COUNTED", "counts_toward", "trial_status", "run_worker", "worker_tag", "retry_trial", "INTERRUPTED"]

INTERRUPTED = "interrupted: the process running this trial stopped; the trial was retried"
NOT_COUNTED = ("interrupted", "surplus")  # statuses of finished trials that hand their slot back
_WAIT_S = 1.0  # how often an idle worker looks again while others finish the last trials


class CandidateFailed(Exception):
    """A candidate failed on its own (reason already recorded); the search goes on."""


class Surplus(Exception):
    """This trial was asked for after the study was already full."""


def worker_tag() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def trial_status(trial) -> str:
    """How a finished trial ended: trained, reused, infeasible, pruned, failed, interrupted or surplus."""
    attrs = trial.user_attrs
    state = trial.state.name
    if attrs.get("surplus"):
        return "surplus"
    if attrs.get("interrupted") or (state == "FAIL" and attrs.get("status") != "failed"):
        # A FAIL without a recorded reason: the heartbeat (or the parent process) failed it.
        return "interrupted"
    if state == "PRUNED":
        return "pruned"
    return attrs.get("status", "failed")


def counts_toward(trial) -> bool:
    """Whether a trial counts toward the requested number (see the module docstring)."""
    if trial.state.name in ("RUNNING", "WAITING"):
        return False
    return trial_status(trial) not in NOT_COUNTED


def retry_trial(study, trial, reason: str = INTERRUPTED, mark: bool = True) -> None:
    """Hand a lost trial's parameters (or preset) back to the queue, once.

    With ``mark``, the trial (still RUNNING) is first failed and marked interrupted; the
    heartbeat path calls this after Optuna already failed the trial (``mark=False``).
    """
    from optuna.trial import TrialState

    if mark:
        storage = study._storage  # the study's own storage; these methods are public API
        storage.set_trial_user_attr(trial._trial_id, "interrupted", True)
        storage.set_trial_user_attr(trial._trial_id, "failure", reason)
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    preset = trial.user_attrs.get("preset")
    if trial.params or preset:
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number,
                                                      **({"preset": preset} if preset else {})})


def _slot(study, number: int) -> int:
    """1 + how many claimed trials (counted or running) have a smaller number than ``number``."""
    claimed = [t for t in study.get_trials(deepcopy=False)
               if t.number < number and (t.state.name == "RUNNING" or counts_toward(t))]
    return len(claimed) + 1


def _progress(study) -> tuple[int, int]:
    trials = study.get_trials(deepcopy=False)
    return sum(map(counts_toward, trials)), sum(t.state.name == "RUNNING" for t in trials)


def run_worker(study, context, target: int, on_trial=None, stop_when_idle: bool = False) -> int:
    """Run trials of ``study`` until it holds ``target`` counted trials; returns how many ran.

    Args:
        study: The shared ``optuna.Study``.
        context: The ``strategies.trial.TrialContext`` every trial runs in.
        target: The requested number of counted trials.
        on_trial: Called as ``on_trial(study, frozen_trial)`` after each trial is told.
        stop_when_idle: Return as soon as the remaining trials are all running elsewhere,
            instead of waiting to pick up one of them should its worker die.
    """
    from .trial import run_trial

    tag, ran = worker_tag(), 0

    def objective(trial):
        trial.set_user_attr("worker", tag)
        if _slot(study, trial.number) > target:
            trial.set_user_attr("surplus", True)
            retry_trial(study, trial, mark=False)
            raise Surplus()
        try:
            outcome = run_trial(trial, context)
        except BaseException as error:
            if type(error).__name__ in ("TrialPruned", "UpdateFinishedTrialError"):
                raise  # pruned; or already failed as stale elsewhere (handled below)
            # Ctrl-C, or a bug in optinas itself: leave the trial retryable, then stop.
            trial.set_user_attr("interrupted", True)
            trial.set_user_attr("failure", INTERRUPTED)
            retry_trial(study, trial, mark=False)
            raise
        if outcome.values is None:
            raise CandidateFailed(outcome.reason)
        return outcome.values[0] if len(outcome.values) == 1 else list(outcome.values)

    callbacks = [on_trial] if on_trial else []
    while True:
        _fail_stale(study)
        counted, running = _progress(study)
        if counted >= target:
            return ran
        if counted + running >= target:
            if stop_when_idle:
                return ran
            time.sleep(_WAIT_S)
            continue
        try:
            study.optimize(objective, n_trials=1, catch=(CandidateFailed, Surplus), callbacks=callbacks,
                           gc_after_trial=False, show_progress_bar=False)
        except Exception as error:
            if not _failed_elsewhere(error):
                raise
            # This worker was silent past the heartbeat's grace (paused, or cut off from the
            # database): another worker failed its trial and queued it again. Drop the late
            # result and go on.
            logging.getLogger("optinas").warning("a trial of this worker was retried elsewhere: %s", error)
        ran += 1


def _failed_elsewhere(error: Exception) -> bool:
    """Whether ``error`` says the trial was finished by someone else (the heartbeat)."""
    import optuna

    if isinstance(error, optuna.exceptions.UpdateFinishedTrialError):
        return True
    return isinstance(error, ValueError) and "Cannot tell a" in str(error)


def _fail_stale(study) -> None:
    """With a heartbeat (database storages), fail trials whose worker went silent."""
    import warnings

    import optuna
    from optuna.storages._heartbeat import is_heartbeat_enabled

    if is_heartbeat_enabled(study._storage):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
