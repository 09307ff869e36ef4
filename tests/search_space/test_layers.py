"""The layer zoo: every registered kind in every place of a genotype, then each kind's maths.

Registry-driven checks (forward/backward in both forms, declared parameters, analytic cost
equal to the hook count, export round trip) run for every kind; the rest checks binary
(XNOR-Net++, Chee and Loustau), quant (Ding et al. and the weight-quantization appendix) and
the adder kind's linear form and recipe (AdderNet) against hand computations.
"""

import importlib.util
import math
import re

import pytest
import torch
import torch.nn.functional as F

from optinas.search_space import (
    BlockSpec, Genotype, GenotypeError, HeadSpec, InputSpec, LayerSpec, StageSpec, StemSpec,
    build_model, count_cost, count_with_hooks, export_source,
)
from optinas.search_space.layers import (
    AdderConv2d, AdderLinear, BinaryConv2d, BinaryLinear, QuantConv2d, QuantLinear,
)
from optinas.search_space.layers.binary import BinarySign, _binary_input
from optinas.search_space.layers.quant import LsqQuantize, _quant_input, _quant_weight
from optinas.search_space.recipes import recipes_for
from optinas.search_space.registry import OpCount, layer_kind, layer_kinds

KINDS = sorted(layer_kinds())

# Each kind with option values that change the module's structure.
VARIANTS = [
    LayerSpec("conv"),
    LayerSpec("adder", {"p_decay": 0.5, "eta": 0.2}),
    LayerSpec("binary", {"scale": "none"}),
    LayerSpec("binary", {"scale": "channel"}),
    LayerSpec("binary", {"scale": "rank1"}),
    LayerSpec("quant", {"w_bits": 1, "a_bits": 1}),
    LayerSpec("quant", {"w_bits": 4, "a_bits": 32}),
    LayerSpec("quant", {"w_bits": 3, "a_bits": 8, "scheme": "codebook"}),
]
VARIANT_IDS = [f"{spec.kind}-" + "-".join(f"{k}{v}" for k, v in spec.options) for spec in VARIANTS]


def _everywhere(layer: LayerSpec) -> Genotype:
    """``layer`` as stem, in a stride-2 stage with a projection shortcut, and as head."""
    stages = (StageSpec(2, 8, 1, block=BlockSpec("hb"), layer=layer),
              StageSpec(1, 16, 2, block=BlockSpec("gd"), layer=layer))
    return Genotype(InputSpec(3, 11, 9, 10), StemSpec(8, layer=layer), stages, HeadSpec(layer))


# -- every kind -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", KINDS)
def test_both_forms_run_forward_and_backward(name):
    kind = layer_kind(name)
    options = {option: spec.default for option, spec in kind.options.items()}
    for module, x, shape in [
        (kind.conv(3, 8, 3, 2, **options), torch.randn(4, 3, 9, 7), (4, 8, 5, 4)),
        (kind.linear(6, 5, **options), torch.randn(4, 6), (4, 5)),
    ]:
        x.requires_grad_(True)
        y = module(x)
        assert y.shape == shape
        y.square().sum().backward()
        assert x.grad.abs().sum() > 0 and module.weight.grad.abs().sum() > 0
        assert all(torch.isfinite(p.grad).all() for p in module.parameters() if p.grad is not None)
        # The hook-based cost count reads every option back from the module.
        assert {option: getattr(module, option) for option in options} == options


@pytest.mark.parametrize("layer", VARIANTS, ids=VARIANT_IDS)
def test_every_kind_in_stem_stages_and_head_costs_as_counted(layer):
    genotype = Genotype.from_json(_everywhere(layer).to_json())
    assert genotype.stem.layer == genotype.head.layer == layer
    analytic = count_cost(genotype)
    model = build_model(genotype)
    assert analytic.by_name() == count_with_hooks(model, genotype.input.shape).by_name()
    assert analytic.params == sum(p.numel() for p in model.parameters())
    assert not any(torch.nn.parameter.is_lazy(p) for p in model.parameters())


