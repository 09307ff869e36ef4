"""The journal storage's open-trial queries agree with Optuna's walk over all trials."""

from __future__ import annotations

import random

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.trial import TrialState

from optinas.strategies.journal_file import JournalFile
from optinas.strategies.journal_storage import OpenTrialsJournalStorage
from optinas.strategies.storage import open_storage

optuna.logging.set_verbosity(optuna.logging.ERROR)

_QUERIES = [(TrialState.WAITING,), (TrialState.RUNNING,), (TrialState.RUNNING, TrialState.WAITING),
            [TrialState.WAITING], (TrialState.COMPLETE,), (TrialState.WAITING, TrialState.FAIL), None]


def _step(rng: random.Random, study: optuna.Study, running: list) -> None:
    """One random thing a search does: enqueue, ask (which pops an enqueued trial first), finish."""
    action = rng.random()
    if action < 0.25:
        study.enqueue_trial({"x": rng.random()})
    elif action < 0.6 or not running:
        trial = study.ask()
        trial.suggest_float("x", 0, 1)
        running.append(trial)
    else:
        trial = running.pop(rng.randrange(len(running)))
        if rng.random() < 0.5:
            study.tell(trial, rng.random())
        else:
            study.tell(trial, state=rng.choice([TrialState.FAIL, TrialState.PRUNED]))


@pytest.mark.parametrize("seed", range(3))
def test_open_trial_queries_equal_optunas_walk_as_two_processes_fill_two_studies(seed, tmp_path):
    rng = random.Random(seed)
    path = str(tmp_path / "study.journal")
    ours, other = open_storage(tmp_path), open_storage(tmp_path)  # two processes' views of one file
    reference = JournalStorage(JournalFile(path, optuna.storages.journal.JournalFileOpenLock(path)))
    assert isinstance(ours, OpenTrialsJournalStorage)
    studies = [(optuna.create_study(storage=storage, study_name=name, load_if_exists=True), [])
               for name in ("a", "b") for storage in (ours, other)]
    checked = 0
    for _ in range(150):
        _step(rng, *rng.choice(studies))
        study_id = ours.get_study_id_from_name(rng.choice("ab"))
        for states in _QUERIES:
            got = ours.get_all_trials(study_id, deepcopy=rng.random() < 0.5, states=states)
            want = reference.get_all_trials(study_id, deepcopy=False, states=states)
            assert [(t.number, t.state, t.params) for t in got] == [(t.number, t.state, t.params) for t in want]
            checked += bool(want)
    assert checked > 300  # the queries did find trials


def test_an_unknown_study_raises_as_in_optuna(tmp_path):
    with pytest.raises(KeyError):
        open_storage(tmp_path).get_all_trials(12345, states=(TrialState.WAITING,))


def test_ask_takes_enqueued_trials_in_order(tmp_path):
    study = optuna.create_study(storage=open_storage(tmp_path), study_name="q")
    for x in (0.1, 0.2, 0.3):
        study.enqueue_trial({"x": x})
    assert [study.ask().suggest_float("x", 0, 1) for _ in range(3)] == [0.1, 0.2, 0.3]


def test_a_query_reads_only_the_open_and_the_new_trials(tmp_path, monkeypatch):
    storage = open_storage(tmp_path)
    study = optuna.create_study(storage=storage, study_name="big")
    study_id = storage.get_study_id_from_name("big")
    for _ in range(200):
        study.tell(study.ask(), 1.0)
    storage.get_all_trials(study_id, states=(TrialState.WAITING,))  # looks at all 200 once
    held = study.ask()
    study.enqueue_trial({"x": 0.5})
    reads = []
    monkeypatch.setattr(storage, "get_trial", lambda trial_id: reads.append(trial_id) or
                        JournalStorage.get_trial(storage, trial_id))
    waiting = storage.get_all_trials(study_id, states=(TrialState.WAITING,))
    assert len(waiting) == 1 and len(reads) == 2  # the running one and the enqueued one
    study.tell(held, 0.0)
    reads.clear()
    storage.get_all_trials(study_id, states=(TrialState.WAITING,))
    assert len(reads) == 2  # both once more; the finished one is dropped from now on
    reads.clear()
    storage.get_all_trials(study_id, states=(TrialState.RUNNING,))
    assert len(reads) == 1
