"""The study's journal file: Optuna's own format, readable by Optuna's backend, resumable."""

import optuna
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

from optinas.strategies import journal_file
from optinas.strategies.journal_file import JournalFile
from optinas.strategies.storage import open_storage


def _study(backend, name="s"):
    return optuna.create_study(storage=optuna.storages.JournalStorage(backend), study_name=name,
                               directions=["maximize", "minimize"], load_if_exists=True)


def test_optuna_reads_what_the_journal_file_writes(tmp_path):
    path = str(tmp_path / "study.journal")
    study = _study(JournalFile(path, JournalFileOpenLock(path)))
    for number in range(3):
        trial = study.ask()
        trial.suggest_int("depth", 1, 9)
        trial.set_user_attr("status", "trained")
        study.tell(trial, [0.5 + number / 10, number])
    plain = _study(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))
    assert [t.values for t in plain.get_trials()] == [t.values for t in study.get_trials()]
    assert [t.params for t in plain.get_trials()] == [t.params for t in study.get_trials()]
    assert not (tmp_path / "study.journal.lock").exists()  # every append released its lock


def test_appends_are_fsynced_at_most_once_a_second(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(journal_file.os, "fsync", lambda fd: synced.append(fd))
    clock = iter([0.0, 0.1, 0.2, 0.3, 1.5, 1.5, 1.6]).__next__
    monkeypatch.setattr(journal_file, "_clock", clock)
    path = str(tmp_path / "j.journal")
    backend = JournalFile(path, JournalFileOpenLock(path))  # its clock starts at 0.0
    for number in range(4):  # at 0.1, 0.2, 0.3: within the second; at 1.5: synced, clock reset
        backend.append_logs([{"op_code": 0, "worker_id": "w", "n": number}])
    assert len(synced) == 1
    assert [log["n"] for log in backend.read_logs(0)] == [0, 1, 2, 3]


def test_a_search_folder_opens_its_journal_through_it(tmp_path):
    storage = open_storage(tmp_path)
    assert isinstance(storage, optuna.storages.JournalStorage)
    optuna.create_study(storage=storage, study_name="x")
    assert (tmp_path / "study.journal").stat().st_size > 0
