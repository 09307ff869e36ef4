import optuna
import pytest

from optinas.search_space import ConfigError, InputSpec, SearchSpace


def test_fixed_trial_replays_a_recorded_genotype():
    space = SearchSpace(InputSpec(1, 8, 8, 10))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(10):
        trial = study.ask()
        genotype = space.sample(trial)
        replayed = space.sample(optuna.trial.FixedTrial(trial.params))
        assert replayed == genotype


def test_size_counts_distinct_genotypes():
    space = SearchSpace(InputSpec(1, 8, 8, 10), strides=(1,), stem_widths=(8,), depths=(1, 2), widths=(8, 16),
                        patterns=("gd", "hb"), coefficient_choices={"hb": {"b1": (0.5, 1.0), "b2": (0.0,)}},
                        layers=("conv",))
    seen = set()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(300):
        seen.add(space.sample(study.ask()).hash)
    # depth 2 x width 2 x (gd + hb with 2 x 1 coefficient choices) = 12
    assert space.size() == 12 == len(seen)


def test_bad_space_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown block pattern 'newton'"):
        SearchSpace(InputSpec(1, 8, 8, 10), patterns=("newton",))
    with pytest.raises(ConfigError, match="depths"):
        SearchSpace(InputSpec(1, 8, 8, 10), depths=(3, 1))
