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
import warnings

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from optinas.strategies.status import INTERRUPTED
from optinas.strategies.study import retry_trial
from optinas.strategies.study_index import index_of
from optinas.strategies.trial import run_trial

__all__ = ["run_worker", "worker_tag"]

_WAIT_S = 1.0  # how often an idle worker looks again while others finish the last trials


class CandidateFailed(Exception):
    """A candidate failed on its own (reason already recorded); the search goes on."""


class Surplus(Exception):
    """This trial was asked for after the study was already full."""


def worker_tag() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_worker(study, context, target: int, on_trial=None, stop_when_idle: bool = False) -> int:
    """Run trials of ``study`` until it holds ``target`` counted trials; returns how many ran.

    Args:
        study: The shared ``optuna.Study``.
        context: The ``optinas.strategies.trial.TrialContext`` every trial runs in.
        target: The requested number of counted trials.
        on_trial: Called as ``on_trial(study, frozen_trial)`` after each trial is told.
        stop_when_idle: Return as soon as the remaining trials are all running elsewhere,
            instead of waiting to pick up one of them should its worker die.
    """
    tag, ran, index, current = worker_tag(), 0, index_of(study), [None]

    def objective(trial):
        current[0] = trial.number
        trial.set_user_attr("worker", tag)
        if index.slot(trial.number) > target:
            trial.set_user_attr("surplus", True)
            retry_trial(study, trial, mark=False)
            raise Surplus()
        try:
            outcome = run_trial(trial, context)
        except BaseException as error:
            if isinstance(error, (optuna.TrialPruned, UpdateFinishedTrialError)):
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
        counted, running = index.progress()
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
            if not _failed_elsewhere(error, study, current[0]):
                raise
            # This worker was silent past the heartbeat's grace (paused, or cut off from the
            # database): another worker failed its trial and queued it again. Drop the late
            # result and go on.
            logging.getLogger("optinas").warning("a trial of this worker was retried elsewhere: %s", error)
        ran += 1


def _failed_elsewhere(error: Exception, study, number: int | None) -> bool:
    """Whether ``error`` says this worker's trial was finished by someone else (the heartbeat).

    Optuna raises ``UpdateFinishedTrialError`` when the objective writes to a finished
    trial, and a plain ``ValueError`` when ``tell`` finds it finished; the latter is told
    apart from other ValueErrors by the trial's state, not by the message.
    """
    if isinstance(error, UpdateFinishedTrialError):
        return True
    if not isinstance(error, ValueError) or number is None:
        return False
    finished = study.get_trials(deepcopy=False, states=(TrialState.FAIL, TrialState.COMPLETE, TrialState.PRUNED))
    return any(trial.number == number for trial in finished)


def _fail_stale(study) -> None:
    """Fail trials whose worker went silent; a no-op unless the storage has a heartbeat
    (``optuna.storages.fail_stale_trials`` checks)."""

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
