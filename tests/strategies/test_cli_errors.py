"""Bad input: one sentence, exit code 2, no traceback, nothing under runs/."""

import json
import subprocess
import sys

import pytest


def _optinas(*args, cwd):
    return subprocess.run([sys.executable, "-m", "optinas.strategies.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, fragment", [
    (["search", "--trials", "many"], "--trials: invalid int value"),
    (["search", "--bogus"], "unrecognized arguments: --bogus"),
    (["search", "--max-mults", "lots"], "--max-mults must be a count"),
    (["search", "--max-mults", "-5"], "--max-mults must be"),
    (["search", "--sampler", "cmaes"], "--sampler must be one of"),
    (["search", "--device", "tpu"], "--device must be auto, cpu or cuda"),
    (["search", "--study", "../escape"], "--study must be"),
    (["search", "--task", "imagenet"], "unknown task 'imagenet'"),
    (["search", "--trials", "0"], "--trials must be between"),
    (["cost", "missing.json"], "does not exist"),
    (["export", "missing.json"], "does not exist"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    ([], "required: COMMAND"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, fragment):
    done = _optinas(*args, "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path) if args[:1] == ["search"] \
        else _optinas(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert fragment in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "runs").exists()


def test_malformed_genotype_file(tmp_path):
    bad = tmp_path / "g.json"
    bad.write_text(json.dumps({"input": {"channels": 1, "height": 8, "width": 8, "classes": 10},
                               "stem": {"width": 8}, "stages": [{"depth": 1, "width": -3}]}))
    for command in (["cost", str(bad)], ["export", str(bad), "-o", str(tmp_path / "m.py")]):
        done = _optinas(*command, cwd=tmp_path)
        assert done.returncode == 2
        assert done.stderr.strip().endswith("stage 1: width must be an integer in [1, 4096], got -3")
        assert not (tmp_path / "m.py").exists()


def test_weights_of_another_model_are_refused(tmp_path):
    import torch

    genotype = {"input": {"channels": 1, "height": 8, "width": 8, "classes": 10},
                "stem": {"width": 8}, "stages": [{"depth": 1, "width": 8}]}
    (tmp_path / "g.json").write_text(json.dumps(genotype))
    torch.save({"nonsense": torch.zeros(3)}, tmp_path / "w.pt")
    done = _optinas("export", "g.json", "-o", "out/m.py", "--weights", "w.pt", cwd=tmp_path)
    assert done.returncode == 2 and "do not fit this genotype" in done.stderr
    assert not (tmp_path / "out").exists()


def test_resume_with_other_settings_is_refused(tmp_path):
    (tmp_path / "runs" / "s").mkdir(parents=True)
    (tmp_path / "runs" / "s" / "config.toml").write_text('"task" = "digits"\n"seed" = 0\n"sampler" = "tpe"\n"epochs" = 6\n')
    done = _optinas("search", "--study", "s", "--epochs", "2", "--runs-dir", "runs", cwd=tmp_path)
    assert done.returncode == 2 and "created with epochs = 6, not 2" in done.stderr
    assert sorted(p.name for p in (tmp_path / "runs" / "s").iterdir()) == ["config.toml"]


def test_atomic_writes_use_ordinary_permissions(tmp_path):
    import os
    import stat

    from optinas.strategies.files import replace_dir_atomic, write_text_atomic

    mask = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "a.txt", "x")
        replace_dir_atomic(tmp_path / "best", lambda folder: (folder / "f").write_text("y"))
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "best").stat().st_mode) == 0o755
    assert (tmp_path / "a.txt").read_text() == "x" and (tmp_path / "best" / "f").read_text() == "y"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_search_space_file_is_used_and_pinned_for_resume(tmp_path):
    space = tmp_path / "space.toml"
    space.write_text('[stages]\npatterns = ["gd"]\nwidths = [8]\n')
    args = ("search", "--study", "s", "--trials", "1", "--epochs", "1", "--device", "cpu",
            "--space", str(space), "--runs-dir", "runs", "--quiet")
    first = _optinas(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    rows = (tmp_path / "runs" / "s" / "trials.jsonl").read_text()
    assert '"pattern": "gd"' in rows and '"pattern": "hb"' not in rows
    space.write_text('[stages]\npatterns = ["hb"]\nwidths = [8]\n')
    second = _optinas(*args[:4], "2", *args[5:], cwd=tmp_path)
    assert second.returncode == 2 and "space.sha256" in second.stderr
    missing = _optinas("search", "--space", "nope.toml", "--runs-dir", "runs2", cwd=tmp_path)
    assert missing.returncode == 2 and "nope.toml" in missing.stderr and not (tmp_path / "runs2").exists()
