"""The cost model, by behaviour: records, totals and views, the analytic walk, the hook count
and the printed table, against counts worked out by hand (and shapes against PyTorch's own
layers), so that a wrong answer in any of them shows, not only a disagreement between the
analytic and the hook-based count (tests/search_space/test_cost_hooks.py).
"""

import dataclasses
import math

import pytest
import torch
from torch import nn

from optinas.search_space import (BlockSpec, Coefficient, Genotype, InputSpec, LayerSpec, StageSpec, StemSpec,
                                  build_model, count_cost, count_with_hooks, registry)
from optinas.search_space.cost import Cost, LayerCost, load_profile
from optinas.search_space.cost.layer_records import conv_output_size, layer_record, linear_record, maxpool_record
from optinas.search_space.cost.records import combine_ops, weighted_cost
from optinas.search_space.cost.summary import cost_table, format_bits, format_count, format_energy
from optinas.search_space.genotype import BlockOverride
from optinas.search_space.modules import GlobalAvgPool, WeightedSum
from optinas.search_space.registry import OpCount, layer_kind

# -- records and totals --------------------------------------------------------------------


def test_a_record_has_float_defaults_and_counts_its_outputs():
    record = LayerCost("x", "conv", (3, 4, 5))
    assert (record.mul, record.add, record.xnor, record.shift, record.macs, record.bops, record.params,
            record.storage_bits) == (0,) * 8
    assert (record.weight_bits, record.activation_bits, record.paper) == (32, 32, False)
    assert record.activations == 60 and LayerCost("fc", "conv", (7,)).activations == 7
    assert record.is_empty()
    for field in ("mul", "add", "xnor", "shift", "macs", "params"):
        assert not record._replace(**{field: 1}).is_empty(), field
    assert record._replace(mul=2, paper=True).to_dict() == {
        "name": "x", "op": "conv", "out_shape": [3, 4, 5], "mul": 2, "add": 0, "xnor": 0, "shift": 0, "macs": 0,
        "bops": 0, "params": 0, "storage_bits": 0, "weight_bits": 32, "activation_bits": 32, "paper": True}


@pytest.mark.parametrize("values, learnable, expected", [
    ([], [], (0, 0, 0)),
    ([0.0, 0.0], [False, False], (0, 0, 0)),          # nothing left to add
    ([1.0, 0.0, 2.0, 3.0], [False] * 4, (1, 2, 1)),   # a dropped term drops only itself
    ([1.0], [False], (0, 0, 0)),                      # one term: no addition
    ([-1.0, 1.0], [False, False], (0, 1, 0)),         # a sign flip is free
    ([1.0, 2.0, -4.0, 0.25], [False] * 4, (0, 3, 3)),  # powers of two, either sign: shifts
    ([1.0, 3.0, 0.75, 1.5, -0.3], [False] * 5, (4, 4, 0)),
    ([1.0, 0.0], [False, True], (1, 1, 0)),           # a learnable 0 still multiplies
    ([1.0, -1.0, 0.5], [True, True, True], (3, 2, 0)),  # learnable 1, -1, 0.5: multiplications
    ([2.0 ** -10, 2.0 ** 10], [False, False], (0, 1, 2)),
])
def test_coefficient_costs(values, learnable, expected):
    assert combine_ops(values, learnable) == expected


def test_a_weighted_record_from_per_element_conventions():
    # 3 outputs of fan-in 4, 10 input elements; per output 4 mul + 5 add + 6 xnor + 7 shift,
    # per input 1 mul + 2 add + 3 xnor + 4 shift.
    record = weighted_cost("w", "k", (3,), OpCount(4, 5, 6, 7), OpCount(1, 2, 3, 4), 3, 10, 4, 12, 15, None,
                           4, 8, True)
    assert record == LayerCost("w", "k", (3,), mul=4 * 3 + 10, add=5 * 3 + 20, xnor=6 * 3 + 30, shift=7 * 3 + 40,
                               macs=12, bops=12 * 4 * 8, params=15, storage_bits=12 * 4 + 3 * 32,
                               weight_bits=4, activation_bits=8, paper=True)
    declared = weighted_cost("w", "k", (3,), OpCount(), OpCount(), 3, 10, 4, 12, 15, 999, 4, 8, False)
    assert declared.storage_bits == 999 and not declared.paper


