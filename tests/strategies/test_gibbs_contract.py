"""GibbsSampler keeps Optuna's sampler contract: the shared tests, non-finite losses, reseeding.

``optuna.testing.pytest_samplers`` ships the tests every Optuna sampler passes; a sampler
subclasses the cases it supports and overrides the ``sampler`` fixture. GibbsSampler samples
every parameter independently and serves single- and multi-objective studies, so it takes
``BasicSamplerTestCase`` and ``MultiObjectiveSamplerTestCase``. ``RelativeSamplerTestCase``
is for samplers with a relative search space (it calls ``sample_relative`` directly and
expects every parameter back), which GibbsSampler does not have (its
``infer_relative_search_space`` is empty, as RandomSampler's), and
``SingleOnlySamplerTestCase`` excludes the multi-objective case.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.testing.pytest_samplers import BasicSamplerTestCase, MultiObjectiveSamplerTestCase
from optuna.trial import TrialState, create_trial

from optinas.strategies.samplers.gibbs import GibbsSampler

optuna.logging.set_verbosity(optuna.logging.ERROR)

X = CategoricalDistribution(["a", "b", "c", "d", "e"])


class TestGibbsSamplerContract(BasicSamplerTestCase, MultiObjectiveSamplerTestCase):
    # The default, and a concentrated posterior with Algorithm 1's second-order term.
    @pytest.fixture(params=[{}, {"lambda_": 50.0, "second_order": True}], ids=["default", "second_order"])
    def sampler(self, request):
        return lambda: GibbsSampler(seed=0, **request.param)


def _study(direction: str, values: list[float], pruned_reports: list[float] = ()) -> optuna.Study:
    """One trial per value (x = "a", "b", ... in order), then pruned trials with their last report."""
    study = optuna.create_study(direction=direction)
    choices = iter(X.choices)
    for value in values:
        study.add_trial(create_trial(params={"x": next(choices)}, distributions={"x": X}, value=value))
    for report in pruned_reports:
        study.add_trial(create_trial(state=TrialState.PRUNED, params={"x": next(choices)}, distributions={"x": X},
                                     intermediate_values={0: 0.1, 1: report}))
    return study


def test_non_finite_losses_are_clipped_into_the_loss_range_by_hand():
    # Minimised: the losses are the values. low = min(0, 0.5, 3) = 0, high = max(2, 0.5, 3) = 3;
    # +inf and a NaN last report take high, -inf takes low.
    sampler = GibbsSampler(infeasible_loss=2.0, seed=0)
    study = _study("minimize", [0.5, 3.0, math.inf, -math.inf], pruned_reports=[math.nan])
    assert [loss for _, loss in sampler.rounds(study)] == [0.5, 3.0, 3.0, 0.0, 3.0]
    # Maximised: loss = 1 - value, so -inf is the worst and +inf the best; high is infeasible_loss.
    study = _study("maximize", [0.75, 0.25, -math.inf, math.inf], pruned_reports=[math.nan])
    assert [loss for _, loss in sampler.rounds(study)] == [0.25, 0.75, 2.0, 0.0, 2.0]
    # No finite loss at all: the range is [0, infeasible_loss].
    study = _study("minimize", [math.inf, -math.inf], pruned_reports=[math.nan])
    assert [loss for _, loss in sampler.rounds(study)] == [2.0, 0.0, 2.0]


def test_posterior_of_clipped_losses_by_hand():
    study = _study("minimize", [0.5, math.inf, -math.inf])  # losses 0.5, 2.0 (high), 0.0 (low)
    lam = 1.5
    sampler = GibbsSampler(lambda_=lam, smoothing=1.0, seed=0)
    losses, mean = [0.5, 2.0, 0.0], 2.5 / 3
    # Each of a, b, c played once; d and e never (the round mean in every round).
    h = [loss + 2 * (loss + mean) / 2 for loss in losses] + [3 * mean, 3 * mean]
    expected = np.exp(-lam * np.array(h))  # the pattern prior is uniform
    posterior = sampler.posterior(study, "x", list(X.choices))
    assert posterior == pytest.approx(expected / expected.sum())
    assert int(np.argmax(posterior)) == 2  # the -inf trial's value is the most likely


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_study_survives_infinite_objectives_and_nan_reports(direction):
    # Before the fix, every trial after the first non-finite one failed: "Probabilities contain NaN".
    specials = {2: math.inf, 3: -math.inf, 5: "pruned-nan", 6: 1e308, 7: -1e308}

    def objective(trial):
        x = trial.suggest_categorical("x", list(X.choices))
        y = trial.suggest_int("y", 0, 3)
        trial.suggest_float("z", 0.0, 1.0)
        special = specials.get(trial.number)
        if special == "pruned-nan":
            trial.report(math.nan, 0)
            raise optuna.TrialPruned()
        return special if special is not None else X.choices.index(x) + y

    study = optuna.create_study(direction=direction, sampler=GibbsSampler(lambda_=5.0, seed=0))
    study.optimize(objective, n_trials=12, catch=())
    assert [t.state for t in study.trials] == [TrialState.PRUNED if n == 5 else TrialState.COMPLETE
                                               for n in range(12)]
    posterior = study.sampler.posterior(study, "y", [0, 1, 2, 3])
    assert np.isfinite(posterior).all() and posterior.sum() == pytest.approx(1.0)


def test_losses_too_large_to_sum_leave_the_prior():
    study = _study("minimize", [1e308, 1e308, -1e308, 0.0])
    sampler = GibbsSampler(lambda_=2.0, seed=0)
    # Finite losses whose sums overflow float64 carry no ranking: the posterior is the (uniform) prior.
    assert sampler.posterior(study, "x", list(X.choices)) == pytest.approx([0.2] * 5)


def test_a_non_finite_sparsity_record_is_a_diverged_round():
    study = optuna.create_study(direction="maximize")
    record = {"l0": 10, "l1": math.nan, "scale_l0": 0, "scale_l1": 0.0, "binary": 0}
    study.add_trial(create_trial(params={"x": "a"}, distributions={"x": X}, value=0.8,
                                 user_attrs={"sparsity": record}))
    study.add_trial(create_trial(params={"x": "b"}, distributions={"x": X}, value=0.6))
    # The NaN penalty makes round 0's loss NaN, so high; round 1 pays the mean of no penalties.
    assert [loss for _, loss in GibbsSampler(infeasible_loss=2.0).rounds(study)] == pytest.approx([2.0, 0.4])


def _draws(sampler: GibbsSampler, study: optuna.Study) -> list:
    distributions = {"w": CategoricalDistribution(list(range(1000))), "f": FloatDistribution(0.0, 1.0),
                     "i": IntDistribution(1, 10 ** 6, log=True)}
    return [tuple(sampler.sample_independent(study, SimpleNamespace(number=n), name, distribution)
                  for name, distribution in distributions.items()) for n in range(20)]


def test_draws_are_keyed_by_seed_trial_and_name_and_reseed_rng_changes_them():
    study = optuna.create_study()
    first = _draws(GibbsSampler(seed=7), study)
    # The same seed replays every draw (the uniform fallbacks for floats and log ints too),
    # whatever the sampler drew before, as a resumed study does.
    replay = GibbsSampler(seed=7)
    replay.sample_independent(study, SimpleNamespace(number=99), "f", FloatDistribution(0.0, 1.0))
    assert _draws(replay, study) == first
    assert _draws(GibbsSampler(seed=8), study) != first
    reseeded = GibbsSampler(seed=7)
    reseeded.reseed_rng()
    after = _draws(reseeded, study)
    # For a reseed that did nothing, no draw would change. Each of the 20 uniform floats does;
    # a choice of 1,000 or a log-uniform int repeats with probability under 0.01 per draw,
    # so more than 5 of 20 repeating has probability below 2e-8 (the seed is fresh OS entropy).
    changed = [sum(old[kind] != new[kind] for old, new in zip(first, after)) for kind in range(3)]
    assert changed[1] == 20 and changed[0] >= 15 and changed[2] >= 15
    # Optuna reseeds in each thread of n_jobs > 1; the study still runs.
    study = optuna.create_study(sampler=GibbsSampler(seed=7))
    study.optimize(lambda t: t.suggest_float("f", 0, 1) + t.suggest_int("i", 0, 3), n_trials=6, n_jobs=2)
    assert len(study.trials) == 6
