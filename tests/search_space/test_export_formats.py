"""ONNX and torch.export (pt2) exports equal the in-package model and the standalone py export.

Per layer kind, one small ResNet-shaped network (the kind in the stem, the stage layers,
per-block overrides with other options of the kind, a stride-2 projection shortcut and the
classifier) with BatchNorm statistics and quant activation steps set by one training batch.
Each format runs at batch 1 and 7 (onnxruntime for ONNX, ``torch.export.load(...).module()``
for pt2) against the model in eval mode and against the exec'd ``model.py`` with the same
weights: relative error max |a - b| / max |b| <= 1e-4.
"""

import importlib.util
import io
import sys

import onnx
import onnxruntime
import pytest
import torch
from torch import nn

from optinas.search_space import (BlockSpec, Coefficient, ConfigError, Genotype, HeadSpec, InputSpec,
                                  LayerSpec, StageSpec, StemSpec, build_model, export_source)
from optinas.search_space.deploy import CHECK_TOLERANCE, export_onnx, export_program, export_pt2
from optinas.search_space.deploy_layers import inference_network
from optinas.search_space.genotype import BlockOverride
from optinas.search_space.layers.adder import set_adder_p
from optinas.search_space.presets import preset

TOLERANCE = 1e-4
HB = BlockSpec("hb", (Coefficient("b1", 1.0), Coefficient("b2", 0.0)))

# Layer specs per kind: (stem and stages, override of block 1 of stage 1, override of block 0
# of stage 2, classifier). Between them every option the inference forms treat differently.
KINDS = {
    "conv": (LayerSpec("conv"),) * 4,
    "adder": (LayerSpec("adder"),) * 4,
    "binary": (LayerSpec("binary", {"scale": "rank1"}), LayerSpec("binary", {"scale": "channel"}),
               LayerSpec("binary", {"scale": "none"}), LayerSpec("binary", {"scale": "rank1"})),
    "quant": (LayerSpec("quant", {"w_bits": 4, "a_bits": 4}),
              LayerSpec("quant", {"w_bits": 3, "scheme": "codebook"}),
              LayerSpec("quant", {"w_bits": 1, "a_bits": 1}),
              LayerSpec("quant", {"w_bits": 2, "a_bits": 8, "scheme": "codebook"})),
}


def small_network(kind):
    """3x8x8 images, 5 classes: stem, a 2-block stage, a stride-2 stage with a projection."""
    main, override1, override2, head = KINDS[kind]
    stages = (
        StageSpec(2, 8, stride=1, block=HB, layer=main, overrides=(BlockOverride(1, override1),)),
        StageSpec(1, 12, stride=2, block=HB, layer=main, shortcut="projection",
                  overrides=(BlockOverride(0, override2),)),
    )
    return Genotype(InputSpec(3, 8, 8, 5), StemSpec(8, layer=main), stages, HeadSpec(head))


def trained_like(genotype, seed=0):
    """The model in eval mode after one training-mode batch: BatchNorm statistics from the
    data (momentum None: exactly that batch's), quant activation steps initialised."""
    torch.manual_seed(seed)
    model = build_model(genotype)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = None
            module.reset_running_stats()
    with torch.no_grad():
        model.train()(torch.randn(32, *genotype.input.shape))
    return model.eval()


def relative_error(actual, expected):
    return ((actual - expected).abs().max() / expected.abs().max()).item()


