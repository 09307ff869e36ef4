"""Exported files are standalone and equal to the in-package model."""

import ast
import importlib.util
import subprocess
import sys

import torch

from optinas.search_space import build_model, export_source


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _imports(source):
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module.split(".")[0])
    return names


def test_exported_models_match_in_package_models(genotypes, tmp_path):
    # A quick smoke round trip; test_export_property covers >= 100 genotypes of every kind.
    for index, genotype in enumerate(genotypes(8, seed=3)):
        folder = tmp_path / f"g{index}"
        folder.mkdir()
        source = export_source(genotype)
        assert _imports(source) == {"torch"}
        (folder / "model.py").write_text(source)
        torch.manual_seed(index)
        model = build_model(genotype)
        # Move BatchNorm statistics away from their defaults so eval mode really uses them.
        model.train()
        with torch.no_grad():
            model(torch.randn(8, *genotype.input.shape))
        model.eval()
        torch.save(model.state_dict(), folder / "weights.pt")

        exported = _load(folder / "model.py", f"exported_{index}").build_model()
        assert not exported.training
        assert list(exported.state_dict()) == list(model.state_dict())
        batch = torch.randn(4, *genotype.input.shape)
        with torch.no_grad():
            torch.testing.assert_close(exported(batch), model(batch), rtol=0, atol=1e-5)


def test_exported_file_runs_as_a_script(genotypes, tmp_path):
    genotype = genotypes(1, seed=4)[0]
    (tmp_path / "model.py").write_text(export_source(genotype))
    done = subprocess.run([sys.executable, "model.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str((2, genotype.input.classes))


def test_generated_identifiers_are_ours(genotypes):
    # Every name the file defines comes from our own classes/functions or fixed literals.
    allowed = {"ARCH", "KINDS", "build_model"}
    for genotype in genotypes(10, seed=5):
        tree = ast.parse(export_source(genotype))
        for node in tree.body:
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
                assert node.name.isidentifier() and not node.name.startswith("__")
            elif isinstance(node, ast.Assign):
                assert {target.id for target in node.targets} <= allowed
