"""The analytic cost equals what forward hooks count on the built model."""

import pytest

from optinas.search_space import Genotype, InputSpec, StageSpec, StemSpec, build_model, count_cost, count_with_hooks
from optinas.search_space.cost.records import combine_ops


def _compare(genotype):
    analytic = count_cost(genotype)
    observed = count_with_hooks(build_model(genotype), genotype.input.shape)
    assert analytic.by_name() == observed.by_name()
    assert analytic.total == observed.total
    model = build_model(genotype)
    assert analytic.params == sum(parameter.numel() for parameter in model.parameters())
    return analytic


def test_analytic_equals_hooks_for_random_genotypes(genotypes):
    for genotype in genotypes(40, seed=2):
        _compare(genotype)


def test_demo_space_samples_equal_hooks():
    import optuna

    from optinas.search_space import SearchSpace

    space = SearchSpace(InputSpec(1, 8, 8, 10))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        _compare(space.sample(study.ask()))


def test_conv_counts_by_hand():
    # 1x8x8 input, 3x3 stem to 4 channels: 64 positions * 4 channels * 9 MACs.
    genotype = Genotype(InputSpec(1, 8, 8, 10), StemSpec(4), (StageSpec(1, 4, block=_block("gd")),))
    cost = count_cost(genotype).by_name()
    assert cost["stem.layer"].mul == 8 * 8 * 4 * 9
    assert cost["stages.0.blocks.0.body.layer1"].mul == 8 * 8 * 4 * (4 * 9)
    assert cost["stem.bn"].mul == 8 * 8 * 4 and cost["stem.bn"].params == 8
    assert cost["fc"].mul == 4 * 10 and cost["fc"].params == 4 * 10 + 10
    assert cost["pool"].add == 4 * 63
    # AdderNet (section 4.2) leaves BatchNorm and the first and last layers out.
    assert count_cost(genotype).paper["mul"] == sum(
        cost[name].mul for name in ("stages.0.blocks.0.body.layer1", "stages.0.blocks.0.body.layer2"))


def _block(pattern):
    from optinas.search_space import BlockSpec

    return BlockSpec(pattern)


@pytest.mark.parametrize("values, learnable, expected", [
    ([1.0, 1.0], [False, False], (0, 1, 0)),        # ResNet: one add
    ([1.0, 0.0], [False, False], (0, 0, 0)),        # dropped term
    ([1.0, 1.0, -1.0], [False, False, False], (0, 2, 0)),  # HB-Net: add and subtract
    ([1.0, 0.5], [False, False], (0, 1, 1)),        # power of two: a shift
    ([1.0, 0.3], [False, False], (1, 1, 0)),        # a real multiplication
    ([1.0, 1.0], [False, True], (1, 1, 0)),         # learnable: always a multiplication
])
def test_coefficient_ops(values, learnable, expected):
    assert combine_ops(values, learnable) == expected
