"""Analytic cost == forward-hook count, field by field, for every layer kind and block pattern.

The hook count (``optinas.search_space.cost.hooks``) observes the built model: the modules that
run, their input and output tensors, their parameter tensors and ``storage_bits()``. The
analytic count derives the same records from the genotype. Random genotypes here vary
everything the genotype can say (kind and options per stage, stem and head, every
pattern and coefficient mode, bodies, shortcuts, max-pool downsampling, ImageNet stems,
per-block overrides), and the test first checks that the sample really covers every
registered kind, pattern and body, so a newly registered one is exercised without edits.
"""

import dataclasses
import random

import pytest

from optinas.search_space import GenotypeError, LayerSpec, build_model, count_cost, count_with_hooks
from optinas.search_space.genotype import BlockOverride
from optinas.search_space.genotype import BODIES
from optinas.search_space.registry import block_patterns, layer_kinds

COUNTED = 28  # genotypes; with the options below this covers every kind, pattern and body


def _vary(genotype, rng, random_layer):
    """The conftest genotype with random bodies, downsampling, overrides and stem shape."""
    for _ in range(20):
        stages = []
        for stage in genotype.stages:
            body = rng.choice(BODIES)
            width = stage.width if body != "bottleneck" else max(4, stage.width // 4 * 4)
            downsample = rng.choice(["stride", "maxpool"]) if stage.stride == 2 else "stride"
            overrides = ()
            if stage.depth > 1 and rng.random() < 0.4:
                overrides = (BlockOverride(rng.randrange(stage.depth), random_layer(rng)),)
            stages.append(dataclasses.replace(stage, body=body, width=width, downsample=downsample,
                                              overrides=overrides,
                                              shortcut="projection" if width < 4 else stage.shortcut))
        stem = dataclasses.replace(genotype.stem, stride=rng.choice([1, 2]), pool=rng.choice(["none", "max"]))
        try:
            return dataclasses.replace(genotype, stem=stem, stages=tuple(stages))
        except GenotypeError:
            continue  # e.g. a max-pool on a map already 1x1; draw again
    return genotype


def _sample(genotypes, count, seed):
    rng = random.Random(seed)
    return [_vary(genotype, rng, genotypes.random_layer) for genotype in genotypes(count, seed=seed)]


def _compare(genotype, hardware=None):
    analytic = count_cost(genotype, hardware)
    model = build_model(genotype)
    observed = count_with_hooks(model, genotype.input.shape, hardware)
    assert analytic.by_name() == observed.by_name(), genotype.to_json()
    assert len(analytic.records) == len(observed.records)  # no module counted twice
    assert analytic.total == observed.total and analytic.paper == observed.paper
    assert analytic.params == sum(parameter.numel() for parameter in model.parameters())
    return analytic


def test_the_sample_covers_every_kind_pattern_and_body(genotypes):
    sample = _sample(genotypes, COUNTED, seed=11)
    kinds = {layer.kind for g in sample for layer in
             [g.stem.layer, g.head.layer, *(s.layer for s in g.stages),
              *(o.layer for s in g.stages for o in s.overrides)]}
    assert kinds == set(layer_kinds())
    assert {stage.block.pattern for g in sample for stage in g.stages} == set(block_patterns())
    assert {stage.body for g in sample for stage in g.stages} == set(BODIES)
    assert any(stage.overrides for g in sample for stage in g.stages)
    assert any(stage.downsample == "maxpool" for g in sample for stage in g.stages)


def test_analytic_equals_hooks_on_every_field(genotypes):
    for genotype in _sample(genotypes, COUNTED, seed=11):
        _compare(genotype)


@pytest.mark.parametrize("hardware", ["horowitz45", "int8_accelerator"])
def test_energy_agrees_on_both_shipped_profiles(genotypes, hardware):
    for genotype in _sample(genotypes, 6, seed=5):
        cost = _compare(genotype, hardware)
        assert cost.hardware.name == hardware and cost.total["energy_pj"] > 0


def test_first_and_last_weighted_layers_are_outside_the_paper_view(genotypes):
    for genotype in _sample(genotypes, 8, seed=3):
        records = count_cost(genotype).records
        weighted = [record for record in records if record.macs]
        assert [r.name for r in weighted if not r.paper] == ["stem.layer", "fc"]
        assert all(record.paper == bool(record.macs) for record in weighted[1:-1])
        assert not any(record.paper for record in records if not record.macs)


def test_per_layer_definitions_on_a_quantised_and_a_binary_layer():
    from optinas.search_space import Genotype, InputSpec, StageSpec, StemSpec

    quant = LayerSpec("quant", {"w_bits": 4, "a_bits": 8, "scheme": "codebook"})
    binary = LayerSpec("binary", {"scale": "channel"})
    genotype = Genotype(InputSpec(3, 8, 8, 10), StemSpec(8),
                        (StageSpec(1, 16, layer=quant), StageSpec(1, 16, layer=binary)))
    records = count_cost(genotype).by_name()
    q = records["stages.0.blocks.0.body.layer1"]
    fan_in, outputs = 8 * 9, 16 * 8 * 8
    assert q.macs == fan_in * outputs and q.bops == q.macs * 4 * 8
    assert (q.weight_bits, q.activation_bits) == (4, 8)
    # Ding et al.'s storage: weights x log2(lambda) bits, plus the 2^4 codebook values and the
    # activation step at 32 bits.
    assert q.storage_bits == 16 * fan_in * 4 + (2 ** 4 + 1) * 32
    b = records["stages.1.blocks.0.body.layer2"]
    assert b.xnor == 16 * 9 * outputs and b.bops == b.macs  # 1 x 1 bit per MAC
    # 1 bit per weight; input BatchNorm (2 x 16) and channel scales (16) at 32 bits.
    assert b.storage_bits == 16 * 16 * 9 + (2 * 16 + 16) * 32
    bn = records["stages.0.blocks.0.body.bn1"]
    assert bn.bops == bn.mul * 32 * 32 and bn.storage_bits == 2 * 16 * 32
