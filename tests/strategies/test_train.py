"""``optinas train``: files, resume after kill -9, finished reruns, validation, torchrun.

The kill and the DDP runs are real processes; they synchronise on events (a hook that
SIGKILLs the process right after epoch 2's checkpoint is written; digests written by each
rank at the end), never on timing.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from optinas.evaluator.proxy import scale_widths
from optinas.search_space import Genotype, InputSpec
from optinas.search_space.presets import preset
from optinas.strategies.cli import main

_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OPTINAS_ADDER_COMPILE": "0"}
_FLAGS = ["--batch-size", "64", "--lr", "0.2", "--threads", "1", "--quiet"]


def tiny_genotype(path: Path, name: str = "resnet20", factor: float = 0.25) -> Path:
    """A one-block-per-stage, narrow ResNet for digits (8x8, 10 classes), saved as JSON."""
    data = scale_widths(preset(name, InputSpec(1, 8, 8, 10)), factor).to_dict()
    for stage in data["stages"]:
        stage["depth"] = 1
    path.write_text(Genotype.from_dict(data).to_json(indent=2))
    return path


def _cli(*args, cwd: Path, env=None, launcher=()):
    return subprocess.run([sys.executable, *launcher, "-m", "optinas.strategies.cli", "train", *args],
                          cwd=cwd, env={**_ENV, **(env or {})}, capture_output=True, text=True, timeout=280)


def _digest(state: dict) -> str:
    digest = hashlib.sha256()
    for key, value in sorted(state.items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def test_kill_9_after_epoch_2_then_rerun_resumes_without_repeating_an_epoch(tmp_path):
    genotype = tiny_genotype(tmp_path / "tiny.json")
    args = [str(genotype), "--epochs", "3", "--name", "x", *_FLAGS]
    killed = _cli(*args, cwd=tmp_path, env={"OPTINAS_TEST_KILL_AFTER_EPOCH": "2"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    run = tmp_path / "runs" / "train" / "x"
    assert [h["epoch"] for h in json.loads((run / "metrics.json").read_text())["history"]] == [1, 2]
    assert not (run / "model.py").exists()

    resumed = _cli(*args, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [1, 2, 3]
    assert metrics["resumed_at_epoch"] == [2]
    assert set(metrics["history"][0]) == {"epoch", "val_accuracy", "train_loss", "seconds"}
    assert 0.5 < metrics["test_accuracy"] <= 1.0
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "epoch-0001.pt", "epoch-0002.pt", "epoch-0003.pt"]
    assert "plotly" in (run / "curves.html").read_text()[:200_000].lower()

    # The resumed run ends exactly where an uninterrupted one does (same weights, bit for bit).
    assert main(["train", str(genotype), "--epochs", "3", "--name", "straight", "--runs-dir",
                 str(tmp_path / "runs"), *_FLAGS]) == 0
    straight = tmp_path / "runs" / "train" / "straight"
    assert _digest(torch.load(run / "weights.pt")) == _digest(torch.load(straight / "weights.pt"))
    assert json.loads((straight / "metrics.json").read_text())["test_accuracy"] == metrics["test_accuracy"]

    # model.py runs on its own, from its folder, with the trained weights.
    standalone = subprocess.run([sys.executable, "model.py"], cwd=run, capture_output=True, text=True,
                                env=_ENV, timeout=120)
    assert standalone.returncode == 0 and "(2, 10)" in standalone.stdout, standalone.stderr


def test_a_finished_run_is_reported_and_not_trained_again(tmp_path, capsys):
    genotype = tiny_genotype(tmp_path / "tiny.json")
    args = ["train", str(genotype), "--epochs", "1", "--runs-dir", str(tmp_path / "runs"), *_FLAGS]
    assert main(args) == 0
    run = tmp_path / "runs" / "train" / "tiny"
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*")}
    capsys.readouterr()
    assert main(args) == 0
    assert "already finished; nothing trained" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*")} == before


def test_a_rerun_with_other_settings_is_refused_in_one_sentence(tmp_path, capsys):
    genotype = tiny_genotype(tmp_path / "tiny.json")
    common = [str(genotype), "--runs-dir", str(tmp_path / "runs"), *_FLAGS]
    assert main(["train", *common, "--epochs", "1"]) == 0
    settings = (tmp_path / "runs" / "train" / "tiny" / "settings.json").read_text()
    capsys.readouterr()
    assert main(["train", *common, "--epochs", "2"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.endswith("was trained with epochs = 1, not 2; rerun with the same settings to resume, "
                          "or choose another --name") and len(error.splitlines()) == 1
    assert (tmp_path / "runs" / "train" / "tiny" / "settings.json").read_text() == settings


@pytest.mark.parametrize("flags, fragment", [
    (["--lr", "-1"], "--lr must be a number in (0, 100]"),
    (["--schedule", "step"], "--schedule must be one of cosine, linear"),
    (["--warmup", "4"], "--warmup must be a number of epochs in [0, --epochs=3]"),
    (["--name", "../up"], "--name must be 1-100 letters"),
    (["--epochs", "0"], "--epochs must be an integer between 1 and 100000"),
    (["--batch-size", "0"], "--batch-size must be a positive integer"),
    (["--task", "imagenet"], "unknown task 'imagenet'"),
    (["--task", "xy-sign"], "takes input (1, 8, 8)"),
    (["--device", "tpu"], "device must be 'auto', 'cpu', 'cuda'"),
])
def test_bad_flags_are_one_sentence_and_nothing_is_written(tmp_path, capsys, flags, fragment):
    genotype = tiny_genotype(tmp_path / "tiny.json")
    code = main(["train", str(genotype), "--epochs", "3", "--runs-dir", str(tmp_path / "runs"), *flags])
    error = capsys.readouterr().err
    assert code == 2 and fragment in error and len(error.strip().splitlines()) == 1, error
    assert not (tmp_path / "runs").exists()


def test_a_preset_is_adapted_to_the_task(tmp_path):
    from optinas.strategies.training.settings import TrainSettings, resolve_target

    spec = InputSpec(1, 8, 8, 10)
    target = resolve_target(TrainSettings(target="resnet20-adder", runs_dir=tmp_path), spec)
    assert target.genotype == preset("resnet20-adder", spec)
    assert target.run_dir == tmp_path / "train" / "resnet20-adder"


def test_torchrun_with_two_cpu_processes_ends_with_identical_weights(tmp_path):
    genotype = tiny_genotype(tmp_path / "tiny.json", factor=0.125)
    digests = tmp_path / "digests"
    digests.mkdir()
    done = _cli(str(genotype), "--epochs", "2", "--device", "cpu", *_FLAGS, cwd=tmp_path,
                env={"OPTINAS_TEST_DIGEST_DIR": str(digests)},
                launcher=("-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"))
    assert done.returncode == 0, done.stderr[-2000:]
    rank0, rank1 = ((digests / f"rank-{rank}.sha256").read_text().strip() for rank in (0, 1))
    assert rank0 == rank1
    run = tmp_path / "runs" / "train" / "tiny"
    assert _digest(torch.load(run / "weights.pt")) == rank0
    assert [h["epoch"] for h in json.loads((run / "metrics.json").read_text())["history"]] == [1, 2]