@pytest.mark.parametrize("layer", VARIANTS, ids=VARIANT_IDS)
def test_every_kind_exports_and_loads_strictly(layer, tmp_path):
    genotype = _everywhere(layer)
    torch.manual_seed(0)
    model = build_model(genotype)
    for _ in range(2):  # move BatchNorm statistics and data-initialised steps off their defaults
        model(torch.randn(8, *genotype.input.shape))
    model.eval()
    for recipe in recipes_for(model):
        recipe.for_inference(model)
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    source = export_source(genotype)
    assert "triton" not in source.lower() and "optinas" not in source.split('"""', 2)[2]
    (tmp_path / "model.py").write_text(source)
    spec = importlib.util.spec_from_file_location(f"exported_{layer.kind}", tmp_path / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    exported = module.build_model()  # strict load_state_dict into a fresh network
    batch = torch.randn(4, *genotype.input.shape)
    with torch.no_grad():
        torch.testing.assert_close(exported(batch), model(batch), rtol=0, atol=1e-5)


def test_stem_and_head_are_float_unless_the_genotype_says_otherwise():
    default = Genotype(InputSpec(1, 8, 8, 10), StemSpec(8), (StageSpec(1, 8, layer=LayerSpec("binary")),))
    assert default.stem.layer.kind == default.head.layer.kind == "conv"
    model = build_model(Genotype(InputSpec(1, 8, 8, 10), StemSpec(8, layer=LayerSpec("adder")),
                                 default.stages, HeadSpec(LayerSpec("quant", {"w_bits": 2}))))
    assert type(model.stem.layer) is AdderConv2d and type(model.fc) is QuantLinear
    assert model.fc.w_bits == 2


@pytest.mark.parametrize("kind, options, fragment", [
    ("binary", {"scale": "diagonal"}, "option scale must be one of none, channel, rank1"),
    ("quant", {"w_bits": 9}, "option w_bits must be in [1, 8]"),
    ("quant", {"a_bits": 16}, "option a_bits must be one of 1, 2, 3, 4, 5, 6, 7, 8, 32"),
    ("quant", {"scheme": "log"}, "option scheme must be one of linear, codebook"),
    ("adder", {"p_decay": 0.0}, "option p_decay must be in [0.05, 1.0]"),
    ("adder", {"eta": "big"}, "option eta must be float"),
])
def test_bad_options_are_one_sentence_errors(kind, options, fragment):
    with pytest.raises(GenotypeError, match=re.escape(fragment)):
        LayerSpec(kind, options)


def test_declared_precisions_and_costs():
    assert (layer_kind("binary").weight_bits({}), layer_kind("binary").activation_bits({})) == (1, 1)
    quant = {"w_bits": 3, "a_bits": 32, "scheme": "linear"}
    assert (layer_kind("quant").weight_bits(quant), layer_kind("quant").activation_bits(quant)) == (3, 32)
    assert layer_kind("adder").per_output(72, {}) == OpCount(add=144)
    for scale, mul in (("none", 0), ("channel", 1), ("rank1", 1)):
        ops = layer_kind("binary").per_output(72, {"scale": scale, "eta": 0.1})
        assert (ops.mul, ops.add, ops.xnor) == (mul, 72, 72)
    assert layer_kind("binary").per_input({}).add == 1
    assert layer_kind("quant").per_input({**quant, "a_bits": 4}).mul == 1
    assert layer_kind("quant").per_input(quant).mul == 0
    assert layer_kind("adder").options["p_decay"].default == 0.75
    assert layer_kind("adder").options["eta"].default == 0.1


# -- binary (Chee and Loustau) ----------------------------------------------------------------


def test_sign_is_plus_minus_one_with_sign_of_zero_plus_one_and_clipped_gradient():
    x = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0], requires_grad=True)
    y = BinarySign.apply(x)
    assert y.tolist() == [-1, -1, -1, 1, 1, 1, 1]
    y.backward(torch.full_like(x, 3.0))
    assert x.grad.tolist() == [0, 3, 3, 3, 3, 3, 0]


def test_binary_layer_normalises_relu_outputs_before_sign():
    layer = BinaryConv2d(4, 4, 3)
    x = F.relu(torch.randn(16, 4, 6, 6))
    assert (torch.where(x >= 0, 1, -1) == 1).all()  # sign(ReLU(x)) would carry no information
    signs = _binary_input(layer, x)
    assert 0.3 < (signs > 0).float().mean() < 0.7


def test_binary_conv_is_sign_conv_times_rank1_scale():
    torch.manual_seed(0)
    layer = BinaryConv2d(3, 5, 3, 2, scale="rank1")
    x = torch.randn(2, 3, 9, 6)
    layer(x)
    with torch.no_grad():
        for parameter in (layer.scale_channel, layer.scale_height, layer.scale_width):
            parameter.uniform_(0.5, 2.0)
    layer.eval()
    normalised = F.batch_norm(x, layer.norm_mean, layer.norm_var, layer.norm_weight, layer.norm_bias)
    xb = torch.where(normalised >= 0, 1.0, -1.0)
    popcount = F.conv2d(xb, torch.where(layer.weight >= 0, 1.0, -1.0), stride=2, padding=1)
    assert popcount.shape[2:] == (5, 3) and torch.equal(popcount, popcount.round())
    gamma = layer.scale_channel[:, None, None] * layer.scale_height[:, None] * layer.scale_width
    torch.testing.assert_close(layer(x), popcount * gamma, rtol=1e-6, atol=1e-6)


