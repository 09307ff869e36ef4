"""The gibbs sampler (XNOR-Net++ regret bound, Algorithm 1, prior eq. 6) and pen_XNOR (Theorem 3.2)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import optuna
import pytest
import torch
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.trial import TrialState, create_trial
from torch import nn

from optinas.search_space import InputSpec, SearchSpace
from optinas.search_space.errors import ConfigError
from optinas.search_space.layers.binary import BinaryLinear
from optinas.search_space.layers.quant import QuantLinear
from optinas.search_space.sparsity import pen_xnor, sparsity_stats
from optinas.strategies.samplers import make_sampler
from optinas.strategies.samplers.gibbs import GibbsSampler, prior_factor

optuna.logging.set_verbosity(optuna.logging.ERROR)

WIDTH = CategoricalDistribution([8, 16, 24])
DEPTH = IntDistribution(1, 2)
PATTERN = CategoricalDistribution(["gd", "hb"])
DISTRIBUTIONS = {"stage0.width": WIDTH, "stage0.depth": DEPTH, "stage0.pattern": PATTERN}
STATS_A = {"l0": 100, "l1": 10.0, "scale_l0": 0, "scale_l1": 0.0, "binary": 0}
STATS_B = {"l0": 50, "l1": 5.0, "scale_l0": 4, "scale_l1": 2.0, "binary": 200}


def _trial(params, state=TrialState.COMPLETE, values=None, **attrs):
    return create_trial(state=state, params=params, distributions={k: DISTRIBUTIONS[k] for k in params},
                        values=values, user_attrs=attrs)


def _three_trial_study():
    """A (accuracy, mults) study: two trained trials with sparsity records, one infeasible."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.add_trial(_trial({"stage0.width": 8, "stage0.depth": 1, "stage0.pattern": "gd"}, values=[0.9, 1000],
                           status="trained", sparsity=STATS_A))
    study.add_trial(_trial({"stage0.width": 16, "stage0.depth": 2, "stage0.pattern": "hb"}, values=[0.6, 5000],
                           status="trained", sparsity=STATS_B))
    study.add_trial(_trial({"stage0.width": 8, "stage0.depth": 2, "stage0.pattern": "gd"}, values=[0.0, 9000],
                           status="infeasible"))
    return study


def _draws(sampler, study, name, distribution, count):
    return [sampler.sample_independent(study, SimpleNamespace(number=n), name, distribution) for n in range(count)]


def test_prior_factors_are_eq6_by_hand():
    assert [prior_factor(n) for n in ("stage2.depth", "stem.width", "stage0.width", "stage1.kernel_size",
                                      "stem.kernel_size", "stage0.pattern", "stage0.layer.quant.w_bits")] == \
        ["alpha", "beta", "beta", "gamma", "gamma", None, None]
    sampler = GibbsSampler(depth_prior=0.5, width_prior={8: 3.0, 16: 1.0, 24: 0.0}, kernel_prior=0.25)
    alpha = sampler.prior("stage0.depth", [1, 2, 3])
    beta = sampler.prior("stage0.width", [24, 8, 16])
    gamma = sampler.prior("stage0.kernel_size", [5, 3])
    assert alpha == pytest.approx([1 / 1.75, 0.5 / 1.75, 0.25 / 1.75])  # alpha_k ~ 2^-k
    assert beta == pytest.approx([0.0, 0.75, 0.25])
    assert gamma == pytest.approx([0.25 / 1.25, 1 / 1.25])  # ranked by value, not by position
    assert sampler.prior("stage0.pattern", ["gd", "hb", "agd"]) == pytest.approx([1 / 3] * 3)
    # eq. 6: the prior of (k = 2 layers, i = 8 filters, j = 5) is alpha_2 beta_8 gamma_5.
    assert alpha[1] * beta[1] * gamma[0] == pytest.approx((0.5 / 1.75) * 0.75 * 0.2)


