"""Bad input: one sentence, exit code 2, no traceback, nothing written (in runs/ or beside it).

The table runs ``optinas.strategies.cli.main`` in this process (one import instead of one per
case keeps it to seconds), in a folder of hostile files, and checks the whole contract for
every class of bad input: exit code 2, one short line on stderr (captured at the file
descriptor, so logging handlers count too), no warning, no traceback, and the folder's files
unchanged. ``test_the_console_entry_point_keeps_the_contract`` runs a case as a subprocess.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import warnings
import zlib

import pytest

from optinas.strategies.cli import main

GENOTYPE = {"input": {"channels": 1, "height": 8, "width": 8, "classes": 10},
            "stem": {"width": 8}, "stages": [{"depth": 1, "width": 8}]}
MAX_LINE = 700  # strategies.cli.common.MAX_LINE_CHARS plus the "optinas CMD: error: " prefix


def _png(width: int, height: int) -> bytes:
    """A PNG header claiming ``width`` x ``height`` pixels: Pillow's bomb check reads no further."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def _images(folder, per_class: dict[str, int]) -> None:
    import numpy as np
    from PIL import Image

    for name, count in per_class.items():
        (folder / name).mkdir(parents=True)
        for index in range(count):
            Image.fromarray(np.full((4, 4), index, np.uint8)).save(folder / name / f"{index}.png")


def _weights(root, name: str) -> None:
    import torch

    from optinas.search_space import Genotype, build_model

    state = build_model(Genotype.from_dict(GENOTYPE)).state_dict()
    key = next(key for key, value in state.items() if value.ndim == 4)
    wrong = {**state, key: torch.zeros(30, 30)}  # more numbers than it replaces: the shape check speaks
    torch.save({"w_list.pt": [1, 2], "w_small.pt": {"x": torch.zeros(3)}, "w_shape.pt": wrong,
                "w_ok.pt": state}[name], root / name)


def _study(root, name: str, config: str = 'study = "s"\n', mode: int | None = None) -> None:
    """A study folder as optinas search leaves it (config.toml, study.journal), with ``config``."""
    (root / name).mkdir()
    (root / name / "config.toml").write_text(config)
    (root / name / "study.journal").write_text("")
    if mode is not None:
        os.chmod(root / name, mode)


def _genotype_with(path: list, value) -> str:
    data = json.loads(json.dumps(GENOTYPE))
    data["stages"][0]["block"] = {"pattern": "hb", "coefficients": [{"name": "b1", "value": 1.0}]}
    target = data
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return json.dumps(data)


#: Every hostile file a case may name, made only where a case names it.
MAKERS = {
    "g.json": lambda root: (root / "g.json").write_text(json.dumps(GENOTYPE)),
    "afile": lambda root: (root / "afile").write_text("not a folder"),
    "adir": lambda root: (root / "adir").mkdir(),
    "ro": lambda root: ((root / "ro").mkdir(), os.chmod(root / "ro", 0o555)),
    "bin.toml": lambda root: (root / "bin.toml").write_bytes(bytes(range(256)) * 4),
    "layers.toml": lambda root: (root / "layers.toml").write_text("[layers]\nconv = 5\n"),
    "coefs.toml": lambda root: (root / "coefs.toml").write_text("[coefficients]\nhb = 5\n"),
    "wide.toml": lambda root: (root / "wide.toml").write_text(f"[stages]\nwidths = {list(range(1, 100))}\n"),
    "garbage.db": lambda root: (root / "garbage.db").write_bytes(b"not a database " * 100),
    "corrupt": lambda root: _study(root, "corrupt", config="study = [[["),
    "study": lambda root: _study(root, "study"),
    "rostudy": lambda root: _study(root, "rostudy", mode=0o555),
    "dbstudy": lambda root: (MAKERS["garbage.db"](root),
                             _study(root, "dbstudy", config='study = "s"\nstorage = "sqlite:///garbage.db"\n')),
    "big.json": lambda root: (root / "big.json").write_text('{"input": {"channels": ' + "9" * 5000 + "}}"),
    "nest.json": lambda root: (root / "nest.json").write_text("[" * 100_000 + "]" * 100_000),
    "long.json": lambda root: (root / "long.json").write_text(_genotype_with(["stem", "width"], "x" * 10_000_000)),
    "midlong.json": lambda root: (root / "midlong.json").write_text(
        _genotype_with(["stages", 0, "block", "pattern"], "y" * 100_000)),
    "coefname.json": lambda root: (root / "coefname.json").write_text(
        _genotype_with(["stages", 0, "block", "coefficients", 0, "name"], [1])),
    "tiny": lambda root: _images(root / "tiny", {"a": 1, "b": 1}),
    "one": lambda root: _images(root / "one", {"a": 20}),
    "bomb": lambda root: (_images(root / "bomb", {"a": 15, "b": 15}),
                          (root / "bomb" / "a" / "0.png").write_bytes(_png(30_000, 30_000))),
    "garbage.tar.gz": lambda root: (root / "garbage.tar.gz").write_bytes(b"\x1f\x8b" + b"junk" * 100),
    **{name: (lambda root, name=name: _weights(root, name)) for name in ("w_list.pt", "w_small.pt", "w_shape.pt")},
}

