"""`optinas worker`: processes on one study in PostgreSQL, a worker killed mid-trial, and a
candidate that crashes the workers that train it.

Real processes on a real server: ``postgres_url`` (tests/strategies/conftest.py) starts
PostgreSQL on loopback and the tests skip where it cannot. ``optinas search --storage URL``
runs the same worker loop as ``optinas worker``, so either is a worker of the study. Each
process is the CLI in a subprocess, as on a cluster, except the worker that recovers from a
kill: it runs in the test process so that its heartbeat can be shortened (storage.GRACE_S).
The ``gate`` fixture holds the trials of the subprocesses, so each test decides when they
train instead of betting on their speed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TRIALS = 4
# The cheapest real search: digits, one epoch, one thread, random sampling (no model to fit).
SEARCH_FLAGS = ["--epochs", "1", "--device", "cpu", "--threads", "1", "--sampler", "random", "--quiet"]
_WAIT_S = 600  # per phase, a failure guard: each wait ends on an event long before


def _spawn(args: list[str], cwd: Path, log: Path, env: dict | None = None) -> subprocess.Popen:
    """Start ``optinas ARGS`` (the repository first on the path, whatever is installed), with
    ``env`` added to this process's environment."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {}),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "optinas.strategies.cli", *args], cwd=cwd, env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)


def _finish(process: subprocess.Popen, log: Path, code: int = 0) -> None:
    try:
        process.wait(timeout=_WAIT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"{process.args[3]} did not finish in {_WAIT_S} s:\n{log.read_text()[-3000:]}")
    assert process.returncode == code, log.read_text()[-3000:]


def _rows(engine, sql: str) -> list:
    """Rows of a query, or none while the search has not created the tables yet."""
    import sqlalchemy

    try:
        with engine.connect() as connection:
            return list(connection.execute(sqlalchemy.text(sql)))
    except sqlalchemy.exc.ProgrammingError:  # relation "studies" does not exist (yet)
        return []


def _wait_until(condition, processes, what: str, poll_s: float = 0.2) -> None:
    deadline = time.time() + _WAIT_S
    while not condition():
        for process, log in processes:
            assert process.poll() is None, f"{process.args[3]} exited early:\n{log.read_text()[-3000:]}"
        if time.time() > deadline:
            pytest.fail(f"waited {_WAIT_S} s for {what}")
        time.sleep(poll_s)


def _study_created(engine, study: str) -> bool:
    """The study exists and holds its settings, so a worker can join it."""
    return bool(_rows(engine, "SELECT 1 FROM studies JOIN study_user_attributes USING (study_id) "
                              f"WHERE study_name = '{study}' AND key = 'optinas.config'"))


def _beating(engine, study: str, number: int) -> bool:
    """Whether trial ``number`` of ``study`` has a heartbeat (until it has one, Optuna never
    finds it stale, so a process killed before its first beat would leave it RUNNING)."""
    return bool(_rows(engine, "SELECT 1 FROM trial_heartbeats JOIN trials USING (trial_id) JOIN studies "
                              f"USING (study_id) WHERE study_name = '{study}' AND number = {number}"))


def _load(url: str, study: str):
    import optuna

    # No heartbeat here: the test process only reads, it must not fail anyone's trial.
    return optuna.load_study(study_name=study, storage=optuna.storages.RDBStorage(url))


@pytest.fixture
def engine(postgres_url):
    import sqlalchemy

    engine = sqlalchemy.create_engine(postgres_url, poolclass=sqlalchemy.pool.NullPool)
    yield engine
    engine.dispose()


def test_a_search_and_a_worker_complete_the_study_once(tmp_path, postgres_url, engine, gate):
    from optinas.strategies.status import trial_status
    from optinas.strategies.study import finished_trials

    logs = tmp_path / "search.log", tmp_path / "worker.log"
    search = _spawn(["search", "--study", "shared", "--storage", postgres_url, "--trials", str(TRIALS),
                     "--runs-dir", str(tmp_path / "search-runs"), *SEARCH_FLAGS], tmp_path, logs[0], gate.env)
    worker = None
    try:
        _wait_until(lambda: _study_created(engine, "shared"), [(search, logs[0])], "the study")
        # The worker gets only the name and the URL: every other setting comes from the study.
        worker = _spawn(["worker", "--study", "shared", "--storage", postgres_url, "--threads", "1",
                         "--runs-dir", str(tmp_path / "worker-runs"), "--quiet"], tmp_path, logs[1], gate.env)
        # The gate holds the search's first trial, so the search cannot finish alone (one
        # candidate trains in about a second, far less than a worker takes to start); the
        # trials are let through once both processes hold one. A held trial keeps beating.
        _wait_until(lambda: {pid for _, _, pid in gate.arrivals()} == {search.pid, worker.pid},
                    [(search, logs[0]), (worker, logs[1])], "both processes to hold a trial")
        gate.open(10 * TRIALS)
        _finish(worker, logs[1])
        _finish(search, logs[0])
    finally:
        for process in filter(None, (search, worker)):
            process.kill()
            process.wait()

    study = _load(postgres_url, "shared")
    trials = study.get_trials()
    counted = finished_trials(study)
    # No loss: exactly the requested number counts, each with its result.
    assert len(counted) == TRIALS
    for trial in counted:
        assert trial.state.name == "COMPLETE" and len(trial.values) == len(study.directions)
        assert trial_status(trial) in ("trained", "reused") and trial.user_attrs["metrics"]
    # No duplicates: no genotype trained twice (a repeat reuses the earlier result instead).
    trained = [trial.user_attrs["hash"] for trial in counted if trial_status(trial) == "trained"]
    assert len(trained) == len(set(trained))
    # Anything else is a surplus ask that stepped back (two workers asked for the last slot).
    numbers = {trial.number for trial in counted}
    assert all(trial_status(trial) == "surplus" for trial in trials if trial.number not in numbers)
    # Both processes took part, through the database alone.
    assert len({trial.user_attrs["worker"] for trial in counted}) == 2


