"""Every block pattern against its equation (Li et al., eqs. 13, 17, 18, 20, 21), in every mode."""

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from optinas.search_space import (BlockSpec, Coefficient, Genotype, GenotypeError, InputSpec, StageSpec, StemSpec,
                          build_model, count_cost, count_with_hooks)
from optinas.search_space.blocks.nesterov import nesterov_betas, nesterov_h
from optinas.search_space.modules import Projection
from optinas.search_space.registry import block_patterns


MODES = {"fixed": ("fixed", "value"), "learnable": ("learnable", "value"), "paper": ("paper", "value"),
         "learnable-paper": ("learnable", "paper")}


def _coefficients(pattern, modes, value=0.3):
    result = []
    for (name, _), mode in zip(block_patterns()[pattern].coefficients, modes):
        kind, init = MODES[mode]
        result.append(Coefficient(name, value, kind, init=init))
    return tuple(result)


def _genotype(pattern, coefficients=(), depth=4, stride=2, stem=8, width=16, shortcut="projection"):
    return Genotype(InputSpec(3, 8, 8, 10), StemSpec(stem),
                    (StageSpec(depth, width, stride=stride, block=BlockSpec(pattern, coefficients), shortcut=shortcut),
                     StageSpec(2, width, block=BlockSpec(pattern, coefficients))))


def _mode_grid():
    for pattern, spec in sorted(block_patterns().items()):
        names = [name for name, _ in spec.coefficients]
        options = [["fixed", "learnable"] + (["paper", "learnable-paper"] if name in spec.paper_modes else [])
                   for name in names]
        for modes in itertools.product(*options):
            yield pattern, modes


@pytest.mark.parametrize("pattern, modes", list(_mode_grid()))
def test_every_mode_counts_builds_and_trains(pattern, modes):
    genotype = _genotype(pattern, _coefficients(pattern, modes))
    model = build_model(genotype)
    analytic = count_cost(genotype)
    assert analytic.by_name() == count_with_hooks(model, genotype.input.shape).by_name()
    assert analytic.params == sum(parameter.numel() for parameter in model.parameters())
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    # No dead weight: every parameter (transforms, projections, coefficients) gets a gradient.
    assert [name for name, parameter in model.named_parameters() if parameter.grad is None] == []


def test_paper_modes_are_registered_where_the_seed_has_a_formula():
    patterns = block_patterns()
    assert patterns["agd"].paper_modes == {"b1", "b2"}
    assert patterns["agd_dense"].paper_modes == {"alpha", "beta"}
    assert patterns["agd2"].paper_modes == {"beta"}
    assert patterns["admm"].paper_modes == frozenset()
    with pytest.raises(GenotypeError, match="no paper formula"):
        BlockSpec("admm", (Coefficient("a", 0.0, "paper"),))
    with pytest.raises(GenotypeError, match="no paper formula to initialise from"):
        BlockSpec("admm", (Coefficient("a", 0.0, "learnable", init="paper"),))
    with pytest.raises(GenotypeError, match="init 'paper' needs mode 'learnable'"):
        Coefficient("b1", 0.0, "fixed", init="paper")
    # The formula supplies the value: equal architectures, equal hashes.
    assert Coefficient("b1", 7.0, "paper") == Coefficient("b1", 0.0, "paper")


def _randomised(model):
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 1.5)
    return model.eval()


def test_agd_paper_mode_is_eq_12_block_by_block():
    genotype = _genotype("agd", _coefficients("agd", ("paper", "paper")), depth=5)
    model = _randomised(build_model(genotype))
    blocks = model.stages[0].blocks
    betas = nesterov_betas(5)
    for k, block in enumerate(blocks):
        expected = [1.0] if k == 0 else [1.0 + betas[k], -betas[k]]
        assert block.mix.values == pytest.approx(expected)
    # beta_1 = 0, so no block needs x_0 at the new shape: no projection anywhere.
    assert not any(isinstance(module, Projection) for module in model.modules())
    x = torch.randn(2, 8, 8, 8)
    states = [x, F.relu(blocks[0].body(x))]
    assert betas[1] == 0.0  # x_1 + 0 (x_1 - x_0): the old-shape x_0 never enters
    states.append(F.relu(blocks[1].body(states[1])))
    for k in range(2, 5):
        momentum = states[-1] + betas[k] * (states[-1] - states[-2])
        states.append(F.relu(blocks[k].body(momentum)))
    with torch.no_grad():
        torch.testing.assert_close(model.stages[0](x), states[-1])


def test_agd_fixed_momentum_projects_x0_for_the_second_block():
    genotype = _genotype("agd", (Coefficient("b1", 1.5), Coefficient("b2", -0.5)), depth=3)
    model = _randomised(build_model(genotype))
    blocks = model.stages[0].blocks
    x = torch.randn(2, 8, 8, 8)
    x0 = blocks[0].shortcut(x)                       # x_0 at the stage's shape
    x1 = F.relu(blocks[0].body(x))                   # (b1 + b2) x_0 = x_0
    x2 = F.relu(blocks[1].body(1.5 * x1 - 0.5 * x0))
    x3 = F.relu(blocks[2].body(1.5 * x2 - 0.5 * x1))
    with torch.no_grad():
        torch.testing.assert_close(model.stages[0](x), x3)