def _records():
    return [
        LayerCost("stem", "conv", (2, 2, 2), mul=10, add=11, macs=10, bops=10 * 1024, params=5, storage_bits=160),
        LayerCost("skip", "combine", (2, 2, 2)),  # empty: dropped
        LayerCost("mid", "quant", (4,), mul=1, add=2, xnor=3, shift=4, macs=6, bops=7, params=8,
                  storage_bits=9, weight_bits=4, activation_bits=4, paper=True),
        LayerCost("bn", "batchnorm", (16,), mul=16, add=16, params=2, storage_bits=64),
        LayerCost("fc", "conv", (3,), mul=100, add=100, macs=100, params=103, storage_bits=3296),
    ]


def test_totals_and_the_three_views():
    cost = Cost.from_records((1, 2, 2), _records(), "horowitz45")
    assert [record.name for record in cost.records] == ["stem", "mid", "bn", "fc"]
    assert cost.input_shape == (1, 2, 2) and cost.hardware is load_profile("horowitz45")
    assert cost.sizes == (8, 4, 16, 3)
    total = cost.total
    assert {key: total[key] for key in ("mul", "add", "xnor", "shift", "macs", "bops", "params", "storage_bits",
                                        "activations", "peak_activation")} == {
        "mul": 127, "add": 129, "xnor": 3, "shift": 4, "macs": 116, "bops": 10247, "params": 118,
        "storage_bits": 3529, "activations": 31, "peak_activation": 16}
    energies = cost.energies
    assert total["energy_compute_pj"] == pytest.approx(sum(e.compute for e in energies), rel=1e-15)
    assert total["energy_weights_pj"] == pytest.approx(sum(e.weights for e in energies), rel=1e-15)
    assert total["energy_activations_pj"] == pytest.approx(sum(e.activations for e in energies), rel=1e-15)
    assert total["energy_pj"] == pytest.approx(sum(e.total for e in energies), rel=1e-15)
    assert (cost.mults, cost.params, cost.storage_bits, cost.energy_pj) == (127, 118, 3529, total["energy_pj"])
    assert cost.paper["mul"] == 1 and cost.paper["activations"] == 4 and cost.paper["energy_pj"] == energies[1].total
    assert cost.weighted["mul"] == 111 and cost.weighted["peak_activation"] == 8
    assert cost.sum(lambda record: record.op == "batchnorm")["mul"] == 16
    nothing = cost.sum(lambda record: False)
    assert nothing["mul"] == 0 and nothing["peak_activation"] == 0 and nothing["energy_pj"] == 0.0
    assert cost.by_name()["fc"] is cost.records[3]


def test_the_json_form():
    cost = Cost.from_records((1, 2, 2), _records())  # priced on the default profile
    data = cost.to_dict()
    assert cost.hardware is load_profile("horowitz45")
    assert data["hardware"] == "horowitz45" and data["input_shape"] == [1, 2, 2]
    assert data["memory"] == {"weights": "sram", "activations": "sram"}
    assert data["total"] == cost.total and data["paper"] == cost.paper and data["weighted"] == cost.weighted
    assert [row["name"] for row in data["layers"]] == ["stem", "mid", "bn", "fc"]
    assert data["layers"][1] == {**cost.records[1].to_dict(), "activations": 4, "energy_pj": cost.energies[1].total}
    # With no SRAM to speak of, everything is in DRAM, and the JSON says so.
    tiny = dataclasses.replace(load_profile("horowitz45"), sram_bytes=1)
    assert Cost.from_records((1, 2, 2), _records(), tiny).to_dict()["memory"] == {
        "weights": "dram", "activations": "dram"}
    snug = dataclasses.replace(tiny, sram_bytes=2 * 16 * 4)  # the largest activation twice; no room for weights
    assert Cost.from_records((1, 2, 2), _records(), snug).to_dict()["memory"] == {
        "weights": "dram", "activations": "sram"}