def test_posterior_is_prior_times_exp_minus_lambda_h_by_hand():
    study = _three_trial_study()
    lam, weight = 1.5, 1e-3
    sampler = GibbsSampler(lambda_=lam, tau=0.1, penalty_weight=weight, smoothing=1.0, seed=0)
    # Round losses: 1 - accuracy + weight * pen_XNOR; the infeasible round loses 2.
    pen_a = 100 * math.log(1 + 10 / (0.1 * 100))
    pen_b = 50 * math.log(1 + 5 / (0.1 * 50)) + 4 * math.log(1 + 2 / (0.1 * 4)) + 200 * math.log(2)
    loss_a, loss_b, loss_c = 0.1 + weight * pen_a, 0.4 + weight * pen_b, 2.0
    assert [loss for _, loss in sampler.rounds(study)] == pytest.approx([loss_a, loss_b, loss_c])
    mean = (loss_a + loss_b + loss_c) / 3
    # Width 8 played twice, 16 once, 24 never; other rounds get the smoothed mean.
    h = [loss_a + loss_c + 1 * (loss_a + loss_c + mean) / 3, loss_b + 2 * (loss_b + mean) / 2, 3 * mean]
    prior = np.array([4, 2, 1]) / 7
    expected = prior * np.exp(-lam * np.array(h))
    assert sampler.posterior(study, "stage0.width", [8, 16, 24]) == pytest.approx(expected / expected.sum())
    # Algorithm 1's second-order term, lambda/2 (estimate - l_t)^2 over the rounds not played.
    second = GibbsSampler(lambda_=lam, tau=0.1, penalty_weight=weight, smoothing=1.0, second_order=True)
    estimates = [(loss_a + loss_c + mean) / 3, (loss_b + mean) / 2, mean]
    unplayed = [[loss_b], [loss_a, loss_c], [loss_a, loss_b, loss_c]]
    h2 = [h[i] + lam / 2 * sum((estimates[i] - loss) ** 2 for loss in unplayed[i]) for i in range(3)]
    expected2 = prior * np.exp(-lam * np.array(h2))
    assert second.posterior(study, "stage0.width", [8, 16, 24]) == pytest.approx(expected2 / expected2.sum())


def test_failed_pruned_and_interrupted_trials():
    study = _three_trial_study()
    study.add_trial(_trial({"stage0.width": 24}, state=TrialState.FAIL, status="failed"))
    study.add_trial(_trial({"stage0.width": 24}, state=TrialState.FAIL, interrupted=True))
    # Failed by the heartbeat (no reason of its own) and surplus: interrupted, as worker.trial_status says.
    study.add_trial(_trial({"stage0.width": 8}, state=TrialState.FAIL))
    study.add_trial(_trial({"stage0.width": 8}, state=TrialState.FAIL, surplus=True))
    study.add_trial(create_trial(state=TrialState.PRUNED, params={"stage0.width": 16},
                                 distributions={"stage0.width": WIDTH}, intermediate_values={0: 0.3, 1: 0.5}))
    sampler = GibbsSampler(tau=0.1, penalty_weight=1e-3, infeasible_loss=3.0)
    losses = [loss for _, loss in sampler.rounds(study)]
    trained = losses[:2]
    # Failed: the infeasible loss; interrupted and surplus: no round; pruned: 1 - last accuracy + mean penalty.
    assert losses[2:] == pytest.approx([3.0, 3.0, 0.5 + (trained[0] - 0.1 + trained[1] - 0.4) / 2])


def test_reused_and_unrecorded_trials_get_a_penalty():
    study = _three_trial_study()
    study.add_trial(_trial({"stage0.width": 8}, values=[0.9, 1000], status="reused", reused_from=1))
    study.add_trial(_trial({"stage0.width": 24}, values=[0.8, 1000], status="trained"))  # no record
    sampler = GibbsSampler(tau=0.1, penalty_weight=1e-3)
    losses = [loss for _, loss in sampler.rounds(study)]
    pen_a, pen_b = losses[0] - 0.1, losses[1] - 0.4
    # The reused trial pays its original's penalty (trial 1); the unrecorded one the mean.
    assert losses[3:] == pytest.approx([0.1 + pen_b, 0.2 + (pen_a + pen_b + pen_b) / 3])


def test_small_lambda_draws_follow_the_prior():
    study = _three_trial_study()
    count = 3000
    draws = _draws(GibbsSampler(lambda_=1e-9, seed=1), study, "stage0.width", WIDTH, count)
    frequencies = np.array([draws.count(v) for v in (8, 16, 24)]) / count
    prior = np.array([4, 2, 1]) / 7
    # Four binomial standard deviations: fails for a wrong prior (uniform is 0.24 away).
    assert np.abs(frequencies - prior).max() < 4 * math.sqrt(0.25 / count)
    depth = _draws(GibbsSampler(lambda_=1e-9, depth_prior=1.0, seed=1), study, "stage0.depth", DEPTH, count)
    assert abs(depth.count(1) / count - 0.5) < 4 * math.sqrt(0.25 / count)


