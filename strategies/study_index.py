"""What the worker loop asks of a study on every trial, kept up to date incrementally.

A worker needs, before and during each trial: how many trials count and how many run
(``worker_loop``), its trial's slot among the claimed ones (surplus check), and whether an
identical genotype was trained before (``trial._earlier_result``). Recomputing these from
every trial of the study costs O(trials) per trial, so a 10,000-trial search spends more
time counting than sampling. A finished trial never changes, so ``StudyIndex`` classifies
each trial once when it finishes and afterwards looks only at the trials still open and at
the ones created since its last look: O(1) amortised per trial (beyond Optuna's own
``get_trials`` list, which its storages return without copying).
"""

from __future__ import annotations

import bisect
import weakref

from optinas.strategies.status import WITH_ACCURACY, counts_toward

__all__ = ["StudyIndex", "index_of"]

_OPEN = ("RUNNING", "WAITING")
_INDEXES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


class StudyIndex:
    """Counts and a genotype-hash index of one ``optuna.Study``, refreshed on demand."""

    def __init__(self, study):
        self.study = study
        self.seen = 0  # trials numbered below this have been looked at
        self.open: set[int] = set()  # looked at, still RUNNING or WAITING
        self.counted: list[int] = []  # numbers of the finished trials that count, sorted
        self.by_hash: dict[str, object] = {}  # genotype hash -> first finished trial with values

    def refresh(self) -> list:
        """Look at the trials that changed since the last call; returns the study's trials."""
        trials = self.study.get_trials(deepcopy=False)
        if any(trials[number].number != number for number in (0, len(trials) - 1) if trials):
            raise RuntimeError("the study's trials are not numbered by their position")  # never in Optuna
        for number in sorted(self.open):
            if trials[number].state.name not in _OPEN:
                self.open.discard(number)
                self._finished(trials[number])
        for trial in trials[self.seen:]:
            if trial.state.name in _OPEN:
                self.open.add(trial.number)
            else:
                self._finished(trial)
        self.seen = len(trials)
        return trials

    def _finished(self, trial) -> None:
        if counts_toward(trial):
            bisect.insort(self.counted, trial.number)
        attrs = trial.user_attrs
        if attrs.get("hash") and attrs.get("status") in WITH_ACCURACY and trial.values is not None:
            self.by_hash.setdefault(attrs["hash"], trial)

    def progress(self) -> tuple[int, int]:
        """(counted finished trials, running trials), as of now."""
        trials = self.refresh()
        return len(self.counted), sum(trials[number].state.name == "RUNNING" for number in self.open)

    def slot(self, number: int) -> int:
        """1 + how many claimed trials (counted, or running) have a smaller number than ``number``."""
        trials = self.refresh()
        running = sum(1 for other in self.open if other < number and trials[other].state.name == "RUNNING")
        return bisect.bisect_left(self.counted, number) + running + 1

    def earlier_result(self, genotype_hash: str, own_number: int | None = None):
        """A finished trial that already trained (or reused) this exact genotype, if any."""
        self.refresh()
        earlier = self.by_hash.get(genotype_hash)
        return None if earlier is None or earlier.number == own_number else earlier


def index_of(study) -> StudyIndex:
    """The ``StudyIndex`` of ``study`` (one per study object in this process)."""
    index = _INDEXES.get(study)
    if index is None:
        index = _INDEXES[study] = StudyIndex(study)
    return index