def test_agd_dense_is_eq_18_with_eq_21_coefficients():
    beta = 0.25
    genotype = _genotype("agd_dense", (Coefficient("alpha", 0.0, "paper"), Coefficient("beta", beta)), depth=4)
    model = _randomised(build_model(genotype))
    blocks = model.stages[0].blocks
    h = nesterov_h(4)
    x = torch.randn(2, 8, 8, 8)
    states, transforms = [x], []
    for k, block in enumerate(blocks):
        transforms.append(block.body(states[k]))
        total = sum(h[k][j] * transforms[j] for j in range(k + 1))
        # beta (x_k - sum_j h x_j); h_{k+1,0} = 0 for k >= 1 and h_{1,0} = 1: x_0 never enters.
        total = total + beta * (states[k] if k else 0) - beta * sum(h[k][j] * states[j] for j in range(1, k + 1))
        states.append(F.relu(total))
    assert not any(isinstance(module, Projection) for module in model.modules())
    with torch.no_grad():
        torch.testing.assert_close(model.stages[0](x), states[-1], rtol=0, atol=1e-5)


def test_agd_dense_learnable_alpha_has_one_parameter_per_pair():
    genotype = _genotype("agd_dense", _coefficients("agd_dense", ("learnable-paper", "paper")), depth=4)
    model = build_model(genotype)
    learned = [block.combine.learned for block in model.stages[0].blocks]
    assert [len(values) for values in learned] == [1, 2, 3, 4]  # alpha_{k+1,j}, j = 0..k
    for k, values in enumerate(learned):
        assert values.tolist() == pytest.approx(nesterov_h(4)[k])  # initialised from eq. 5


def test_agd2_is_eq_13_with_a_constant_momentum():
    momentum = 0.3
    genotype = _genotype("agd2", (Coefficient("beta", momentum),), depth=3)
    model = _randomised(build_model(genotype))
    blocks = model.stages[0].blocks
    h = nesterov_h(3, momentum)
    x = torch.randn(2, 8, 8, 8)
    x0 = blocks[0].shortcut(x)  # h_{k+1,0} != 0 with a constant momentum: x_0 is needed
    states, transforms = [x0], [blocks[0].body(x)]
    for k in range(3):
        if k:
            transforms.append(blocks[k].body(states[k]))
        total = states[k] + sum(h[k][j] * (transforms[j] - states[j]) for j in range(k + 1))
        states.append(F.relu(total))
    with torch.no_grad():
        torch.testing.assert_close(model.stages[0](x), states[-1], rtol=0, atol=1e-5)


def test_agd2_paper_mode_needs_no_projection_and_learnable_h_is_tied():
    paper = build_model(_genotype("agd2", (Coefficient("beta", 0.0, "paper"),)))
    assert not any(isinstance(module, Projection) for module in paper.modules())
    learnable = build_model(_genotype("agd2", (Coefficient("beta", 0.0, "learnable", init="paper"),), depth=4))
    blocks = learnable.stages[0].blocks
    # One parameter per h_{k+1,j}, shared by T(x_j) and -x_j (they enter through d_j).
    assert [len(block.combine.learned) for block in blocks] == [1, 2, 3, 4]
    assert blocks[3].combine.learned.tolist() == pytest.approx(nesterov_h(4)[3])


def test_admm_with_past_terms_is_eq_20():
    a, c, a_past, c_past = 0.5, 0.25, 0.125, -0.25
    coefficients = (Coefficient("a", a), Coefficient("c", c), Coefficient("a_past", a_past), Coefficient("c_past", c_past))
    genotype = _genotype("admm", coefficients, depth=3)
    model = _randomised(build_model(genotype))
    blocks = model.stages[0].blocks
    x = torch.randn(2, 8, 8, 8)
    x0 = blocks[0].shortcut(x)
    primes, states = [x0], [x0]
    for k, block in enumerate(blocks):
        merged = sum(a_past * primes[t] + c_past * states[t] for t in range(k)) + a * primes[k] + c * states[k]
        source_prime, source = (x, x) if k == 0 else (primes[k], states[k])
        primes.append(F.relu(block.body_prime(source_prime) + merged))
        states.append(F.relu(block.body(source) + merged))
    with torch.no_grad():
        torch.testing.assert_close(model.stages[0](x), (primes[-1] + states[-1]) / 2, rtol=0, atol=1e-5)


def test_fixed_zero_terms_are_never_computed():
    # DMRNet keeps no past maps; a stage whose shape does not change has no projection.
    model = build_model(_genotype("admm", stride=1, stem=16))
    history = [torch.randn(1, 16, 8, 8)]
    for block in model.stages[0].blocks:
        history = block(history)
    assert sum(entry is not None for entry in history) == 3  # x'_K, x_K and the stage output
    assert not any(isinstance(module, Projection) for module in model.modules())
    assert isinstance(model.stages[0].blocks[0].shortcut, nn.Identity)