CASES = [
    # Flags: types, ranges, finite numbers, names.
    (["search", "--trials", "many"], "--trials: invalid int value"),
    (["search", "--bogus"], "unrecognized arguments: --bogus"),
    (["search", "--max-mults", "lots"], "--max-mults must be a count"),
    (["search", "--max-mults", "-5"], "--max-mults must be"),
    (["search", "--max-mults", "1e400"], "--max-mults must be positive and finite"),
    (["search", "--max-energy", "1e400J"], "--max-energy must be positive and finite"),
    (["search", "--trial-time-limit", "1e400"], "--trial-time-limit must be a positive, finite number"),
    (["search", "--cpus-per-trial", "nan"], "--cpus-per-trial must be in (0, 1024]"),
    (["search", "--seed", "4294967296"], "--seed must be an integer in 0..4294967295"),
    (["search", "--sampler", "cmaes"], "--sampler must be one of"),
    (["search", "--sampler", "s" * 100_000], "(100,000 characters)"),  # every echo is clipped
    (["search", "--trials", "9" * 100_000], "--trials: invalid int value: '99999"),
    (["search", "--device", "tpu"], "--device must be auto, cpu or cuda"),
    (["search", "--study", "../escape"], "--study must be"),
    (["search", "--study", "evil\n"], "got 'evil\\n'"),
    (["search", "--task", "imagenet"], "unknown task 'imagenet'"),
    (["search", "--trials", "0"], "--trials must be between"),
    (["search", "--cuda-graphs", "--device", "cpu"], "--cuda-graphs captures the training step on a GPU"),
    (["search", "--pruner", "hyperband"], "--pruner hyperband acts only in single-objective searches"),
    # Storage and cluster: refused before runs/STUDY/ exists.
    (["search", "--storage", "bogus://x"], "unknown database 'bogus'"),
    (["search", "--storage", "notaurl"], "--storage must be a database URL"),
    (["search", "--storage", "sqlite://"], "in-memory SQLite database"),
    (["search", "--storage", "sqlite:///nofolder/s.db"], "the SQLite file 'nofolder/s.db' does not exist"),
    (["search", "--storage", "sqlite:///garbage.db"], "cannot open the study database sqlite:///garbage.db"),
    (["search", "--backend", "ray", "--address", "127.0.0.1:1"], "no Ray head answers there"),
    (["search", "--backend", "ray", "--address", "auto"], "--address auto: no Ray cluster found"),
    (["worker", "--study", "s", "--storage", "sqlite:///new.db"], "no SQLite database at 'new.db'"),
    (["worker", "--study", "s", "--storage", "notaurl"], "--storage must be a database URL"),
    (["worker", "--study", "evil\n", "--storage", "sqlite:///new.db"], "--study must be"),
    # Paths: files for folders, folders for files, read-only places, impossible names.
    (["search", "--runs-dir", "afile"], "--runs-dir 'afile/digits-demo': 'afile' is a file, not a folder"),
    (["search", "--runs-dir", "ro"], "(the folder is read-only)"),
    (["search", "--data-dir", "afile"], "--data-dir 'afile' is a file; give a folder"),
    (["search", "--space", "adir"], "--space 'adir' is a folder; give a file"),
    (["search", "--hardware", "adir"], "hardware profile file 'adir' is a folder, not a file"),
    (["reproduce", "--runs-dir", "afile", "anything"], "--runs-dir 'afile' is a file, not a folder"),
    (["export", "g.json", "-o", "adir"], "--output 'adir' is a folder; give a file name ending in .py"),
    (["export", "g.json", "-o", "afile/m.py"], "--output 'afile/m.py': 'afile' is a file, not a folder"),
    (["export", "g.json", "-o", "ro/m.py"], "(the folder is read-only)"),
    (["export", "g.json", "-o", "x" * 300 + ".py"], "is longer than 255 bytes"),
    (["export", "g.json", "--weights", "adir"], "--weights 'adir' is a folder; give a file"),
    (["export", "missing.json"], "does not exist"),
    (["cost", "missing.json"], "does not exist"),
    (["report", "afile"], "afile is not a folder; give a study folder"),
    (["report", "rostudy"], "cannot write rostudy/report.html: the study folder is read-only"),
    # Files: damaged, binary, a value where a table belongs, too large, too deep.
    (["search", "--space", "bin.toml"], "cannot read search space file 'bin.toml'"),
    (["search", "--space", "layers.toml"], "layers.toml: layers.conv must be a table"),
    (["space", "--config", "coefs.toml"], "coefs.toml: coefficients.hb must be a table"),
    (["space", "--config", "wide.toml"], "stage0 widths lists 99 values; at most 64"),
    (["search", "--study", "corrupt", "--runs-dir", "."], "corrupt/config.toml is damaged (not valid TOML"),
    (["report", "corrupt"], "corrupt/config.toml is damaged (not valid TOML"),
    (["report", "dbstudy"], "cannot open the study database sqlite:///garbage.db"),
    (["report", "study", "--storage", "sqlite:///garbage.db"], "cannot open the study database"),
    (["report", "study", "--storage", "sqlite:///missing.db"], "no SQLite database at 'missing.db'"),
    (["cost", "big.json"], "an integer of 5,000 digits"),
    (["cost", "nest.json"], "nested more than 32 levels deep"),
    (["cost", "long.json"], "bytes; a genotype is at most 4,000,000"),
    (["cost", "midlong.json"], "has 100,000 characters"),
    (["cost", "coefname.json"], "coefficient: name must be a string, got list [1]"),
    (["cost", "g.json", "--input", "3x" + "9" * 5000 + "x9"], "--input must be CxHxW with positive integers"),
    (["cost", "g.json", "--input", "3x99999x9"], "height must be an integer in [1, 4096], got 99999"),
    (["export", "g.json", "--weights", "w_list.pt"], "hold a list, not a state_dict"),
    (["export", "g.json", "--weights", "w_small.pt"], "they hold 3 numbers, the genotype has"),
    (["export", "g.json", "--weights", "w_shape.pt"], "has shape (30, 30), the genotype needs"),
    # Data: too few classes or images for the splits, decompression bombs, damaged archives.
    (["search", "--task", "tiny"], "too few images to hold out test and validation images from every class"),
    (["search", "--task", "one"], "has one class folder ('a'); a classifier needs at least 2"),
    (["search", "--task", "bomb"], "is too large to decode safely"),
    (["search", "--task", "garbage.tar.gz"], "is damaged or not a tar archive"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    ([], "required: COMMAND"),
]


def _snapshot(root) -> dict[str, tuple]:
    return {str(path.relative_to(root)): (path.is_dir(), path.stat().st_size, path.stat().st_mtime_ns)
            for path in sorted(root.rglob("*"))}


def _run(args, root, monkeypatch, capfd):
    """Exit code, stderr and warnings of ``optinas ARGS`` run in ``root``."""
    monkeypatch.chdir(root)
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            code = main(list(args))
        except SystemExit as exit_:
            code = exit_.code
    return code, capfd.readouterr().err, [str(warning.message) for warning in caught]


@pytest.mark.parametrize("args, fragment", CASES, ids=[" ".join(args)[:60] or "nothing" for args, _ in CASES])
def test_bad_input_is_one_sentence_exit_2_and_writes_nothing(tmp_path, monkeypatch, capfd, args, fragment):
    for name, make in MAKERS.items():
        if any(arg == name or arg.startswith((name + "/", f"sqlite:///{name}")) for arg in args):
            make(tmp_path)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)  # --address auto must find no cluster
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path / "no-ray"))
    if args[:1] == ["search"] and "--trials" not in args:
        args = [*args, "--trials", "1", "--epochs", "1", "--quiet"]  # should validation miss, a short run
    before = _snapshot(tmp_path)
    code, stderr, caught = _run(args, tmp_path, monkeypatch, capfd)
    assert code == 2, stderr
    assert fragment in stderr
    assert len(stderr.splitlines()) == 1 and len(stderr) < MAX_LINE, stderr[:2000]
    assert "Traceback" not in stderr
    assert caught == []
    assert _snapshot(tmp_path) == before


def test_the_console_entry_point_keeps_the_contract(tmp_path):
    (tmp_path / "afile").write_text("x")
    done = subprocess.run([sys.executable, "-m", "optinas.strategies.cli", "search", "--storage", "bogus://x",
                           "--runs-dir", "afile/runs"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.startswith("optinas search: error: ") and len(done.stderr.splitlines()) == 1, done.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["afile"]