def test_a_worker_killed_mid_trial_is_failed_by_the_heartbeat_and_retried(
        tmp_path, postgres_url, engine, monkeypatch, gate):
    import torch

    from optinas.strategies import cli, storage
    from optinas.strategies.status import trial_status
    from optinas.strategies.study import finished_trials

    log = tmp_path / "search.log"
    search = _spawn(["search", "--study", "lost", "--storage", postgres_url, "--trials", "2",
                     "--runs-dir", str(tmp_path / "search-runs"), *SEARCH_FLAGS], tmp_path, log, gate.env)
    try:  # its first trial waits at the closed gate, beating, until the kill
        _wait_until(lambda: gate.arrivals() and _beating(engine, "lost", gate.arrivals()[0][1]), [(search, log)],
                    "a trial in training")
    finally:
        os.kill(search.pid, signal.SIGKILL)
        search.wait()
    running = [trial for trial in _load(postgres_url, "lost").get_trials() if trial.state.name == "RUNNING"]
    assert len(running) == 1, "the killed process should leave exactly its current trial RUNNING"
    killed = running[0]

    # A second worker, in this process so that its heartbeat can be short: the killed trial
    # goes stale GRACE_S after its last beat instead of the default 40 s.
    monkeypatch.setattr(storage, "HEARTBEAT_S", 1)
    monkeypatch.setattr(storage, "GRACE_S", 2)
    threads = torch.get_num_threads()
    try:
        code = cli.main(["worker", "--study", "lost", "--storage", postgres_url, "--threads", "1",
                         "--runs-dir", str(tmp_path / "worker-runs"), "--quiet"])
    finally:
        torch.set_num_threads(threads)  # the worker set one thread for this whole process
    assert code == 0

    study = _load(postgres_url, "lost")
    trials = study.get_trials()
    assert len(finished_trials(study)) == 2
    stale = trials[killed.number]
    assert stale.state.name == "FAIL" and trial_status(stale) == "interrupted"
    retries = [trial for trial in trials if trial.user_attrs.get("retry_of") == killed.number]
    assert len(retries) == 1
    retry = retries[0]
    assert retry.params == killed.params and retry.user_attrs["hash"] == killed.user_attrs["hash"]
    assert retry.state.name == "COMPLETE" and trial_status(retry) in ("trained", "reused")
    assert retry.user_attrs["crashes"] == 1  # the killed worker counts as one crash of the candidate
    assert retry.user_attrs["worker"] == f"{socket.gethostname()}:{os.getpid()}"  # the new worker


def test_a_candidate_that_crashes_two_workers_is_failed_through_the_heartbeat(
        tmp_path, postgres_url, engine, monkeypatch):
    import torch

    from optinas.strategies import cli, storage
    from optinas.strategies.fault_hooks import ABORT_ENV
    from optinas.strategies.status import TrialStatus, trial_status
    from optinas.strategies.study import CRASHED, finished_trials

    folder = tmp_path / "abort"  # the first candidate to train aborts every process that trains it
    folder.mkdir()
    env = {ABORT_ENV: str(folder), "OPTINAS_HEARTBEAT_S": "1"}  # stale after 4 s of silence
    logs = tmp_path / "search.log", tmp_path / "worker.log"
    search = _spawn(["search", "--study", "crash", "--storage", postgres_url, "--trials", "2",
                     "--runs-dir", str(tmp_path / "search-runs"), *SEARCH_FLAGS], tmp_path, logs[0], env)
    _finish(search, logs[0], code=-signal.SIGABRT)
    # A worker fails the silent trial once it is stale and runs the retry (maybe after a
    # trial of its own): the candidate aborts this process too.
    worker = _spawn(["worker", "--study", "crash", "--storage", postgres_url, "--threads", "1",
                     "--runs-dir", str(tmp_path / "worker-runs"), "--quiet"], tmp_path, logs[1], env)
    _finish(worker, logs[1], code=-signal.SIGABRT)

    # A third worker, here (no hook, a short heartbeat): the second stale trial is the
    # candidate's second crash, so it is recorded as failed and the study completes.
    monkeypatch.setattr(storage, "HEARTBEAT_S", 1)
    monkeypatch.setattr(storage, "GRACE_S", 2)
    threads = torch.get_num_threads()
    try:
        code = cli.main(["worker", "--study", "crash", "--storage", postgres_url, "--threads", "1",
                         "--runs-dir", str(tmp_path / "last-runs"), "--quiet"])
    finally:
        torch.set_num_threads(threads)
    assert code == 0

    study = _load(postgres_url, "crash")
    chain = [t for t in study.get_trials() if t.user_attrs.get("hash") == (folder / "victim").read_text()]
    assert [trial_status(t) for t in chain] == [TrialStatus.INTERRUPTED, TrialStatus.INTERRUPTED, TrialStatus.FAILED]
    assert chain[1].user_attrs["crashes"] == 1 and chain[2].user_attrs["failure"].startswith(CRASHED)
    assert len(finished_trials(study)) == 2 and chain[2] in finished_trials(study)
    assert {path.name for path in folder.glob("aborted-*")} == {f"aborted-{search.pid}", f"aborted-{worker.pid}"}
