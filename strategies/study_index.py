"""What the worker loop asks of a study on every trial, kept up to date incrementally.

A worker needs, before and during each trial: how many trials count and how many run
(``worker_loop``), its trial's slot among the claimed ones (surplus check), and whether an
identical genotype was trained before (``trial._earlier_result``). Recomputing these from
every trial of the study costs O(trials) per trial, so a 10,000-trial search spends more
time counting than sampling. A finished trial never changes, so ``StudyIndex`` classifies
each trial once when it finishes and afterwards reads only the trials still open and the
ones created since its last look, one by one through the storage (``get_trial``): O(1)
amortised per trial. Listing a study's trials (``Study.get_trials``) walks all of them in
every Optuna storage; the index does that only for a study whose storage it was not given.
"""

from __future__ import annotations

import bisect
import weakref

from optinas.strategies.status import WITH_ACCURACY, counts_toward

__all__ = ["StudyIndex", "index_of", "track"]

_OPEN = ("RUNNING", "WAITING")
_INDEXES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


class StudyIndex:
    """Counts and a genotype-hash index of one ``optuna.Study``, refreshed on demand.

    ``storage``: the storage object the study was created or loaded with; without it each
    refresh lists the whole study (fine for the small in-memory studies of tests).
    """

    def __init__(self, study, storage=None):
        self.study = study
        self.storage = storage
        self.study_id = storage.get_study_id_from_name(study.study_name) if storage is not None else None
        self.seen = 0  # trials numbered below this have been looked at
        self.open: dict[int, object] = {}  # number -> latest view of a RUNNING or WAITING trial
        self.trial_ids: dict[int, int] = {}  # number -> storage id, of the open trials
        self.counted: list[int] = []  # numbers of the finished trials that count, sorted
        self.by_hash: dict[str, object] = {}  # genotype hash -> first finished trial with values

    def refresh(self) -> None:
        """Look at the trials that changed since the last call."""
        if self.storage is None:
            trials = self.study.get_trials(deepcopy=False)
            now_open, new = {number: trials[number] for number in self.open}, trials[self.seen:]
            if any(trial.number != self.seen + offset for offset, trial in enumerate(new)):
                raise RuntimeError("the study's trials are not numbered by their position")  # never in Optuna
        else:
            now_open = {number: self.storage.get_trial(self.trial_ids[number]) for number in self.open}
            new = self._read_new()
        for trial in [*now_open.values(), *new]:
            if trial.state.name in _OPEN:
                self.open[trial.number] = trial
            else:
                self.open.pop(trial.number, None)
                self._finished(trial)
        self.seen += len(new)

    def _read_new(self) -> list:
        """The trials numbered from ``seen`` on, read one by one from the storage."""
        new = []
        while True:
            try:
                trial_id = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, self.seen + len(new))
            except KeyError:  # no trial with that number yet
                return new
            trial = self.storage.get_trial(trial_id)
            if trial.state.name in _OPEN:
                self.trial_ids[trial.number] = trial_id
            new.append(trial)

    def _finished(self, trial) -> None:
        self.trial_ids.pop(trial.number, None)
        if counts_toward(trial):
            bisect.insort(self.counted, trial.number)
        attrs = trial.user_attrs
        if attrs.get("hash") and attrs.get("status") in WITH_ACCURACY and trial.values is not None:
            self.by_hash.setdefault(attrs["hash"], trial)

    def progress(self) -> tuple[int, int]:
        """(counted finished trials, running trials), as of now."""
        self.refresh()
        return len(self.counted), sum(trial.state.name == "RUNNING" for trial in self.open.values())

    def slot(self, number: int) -> int:
        """1 + how many claimed trials (counted, or running) have a smaller number than ``number``."""
        self.refresh()
        running = sum(1 for other, trial in self.open.items() if other < number and trial.state.name == "RUNNING")
        return bisect.bisect_left(self.counted, number) + running + 1

    def earlier_result(self, genotype_hash: str, own_number: int | None = None):
        """A finished trial that already trained (or reused) this exact genotype, if any."""
        self.refresh()
        earlier = self.by_hash.get(genotype_hash)
        return None if earlier is None or earlier.number == own_number else earlier


def track(study, storage) -> StudyIndex:
    """Index ``study`` through ``storage``, the storage object it was created or loaded with."""
    index = _INDEXES[study] = StudyIndex(study, storage)
    return index


def index_of(study) -> StudyIndex:
    """The ``StudyIndex`` of ``study`` (one per study object in this process)."""
    index = _INDEXES.get(study)
    if index is None:
        index = _INDEXES[study] = StudyIndex(study)
    return index
