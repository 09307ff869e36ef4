"""How a trial ended: one Enum for every module that reads or writes a trial's status.

The status is stored on the Optuna trial as the user attribute ``status`` (its string value),
so ``TrialStatus`` compares equal to the stored string ("trained" == TrialStatus.TRAINED).
``interrupted`` and ``surplus`` are never stored as a status: they are derived from the
trial's state and its ``interrupted``/``surplus`` marks (see ``trial_status``).
"""

from __future__ import annotations

from enum import Enum

__all__ = ["TrialStatus", "NOT_COUNTED", "WITH_ACCURACY", "INTERRUPTED", "trial_status", "counts_toward"]


class TrialStatus(str, Enum):
    """How a finished trial ended."""

    TRAINED = "trained"  # trained here; its values are the objectives
    REUSED = "reused"  # an identical genotype was trained before; its values were copied
    INFEASIBLE = "infeasible"  # over a budget: recorded with its cost, never trained
    PRUNED = "pruned"  # stopped early by the pruner
    FAILED = "failed"  # failed on its own (diverged, out of memory, crashed, time limit)
    INTERRUPTED = "interrupted"  # its process stopped; the parameters were queued again
    SURPLUS = "surplus"  # asked for after the study was full; the parameters were queued again

    def __str__(self) -> str:
        return self.value


#: Statuses that hand their slot back: they do not count toward the requested trials.
NOT_COUNTED = (TrialStatus.INTERRUPTED, TrialStatus.SURPLUS)
#: Statuses whose trial has trained values (accuracy and costs).
WITH_ACCURACY = (TrialStatus.TRAINED, TrialStatus.REUSED)
INTERRUPTED = "interrupted: the process running this trial stopped; the trial was retried"


def trial_status(trial) -> TrialStatus:
    """How a finished ``optuna.trial.FrozenTrial`` ended."""
    attrs = trial.user_attrs
    state = trial.state.name
    if attrs.get("surplus"):
        return TrialStatus.SURPLUS
    if attrs.get("interrupted") or (state == "FAIL" and attrs.get("status") != TrialStatus.FAILED):
        # A FAIL without a recorded reason: the heartbeat (or the parent process) failed it.
        return TrialStatus.INTERRUPTED
    if state == "PRUNED":
        return TrialStatus.PRUNED
    return TrialStatus(attrs.get("status", TrialStatus.FAILED))


def counts_toward(trial) -> bool:
    """Whether a trial counts toward the requested number of trials.

    A trial counts when it completed, was pruned, or failed for a reason of its own.
    Trials a dead process left behind and trials asked for after the study was full do not.
    """
    if trial.state.name in ("RUNNING", "WAITING"):
        return False
    return trial_status(trial) not in NOT_COUNTED
