"""The Ray Tune backend on a real two-node Ray cluster on this machine; kill -9 and restore.

The cluster is a head and a second node started with ``ray start`` (one CPU each, dashboard
off, addressed on 127.0.0.1) in a temporary folder of their own. Teardown ends exactly the
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

from strategies.ray_trainable import INDEX_KEY, PRESET_KEY, RayTrial, SpaceFunction

_START_TIMEOUT_S = 90


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
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    common = ["--num-cpus", "1", "--temp-dir", folder, "--disable-usage-stats"]
    steps = [[ray_cli, "start", "--head", "--port", str(port), "--node-ip-address", "127.0.0.1",
              "--include-dashboard=false", *common],
             [ray_cli, "start", "--address", f"127.0.0.1:{port}", *common]]
    try:
        for step in steps:
            try:
                done = subprocess.run(step, env=env, capture_output=True, text=True, timeout=_START_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pytest.skip(f"`{' '.join(step[1:3])}` did not finish within {_START_TIMEOUT_S} s")
            if done.returncode != 0:
                pytest.skip(f"could not start a Ray node: {(done.stderr or done.stdout).strip()[-400:]}")
        yield f"127.0.0.1:{port}"
    finally:
        _end_processes(folder)
        shutil.rmtree(folder, ignore_errors=True)


def _command(address: str, runs: Path, study: str, trials: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "strategies.cli", "search", "--backend", "ray", "--address", address,
            "--study", study, "--trials", str(trials), "--epochs", "1", "--threads", "1", "--device", "cpu",
            "--runs-dir", str(runs), "--quiet", "--sampler", "random", *extra]


def _rows(run_dir: Path) -> list[dict]:
    path = run_dir / "trials.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _study_attrs(run_dir: Path, study: str) -> dict[int, dict]:
    from strategies.optuna_driver import open_study

    return {t.number: t.user_attrs for t in open_study(run_dir, study).get_trials()}


def _training_runs(experiment: Path) -> dict[str, int]:
    """How many times each Tune trial trained (not counting re-reports of its checkpoint)."""
    runs = {}
    for result in experiment.glob("trial-*/result.json"):
        lines = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        runs[result.parent.name] = sum(1 for line in lines if line.get("optinas_trained_here"))
    return runs


def test_space_function_numbers_trials_and_puts_presets_first():
    from strategies.optuna_driver import prepare
    from strategies.config import SearchConfig
    import optuna

    context = prepare(SearchConfig(study="unit", device="cpu", runs_dir=Path(tempfile.mkdtemp())))
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
    done = subprocess.run(_command(ray_cluster, tmp_path, "r", 3), capture_output=True, text=True, timeout=240)
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


def test_kill_9_of_the_driver_then_the_same_command_completes(ray_cluster, tmp_path):
    """Single-objective (ASHA) search of 3 trials on the two-node cluster, killed after one."""
    command = _command(ray_cluster, tmp_path, "k", 3, "--objectives", "accuracy")
    run_dir = tmp_path / "k"
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 180
    while not _rows(run_dir):  # trials.jsonl is rewritten as each trial is recorded
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        if time.time() > deadline:
            process.kill()
            pytest.fail("no trial finished within 180 s")
        time.sleep(0.2)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    before = {attrs["ray_trial"]: attrs for attrs in _study_attrs(run_dir, "k").values()}
    assert 1 <= len(before) < 3

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "3 trials in" in rerun.stdout
    _check_layout(run_dir, 3)
    after = {attrs["ray_trial"]: attrs for attrs in _study_attrs(run_dir, "k").values()}
    for trial_id, attrs in before.items():
        assert after[trial_id].get("metrics") == attrs.get("metrics")  # the same training, not a second one
    runs = _training_runs(run_dir / "ray" / "tune")
    assert all(runs[f"trial-{trial_id}"] == 1 for trial_id in before), runs
    assert (run_dir / "report.html").is_file()
