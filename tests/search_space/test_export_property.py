"""Property: everything the space can produce exports to a standalone file equal to the model.

Over 100 random genotypes (every block pattern, body, downsampling, coefficient mode, layer
kind and per-block override, on tiny inputs): the exported module loads the in-package
state_dict strictly, matches its outputs within 1e-5 in eval mode, carries every per-block
coefficient value, defines only our sanitised names, and holds just the classes it uses.
"""

import ast
import importlib.util
import random
import re
import sys
from pathlib import Path

import torch

from optinas.search_space import InputSpec, build_model, export_source
from optinas.search_space.builder import kinds_for
from optinas.search_space.modules import EXPORT_OBJECTS, WeightedSum
from optinas.search_space.registry import block_patterns, layer_kinds

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import random_genotype  # noqa: E402

COUNT = 100
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _ours(objects):
    return {obj.__name__ for obj in objects}


def _defined(tree):
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(target.id for target in node.targets)
    return names


def _genotypes():
    rng = random.Random(2026)
    return [random_genotype(rng, InputSpec(rng.choice([1, 3]), rng.choice([4, 5, 6]), rng.choice([4, 6]),
                                           rng.choice([2, 5]))) for _ in range(COUNT)]


def _pattern_objects(name):
    pattern = block_patterns()[name]
    return {*pattern.export_objects, pattern.module}


def _kind_objects(name):
    kind = layer_kinds()[name]
    return {*kind.export_objects, kind.conv, kind.linear}


def _kind_names(name):
    """Names a layer kind's export defines: its objects and what its prelude assigns."""
    prelude = ast.parse(layer_kinds()[name].export_prelude or "")
    return _ours(_kind_objects(name)) | _defined(prelude)


def test_random_genotypes_cover_every_pattern_and_layer_kind():
    patterns, kinds, bodies, modes = set(), set(), set(), set()
    for genotype in _genotypes():
        kinds.update({genotype.stem.layer.kind, genotype.head.layer.kind})
        for stage in genotype.stages:
            patterns.add(stage.block.pattern)
            bodies.add(stage.body)
            kinds.add(stage.layer.kind)
            kinds.update(override.layer.kind for override in stage.overrides)
            modes.update((c.mode, c.init) for c in stage.block.coefficients)
    assert patterns == set(block_patterns())
    assert kinds == set(layer_kinds())
    assert bodies == {"basic", "bottleneck", "single"}
    assert modes == {("fixed", "value"), ("learnable", "value"), ("paper", "value"), ("learnable", "paper")}


def test_exported_files_equal_the_in_package_models(tmp_path):
    all_patterns, all_kinds = set(block_patterns()), set(layer_kinds())
    for index, genotype in enumerate(_genotypes()):
        torch.manual_seed(index)
        model = build_model(genotype)
        with torch.no_grad():
            model.train()(torch.randn(4, *genotype.input.shape))  # BatchNorm statistics move
            for name, parameter in model.named_parameters():
                if name.endswith("learned"):  # learned coefficients leave their initial values
                    parameter.add_(torch.randn_like(parameter) * 0.1)
        model.eval()
        folder = tmp_path / f"g{index}"
        folder.mkdir()
        source = export_source(genotype)
        (folder / "model.py").write_text(source)
        exported_module = _load(folder / "model.py", f"exported_property_{index}")
        if index % 10 == 0:  # the file's own path: build_model() reads weights.pt beside it
            torch.save(model.state_dict(), folder / "weights.pt")
            exported = exported_module.build_model()
            assert not exported.training
        else:
            exported = exported_module.Network(exported_module.ARCH, exported_module.KINDS)
            exported.load_state_dict(model.state_dict(), strict=True)  # same names and shapes, none missing
            exported.eval()
        batch = torch.randn(3, *genotype.input.shape)
        with torch.no_grad():
            torch.testing.assert_close(exported(batch), model(batch), rtol=0, atol=1e-5)
        # Paper and fixed coefficients are recomputed by the exported code: the same values.
        ours = {name: module.values for name, module in model.named_modules() if isinstance(module, WeightedSum)}
        theirs = {name: module.values for name, module in exported.named_modules()
                  if type(module).__name__ == "WeightedSum"}
        assert ours == theirs

        tree = ast.parse(source)
        used = kinds_for(genotype)
        allowed = _ours(EXPORT_OBJECTS) | {"ARCH", "KINDS", "build_model"}
        for name in used["blocks"]:
            allowed |= _ours(_pattern_objects(name))
        for name in used["layers"]:
            allowed |= _kind_names(name)
        defined = _defined(tree)
        assert defined <= allowed, defined - allowed
        # Just what the genotype uses: no class or helper of an unused pattern or layer kind.
        unused = set()
        for name in all_patterns - set(used["blocks"]):
            unused |= _ours(_pattern_objects(name)) - allowed
        for name in all_kinds - set(used["layers"]):
            unused |= _kind_names(name) - allowed
        assert not defined & unused, defined & unused
        # Registry names become dict keys only, and they are sanitised identifiers.
        kinds_literal = next(node for node in tree.body if isinstance(node, ast.Assign)
                             and node.targets[0].id == "KINDS")
        for table in kinds_literal.value.values:
            assert all(_NAME.match(key.value) for key in table.keys)
        arch = next(node for node in tree.body if isinstance(node, ast.Assign) and node.targets[0].id == "ARCH")
        assert ast.literal_eval(arch.value) == genotype.to_dict()  # the genotype enters as a literal only
