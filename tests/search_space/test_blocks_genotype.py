"""The genotype fields the blocks need: bodies, max-pool downsampling, ImageNet stem, per-block
layer overrides and paper-initialised coefficients, all within schema version 1."""

import pytest
import torch

from optinas.search_space import (BlockSpec, Coefficient, Genotype, GenotypeError, InputSpec, LayerSpec, StageSpec,
                          StemSpec, build_model, count_cost, count_with_hooks)
from optinas.search_space.builder import kinds_for
from optinas.search_space.genotype import BlockOverride
from optinas.search_space.registry import layer_kinds


def _old_genotypes():
    hb = BlockSpec("hb", (Coefficient("b1", 1.0), Coefficient("b2", -0.5, "learnable")))
    first = Genotype(InputSpec(1, 8, 8, 10), StemSpec(8),
                     (StageSpec(2, 16, block=hb), StageSpec(1, 32, stride=2, kernel_size=5, shortcut="pad")))
    resnet = Genotype(InputSpec(3, 32, 32, 10), StemSpec(16), tuple(
        StageSpec(3, width, stride=stride, block=BlockSpec("hb"), shortcut="pad" if stride == 2 else "projection")
        for width, stride in ((16, 1), (32, 2), (64, 2))))
    return first, resnet


def test_genotypes_without_the_new_fields_keep_their_json_and_hash():
    # Pinned before the fields existed: stored studies and file names must keep matching.
    first, resnet = _old_genotypes()
    assert first.hash == "f52cf54db4b5dae4"
    assert resnet.hash == "efff5152b5d8cee4"
    text = first.to_json()
    for new_field in ("body", "downsample", "overrides", "pool", "init"):
        assert f'"{new_field}"' not in text
    assert '"stride":1' not in text.split('"stem"')[1]  # the stem's default stride is left out too


def test_new_fields_round_trip_and_enter_the_hash():
    genotype = Genotype(InputSpec(3, 16, 16, 10), StemSpec(8, kernel_size=7, stride=2, pool="max"), (
        StageSpec(2, 16, body="bottleneck", block=BlockSpec("agd", (Coefficient("b1", 0.0, "learnable", init="paper"),))),
        StageSpec(2, 24, stride=2, body="single", downsample="maxpool",
                  overrides=(BlockOverride(1, LayerSpec("conv")),))))
    again = Genotype.from_json(genotype.to_json())
    assert again == genotype and again.hash == genotype.hash
    data = genotype.to_dict()
    assert data["stem"]["pool"] == "max" and data["stages"][1]["overrides"][0]["index"] == 1
    assert data["stages"][0]["block"]["coefficients"][0]["init"] == "paper"
    plain = Genotype.from_dict({**data, "stages": [dict(data["stages"][0], body="basic"), data["stages"][1]]})
    assert plain.hash != genotype.hash


@pytest.mark.parametrize("change, message", [
    (lambda s: s.update(body="dense"), "stage 1: body must be one of basic, bottleneck, single"),
    (lambda s: s.update(body="bottleneck", width=18), "stage 1: width must be a multiple of 4"),
    (lambda s: s.update(downsample="maxpool", stride=1), "stage 1: downsample 'maxpool' needs stride 2"),
    (lambda s: s.update(overrides=[{"index": 5, "layer": {"kind": "conv"}}]), "override index must be below the depth (2)"),
    (lambda s: s.update(overrides=[{"index": 0, "layer": "conv"}, {"index": 0, "layer": "conv"}]), "overridden twice"),
    (lambda s: s.update(overrides=[{"index": 0, "layer": {"kind": "fft"}}]), "unknown layer kind 'fft'"),
    (lambda s: s.update(overrides=[{"index": 0}]), "missing required field 'layer'"),
    (lambda s: s.update(overrides={"0": "conv"}), "overrides: expected a list"),
    (lambda s: s["block"].update(coefficients=[{"name": "b1", "value": 1, "mode": "fixed", "init": "paper"}]),
     "init 'paper' needs mode 'learnable'"),
])
def test_malformed_new_fields_are_one_sentence(change, message):
    data = {"input": {"channels": 1, "height": 8, "width": 8, "classes": 10}, "stem": {"width": 8},
            "stages": [{"depth": 2, "width": 16, "stride": 2, "block": {"pattern": "hb"}}]}
    change(data["stages"][0])
    with pytest.raises(GenotypeError) as raised:
        Genotype.from_dict(data)
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_max_pool_needs_a_two_by_two_map():
    stages = (StageSpec(1, 8, stride=2, downsample="maxpool"), StageSpec(1, 8, stride=2, downsample="maxpool"))
    Genotype(InputSpec(1, 4, 4, 10), StemSpec(8), stages)
    with pytest.raises(GenotypeError, match="stage 2: downsample 'maxpool' needs a feature map of at least 2x2, got 1x1"):
        Genotype(InputSpec(1, 3, 3, 10), StemSpec(8), stages)


def test_overrides_give_single_blocks_their_own_layer():
    other = sorted(set(layer_kinds()) - {"conv"})[0]
    override = LayerSpec(other)
    genotype = Genotype(InputSpec(1, 8, 8, 10), StemSpec(8), (
        StageSpec(3, 16, stride=2, block=BlockSpec("agd2", (Coefficient("beta", 0.3),)),
                  overrides=(BlockOverride(1, override),)),))
    assert genotype.stages[0].layer_of(1) == override and genotype.stages[0].layer_of(0) == LayerSpec("conv")
    assert set(kinds_for(genotype)["layers"]) == {"conv", other}
    model = build_model(genotype)
    conv, custom = layer_kinds()["conv"].conv, layer_kinds()[other].conv
    blocks = model.stages[0].blocks
    assert type(blocks[0].body.layer1) is conv and type(blocks[2].body.layer2) is conv
    assert type(blocks[1].body.layer1) is custom and type(blocks[1].body.layer2) is custom
    analytic = count_cost(genotype)
    assert analytic.by_name()["stages.0.blocks.1.body.layer1"].op == other
    assert analytic.by_name() == count_with_hooks(model, genotype.input.shape).by_name()


@pytest.mark.parametrize("body, layers", [("basic", 2), ("single", 1), ("bottleneck", 3)])
def test_bodies_and_stems_count_like_the_hooks(body, layers):
    genotype = Genotype(InputSpec(3, 16, 16, 10), StemSpec(8, kernel_size=7, stride=2, pool="max"), (
        StageSpec(2, 16, body=body, block=BlockSpec("hb")),
        StageSpec(1, 32, stride=2, body=body, downsample="maxpool", block=BlockSpec("gd"))))
    model = build_model(genotype)
    analytic = count_cost(genotype)
    assert analytic.by_name() == count_with_hooks(model, genotype.input.shape).by_name()
    records = analytic.by_name()
    assert records["stem.layer"].out_shape == (8, 8, 8) and records["stem.pool"].out_shape == (8, 4, 4)
    assert records["stem.pool"].add == 8 * 4 * 4 * 8  # k*k - 1 comparisons per output, as additions
    assert records["stages.1.pool"].out_shape == (16, 2, 2)
    assert sum(name.startswith("stages.0.blocks.0.body.layer") for name in records) == layers
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 10)
