"""Objectives in a real search, pruning, worker processes, surplus trials and `optinas worker`."""

import json
import os
import signal
import subprocess
import sys
import threading

import optuna
import pytest

from optinas.strategies.status import TrialStatus, counts_toward, trial_status
from optinas.strategies.study_index import index_of
from optinas.strategies.cli import main
from optinas.strategies.config import Budget, SearchConfig
from optinas.strategies.study import CONFIG_ATTR, finished_trials, open_study
from optinas.strategies.search import run_search


def _rows(run_dir):
    return [json.loads(line) for line in (run_dir / "trials.jsonl").read_text().splitlines()]


def test_pareto_search_over_energy_reports_values_in_objective_order(tmp_path):
    config = SearchConfig(study="e", trials=2, epochs=1, device="cpu", runs_dir=tmp_path, sampler="random",
                          objectives="accuracy,energy,params", threads=1)
    summary = run_search(config, show_progress=False)
    study = open_study(config.run_dir, "e")
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE", "MINIMIZE"]
    for row in _rows(config.run_dir):
        assert row["values"][1:] == [row["cost"]["energy_pj"], row["cost"]["params"]]
    assert summary.finished == 2 and summary.front


class _AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial):
        return True


def test_single_objective_search_prunes_from_epoch_reports(tmp_path, monkeypatch):
    import optinas.strategies.study as driver

    monkeypatch.setattr(driver, "make_pruner", lambda config: _AlwaysPrune())
    config = SearchConfig(study="p", trials=2, epochs=3, device="cpu", runs_dir=tmp_path, sampler="random",
                          objectives="accuracy", threads=1)
    summary = run_search(config, show_progress=False)
    assert summary.finished == 2 and summary.pruned == 2
    rows = _rows(config.run_dir)
    assert all(row["state"] == "PRUNED" and row["status"] == "pruned" and row["pruned_at_epoch"] == 1
               for row in rows)
    assert len(open_study(config.run_dir, "p").directions) == 1


def test_a_later_trial_beyond_the_requested_number_is_surplus():
    study = optuna.create_study()
    first, second = study.ask(), study.ask()
    assert index_of(study).slot(first.number) == 1 and index_of(study).slot(second.number) == 2
    study.tell(first, 0.5)
    third = study.ask()
    assert index_of(study).slot(third.number) == 3  # the told one and the running one come first


def test_worker_processes_complete_exactly_the_requested_trials(tmp_path, gate, monkeypatch):
    # Trials train once both workers hold one: a worker that starts late (a loaded machine)
    # would otherwise find the study already full.
    def release():
        try:
            gate.wait(lambda: len({pid for _, _, pid in gate.arrivals()}) == 2, "both workers to hold a trial")
        finally:
            gate.open(100)  # on failure too, so that the search ends and the assertions below say why

    for name, value in gate.env.items():
        monkeypatch.setenv(name, value)  # the spawned workers inherit it; this process trains nothing
    releaser = threading.Thread(target=release, daemon=True)
    releaser.start()
    config = SearchConfig(study="w", trials=4, epochs=1, device="cpu", runs_dir=tmp_path, sampler="random",
                          workers=2, threads=2)
    summary = run_search(config, show_progress=False)
    releaser.join()
    study = open_study(config.run_dir, "w")
    counted = finished_trials(study)
    assert summary.finished == len(counted) == 4
    assert not [t for t in study.get_trials() if t.state.name == "RUNNING"]
    assert len({t.user_attrs["worker"] for t in study.get_trials()}) == 2  # both workers ran trials


