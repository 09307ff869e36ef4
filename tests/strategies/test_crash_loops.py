"""A candidate that kills its process is retried once, then recorded as failed: no crash loops.

The crash is real: ``OPTINAS_TEST_ABORT`` (``strategies/fault_hooks.py``) makes the first
candidate to reach training, and every later trial of the same genotype, call ``os.abort()``,
as a segfault in a native kernel or the kernel's OOM killer would end the process.
"""

import json
import os
import signal
import subprocess
import sys

import optuna
import pytest
from optuna.trial import TrialState

from optinas.strategies.fault_hooks import ABORT_ENV
from optinas.strategies.search import run_search
from optinas.strategies.config import SearchConfig
from optinas.strategies.status import TrialStatus, counts_toward, trial_status
from optinas.strategies.study import CONFIG_ATTR, CRASHED, finished_trials, open_study, recover_interrupted, \
    retry_stale, retry_trial

optuna.logging.set_verbosity(optuna.logging.ERROR)
# The end-to-end tests start three to five Python processes in turn: about a minute here, a
# few with both cores busy elsewhere, past the suite's 300 s hang guard (pyproject.toml).
_LOADED_S = 900


def _lost(study, crashes_before: int | None = None, **attrs):
    """Start a trial of the enqueued (or a new) candidate as a process would, up to training."""
    trial = study.ask()
    if crashes_before is not None:
        assert trial.user_attrs.get("crashes") == crashes_before
    trial.suggest_int("width", 1, 64)
    trial.set_user_attr("hash", f"genotype-{trial.params['width']}")
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    return trial


def _chain(study, genotype_hash):
    return [t for t in study.get_trials() if t.user_attrs.get("hash") == genotype_hash]


def test_the_second_death_of_a_process_on_one_candidate_records_it_failed():
    study = optuna.create_study()
    first = _lost(study)
    recover_interrupted(study)  # the rerun after the first crash: queued again, one crash
    second = _lost(study, crashes_before=1)
    assert second.params == first.params and second.user_attrs["retry_of"] == first.number
    recover_interrupted(study)  # the second crash: failed, not queued again
    assert not study.get_trials(states=(TrialState.WAITING,))
    chain = _chain(study, first.user_attrs["hash"])
    assert [trial_status(t) for t in chain] == [TrialStatus.INTERRUPTED, TrialStatus.INTERRUPTED, TrialStatus.FAILED]
    failed = chain[-1]
    assert failed.state == TrialState.FAIL and counts_toward(failed)
    assert failed.user_attrs["failure"] == f"{CRASHED} (trials {first.number} and {second.number})"
    assert failed.params == first.params and failed.user_attrs["retry_of"] == second.number
    assert finished_trials(study) == [failed]


def test_the_heartbeat_path_counts_crashes_as_database_workers_see_them():
    # retry_stale runs after Optuna's heartbeat check failed the silent worker's trial.
    study = optuna.create_study()
    for crashes_before in (None, 1):
        trial = _lost(study, crashes_before=crashes_before)
        study.tell(trial.number, state=TrialState.FAIL)
        retry_stale(study, study.get_trials()[trial.number])
    statuses = [trial_status(t) for t in study.get_trials()]
    assert statuses == [TrialStatus.INTERRUPTED, TrialStatus.INTERRUPTED, TrialStatus.FAILED]
    assert study.get_trials()[-1].user_attrs["failure"].startswith(CRASHED)


def test_surplus_stopped_and_unsampled_trials_are_not_crashes():
    study = optuna.create_study()

    def queued():
        waiting = study.get_trials(states=(TrialState.WAITING,))
        assert len(waiting) == 1
        return waiting[0].user_attrs

    surplus = _lost(study, surplus=True)  # asked for after the study was full (worker_loop)
    retry_trial(study, surplus, mark=False)
    study.tell(surplus.number, state=TrialState.FAIL)
    assert queued() == {"retry_of": surplus.number}
    stopped = _lost(study, interrupted=True)  # Ctrl-C (worker_loop marks it)
    study.tell(stopped.number, state=TrialState.FAIL)
    retry_trial(study, study.get_trials()[stopped.number], mark=False)
    assert queued() == {"retry_of": stopped.number}
    terminated = _lost(study)  # a worker this process stopped itself (processes.py, on Ctrl-C)
    recover_interrupted(study, crashed=False)
    assert queued() == {"retry_of": terminated.number}
    unsampled = study.ask()  # its process died before the genotype was complete: no hash yet
    unsampled.suggest_int("width", 1, 64)
    recover_interrupted(study)
    assert queued() == {"retry_of": unsampled.number}
    statuses = [trial_status(t) for t in study.get_trials(states=(TrialState.FAIL,))]
    assert statuses == [TrialStatus.SURPLUS, *[TrialStatus.INTERRUPTED] * 3]  # none failed


