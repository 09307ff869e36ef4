"""The house rules a reader relies on: import contracts, module size, one namespace, packaged folders."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("search_space", "evaluator", "strategies")
MAX_LINES = 400


def _sources(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (ROOT / folder).rglob("*.py"))


@pytest.mark.skipif(shutil.which("lint-imports") is None, reason="import-linter is not installed")
def test_import_contracts_hold():
    # The contracts live in pyproject.toml: layers strategies -> evaluator -> search_space, and
    # no cycle between siblings at any depth inside each package.
    done = subprocess.run(["lint-imports", "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 kept, 0 broken" in done.stdout


def test_no_module_is_over_400_lines():
    long = {str(path.relative_to(ROOT)): count for path in _sources(*PACKAGES, "benchmarks")
            if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


def test_the_code_imports_itself_one_way_only():
    # Installed, the packages are optinas.search_space, optinas.evaluator, optinas.strategies; a bare
    # `import search_space` would load a second copy of a module (and of its registries).
    bare = []
    for path in _sources(*PACKAGES, "tests", "benchmarks"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            bare += [f"{path.relative_to(ROOT)}: {name}" for name in names if name.split(".")[0] in PACKAGES]
    assert bare == []


def test_every_package_folder_is_installed_under_optinas():
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    listed = set(settings["packages"])
    on_disk = {"optinas." + ".".join(init.parent.relative_to(ROOT).parts) for folder in PACKAGES
               for init in (ROOT / folder).rglob("__init__.py")}
    assert listed == on_disk
    assert settings["package-dir"] == {f"optinas.{name}": name for name in PACKAGES}


def test_nothing_cites_a_file_outside_the_repository():
    pattern = re.compile(r"DESIGN\.md|/work/shared|\.\./shared|\bseeds?[ _]?00[0-4]\b", re.IGNORECASE)
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout")
    found = []
    for name in tracked:
        path = ROOT / name
        if path.suffix not in {".py", ".md", ".toml", ".txt", ""} or not path.is_file():
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if pattern.search(line) and name != "tests/test_architecture.py":
                found.append(f"{name}:{number}: {line.strip()[:100]}")
    assert found == []


def test_the_command_runs_as_a_module():
    done = subprocess.run([sys.executable, "-m", "optinas.strategies.cli", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and "search" in done.stdout


def test_a_wheel_installs_only_the_optinas_package(tmp_path):
    import zipfile

    # Built from a copy: setuptools writes build/ and *.egg-info beside the sources it builds.
    source = shutil.copytree(ROOT, tmp_path / "source", ignore=shutil.ignore_patterns(
        ".git", "runs", "build", "*.egg-info", "__pycache__", ".*cache*", "data"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(source)], capture_output=True, text=True, timeout=300)
    if done.returncode != 0 and "No module named" in done.stderr:
        pytest.skip(f"cannot build a wheel here: {done.stderr.strip()[-200:]}")
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("optinas-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"optinas", wheel.name.split("-py")[0] + ".dist-info"}
    assert "optinas/__init__.py" not in names  # a namespace package: the three packages share it
    for package in PACKAGES:
        assert f"optinas/{package}/__init__.py" in names
    assert {"optinas/search_space/spaces/digits.toml",
            "optinas/search_space/cost/profiles/horowitz45.toml"} <= set(names)