def test_optinas_worker_joins_a_database_study(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    common = ["--study", "db", "--storage", url, "--runs-dir", str(tmp_path / "a")]
    assert main(["search", *common, "--trials", "2", "--epochs", "1", "--device", "cpu", "--threads", "1",
                 "--sampler", "random", "--quiet"]) == 0
    study = optuna.load_study(study_name="db", storage=url)
    settings = study.user_attrs[CONFIG_ATTR]
    assert settings["epochs"] == 1 and settings["storage"] == url
    study.set_user_attr(CONFIG_ATTR, {**settings, "trials": 3})  # as a rerun with --trials 3 would
    # A second "machine": its own runs dir, only the study's name and URL.
    assert main(["worker", "--study", "db", "--storage", url, "--runs-dir", str(tmp_path / "b"),
                 "--threads", "1", "--quiet"]) == 0
    study = optuna.load_study(study_name="db", storage=url)
    assert len(finished_trials(study)) == 3
    assert (tmp_path / "b" / "db" / "trials.jsonl").exists()


def test_worker_errors_are_one_line(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'other.db'}"
    optuna.create_study(study_name="other", storage=url)  # a database without the study asked for
    assert main(["worker", "--study", "nope", "--storage", url, "--runs-dir", str(tmp_path)]) == 2
    assert main(["worker", "--study", "nope", "--storage", f"sqlite:///{tmp_path / 'none.db'}"]) == 2
    assert main(["worker", "--study", "nope", "--storage", "not-a-url"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and "no study 'nope'" in lines[0] and "no SQLite database at" in lines[1]
    assert "database URL" in lines[2]
    assert not (tmp_path / "none.db").exists()  # a typo creates no empty database


def test_proxy_width_trains_small_and_exports_the_real_architecture(tmp_path):
    config = SearchConfig(study="x", trials=2, epochs=1, device="cpu", runs_dir=tmp_path, sampler="random",
                          width_multiplier=0.5, threads=1)
    run_search(config, show_progress=False)
    rows = [row for row in _rows(config.run_dir) if row["status"] == "trained"]
    assert rows and all(row["metrics"] for row in rows)
    best = next((config.run_dir / "best").iterdir())
    genotype = json.loads((best / "genotype.json").read_text())
    assert genotype == next(row["genotype"] for row in rows if str(row["number"]) == best.name)
    assert not (best / "weights.pt").exists()  # half-width weights do not fit the real widths
    with pytest.raises(Exception):
        SearchConfig(width_multiplier=1.5)


def _alive(pid):
    """Running (a zombie awaiting its reaper counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _journal_trials(run_dir, name):
    path = run_dir / "study.journal"
    if not path.exists():
        return []
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    try:
        return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
    except KeyError:
        return []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; workers die with the driver on Linux")
@pytest.mark.timeout(900)  # seven Python processes start in turn: minutes with both cores busy elsewhere
def test_killed_worker_and_killed_driver_lose_no_trial(tmp_path, gate):
    command = [sys.executable, "-m", "optinas.strategies.cli", "search", "--study", "kw", "--trials", "4",
               "--epochs", "1", "--device", "cpu", "--threads", "2", "--workers", "2", "--sampler", "random",
               "--runs-dir", str(tmp_path), "--quiet"]
    run_dir = tmp_path / "kw"
    process = subprocess.Popen(command, env={**os.environ, **gate.env}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    try:
        # Both workers hold a trial at the (closed) gate; the first one's worker dies mid-trial.
        (_, victim, victim_pid), _ = gate.wait(lambda: gate.arrivals()[:2] if len(gate.arrivals()) >= 2 else None,
                                               "both workers to reach training", [process])
        os.kill(victim_pid, signal.SIGKILL)
        # The parent queues the victim's parameters again and starts a replacement worker,
        # which takes them (the other worker is still held), then both may train.
        retry = gate.wait(lambda: gate.arrivals()[2:3], "the retried trial to reach training", [process])[0][1]
        assert _journal_trials(run_dir, "kw")[retry].user_attrs["retry_of"] == victim
        gate.open(3)
        # Two trials complete; the next two are held at the gate. Then the driver itself dies.
        gate.wait(lambda: sum(t.state.name == "COMPLETE" for t in _journal_trials(run_dir, "kw")) == 2
                  and len(gate.arrivals()) == 5, "two trials to complete and two more to reach training", [process])
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    held = gate.arrivals()[3:]
    gate.wait(lambda: not any(_alive(pid) for _, _, pid in held), "the workers to die with the driver")

    trials = _journal_trials(run_dir, "kw")
    done_before = {t.number: t.datetime_complete for t in trials if t.state.name == "COMPLETE"}
    assert sorted(done_before) == sorted([gate.arrivals()[1][1], retry])
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    trials = open_study(run_dir, "kw").get_trials()
    assert sum(map(counts_toward, trials)) == 4
    for number, completed in done_before.items():
        assert trials[number].datetime_complete == completed  # never trained again
    for lost in (victim, *(number for _, number, _ in held)):
        assert trials[lost].state.name == "FAIL" and trial_status(trials[lost]) == TrialStatus.INTERRUPTED
        retries = [t for t in trials if t.user_attrs.get("retry_of") == lost]
        assert len(retries) == 1 and retries[0].params == trials[lost].params
        assert retries[0].state.name == "COMPLETE" and retries[0].user_attrs["crashes"] == 1
    assert (run_dir / "report.html").exists()


def test_a_trial_failed_elsewhere_does_not_stop_the_worker(monkeypatch):
    from optuna.trial import TrialState

    from optinas.strategies.backends import worker_loop
    from optinas.strategies.backends.worker_loop import run_worker
    from optinas.strategies.trial import TrialOutcome

    study = optuna.create_study(directions=["maximize", "minimize"])
    calls = []

    def fake_trial(trial, context):
        calls.append(trial.number)
        if len(calls) == 1:  # another worker's heartbeat check fails this trial as stale
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        trial.set_user_attr("status", "trained")  # raises for the stale one
        return TrialOutcome("trained", (0.5, 1.0))

    monkeypatch.setattr(worker_loop, "run_trial", fake_trial)
    run_worker(study, context=None, target=2)
    assert calls == [0, 1, 2]
    assert [counts_toward(t) for t in study.get_trials()] == [False, True, True]


def test_an_identical_genotype_reuses_the_earlier_result(tmp_path):
    config = SearchConfig(study="d", trials=1, epochs=1, device="cpu", runs_dir=tmp_path, sampler="random",
                          threads=1)
    run_search(config, show_progress=False)
    first = open_study(config.run_dir, "d").get_trials()[0]
    open_study(config.run_dir, "d").enqueue_trial(first.params)  # the sampler proposes it again
    run_search(SearchConfig(**{**config.__dict__, "trials": 2}), show_progress=False)
    second = open_study(config.run_dir, "d").get_trials()[1]
    assert second.user_attrs["status"] == "reused" and second.user_attrs["reused_from"] == first.number
    assert second.values == first.values and second.user_attrs["metrics"] == first.user_attrs["metrics"]
    assert not (config.run_dir / "checkpoints" / "1.pt").exists()  # nothing was trained


def test_a_trial_over_its_time_limit_fails_and_the_search_goes_on(tmp_path):
    config = SearchConfig(study="t", trials=2, epochs=2, device="cpu", runs_dir=tmp_path, sampler="random",
                          threads=1, trial_time_limit_s=1e-6)
    summary = run_search(config, show_progress=False)
    rows = _rows(config.run_dir)
    assert summary.finished == 2 and summary.failed == 2
    assert all(row["state"] == "FAIL" and "time limit of 1e-06 s exceeded" in row["failure"] for row in rows)
    with pytest.raises(Exception, match="--trial-time-limit"):
        SearchConfig(trial_time_limit_s=0)


def test_latency_objective_is_measured_for_every_candidate(tmp_path):
    # Every candidate is over a 1-multiplication budget, yet latency is an objective: measured anyway.
    config = SearchConfig(study="l", trials=2, epochs=1, device="cpu", runs_dir=tmp_path, sampler="random",
                          objectives="accuracy,latency", budget=Budget(max_mults=1), threads=1)
    run_search(config, show_progress=False)
    for row in _rows(config.run_dir):
        assert row["status"] == "infeasible" and row["values"] == [0.0, row["latency_ms"]]
        assert row["latency_ms"] > 0