def test_rank1_scale_follows_any_resolution_and_loads_strictly():
    torch.manual_seed(0)
    layer = BinaryConv2d(3, 4, 3, 2)
    x = torch.randn(2, 3, 301, 45)  # no fixed maximum resolution
    layer(x)
    assert (layer.scale_height.shape, layer.scale_width.shape) == ((151,), (23,))
    with torch.no_grad():
        layer.scale_width.uniform_()
    fresh = BinaryConv2d(3, 4, 3, 2)
    fresh.load_state_dict(layer.state_dict())  # strict: the lazy factors take the stored shapes
    layer.eval(), fresh.eval()
    assert torch.equal(fresh(x), layer(x))
    with pytest.raises(ValueError, match="rank-1 scale was sized for 151x23"):
        layer(torch.randn(1, 3, 32, 32))


def test_binary_recipe_clips_latent_weights_and_rescales_gradients():
    layers = torch.nn.Sequential(BinaryConv2d(3, 4, 3, eta=0.2), BinaryConv2d(4, 4, 3, eta=0.0))
    recipe = layer_kind("binary").recipe()
    with torch.no_grad():
        layers[0].weight[0, 0, 0, 0] = 3.0
    recipe.before_step(layers, 0.0)
    assert layers[0].weight.abs().max() <= 1.0
    layers(torch.randn(4, 3, 5, 5)).sum().backward()
    plain = layers[1].weight.grad.clone()
    recipe.after_backward(layers)
    grad = layers[0].weight.grad
    assert math.isclose(grad.norm().item(), 0.2 * math.sqrt(grad.numel()), rel_tol=1e-5)
    assert torch.equal(layers[1].weight.grad, plain)  # eta = 0: plain gradients


def test_binary_storage_is_one_bit_per_weight():
    conv, linear = BinaryConv2d(8, 16, 3, scale="channel"), BinaryLinear(8, 10, scale="none")
    assert conv.storage_bits() == 16 * 8 * 9 + 32 * (2 * 8 + 16)
    assert linear.storage_bits() == 10 * 8 + 32 * (2 * 8 + 10)


# -- quant (Ding et al. and the weight-quantization appendix) ---------------------------------


@pytest.mark.parametrize("bits", range(1, 9))
def test_linear_weights_sit_on_the_lsq_grid(bits):
    torch.manual_seed(bits)
    layer = QuantConv2d(8, 16, 3, w_bits=bits)
    steps = (layer.quantized_weight() / layer.weight_step.detach()).unique()
    assert torch.allclose(steps, steps.round(), atol=1e-5)  # q * s / s, up to rounding
    steps = steps.round().unique()
    mean_abs = layer.weight.detach().abs().mean()
    if bits == 1:
        assert steps.tolist() == [-1.0, 1.0]
        assert torch.isclose(layer.weight_step, mean_abs)
    else:
        assert len(steps) <= 2 ** bits
        assert steps.min() >= -(2 ** (bits - 1)) and steps.max() <= 2 ** (bits - 1) - 1
        assert torch.isclose(layer.weight_step, 2 * mean_abs / math.sqrt(2 ** (bits - 1) - 1))


def test_lsq_gradients_follow_esser_et_al():
    v = torch.tensor([-5.0, -1.3, -0.2, 0.4, 0.6, 2.2, 9.0], requires_grad=True)
    step = torch.tensor(0.5, requires_grad=True)
    upstream = torch.arange(1.0, 8.0)
    LsqQuantize.apply(v, step, 4, 3, 0.25).backward(upstream)  # grid -4..3 (3 bits)
    scaled = v.detach() / 0.5
    inside = (scaled > -4) & (scaled < 3)
    assert torch.equal(v.grad, upstream * inside)
    ds = torch.where(inside, scaled.round() - scaled, scaled.round().clamp(-4, 3))
    assert math.isclose(step.grad.item(), 0.25 * (upstream * ds).sum().item(), rel_tol=1e-6)


def test_activations_use_an_unsigned_grid_for_relu_inputs_and_persist():
    torch.manual_seed(0)
    layer = QuantConv2d(4, 4, 3, a_bits=2)
    captured = []
    layer.register_forward_pre_hook(lambda module, args: captured.append(args[0]))
    x = F.relu(torch.randn(8, 4, 5, 5))
    layer(x)
    assert not layer.act_signed and layer.act_ready
    assert math.isclose(layer.act_step.item(), x.abs().mean().item() * 2 / math.sqrt(3), rel_tol=1e-5)
    levels = (_quant_input(layer, x) / layer.act_step).detach().unique()
    assert set(levels.round().tolist()) <= {0, 1, 2, 3} and torch.allclose(levels, levels.round())
    fresh = QuantConv2d(4, 4, 3, a_bits=2)
    fresh.load_state_dict(layer.state_dict())
    fresh.train()
    fresh(-x)  # a loaded layer keeps its grid and step: no second data-dependent init
    assert fresh._act_cache == (False, True) and fresh.act_step == layer.act_step
    signed = QuantLinear(6, 3, a_bits=2)
    signed(torch.randn(5, 6))
    assert signed.act_signed