def test_a_full_study_gets_no_extra_failed_trial():
    study = optuna.create_study()
    study.set_user_attr(CONFIG_ATTR, {"trials": 1})
    _lost(study)
    recover_interrupted(study)
    _lost(study, crashes_before=1)
    done = study.ask()  # another worker filled the study meanwhile
    study.tell(done, 0.5)
    recover_interrupted(study)
    assert len(finished_trials(study)) == 1 and not study.get_trials(states=(TrialState.WAITING,))


def _command(runs, study: str, trials: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "optinas.strategies.cli", "search", "--study", study, "--trials", str(trials),
            "--epochs", "1", "--device", "cpu", "--threads", "1", "--sampler", "random", "--runs-dir", str(runs),
            "--quiet", *extra]


@pytest.mark.timeout(_LOADED_S)
def test_a_candidate_that_aborts_the_search_fails_at_the_second_crash_and_the_rerun_completes(tmp_path):
    # The victim is a preset, the first trial. (A sampled victim would come back: the sampler,
    # seeded alike in every rerun, proposes the same first candidates again as new trials.)
    folder = tmp_path / "abort"
    folder.mkdir()
    env = {**os.environ, ABORT_ENV: str(folder), "PYTHONUNBUFFERED": "1"}
    command = _command(tmp_path, "a", 2, "--presets", "resnet20")
    codes = []
    while len(codes) < 3 and 0 not in codes:  # the user reruns the command after each crash
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        codes.append(done.returncode)
    assert codes == [-signal.SIGABRT, -signal.SIGABRT, 0], done.stderr[-3000:]
    assert len(list(folder.glob("aborted-*"))) == 2

    study = open_study(tmp_path / "a", "a")
    chain = _chain(study, (folder / "victim").read_text())
    assert [trial_status(t) for t in chain] == [TrialStatus.INTERRUPTED, TrialStatus.INTERRUPTED, TrialStatus.FAILED]
    assert [t.user_attrs.get("preset") for t in chain] == ["resnet20"] * 3
    assert chain[1].user_attrs["retry_of"] == chain[0].number and chain[1].user_attrs["crashes"] == 1
    assert chain[2].user_attrs["failure"] == f"{CRASHED} (trials {chain[0].number} and {chain[1].number})"
    counted = finished_trials(study)
    assert len(counted) == 2 and chain[2] in counted
    rows = [json.loads(line) for line in (tmp_path / "a" / "trials.jsonl").read_text().splitlines()]
    failed = [row for row in rows if row["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["failure"].startswith(CRASHED) and failed[0]["preset"] == "resnet20"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="spawned workers die with the parent on Linux")
@pytest.mark.timeout(_LOADED_S)
def test_with_workers_a_candidate_that_kills_two_workers_is_failed_in_one_command(tmp_path, monkeypatch):
    folder = tmp_path / "abort"
    folder.mkdir()
    monkeypatch.setenv(ABORT_ENV, str(folder))  # the spawned workers inherit it; this process trains nothing
    config = SearchConfig(study="w", trials=3, epochs=1, device="cpu", runs_dir=tmp_path, sampler="random",
                          workers=2, threads=2)
    summary = run_search(config, show_progress=False)
    study = open_study(config.run_dir, "w")
    chain = _chain(study, (folder / "victim").read_text())
    assert [trial_status(t) for t in chain] == [TrialStatus.INTERRUPTED, TrialStatus.INTERRUPTED, TrialStatus.FAILED]
    assert chain[1].user_attrs["crashes"] == 1 and chain[2].user_attrs["failure"].startswith(CRASHED)
    assert len({t.user_attrs["worker"] for t in chain[:2]}) == 2  # two worker processes died on it
    assert {path.name for path in folder.glob("aborted-*")} == {
        f"aborted-{t.user_attrs['worker'].rsplit(':', 1)[1]}" for t in chain[:2]}
    assert summary.finished == 3 and summary.failed == 1
    assert sorted(trial_status(t) for t in finished_trials(study)) == ["failed", "trained", "trained"]
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