def standalone(genotype, state, folder):
    """The exec'd ``py`` export (model.py + weights.pt) of the same weights."""
    (folder / "model.py").write_text(export_source(genotype))
    torch.save(state, folder / "weights.pt")
    spec = importlib.util.spec_from_file_location(f"exported_{folder.name}", folder / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_model()


def onnx_runner(data):
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    return lambda x: torch.from_numpy(session.run(None, {"images": x.numpy()})[0])


def pt2_runner(data):
    return torch.export.load(io.BytesIO(data)).module()


@pytest.fixture(scope="module")
def exported():
    """``exported(kind, form)`` -> (genotype, model, bytes), each export made once per module."""
    cache = {}

    def get(kind, form):
        if (kind, form) not in cache:
            genotype = small_network(kind)
            model = trained_like(genotype)
            data = (export_onnx if form == "onnx" else export_pt2)(genotype, model.state_dict())
            cache[kind, form] = genotype, model, data
        return cache[kind, form]

    return get


@pytest.mark.parametrize("form", ["onnx", "pt2"])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_export_equals_model_and_py_export(exported, kind, form, tmp_path):
    genotype, model, data = exported(kind, form)
    run = (onnx_runner if form == "onnx" else pt2_runner)(data)
    script = standalone(genotype, model.state_dict(), tmp_path)
    generator = torch.Generator().manual_seed(7)
    for batch in (1, 7):
        x = torch.randn((batch, *genotype.input.shape), generator=generator)
        with torch.no_grad():
            expected, actual, from_source = model(x), run(x), script(x)
        assert actual.shape == (batch, 5)
        assert relative_error(actual, expected) <= TOLERANCE
        assert relative_error(actual, from_source) <= TOLERANCE
    # The comparison means something: outputs differ between images.
    assert expected.std(0).max() > 1e-3


def test_onnx_batch_is_symbolic_and_adder_graph_is_compact(exported):
    proto = onnx.load_from_string(exported("adder", "onnx")[2])
    assert proto.graph.input[0].name == "images" and proto.graph.output[0].name == "logits"
    assert [dim.dim_param or dim.dim_value for dim in proto.graph.input[0].type.tensor_type.shape.dim] \
        == ["batch", 3, 8, 8]
    ops = [node.op_type for node in proto.graph.node]
    # 9 adder layers (stem, 3 blocks x 2, projection, classifier): one Abs each; a 3x3
    # layer is Conv (one-hot patches), Unsqueeze, Sub, Abs, ReduceSum, Neg.
    assert ops.count("Abs") == 9
    assert ops.count("Conv") == 7  # the 3x3 layers' patches; no float convolution here
    assert len(ops) <= 6 * 9 + 30


def test_adder_graph_size_does_not_depend_on_batch():
    genotype = small_network("adder")
    model = trained_like(genotype)
    dynamic = export_program(model, genotype.input.shape)  # traced at batch 2, batch symbolic
    counts = {"dynamic": sum(node.op == "call_function" for node in dynamic.graph.nodes)}
    for batch in (1, 5):
        static = torch.export.export(inference_network(model), (torch.zeros(batch, 3, 8, 8),))
        counts[batch] = sum(node.op == "call_function" for node in static.graph.nodes)
    assert len(set(counts.values())) == 1, counts
    assert counts["dynamic"] <= 6 * 9 + 30


def test_inference_forms_equal_the_layers_on_random_genotypes(genotypes):
    # Every block pattern, body, shortcut, kernel, stride and layer option (conftest). Sign and
    # round make a float32 difference in summation order a step now and then (tiny maps after
    # BatchNorm): nearly every image within 1e-4, none beyond the export's own check.
    errors = []
    for index, genotype in enumerate(genotypes(24, seed=11)):
        model = trained_like(genotype, index)
        network = inference_network(model)
        x = torch.randn(8, *genotype.input.shape)
        with torch.no_grad():
            for expected, actual in zip(model(x), network(x)):
                if expected.abs().max() > 0:
                    errors.append(relative_error(actual, expected))
    assert len(errors) >= 150
    assert sum(error <= TOLERANCE for error in errors) >= 0.97 * len(errors)
    assert max(errors) <= CHECK_TOLERANCE


@pytest.mark.slow
@pytest.mark.parametrize("seed", [6, 23])
def test_pt2_export_of_random_genotypes(genotypes, seed):
    # Seed 6: gd, agd_dense, admm stages, all four kinds; 23: agd2, admm, agd with single,
    # basic and bottleneck bodies. With hb in the networks above: every block pattern.
    for index, genotype in enumerate(genotypes(1, seed=seed)):
        model = trained_like(genotype, index)
        run = pt2_runner(export_pt2(genotype, model.state_dict()))
        x = torch.randn(7, *genotype.input.shape)
        with torch.no_grad():
            assert relative_error(run(x), model(x)) <= TOLERANCE
            assert relative_error(run(x[:1]), model(x[:1])) <= TOLERANCE


def test_onnx_without_export_extra_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # `import onnxscript` raises ImportError
    with pytest.raises(ConfigError) as error:
        export_onnx(small_network("conv"))
    message = str(error.value)
    assert "\n" not in message
    assert "onnxscript" in message and "pip install 'optinas[export]'" in message


def test_adder_export_needs_the_inference_exponent():
    model = build_model(small_network("adder"))
    set_adder_p(model, 1.5)
    with pytest.raises(ConfigError, match="p = 1"):
        inference_network(model)


def test_weights_of_another_genotype_are_refused():
    state = build_model(small_network("conv")).state_dict()
    with pytest.raises(ConfigError, match="do not fit"):
        export_pt2(small_network("binary"), state)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet20", "resnet20-adder", "resnet20-binary", "resnet20-quant4"])
def test_resnet20_presets_export_equal_to_py_export(name, tmp_path):
    # The done-list at full size (CIFAR 3x32x32): both formats equal model.py.
    genotype = preset(name)
    model = trained_like(genotype)
    state = model.state_dict()
    script = standalone(genotype, state, tmp_path)
    runs = {"onnx": onnx_runner(export_onnx(genotype, state)), "pt2": pt2_runner(export_pt2(genotype, state))}
    generator = torch.Generator().manual_seed(8)
    for batch in (1, 7):
        x = torch.randn((batch, *genotype.input.shape), generator=generator)
        with torch.no_grad():
            expected = script(x)
            for form, run in runs.items():
                assert relative_error(run(x), expected) <= TOLERANCE, form
    assert expected.std(0).max() > 1e-3
