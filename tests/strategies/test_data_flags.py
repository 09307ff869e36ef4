"""`optinas search` data flags: --task names and paths, --data-dir, --train-fraction."""

from __future__ import annotations

import pytest

from optinas.strategies.cli import main
from optinas.strategies.config import SearchConfig


def _search(tmp_path, *flags: str) -> int:
    return main(["search", "--runs-dir", str(tmp_path / "runs"), "--quiet", "--device", "cpu", *flags])


def test_missing_torchvision_data_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys):
    assert _search(tmp_path, "--task", "cifar10", "--data-dir", str(tmp_path / "data")) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--download" in error and str(tmp_path / "data") in error
    assert not (tmp_path / "runs").exists()


def test_regression_task_is_refused_by_search(tmp_path, capsys):
    assert _search(tmp_path, "--task", "regression") == 2
    assert "regression task" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_missing_task_path_is_one_line_exit_2(tmp_path, capsys):
    assert _search(tmp_path, "--task", str(tmp_path / "images.tar.gz")) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "1.5"])
def test_train_fraction_out_of_range_is_refused(tmp_path, capsys, value):
    assert _search(tmp_path, "--train-fraction", value) == 2
    assert "--train-fraction must be in (0, 1]" in capsys.readouterr().err


def test_train_fraction_joins_the_resume_identity_only_when_set():
    assert "proxy.train_fraction" not in SearchConfig().identity()
    assert SearchConfig(train_fraction=0.5).identity()["proxy.train_fraction"] == 0.5
    assert SearchConfig(data_dir="d", cuda_graphs=True).identity() == SearchConfig().identity()
