"""What the commands write when their input is hostile or huge: generated code that stays code,
weights checked without building the model, and the checks that must not refuse good input."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest

from optinas.search_space import Genotype, build_model, export_source
from optinas.search_space.errors import ConfigError
from optinas.strategies.cli import main
from optinas.strategies.config import SearchConfig

GENOTYPE = {"input": {"channels": 1, "height": 8, "width": 8, "classes": 10},
            "stem": {"width": 8}, "stages": [{"depth": 1, "width": 8}]}
HOSTILE = 'm""";open("PWNED","w");""".py'


def _optinas(*args, cwd):
    return subprocess.run([sys.executable, "-m", "optinas.strategies.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def _run(monkeypatch, capsys, cwd, *args):
    monkeypatch.chdir(cwd)
    try:
        code = main(list(args))
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_hostile_output_name_does_not_reach_the_generated_code(tmp_path, monkeypatch, capsys):
    (tmp_path / "g.json").write_text(json.dumps(GENOTYPE))
    code, _, stderr = _run(monkeypatch, capsys, tmp_path, "export", "g.json", "-o", HOSTILE)
    assert code == 0, stderr
    done = subprocess.run([sys.executable, HOSTILE], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "(2, 10)"
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("text", [HOSTILE, 'a\\', 'x\n"""\nimport os\nos.system("touch PWNED")\n"""', "\\N{bad}"])
def test_titles_and_file_names_stay_inside_the_docstring(text):
    # optinas train puts the target's name in the title, the search a trial's scores.
    source = export_source(Genotype.from_dict(GENOTYPE), text if text.endswith(".py") else "model.py", title=text)
    tree = ast.parse(source)
    # The text is in the docstring, whole (line breaks as spaces), and the docstring is the only
    # bare expression at the top: an injected call would be another.
    assert text.replace("\n", " ") in ast.get_docstring(tree, clean=False)
    assert [type(node.value) for node in tree.body if isinstance(node, ast.Expr)] == [ast.Constant]
    assert not any(isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("open", "exec", "eval")
                   for node in ast.walk(tree))


def test_an_os_error_after_the_checks_is_one_sentence(tmp_path, monkeypatch, capsys):
    # What the up-front checks cannot see (a disk that fills up meanwhile) still ends in one line.
    import errno

    from optinas.strategies.cli import export

    def full_disk(genotype, output, weights, format="py"):
        raise OSError(errno.ENOSPC, "No space left on device", str(output))

    monkeypatch.setattr(export, "export_to_file", full_disk)
    code, _, stderr = _run(monkeypatch, capsys, tmp_path, "export", "resnet20", "-o", "out/m.py")
    assert code == 2
    assert stderr == "optinas export: error: cannot use 'out/m.py': No space left on device\n"


def test_weights_that_fit_are_copied_beside_the_file(tmp_path, monkeypatch, capsys):
    import torch

    (tmp_path / "g.json").write_text(json.dumps(GENOTYPE))
    torch.save(build_model(Genotype.from_dict(GENOTYPE)).state_dict(), tmp_path / "w.pt")
    code, stdout, stderr = _run(monkeypatch, capsys, tmp_path, "export", "g.json", "-o", "out/m.py",
                                "--weights", "w.pt")
    assert code == 0, stderr
    assert (tmp_path / "out" / "weights.pt").read_bytes() == (tmp_path / "w.pt").read_bytes()
    assert "wrote out/m.py and out/weights.pt" in stdout


def test_a_huge_genotype_is_refused_from_its_parameter_count(tmp_path, monkeypatch, capsys):
    # 16 stages of 64 blocks at width 4096: ~3e11 parameters, over a terabyte if it were built.
    import torch

    huge = {**GENOTYPE, "stem": {"width": 4096}, "stages": [{"depth": 64, "width": 4096}] * 16}
    (tmp_path / "huge.json").write_text(json.dumps(huge))
    torch.save({"x": torch.zeros(3)}, tmp_path / "w.pt")
    code, _, stderr = _run(monkeypatch, capsys, tmp_path, "export", "huge.json", "--weights", "w.pt")
    assert code == 2
    assert "they hold 3 numbers, the genotype has 309," in stderr, stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["huge.json", "w.pt"]


def test_an_astronomically_large_space_is_described_not_enumerated(tmp_path, monkeypatch, capsys):
    (tmp_path / "huge.toml").write_text(f"[stages]\nstrides = {[1] * 16}\nwidths = {list(range(1, 65))}\n"
                                        "depths = [1, 256]\noverrides = true\n")
    code, stdout, stderr = _run(monkeypatch, capsys, tmp_path, "space", "--config", "huge.toml")
    assert code == 0, stderr
    assert "about 10^" in stdout.splitlines()[0] and "distinct genotypes" in stdout.splitlines()[0]


def test_checks_do_not_refuse_good_settings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    SearchConfig(objectives="accuracy,mults", pruner="none")  # says what happens anyway
    SearchConfig(objectives="accuracy,mults")  # the default pruner, median, is silent
    SearchConfig(objectives="accuracy", pruner="hyperband", seed=2**32 - 1)
    SearchConfig(storage="sqlite:///study.db")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", ["RAY_ADDRESS", "ray start record"])
def test_address_auto_finds_a_recorded_cluster(tmp_path, monkeypatch, where):
    import socket

    from optinas.strategies.backends.ray.backend import check_address

    with socket.create_server(("127.0.0.1", 0)) as head:  # stands in for a head's GCS port
        address = f"127.0.0.1:{head.getsockname()[1]}"
        monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
        if where == "RAY_ADDRESS":
            monkeypatch.setenv("RAY_ADDRESS", address)
        else:
            (tmp_path / "ray").mkdir()
            (tmp_path / "ray" / "ray_current_cluster").write_text(address + "\n")
        check_address("auto")
    with pytest.raises(ConfigError, match="no Ray head answers there"):
        check_address("auto")  # the same address, closed


def test_an_image_folder_that_splits_loads(tmp_path):
    # The split check runs the stratified split itself, so it refuses no folder that splits:
    # 2 classes of 10 images: 4 test, 2 validation and 14 training images, every class in each.
    import numpy as np
    from PIL import Image

    from optinas.evaluator import load_task

    for name in ("a", "b"):
        (tmp_path / "set" / name).mkdir(parents=True)
        for index in range(10):
            Image.fromarray(np.full((4, 4), index, np.uint8)).save(tmp_path / "set" / name / f"{index}.png")
    task = load_task(str(tmp_path / "set"), seed=3)
    assert task.num_classes == 2
    assert set(task.val_y.tolist()) == set(task.test_y.tolist()) == set(task.train_y.tolist()) == {0, 1}


def test_malformed_genotype_file(tmp_path, monkeypatch, capsys):
    bad = tmp_path / "g.json"
    bad.write_text(json.dumps({**GENOTYPE, "stages": [{"depth": 1, "width": -3}]}))
    for command in (["cost", str(bad)], ["export", str(bad), "-o", str(tmp_path / "m.py")]):
        code, _, stderr = _run(monkeypatch, capsys, tmp_path, *command)
        assert code == 2
        assert stderr.strip().endswith("stage 1: width must be an integer in [1, 4096], got -3")
        assert not (tmp_path / "m.py").exists()


def test_weights_of_another_model_are_refused(tmp_path, monkeypatch, capsys):
    import torch

    (tmp_path / "g.json").write_text(json.dumps(GENOTYPE))
    torch.save({"nonsense": torch.zeros(3)}, tmp_path / "w.pt")
    code, _, stderr = _run(monkeypatch, capsys, tmp_path, "export", "g.json", "-o", "out/m.py", "--weights", "w.pt")
    assert code == 2 and "do not fit this genotype" in stderr
    assert not (tmp_path / "out").exists()


def test_resume_with_other_settings_is_refused(tmp_path, monkeypatch, capsys):
    (tmp_path / "runs" / "s").mkdir(parents=True)
    (tmp_path / "runs" / "s" / "config.toml").write_text('"task" = "digits"\n"seed" = 0\n"sampler" = "tpe"\n"epochs" = 6\n')
    code, _, stderr = _run(monkeypatch, capsys, tmp_path, "search", "--study", "s", "--epochs", "2", "--runs-dir", "runs")
    assert code == 2 and "created with epochs = 6, not 2" in stderr
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
