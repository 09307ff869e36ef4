"""A real search end to end: runs/ layout, budgets, export equality, kill -9 and resume."""

import importlib.util
import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from optinas.search_space import Genotype, build_model
from optinas.strategies import Budget, SearchConfig, run_search
from optinas.strategies.status import TrialStatus, trial_status
from optinas.strategies.study import finished_trials, open_study


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    config = SearchConfig(study="t", trials=5, epochs=1, device="cpu", runs_dir=runs, sampler="random")
    summary = run_search(config, show_progress=False)
    return config, summary


def test_search_writes_the_runs_layout(finished_run):
    config, summary = finished_run
    run = config.run_dir
    assert summary.finished == 5
    for name in ("config.toml", "study.journal", "trials.jsonl", "report.html"):
        assert (run / name).is_file(), name
    rows = [json.loads(line) for line in (run / "trials.jsonl").read_text().splitlines()]
    assert [row["number"] for row in rows] == list(range(5))
    assert all(row["status"] in ("trained", "reused") for row in rows)
    assert all(0.0 <= row["metrics"]["val_accuracy"] <= 1.0 for row in rows)
    report = (run / "report.html").read_text()
    assert "Pareto front" in report and "plotly" in report.lower()
    assert summary.front and sorted(p.name for p in (run / "best").iterdir()) == sorted(map(str, summary.front))


def test_exported_best_model_equals_in_package_model(finished_run):
    config, summary = finished_run
    folder = config.run_dir / "best" / str(summary.front[0])
    assert {"genotype.json", "model.py", "weights.pt", "cost.txt"} <= {p.name for p in folder.iterdir()}
    genotype = Genotype.from_json((folder / "genotype.json").read_text())
    model = build_model(genotype)
    model.load_state_dict(torch.load(folder / "weights.pt", weights_only=True))
    model.eval()
    exported = _load(folder / "model.py", "best_model").build_model()
    batch = torch.randn(16, *genotype.input.shape)
    with torch.no_grad():
        torch.testing.assert_close(exported(batch), model(batch), rtol=0, atol=1e-5)
    done = subprocess.run([sys.executable, "model.py"], cwd=folder, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "(2, 10)"


def test_rerun_with_more_trials_extends_without_retraining(finished_run):
    config, _ = finished_run
    before = {t.number: t.datetime_complete for t in finished_trials(open_study(config.run_dir, "t"))}
    summary = run_search(SearchConfig(**{**config.__dict__, "trials": 6}), show_progress=False)
    after = {t.number: t.datetime_complete for t in finished_trials(open_study(config.run_dir, "t"))}
    assert summary.finished == 6
    assert all(after[number] == completed for number, completed in before.items())


def _median_mults_of_first_trials(config, count):
    """Median multiplications of the genotypes a seeded random search will draw first."""
    import statistics

    import optuna

    from optinas.search_space import count_cost
    from optinas.strategies.study import prepare

    space = prepare(config).space
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=config.seed))
    return int(statistics.median(count_cost(space.sample(study.ask())).mults for _ in range(count)))


def test_over_budget_candidates_are_recorded_and_never_trained(tmp_path):
    probe = SearchConfig(study="b", trials=8, epochs=1, device="cpu", runs_dir=tmp_path, sampler="random")
    limit = _median_mults_of_first_trials(probe, 8)  # so the budget splits these trials
    config = SearchConfig(**{**probe.__dict__, "budget": Budget(max_mults=limit)})
    summary = run_search(config, show_progress=False)
    rows = [json.loads(line) for line in (config.run_dir / "trials.jsonl").read_text().splitlines()]
    infeasible = [row for row in rows if row["status"] == "infeasible"]
    feasible = [row for row in rows if row["status"] == "trained"]
    assert infeasible and feasible, "the budget should split this space"
    assert summary.infeasible == len(infeasible)
    for row in infeasible:
        assert row["cost"]["mul"] > limit and row["metrics"] is None
        assert row["constraints"]["max_mults"] > 0
        assert not (config.run_dir / "checkpoints" / f"{row['number']}.pt").exists()
    assert all(row["cost"]["mul"] <= limit for row in feasible)
    study = open_study(config.run_dir, "b")
    assert all(t.constraints["max_mults"] == row["constraints"]["max_mults"]
               for t, row in zip(study.get_trials(), rows))


def test_a_diverging_candidate_fails_with_its_reason_and_the_search_goes_on(tmp_path, monkeypatch):
    from optinas.evaluator import TrialFailed
    from optinas.strategies import trial as trial_module

    real = trial_module.evaluate
    calls = []

    def sometimes_diverges(model, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise TrialFailed("training diverged: loss became nan at epoch 1 of 1, step 3 of 17")
        return real(model, *args, **kwargs)

    monkeypatch.setattr(trial_module, "evaluate", sometimes_diverges)
    config = SearchConfig(study="f", trials=3, epochs=1, device="cpu", runs_dir=tmp_path, sampler="random")
    summary = run_search(config, show_progress=False)
    rows = [json.loads(line) for line in (config.run_dir / "trials.jsonl").read_text().splitlines()]
    assert summary.finished == 3 and summary.failed == 1
    assert rows[1]["state"] == "FAIL" and "loss became nan" in rows[1]["failure"]


def _count_done(run_dir, name):
    """(completed trials, running trials that are training), read from the study's journal."""
    import optuna

    path = run_dir / "study.journal"
    if not path.exists():
        return 0, 0
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    try:
        trials = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
    except KeyError:  # the study is not created yet
        return 0, 0
    completed = sum(t.state.name == "COMPLETE" for t in trials)
    # A running trial with a hash has sampled its whole genotype and is training.
    training = sum(t.state.name == "RUNNING" and "hash" in t.user_attrs for t in trials)
    return completed, training


def test_kill_9_then_the_same_command_resumes(tmp_path, gate):
    command = [sys.executable, "-m", "optinas.strategies.cli", "search", "--study", "k", "--trials", "4",
               "--epochs", "1", "--device", "cpu", "--runs-dir", str(tmp_path), "--quiet"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    gate.open(1)  # the first trial trains; the second waits at the gate until the kill
    process = subprocess.Popen(command, env={**env, **gate.env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    run_dir = tmp_path / "k"
    try:
        gate.wait(lambda: _count_done(run_dir, "k")[0] == 1 and len(gate.arrivals()) == 2,
                  "the first trial to complete and the second to reach training", [process])
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    assert _count_done(run_dir, "k") == (1, 1)

    study = open_study(run_dir, "k")
    done_before = {t.number: t.datetime_complete for t in study.get_trials() if t.state.name == "COMPLETE"}
    interrupted = [t for t in study.get_trials() if t.state.name == "RUNNING"]
    assert len(interrupted) == 1

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    study = open_study(run_dir, "k")
    trials = study.get_trials()
    assert len(finished_trials(study)) == 4
    for number, completed in done_before.items():
        assert trials[number].datetime_complete == completed  # not trained again
    killed = trials[interrupted[0].number]
    assert killed.state.name == "FAIL" and trial_status(killed) == TrialStatus.INTERRUPTED
    retry = [t for t in trials if t.user_attrs.get("retry_of") == killed.number]
    assert len(retry) == 1 and retry[0].params == killed.params and retry[0].state.name == "COMPLETE"
    assert retry[0].user_attrs["crashes"] == 1  # one process died on it: not yet a crash loop
    assert (run_dir / "report.html").exists()
    assert len((run_dir / "trials.jsonl").read_text().splitlines()) == 5