def test_float_activations_pass_through():
    layer = QuantConv2d(4, 4, 3, w_bits=8, a_bits=32)
    x = torch.randn(2, 4, 5, 5)
    torch.testing.assert_close(layer(x), F.conv2d(x, layer.quantized_weight(), padding=1))


def test_codebook_weights_are_indices_into_learned_shared_values():
    torch.manual_seed(0)
    layer = QuantConv2d(8, 16, 3, w_bits=3, scheme="codebook")
    weight = layer.weight.detach()
    quantiles = torch.quantile(weight.flatten(), (torch.arange(8.0) + 0.5) / 8)
    torch.testing.assert_close(layer.codebook.detach(), quantiles)
    values = layer.codebook.detach().sort().values
    indices = layer.weight_indices()
    assert indices.min() >= 0 and indices.max() < 8
    assert torch.equal(layer.quantized_weight(), values[indices])
    nearest = (weight[..., None] - values).abs().argmin(-1)
    assert torch.equal(indices, nearest)
    # Gradients: straight through to the weights in the codebook's range, summed (and
    # scaled by sqrt(L / N)) per shared value.
    upstream = torch.randn_like(weight)
    _quant_weight(layer).backward(upstream)
    inside = (weight >= values[0]) & (weight <= values[-1])
    assert torch.equal(layer.weight.grad, upstream * inside)
    expected = torch.zeros(8).index_add_(0, indices.flatten(), upstream.flatten()) * math.sqrt(8 / weight.numel())
    order = layer.codebook.detach().argsort()
    torch.testing.assert_close(layer.codebook.grad[order], expected)
    assert layer.storage_bits() == weight.numel() * 3 + 32 * 8


def test_quant_storage_counts_steps_and_bias():
    assert QuantConv2d(8, 16, 3, w_bits=4, a_bits=8).storage_bits() == 16 * 8 * 9 * 4 + 32 * 2
    assert QuantLinear(8, 10, w_bits=2).storage_bits() == 80 * 2 + 32 * (1 + 10)


# -- adder (AdderNet): linear form and recipe -------------------------------------------------


@pytest.mark.parametrize("p", [1.0, 1.5, 2.0])
def test_adder_linear_is_a_negative_lp_distance_with_the_papers_gradients(p):
    torch.manual_seed(0)
    layer = AdderLinear(6, 4)
    layer.p = p
    with torch.no_grad():
        layer.bias.uniform_()
    x = torch.randn(5, 6, requires_grad=True)
    w = layer.weight.detach().view(4, 6)
    y = layer(x)
    diff = x.detach()[:, None, :] - w[None]  # (N, O, K)
    torch.testing.assert_close(y, layer.bias.detach() - diff.abs().pow(p).sum(-1), rtol=1e-5, atol=1e-5)
    g = torch.randn(5, 4)
    y.backward(g)
    # eq. 5: dF = sum_n g (X - F); eq. 21: dX = sum_o g HardTanh(F - X).
    torch.testing.assert_close(layer.weight.grad.view(4, 6), (g[..., None] * diff).sum(0), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x.grad, (g[..., None] * (-diff).clamp(-1, 1)).sum(1), rtol=1e-5, atol=1e-5)


def test_adder_recipe_schedules_p_scales_gradients_and_infers_at_p1():
    genotype = Genotype(InputSpec(1, 8, 8, 10), StemSpec(8),
                        (StageSpec(1, 8, layer=LayerSpec("adder", {"p_decay": 0.5, "eta": 0.3})),),
                        HeadSpec(LayerSpec("adder", {"p_decay": 1.0})))
    model = build_model(genotype)
    (recipe,) = recipes_for(model)
    body, head = model.stages[0].blocks[0].body.layer1, model.fc
    recipe.before_step(model, 0.25)
    assert (body.p, head.p) == (1.5, 1.75)  # p = 2 - progress / p_decay, eq. 20's schedule
    recipe.before_step(model, 0.8)
    assert (body.p, head.p) == (1.0, pytest.approx(1.2))
    model(torch.randn(4, 1, 8, 8)).sum().backward()
    recipe.after_backward(model)
    for layer, eta in ((body, 0.3), (head, 0.1)):  # eq. 27: ||g|| = eta sqrt(k)
        assert math.isclose(layer.weight.grad.norm().item(), eta * math.sqrt(layer.weight.numel()), rel_tol=1e-5)
    recipe.for_inference(model)
    assert all(m.p == 1.0 for m in model.modules() if isinstance(m, (AdderConv2d, AdderLinear)))
