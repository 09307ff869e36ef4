"""The Ray Tune backend on a real two-node Ray cluster on this machine; kill -9 and restore.

The cluster is a head and a second node started with ``ray start`` (one CPU each, dashboard
off, token authentication off, joined and addressed as 127.0.0.1) in a temporary folder of
their own. (Ray 2.60 still registers the nodes under the machine's own address, replacing
127.0.0.1 by it, and its servers listen on every interface.) Teardown ends exactly the
processes whose command line names that folder, and their children: ``ray stop`` would end
every Ray on the machine, other sessions' included. Every test is skipped, with the reason,
where Ray is missing or the cluster does not start.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from optinas.strategies.backends.ray.trainable import INDEX_KEY, PRESET_KEY, RayTrial, SpaceFunction

_START_TIMEOUT_S = 90
# The tests that run a search on the cluster start a driver and trial processes (twice for a
# kill and its rerun): one to two minutes here, over five with both cores busy elsewhere, past
# the suite's 300 s hang guard (pyproject.toml). Their waits end on events, not on time.
_LOADED_S = 900
# Loopback-only throwaway cluster: no token authentication, whatever ~/.ray/auth_token holds
# (a local ray.init() elsewhere creates one, and `ray start` then turns token auth on).
_ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _processes_under(folder: str) -> set[int]:
    """Pids whose command line names ``folder``, plus all their descendants (from /proc)."""
    parents, roots = {}, set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            command = Path(f"/proc/{entry}/cmdline").read_bytes()
            parents[int(entry)] = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if folder.encode() in command:
            roots.add(int(entry))
    found, grew = set(roots) - {os.getpid()}, True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in found and pid not in found}
        found |= children
        grew = bool(children)
    return found


def _end_processes(folder: str) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = _processes_under(folder)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + 5
        while pids and time.time() < deadline:
            pids = {pid for pid in pids if Path(f"/proc/{pid}").exists()}
            time.sleep(0.1)


@pytest.fixture(scope="module")
def ray_cluster():
    """``127.0.0.1:PORT`` of a head node plus a second node, one CPU each."""
    ray_cli = shutil.which("ray")
    if ray_cli is None:
        pytest.skip("the ray command is not installed")
    folder = tempfile.mkdtemp(prefix="optinas-ray-")  # short: Ray's socket paths must fit 107 bytes
    port = _free_port()
    common = ["--num-cpus", "1", "--temp-dir", folder, "--disable-usage-stats"]
    steps = [[ray_cli, "start", "--head", "--port", str(port), "--node-ip-address", "127.0.0.1",
              "--include-dashboard=false", *common],
             [ray_cli, "start", "--address", f"127.0.0.1:{port}", *common]]
    try:
        for step in steps:
            try:
                done = subprocess.run(step, env=_ENV, capture_output=True, text=True, timeout=_START_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pytest.skip(f"`{' '.join(step[1:3])}` did not finish within {_START_TIMEOUT_S} s")
            if done.returncode != 0:
                pytest.skip(f"could not start a Ray node: {(done.stderr or done.stdout).strip()[-400:]}")
        yield f"127.0.0.1:{port}"
    finally:
        _end_processes(folder)
        shutil.rmtree(folder, ignore_errors=True)


def _command(address: str, runs: Path, study: str, trials: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "optinas.strategies.cli", "search", "--backend", "ray", "--address", address,
            "--study", study, "--trials", str(trials), "--epochs", "1", "--threads", "1", "--device", "cpu",
            "--runs-dir", str(runs), "--quiet", "--sampler", "random", *extra]


def _rows(run_dir: Path) -> list[dict]:
    path = run_dir / "trials.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _recorded(run_dir: Path) -> int:
    """Rows in trials.jsonl (0 while its first row is being appended)."""
    try:
        return len(_rows(run_dir))
    except ValueError:  # a row cut short mid-append; the next look sees it whole
        return 0


def _study_attrs(run_dir: Path, study: str) -> dict[int, dict]:
    from optinas.strategies.study import open_study

    return {t.number: t.user_attrs for t in open_study(run_dir, study).get_trials()}


def _training_runs(experiment: Path) -> dict[str, int]:
    """How many times each Tune trial trained (not counting re-reports of its checkpoint)."""
    runs = {}
    for result in experiment.glob("trial-*/result.json"):
        lines = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        runs[result.parent.name] = sum(1 for line in lines if line.get("optinas_trained_here"))
    return runs


def test_space_function_numbers_trials_and_puts_presets_first(tmp_path):
    import optuna

    from optinas.strategies.config import SearchConfig
    from optinas.strategies.study import prepare

    context = prepare(SearchConfig(study="unit", device="cpu", runs_dir=tmp_path))
    space = SpaceFunction(context.space, presets=("resnet20",), offset=5)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    first, second = study.ask(), study.ask()
    assert space(first) == {INDEX_KEY: 5, PRESET_KEY: "resnet20"} and first.params == {}
    extra = space(second)
    assert extra == {INDEX_KEY: 6} and second.params  # sampled through the suggest_* calls
    # A restored experiment whose pickled searcher lags continues after what its trials used.
    stale = SpaceFunction(context.space, presets=("resnet20",), offset=5)
    SpaceFunction.resume_after([5, 6, 9], ["resnet20"])
    try:
        third = study.ask()
        assert stale(third) == {INDEX_KEY: 10} and third.params
    finally:
        SpaceFunction.resume_after([], [])

    # Replaying the sampled parameters rebuilds the same genotype, with the same distributions.
    replay = RayTrial(6, second.params)
    assert context.space.sample(replay) == context.space.sample(optuna.trial.FixedTrial(second.params))
    assert replay.distributions == second.distributions
    with pytest.raises(KeyError, match="no value for parameter"):
        context.space.sample(RayTrial(7, {}))


@pytest.mark.slow  # ~60 s here; the kill -9 test below checks the same layout after its rerun
def test_pareto_search_on_a_two_node_cluster_writes_the_runs_layout(ray_cluster, tmp_path):
    started = time.time()
    done = subprocess.run(_command(ray_cluster, tmp_path, "r", 3), env=_ENV, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "3 trials in" in done.stdout
    _check_layout(tmp_path / "r", 3)
    assert all(count == 1 for count in _training_runs(tmp_path / "r" / "ray" / "tune").values())
    print(f"ray search of 3 trials: {time.time() - started:.1f} s")


def _check_layout(run_dir: Path, trials: int) -> None:
    """runs/<study>/ as the Optuna backend leaves it, each Tune trial recorded once."""
    rows = _rows(run_dir)
    assert len(rows) == trials
    assert {row["status"] for row in rows} <= {"trained", "infeasible", "failed", "pruned"}
    for name in ("config.toml", "study.journal", "report.html"):
        assert (run_dir / name).is_file(), name
    trained = [row for row in rows if row["status"] == "trained"]
    assert trained and all((run_dir / "checkpoints" / f"{row['number']}.pt").is_file() for row in trained)
    assert any((run_dir / "best").iterdir())
    attrs = _study_attrs(run_dir, run_dir.name)
    assert len({a["ray_trial"] for a in attrs.values()}) == trials
    assert sorted(a["ray_index"] for a in attrs.values()) == list(range(trials))


@pytest.mark.timeout(_LOADED_S)
def test_kill_9_of_the_driver_then_the_same_command_completes(ray_cluster, tmp_path, gate):
    """Single-objective (ASHA) search of 3 trials on the two-node cluster, killed after one.

    The gate lets one trial train and holds the others, so at the kill exactly one trial has
    finished and another is in training, however loaded the machine."""
    # A relative --runs-dir: Tune starts trials in their own folders, the trainable goes back.
    command = _command(ray_cluster, Path("runs"), "k", 3, "--objectives", "accuracy")
    run_dir = tmp_path / "runs" / "k"
    gate.open(1)
    process = subprocess.Popen(command, env={**_ENV, **gate.env}, cwd=tmp_path, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    try:
        gate.wait(lambda: _recorded(run_dir) == 1 and len(gate.arrivals()) >= 2,
                  "one trial recorded and another held at the gate", [process], poll_s=0.2)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    # Ray ends the trial processes of a driver that died (they hold the cluster's two CPUs).
    held = [pid for _, _, pid in gate.arrivals()[1:]]
    gate.wait(lambda: not any(Path(f"/proc/{pid}").exists() for pid in held),
              "Ray to end the trial processes of the killed driver", poll_s=0.2)
    before = {attrs["ray_trial"]: attrs for attrs in _study_attrs(run_dir, "k").values()}
    assert len(before) == 1

    rerun = subprocess.run(command, env=_ENV, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "3 trials in" in rerun.stdout
    _check_layout(run_dir, 3)
    after = {attrs["ray_trial"]: attrs for attrs in _study_attrs(run_dir, "k").values()}
    for trial_id, attrs in before.items():
        assert after[trial_id].get("metrics") == attrs.get("metrics")  # the same training, not a second one
    runs = _training_runs(run_dir / "ray" / "tune")
    assert all(runs[f"trial-{trial_id}"] == 1 for trial_id in before), runs
    assert (run_dir / "report.html").is_file()


def test_recorder_writes_each_kind_of_finished_trial_once(tmp_path):
    pytest.importorskip("ray.tune")
    import optuna
    from optuna.distributions import IntDistribution, distribution_to_json
    from ray import tune

    from optinas.strategies.backends.ray.records import RayRecorder
    from optinas.strategies.config import SearchConfig
    from optinas.strategies.files import write_toml_atomic
    from optinas.strategies.study import create_study

    config = SearchConfig(study="rec", runs_dir=tmp_path / "runs", objectives=("accuracy",), device="cpu")
    config.run_dir.mkdir(parents=True)
    write_toml_atomic(config.run_dir / "config.toml", config.to_dict())
    recorder = RayRecorder(config, create_study(config), progress=None)

    def record(index, status, values, **attrs):
        return {"index": index, "params": {"x": 2}, "distributions": {"x": distribution_to_json(IntDistribution(1, 3))},
                "user_attrs": {"status": status, **attrs}, "constraints": {"mults": -1.0},
                "intermediate": {"0": 0.5}, "status": status, "values": values}

    def checkpoint(name, content, weights=False):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "record.json").write_text(json.dumps(content))
        if weights:
            (folder / "weights.pt").write_bytes(b"weights")
        return tune.Checkpoint.from_directory(str(folder))

    last = {"timestamp": 1_800_000_000, "time_total_s": 4.0, "node_ip": "127.0.0.1"}
    trained = checkpoint("a", record(0, "trained", [0.9], metrics={"val_accuracy": 0.9}), weights=True)
    recorder._record("t-trained", last, trained, None, {})
    recorder._record("t-trained", last, trained, None, {})  # reconcile after the callback: no second copy
    recorder._record("t-failed", last, checkpoint("b", record(1, "failed", None, failure="NaN loss")), None, {})
    epoch = {**last, "epoch": 1, "optinas_record": json.dumps(record(2, None, None))}
    recorder._record("t-pruned", epoch, None, None, {})
    recorder._record("t-lost", last, None, "RayActorError: the node died", {"optinas_index": 3})

    trials = recorder.study.get_trials()
    assert [t.user_attrs["ray_trial"] for t in trials] == ["t-trained", "t-failed", "t-pruned", "t-lost"]
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL,
                                         optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL]
    assert trials[0].values == [0.9] and trials[0].params == {"x": 2} and trials[0].intermediate_values == {0: 0.5}
    assert (trials[0].datetime_complete - trials[0].datetime_start).total_seconds() == 4.0
    assert (config.run_dir / "checkpoints" / "0.pt").read_bytes() == b"weights"
    rows = _rows(config.run_dir)
    assert [row["status"] for row in rows] == ["trained", "failed", "pruned", "failed"]
    assert rows[1]["failure"] == "NaN loss" and rows[2]["pruned_at_epoch"] == 1
    assert rows[3]["failure"] == "ray: RayActorError: the node died"
    assert recorder.next_index() == 4


def test_torn_snapshots_are_dropped_before_a_restore(tmp_path):
    import pickle

    from optinas.strategies.backends.ray.backend import _drop_torn_snapshots

    (tmp_path / "experiment_state-1.json").write_text(json.dumps({"trial_data": []}))
    (tmp_path / "search_gen_state-1.json").write_bytes(pickle.dumps({"counter": 3}))  # a pickle, despite .json
    (tmp_path / "searcher-state-1.pkl").write_bytes(pickle.dumps({"_ot_trials": {}}))
    (tmp_path / "experiment_state-2.json").write_text('{"trial_data": [')  # copy cut short by kill -9
    (tmp_path / "searcher-state-2.pkl").write_bytes(b"")
    _drop_torn_snapshots(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "experiment_state-1.json", "search_gen_state-1.json", "searcher-state-1.pkl"]


@pytest.mark.slow  # ~40 s here
def test_a_trial_whose_worker_dies_is_retried(ray_cluster, tmp_path, gate):
    command = _command(ray_cluster, tmp_path, "w", 1)
    process = subprocess.Popen(command, env={**_ENV, **gate.env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        (_, _, pid), = gate.wait(lambda: gate.arrivals()[:1], "the trial to reach training", [process])
        os.kill(pid, signal.SIGKILL)  # its process dies mid-trial; Tune retries it (FailureConfig)
        gate.open(2)  # the retry, ticket 1, trains
    except BaseException:
        process.kill()
        raise
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-3000:]
    rows = _rows(tmp_path / "w")
    assert [row["status"] for row in rows] == ["trained"]
    state = json.loads(sorted((tmp_path / "w" / "ray" / "tune").glob("experiment_state-*.json"))[-1].read_text())
    assert json.loads(state["trial_data"][0][1])["num_failures"] == 1


@pytest.mark.timeout(_LOADED_S)
def test_a_candidate_that_crashes_its_trial_process_twice_is_recorded_failed(ray_cluster, tmp_path):
    from optinas.strategies.backends.ray.backend import MAX_FAILURES
    from optinas.strategies.fault_hooks import ABORT_ENV
    from optinas.strategies.study import CRASHED

    folder = tmp_path / "abort"  # the first trial to train aborts its process, and so does its retry
    folder.mkdir()
    done = subprocess.run(_command(ray_cluster, tmp_path, "c", 2), env={**_ENV, ABORT_ENV: str(folder)},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = _rows(tmp_path / "c")
    assert sorted(row["status"] for row in rows) == ["failed", "trained"]
    failed = next(row for row in rows if row["status"] == "failed")
    assert failed["failure"] == f"{CRASHED} (ray: The actor is dead because its worker process has died)"
    # Tried once more after the first crash (FailureConfig), then given up: two processes died.
    assert len(list(folder.glob("aborted-*"))) == MAX_FAILURES + 1 == 2


def test_the_recorder_says_when_a_trial_process_died_on_every_try():
    pytest.importorskip("ray.tune")
    from optinas.strategies.backends.ray.records import _failure
    from optinas.strategies.study import CRASHED

    died = ("The actor is dead because its worker process has died. Worker exit type: SYSTEM_ERROR Worker "
            "exit detail: Worker unexpectedly exits with a connection error code 2. End of file.")
    assert _failure(died) == f"{CRASHED} (ray: The actor is dead because its worker process has died)"
    assert _failure("RayActorError: the node died") == "ray: RayActorError: the node died"
    assert _failure(None) == "ray: the trial ended without a result"


def test_a_ray_trial_reuses_an_identical_genotype_from_the_study(tmp_path):
    from optinas.strategies.backends.ray.trainable import _recorded_study
    from optinas.strategies.config import SearchConfig
    from optinas.strategies.study import finished_trials, open_study, prepare
    from optinas.strategies.search import run_search
    from optinas.strategies.trial import run_trial

    config = SearchConfig(study="u", trials=1, epochs=1, device="cpu", runs_dir=tmp_path, sampler="random",
                          threads=1)
    run_search(config, show_progress=False)
    trained = finished_trials(open_study(config.run_dir, "u"))[0]
    study = _recorded_study(config)
    assert study is not None and _recorded_study(SearchConfig(study="absent", runs_dir=tmp_path)) is None
    trial = RayTrial(0, trained.params, study=study)  # Tune's index 0 is not optinas trial 0
    outcome = run_trial(trial, prepare(config))
    assert outcome.status == "reused" and outcome.values == tuple(trained.values)
    assert trial.user_attrs["reused_from"] == trained.number