def test_large_lambda_concentrates_on_the_best_architecture():
    study = optuna.create_study(directions=["maximize", "minimize"])
    architectures = [{"stage0.width": 8, "stage0.depth": 2, "stage0.pattern": "hb"},
                     {"stage0.width": 24, "stage0.depth": 1, "stage0.pattern": "gd"},
                     {"stage0.width": 16, "stage0.depth": 1, "stage0.pattern": "gd"}]
    for params, accuracy in zip(architectures, (0.7, 0.95, 0.8)):
        study.add_trial(_trial(params, values=[accuracy, 1000], status="trained"))
    sampler = GibbsSampler(lambda_=200.0, seed=2)
    best = architectures[1]
    for name, distribution in DISTRIBUTIONS.items():
        choices = list(distribution.choices) if name != "stage0.depth" else [1, 2]
        posterior = sampler.posterior(study, name, choices)
        assert posterior[choices.index(best[name])] > 0.99
        assert set(_draws(sampler, study, name, distribution, 50)) == {best[name]}


def _searched(seed: int, trials: int = 12) -> list[dict]:
    """A define-by-run (accuracy, mults) search over the default space, scored without training."""
    space = SearchSpace.from_toml(InputSpec(channels=1, height=8, width=8, classes=10))

    def objective(trial):
        genotype = space.sample(trial)
        trial.set_user_attr("status", "trained")
        size = sum(stage.depth * stage.width for stage in genotype.stages)
        return 1.0 - size / 400 - 0.05 * (genotype.stages[0].block.pattern != "gd"), float(size)

    study = optuna.create_study(directions=["maximize", "minimize"], sampler=GibbsSampler(seed=seed))
    study.optimize(objective, n_trials=trials)
    return [trial.params for trial in study.trials]


def test_seeded_draws_are_deterministic_on_the_real_space():
    first = _searched(3)
    assert first == _searched(3)
    assert first != _searched(4)
    assert all("stage2.depth" in params and "stem.width" in params for params in first)


def test_registered_and_arguments_checked():
    assert isinstance(make_sampler("gibbs", 0), GibbsSampler)
    with pytest.raises(ConfigError, match="lambda_"):
        GibbsSampler(lambda_=0.0)
    with pytest.raises(ConfigError, match="width_prior"):
        GibbsSampler(width_prior=1.5)
    with pytest.raises(ConfigError, match="loss"):
        GibbsSampler(loss="hinge")


def test_pen_xnor_on_a_hand_built_model():
    linear = nn.Linear(3, 2)
    binary = BinaryLinear(4, 2, scale="channel")  # 8 binary weights, 2 scales, BN affine, bias
    one_bit = QuantLinear(2, 2, w_bits=1)  # sign(v) s: 4 binary weights, the step s a scale
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[1.0, 0.0, -2.0], [0.0, 0.5, 0.0]]))
        linear.bias.copy_(torch.tensor([0.0, 3.0]))
        binary.scale_channel.copy_(torch.tensor([0.5, 0.0]))
        one_bit.weight_step.fill_(0.25)
    stats = sparsity_stats(nn.Sequential(linear, binary, one_bit))
    # Real: 1, -2, 0.5, 3 and the four BN weights of 1 (BN biases and the other biases are 0).
    assert stats == {"l0": 8, "l1": pytest.approx(10.5), "scale_l0": 2, "scale_l1": pytest.approx(0.75),
                     "binary": 12}
    expected = 8 * math.log(1 + 10.5 / (0.5 * 8)) + 2 * math.log(1 + 0.75 / (0.5 * 2)) + 12 * math.log(2)
    assert pen_xnor(stats, tau=0.5) == pytest.approx(expected)
    # With a tolerance of 0.6 the 0.5 weight counts as zero: 1, -2 and 3 remain.
    assert sparsity_stats(linear, zero_tolerance=0.6) == {"l0": 3, "l1": pytest.approx(6.0), "scale_l0": 0,
                                                          "scale_l1": 0.0, "binary": 0}
    with pytest.raises(ConfigError, match="tau"):
        pen_xnor(stats, tau=0.0)


def test_quantized_weights_count_by_their_grid_values():
    layer = QuantLinear(2, 2, w_bits=2)  # signed 2-bit grid {-2, -1, 0, 1} times the step
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.2, 1.4], [-0.7, 2.6]]))
        layer.weight_step.fill_(1.0)
    # Grid values 0, 1, -1, 1 (2.6 clips to 1), plus the step 1 (real); the bias is zero.
    assert sparsity_stats(layer) == {"l0": 4, "l1": pytest.approx(4.0), "scale_l0": 0, "scale_l1": 0.0,
                                     "binary": 0}


def test_the_round_fit_is_the_accuracy_objective_wherever_it_stands():
    import optuna

    from optinas.strategies.samplers.gibbs import _fit_objective

    named = optuna.create_study(directions=["minimize", "maximize"])
    named.set_metric_names(["mults", "accuracy"])
    assert _fit_objective(named) == 1
    unnamed = optuna.create_study(directions=["minimize", "maximize", "minimize"])
    assert _fit_objective(unnamed) == 1  # the one maximised value
    assert _fit_objective(optuna.create_study(directions=["minimize"])) == 0