# -- shapes: against PyTorch's layers --------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 5, 8, 9])
@pytest.mark.parametrize("kernel", [1, 3, 5])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_same_padded_output_size_is_what_pytorch_computes(size, kernel, stride):
    layer = nn.Conv2d(1, 1, kernel, stride=stride, padding=kernel // 2)
    assert conv_output_size(size, kernel, stride) == layer(torch.zeros(1, 1, size, size)).shape[-1]


@pytest.mark.parametrize("height, width, kernel, stride, padding", [
    (8, 8, 3, 2, 1), (9, 7, 3, 2, 1), (8, 6, 2, 2, 0), (5, 5, 3, 3, 0), (4, 7, 3, 1, 1)])
def test_maxpool_counts_comparisons_on_pytorchs_output_shape(height, width, kernel, stride, padding):
    out = nn.MaxPool2d(kernel, stride, padding)(torch.zeros(1, 3, height, width)).shape
    record, out_h, out_w = maxpool_record("p", 3, kernel, stride, padding, height, width)
    assert (out_h, out_w) == tuple(out[2:]) and record.out_shape == (3, out_h, out_w)
    assert record.add == (kernel * kernel - 1) * 3 * out_h * out_w
    assert (record.mul, record.params, record.op, record.name) == (0, 0, "maxpool", "p")


def test_a_kind_that_declares_its_storage_is_counted_with_it(monkeypatch):
    # LayerKind.storage_bits: a kind that stores more than weights x bits + other parameters
    # x 32 declares it, with the arguments of ``params``; the record takes that number.
    def declared(form, in_channels, out_shape, kernel_size, options):
        # Every argument leaves its own digits in the answer.
        return ({"conv": 1, "linear": 2}[form] * 10**8 + in_channels * 10**5 + math.prod(out_shape) * 10**2
                + kernel_size * 10 + options["w_bits"])

    probe = dataclasses.replace(layer_kind("quant"), name="storage_probe", storage_bits=declared)
    monkeypatch.setitem(registry._LAYERS, "storage_probe", probe)
    spec = LayerSpec("storage_probe", {"w_bits": 3})
    record, _, _ = layer_record("q", spec, 3, 5, 3, 1, 4, 4)
    assert record.storage_bits == 1 * 10**8 + 3 * 10**5 + 80 * 10**2 + 3 * 10 + 3
    assert linear_record("fc", spec, 6, 2).storage_bits == 2 * 10**8 + 6 * 10**5 + 2 * 10**2 + 1 * 10 + 3
    # Without a declaration: weights x their bits, every other parameter x 32.
    plain = linear_record("fc", LayerSpec("quant", {"w_bits": 3}), 6, 2)
    assert plain.storage_bits == 12 * 3 + (plain.params - 12) * 32 and plain.paper  # paper unless told


# -- the analytic walk, by hand ----------------------------------------------------------------

HB = BlockSpec("hb")


def _walked():
    # 3x16x16 input; stem 3x3 to 8 channels and a 3x3/2 max-pool; then
    #   stage 0: 2 heavy-ball blocks to 16 channels, downsampled by a 2x2 max-pool, basic bodies;
    #   stage 1: 1 block to 32 channels, stride 2, bottleneck body (middle 8), projection;
    #   stage 2: 1 block, 5x5 single-layer body, pad shortcut.
    return Genotype(InputSpec(3, 16, 16, 5), StemSpec(8, pool="max"), (
        StageSpec(2, 16, stride=2, block=HB, downsample="maxpool"),
        StageSpec(1, 32, stride=2, block=HB, body="bottleneck"),
        StageSpec(1, 32, kernel_size=5, block=HB, body="single", shortcut="pad"),
    ))


# name, op, output shape, multiplications, additions (a conv: fan-in x outputs of each).
WALK = [
    ("stem.layer", "conv", (8, 16, 16), 27 * 2048, 27 * 2048),
    ("stem.bn", "batchnorm", (8, 16, 16), 2048, 2048),
    ("stem.pool", "maxpool", (8, 8, 8), 0, 8 * 512),
    ("stages.0.pool", "maxpool", (8, 4, 4), 0, 3 * 128),
    ("stages.0.blocks.0.body.layer1", "conv", (16, 4, 4), 72 * 256, 72 * 256),
    ("stages.0.blocks.0.body.bn1", "batchnorm", (16, 4, 4), 256, 256),
    ("stages.0.blocks.0.body.layer2", "conv", (16, 4, 4), 144 * 256, 144 * 256),
    ("stages.0.blocks.0.body.bn2", "batchnorm", (16, 4, 4), 256, 256),
    ("stages.0.blocks.0.shortcut.layer", "conv", (16, 4, 4), 8 * 256, 8 * 256),
    ("stages.0.blocks.0.shortcut.bn", "batchnorm", (16, 4, 4), 256, 256),
    ("stages.0.blocks.0.combine", "combine", (16, 4, 4), 0, 256),  # T(x) + (1 + 0) P(x)
    ("stages.0.blocks.1.body.layer1", "conv", (16, 4, 4), 144 * 256, 144 * 256),
    ("stages.0.blocks.1.body.bn1", "batchnorm", (16, 4, 4), 256, 256),
    ("stages.0.blocks.1.body.layer2", "conv", (16, 4, 4), 144 * 256, 144 * 256),
    ("stages.0.blocks.1.body.bn2", "batchnorm", (16, 4, 4), 256, 256),
    ("stages.0.blocks.1.combine", "combine", (16, 4, 4), 0, 256),  # T(x) + x + 0 x_{k-1}
    ("stages.1.blocks.0.body.layer1", "conv", (8, 4, 4), 16 * 128, 16 * 128),
    ("stages.1.blocks.0.body.bn1", "batchnorm", (8, 4, 4), 128, 128),
    ("stages.1.blocks.0.body.layer2", "conv", (8, 2, 2), 72 * 32, 72 * 32),
    ("stages.1.blocks.0.body.bn2", "batchnorm", (8, 2, 2), 32, 32),
    ("stages.1.blocks.0.body.layer3", "conv", (32, 2, 2), 8 * 128, 8 * 128),
    ("stages.1.blocks.0.body.bn3", "batchnorm", (32, 2, 2), 128, 128),
    ("stages.1.blocks.0.shortcut.layer", "conv", (32, 2, 2), 16 * 128, 16 * 128),
    ("stages.1.blocks.0.shortcut.bn", "batchnorm", (32, 2, 2), 128, 128),
    ("stages.1.blocks.0.combine", "combine", (32, 2, 2), 0, 128),
    ("stages.2.blocks.0.body.layer1", "conv", (32, 2, 2), 800 * 128, 800 * 128),
    ("stages.2.blocks.0.body.bn1", "batchnorm", (32, 2, 2), 128, 128),
    ("stages.2.blocks.0.combine", "combine", (32, 2, 2), 0, 128),
    ("pool", "avgpool", (32,), 32, 32 * 3),
    ("fc", "conv", (5,), 160, 160),
]


def test_the_analytic_walk_by_hand():
    cost = count_cost(_walked())
    assert [(r.name, r.op, r.out_shape, r.mul, r.add) for r in cost.records] == WALK
    records = cost.by_name()
    # Parameters: weights only for convolutions, plus the classifier's bias; BatchNorm scale and shift.
    assert records["stages.1.blocks.0.body.layer2"].params == 8 * 8 * 9
    assert records["fc"].params == 32 * 5 + 5 and records["fc"].macs == 160
    assert records["stages.1.blocks.0.body.bn3"].params == 64 and records["stem.bn"].storage_bits == 16 * 32
    assert records["pool"].bops == 32 * 32 * 32
    assert [r.name for r in cost.records if r.macs and not r.paper] == ["stem.layer", "fc"]
    assert all(r.paper for r in cost.records if r.macs and r.name not in ("stem.layer", "fc"))
    assert not any(r.paper for r in cost.records if not r.macs)
    # Counts and shapes are whole numbers (the JSON says 8, not 8.0).
    assert all(type(value) is int for r in cost.records for value in (*r.out_shape, *r[3:11]))
    assert cost.hardware.name == "horowitz45" and count_cost(_walked(), "int8_accelerator").hardware.name == \
        "int8_accelerator"


def test_a_strided_stem_and_strided_blocks():
    # Stem 3x3 at stride 2 on 9x9: 5x5. The first block of a stage takes the stride, the second not.
    genotype = Genotype(InputSpec(1, 9, 9, 2), StemSpec(4, stride=2), (StageSpec(2, 4, stride=2, body="single"),))
    records = count_cost(genotype).by_name()
    assert records["stem.layer"].out_shape == (4, 5, 5)
    assert records["stages.0.blocks.0.body.layer1"].out_shape == (4, 3, 3)
    assert records["stages.0.blocks.1.body.layer1"].out_shape == (4, 3, 3)
    assert records["pool"].add == 4 * 8


def test_a_block_override_changes_only_its_block():
    adder = LayerSpec("adder")
    genotype = Genotype(InputSpec(1, 4, 4, 2), StemSpec(4),
                        (StageSpec(2, 4, body="single", overrides=(BlockOverride(1, adder),)),))
    records = count_cost(genotype).by_name()
    conv, added = records["stages.0.blocks.0.body.layer1"], records["stages.0.blocks.1.body.layer1"]
    assert (conv.op, conv.mul, conv.add) == ("conv", 36 * 64, 36 * 64)
    # AdderNet eq. 5: |x - f| summed, two additions per MAC and no multiplication.
    assert (added.op, added.mul, added.add) == ("adder", 0, 2 * 36 * 64)


def test_learnable_coefficients_cost_multiplications_and_parameters():
    block = BlockSpec("hb", (Coefficient("b1", 0.5, "learnable"), Coefficient("b2", 0.0)))
    genotype = Genotype(InputSpec(1, 4, 4, 2), StemSpec(4), (StageSpec(1, 4, block=block, body="single"),))
    combine = count_cost(genotype).by_name()["stages.0.blocks.0.combine"]
    assert (combine.mul, combine.add, combine.params, combine.storage_bits) == (64, 64, 1, 32)
    assert combine.bops == 64 * 32 * 32


# -- the hook count on hand-built models ------------------------------------------------------


def _model():
    genotype = Genotype(InputSpec(2, 4, 4, 3), StemSpec(4, pool="max"), (StageSpec(1, 4, body="single"),))
    return build_model(genotype), genotype


def test_hooks_count_each_run_and_leave_the_model_as_it_was():
    model, genotype = _model()
    model.train()
    cost = count_with_hooks(model, genotype.input.shape)
    assert model.training and not any(module._forward_hooks for module in model.modules())
    assert [(r.name, r.mul, r.add) for r in cost.records] == [
        (r.name, r.mul, r.add) for r in count_cost(genotype).records]
    assert cost.by_name()["stem.pool"].add == 8 * 4 * 2 * 2
    model.eval()
    count_with_hooks(model, genotype.input.shape, "int8_accelerator")
    assert not model.training


def test_hooks_on_the_meta_device_and_without_parameters():
    model, genotype = _model()
    model.to("meta")
    assert count_with_hooks(model, genotype.input.shape).total == count_cost(genotype).total

    pooled = nn.Sequential(nn.MaxPool2d(2), GlobalAvgPool())
    cost = count_with_hooks(pooled, (3, 4, 4))
    assert [(r.name, r.op, r.out_shape, r.mul, r.add) for r in cost.records] == [
        ("0", "maxpool", (3, 2, 2), 0, 3 * 3 * 4), ("1", "avgpool", (3,), 3, 3 * 3)]


def test_pools_of_any_kernel_shape_and_channel_count():
    # A 2x3 window has 5 comparisons per output; a 3x3 one given as a tuple, 8; one channel averaged
    # over 9 positions: 1 multiplication and 8 additions.
    pools = nn.Sequential(nn.MaxPool2d((2, 3)), nn.MaxPool2d((3, 3), stride=1, padding=1))
    cost = count_with_hooks(pools, (1, 4, 6))
    assert [(r.out_shape, r.add) for r in cost.records] == [((1, 2, 2), 5 * 4), ((1, 2, 2), 8 * 4)]
    one = count_with_hooks(nn.Sequential(GlobalAvgPool()), (1, 3, 3)).records
    assert [(r.op, r.out_shape, r.mul, r.add) for r in one] == [("avgpool", (1,), 1, 8)]


def test_hooks_take_a_modules_own_storage_bits():
    # A module that stores more than its parameters (a codebook, a step) says so itself.
    genotype = Genotype(InputSpec(1, 4, 4, 2), StemSpec(4), (StageSpec(1, 4, body="single",
                                                                         layer=LayerSpec("quant")),))
    model = build_model(genotype)
    layer = model.get_submodule("stages.0.blocks.0.body.layer1")
    layer.storage_bits = lambda: 12_345
    records = count_with_hooks(model, genotype.input.shape).by_name()
    assert records["stages.0.blocks.0.body.layer1"].storage_bits == 12_345
    assert records["stem.layer"].storage_bits == 4 * 9 * 32


def test_a_module_run_twice_is_counted_twice_and_sums_by_their_coefficients():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.bn = nn.BatchNorm2d(2)
            self.mix = WeightedSum([1.0, 0.5, 3.0], [False, False, True])

        def forward(self, x):
            y = self.bn(self.bn(x))
            return self.mix(x, y, y)

    cost = count_with_hooks(Twice(), (2, 3, 3))
    assert [(r.name, r.op, r.mul, r.add, r.shift, r.params) for r in cost.records] == [
        ("bn", "batchnorm", 18, 18, 0, 4), ("bn", "batchnorm", 18, 18, 0, 4), ("mix", "combine", 18, 36, 18, 1)]
    assert cost.records[2].storage_bits == 32 and cost.records[0].storage_bits == 4 * 32


def test_the_first_and_last_weighted_layers_ran_are_outside_the_paper_view():
    conv = layer_kind("conv")
    three = nn.Sequential(conv.conv(1, 2, 3), conv.conv(2, 2, 3), conv.conv(2, 1, 3))
    cost = count_with_hooks(three, (1, 4, 4))
    assert [r.paper for r in cost.records] == [False, True, False]
    assert [r.paper for r in count_with_hooks(nn.Sequential(conv.conv(1, 2, 3)), (1, 4, 4)).records] == [False]


def test_a_module_the_hooks_cannot_count_is_named():
    model = nn.Sequential()
    model.add_module("head", nn.Linear(4, 2))  # a plain Linear is no registered layer kind
    with pytest.raises(TypeError, match=r"^cost hooks do not know how to count Linear at 'head'$"):
        count_with_hooks(model, (4,))


# -- the printed table ---------------------------------------------------------------------------


@pytest.mark.parametrize("value, text", [
    (0, "0"), (12, "12"), (99_999, "99,999"), (100_000, "100k"), (2_359_296, "2.359M"), (-250_000, "-250k"),
    (1_814_073_344, "1.814G"), (3.5e12, "3.5T"), (1e6, "1M"), (1e9, "1G"), (1e12, "1T"), (999_999_999, "1000M"),
])
def test_counts_are_exact_below_100k_and_four_digits_above(value, text):
    assert format_count(value) == text


@pytest.mark.parametrize("picojoules, text", [
    (0.5, "0.5 pJ"), (999, "999 pJ"), (1000, "1 nJ"), (1_234_567, "1.23 uJ"), (2.5e9, "2.5 mJ"), (3e12, "3 J"),
    (1e6, "1 uJ"), (1e9, "1 mJ"), (1e12, "1 J")])
def test_energies_in_the_largest_unit_below(picojoules, text):
    assert format_energy(picojoules) == text


@pytest.mark.parametrize("bits, text", [
    (12, "1.5 B"), (8 * 1024, "1 KiB"), (1_638_400, "200 KiB"), (8 * 2**20, "1 MiB"), (3 * 8 * 2**30, "3 GiB"),
    (8 * 2**30, "1 GiB"), (8 * 1023, "1.02e+03 B")])
def test_sizes_in_binary_units(bits, text):
    assert format_bits(bits) == text


def test_the_table_has_a_row_per_record_and_the_totals():
    long_name = "stages.0.blocks.0.body.layer1.with.a.long.name"
    cost = Cost.from_records((1, 2, 2), [
        LayerCost(long_name, "conv", (4, 2, 2), mul=123456, add=7, xnor=3, macs=5, bops=99, params=10,
                  storage_bits=320, paper=True),
        LayerCost("fc", "binary", (3,), mul=12, add=12, macs=12, params=15, storage_bits=480, weight_bits=1,
                  activation_bits=1),
    ], "horowitz45")
    lines = cost_table(cost, title="T").splitlines()
    rule = "-" * 131
    # Energies by hand (horowitz45, all in SRAM): the conv row 123456 x 3.7 + 7 x 0.9 + 3 x 0.001875
    # + 320 x 100/64 + 16 x 32 x 200/64 = 458893.5 pJ; the binary row 12 x 3.7 + 12 x 0.00375
    # + 480 x 100/64 + 3 x 32 x 200/64 = 1094.4 pJ.
    assert lines[:6] == [
        "T",
        "layer                                  type      output            mul       add      xnor      BOPs"
        "    params      bits     energy",
        rule,
        "stages.0.blocks.0.body.layer1.with.a.~ conv*     4x2x2          123.5k         7         3        99"
        "        10       320     459 nJ",
        "fc                                     binary    3                  12        12         0         0"
        "        15       480    1.09 nJ",
        rule,
    ]
    assert lines[6] == ("total                                                           123.5k        19         3"
                        "        99        25       800     460 nJ")
    # The paper view (the * row) and the weighted view (both rows: each has MACs).
    assert lines[7][:38].rstrip().endswith("view (* rows)")
    assert lines[7].endswith("123.5k         7         3        99        10       320     459 nJ")
    assert lines[8] == ("weighted layers (* + first, last)                               123.5k        19         3"
                        "        99        25       800     460 nJ")
    assert lines[9] == rule
    assert lines[10].startswith("* ") and lines[10].endswith(
        " counts weighted layers other than the first and the last (no BatchNorm, skip sums, coefficients or "
        "pooling); 'total' counts everything.")
    assert lines[11:] == [
        "storage: 100 B (800 bits), 25 parameters",
        "activations: 19 elements written per image, largest tensor 16 elements (64 B at fp32)",
        "energy on horowitz45: 460 nJ per image = compute 457 nJ + weights 1.25 nJ (SRAM) + activations 1.9 nJ (SRAM)",
        "  " + load_profile("horowitz45").description,
    ]
    assert cost_table(cost).splitlines()[0] == lines[1]  # no title, no title line
    # A name of exactly the column's width is shown whole.
    exact = Cost.from_records((1, 2, 2), [LayerCost("n" * 38, "conv", (1,), mul=1)], "horowitz45")
    assert cost_table(exact).splitlines()[2].startswith("n" * 38 + " conv ")
    # Where the memory model puts weights and activations is said per table.
    small = dataclasses.replace(load_profile("horowitz45"), sram_bytes=1)
    spilled = Cost.from_records(cost.input_shape, cost.records, small)
    assert "+ weights 16.2 nJ (DRAM) + activations 24.7 nJ (DRAM)" in cost_table(spilled).splitlines()[-2]
