"""The search space file: defaults, every choice, exact size, replay, errors and the CLI."""

import json
from importlib import resources

import optuna
import pytest

from optinas.search_space import ConfigError, Genotype, InputSpec, SearchSpace, build_model
from optinas.search_space.registry import layer_kinds
from optinas.search_space.space import RandomTrial
from optinas.strategies.cli import main

DIGITS = InputSpec(1, 8, 8, 10)


class PathTrial:
    """Takes the choices a path of indices names (0 past its end) and records every branching."""

    def __init__(self, path):
        self.path, self.taken, self.branches = path, [], []

    def _next(self, count):
        index = self.path[len(self.taken)] if len(self.taken) < len(self.path) else 0
        self.taken.append(index)
        self.branches.append(count)
        return index

    def suggest_categorical(self, name, choices):
        return list(choices)[self._next(len(choices))]

    def suggest_int(self, name, low, high):
        return low + self._next(high - low + 1)


def every_genotype(space):
    """All genotypes of ``space``, by walking every path of choices once."""
    hashes, stack = set(), [[]]
    while stack:
        trial = PathTrial(stack.pop())
        hashes.add(space.sample(trial).hash)
        for position in range(len(trial.path), len(trial.branches)):
            stack += [trial.taken[:position] + [other] for other in range(1, trial.branches[position])]
    return hashes


def _other_kind():
    """A registered kind besides conv, with each option held at its default (a small space)."""
    name = sorted(set(layer_kinds()) - {"conv"})[0]
    return name, {option: (spec.default,) for option, spec in layer_kinds()[name].options.items()}


def test_the_packaged_file_is_the_default_space():
    text = resources.files("optinas.search_space").joinpath("spaces", "digits.toml").read_text()
    assert "[coefficients.agd]" in text
    assert SearchSpace.from_toml(DIGITS) == SearchSpace(DIGITS) == SearchSpace.from_toml(DIGITS, "digits")
    space = SearchSpace(DIGITS)
    assert set(space.patterns) == {"gd", "hb", "agd", "agd_dense", "agd2", "admm"}
    assert space.layers == ("conv", "adder", "binary", "quant") and space.widths == (8, 16)
    # Each of the 3 stages picks one of 1 conv + 1 adder + 1 binary + 3 x 2 quant layer specs:
    # 9 ** 3 times the genotypes of the same space with conv only.
    conv_only = SearchSpace(DIGITS, layers=("conv",), layer_options={})
    assert len(every_genotype(SearchSpace(DIGITS, strides=(1,), stem_widths=(8,), depths=(1, 1), widths=(8,),
                                          patterns=("gd",)))) == 9
    assert space.size() == conv_only.size() * 9 ** 3 == 1_185_408 * 729 == 864_162_432


def test_size_is_exact_with_every_kind_of_choice():
    kind, options = _other_kind()
    space = SearchSpace(
        DIGITS, strides=(1, 2), stem_widths=(8,), depths=(1, 2), widths=(4, 8), patterns=("gd", "agd2"),
        coefficients={"agd2": {"beta": {"modes": ("paper", "learnable"), "values": (0.3, 0.5)}}},
        shortcuts=("projection", "pad"), downsamples=("stride", "maxpool"), bodies=("basic", "single"),
        layers=("conv", kind), layer_options={kind: options}, overrides=True,
        per_stage=({"depths": (1, 1), "patterns": ("gd",), "layers": ("conv",), "overrides": False,
                    "bodies": ("basic",)},))
    assert space.size() == len(every_genotype(space)) == 1920


def test_size_counts_pad_only_where_the_width_grows():
    space = SearchSpace(DIGITS, strides=(1, 2), stem_widths=(8, 16), depths=(1, 1), widths=(8, 16),
                        patterns=("hb",), coefficients={}, shortcuts=("projection", "pad"))
    assert space.size() == len(every_genotype(space))


@pytest.mark.parametrize("toml", ["default", "everything"])
def test_fixed_trial_replays_what_optuna_sampled(tmp_path, toml):
    path = None
    if toml == "everything":
        path = tmp_path / "space.toml"
        path.write_text('[stages]\nlayers = [%s]\noverrides = true\nbodies = ["basic", "single", "bottleneck"]\n'
                        'shortcuts = ["projection", "pad"]\ndownsamples = ["stride", "maxpool"]\nwidths = [8, 16]\n'
                        % ", ".join(f'"{kind}"' for kind in sorted(layer_kinds())))
    space = SearchSpace.from_toml(DIGITS, path)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(15):
        trial = study.ask()
        genotype = space.sample(trial)
        assert space.sample(optuna.trial.FixedTrial(trial.params)) == genotype


def test_every_registered_layer_kind_can_be_searched(tmp_path):
    kinds = sorted(layer_kinds())
    path = tmp_path / "space.toml"
    path.write_text(f"[stages]\nlayers = {json.dumps(kinds)}\noverrides = true\n"
                    f"[stem]\nlayers = {json.dumps(kinds)}\n[head]\nlayers = {json.dumps(kinds)}\n")
    space = SearchSpace.from_toml(DIGITS, path)
    seen = set()
    for genotype in space.sample_random(40, seed=1):
        seen.update({genotype.stem.layer.kind, genotype.head.layer.kind})
        for stage in genotype.stages:
            seen.add(stage.layer.kind)
            seen.update(override.layer.kind for override in stage.overrides)
            for override in stage.overrides:
                assert override.layer != stage.layer  # an override equal to the stage's layer is dropped
    assert seen == set(kinds)
    build_model(space.sample_random(1, seed=2)[0])
    # Options come from the registry: every option of every kind is listed with its values.
    for kind in kinds:
        assert set(space.option_values(kind)) == set(layer_kinds()[kind].options)


def test_option_lists_in_the_file_are_checked_against_the_registry(tmp_path):
    kind, options = _other_kind()
    option = next(iter(options), None)
    if option is None:
        pytest.skip(f"{kind} has no options")
    path = tmp_path / "space.toml"
    path.write_text(f'[stages]\nlayers = ["{kind}"]\n[layers.{kind}]\n{option} = {json.dumps(list(options[option]))}\n')
    assert SearchSpace.from_toml(DIGITS, path).option_values(kind)[option] == options[option]
    path.write_text(f'[layers.{kind}]\n{option} = ["no such value"]\n')
    with pytest.raises(ConfigError, match=f"layers.{kind}.{option} is invalid"):
        SearchSpace.from_toml(DIGITS, path)


@pytest.mark.parametrize("text, message", [
    ("[stages\n", "not valid TOML"),
    ("[stage]\nwidths = [8]\n", "unknown table [stage]"),
    ("[stages]\nwidth = [8]\n", "[stages] has no setting 'width'"),
    ("[stages]\npatterns = [\"newton\"]\n", "unknown block pattern 'newton'"),
    ("[stages]\ndepths = [3, 1]\n", "depths must be [low, high]"),
    ("[stages]\nwidths = []\n", "widths must be a non-empty list"),
    ("[stages]\nkernel_sizes = [4]\n", "must be odd"),
    ("[stages]\nbodies = [\"bottleneck\"]\nwidths = [6, 8]\n", "multiples of 4"),
    ("[stages]\nlayers = [\"fft\"]\n", "unknown layer kind 'fft'"),
    ("[stage5]\nwidths = [8]\n", "beyond the 3"),
    ("[stem]\npool = \"avg\"\n", "stem pool must be one of"),
    ("[coefficients.admm]\na = { modes = [\"paper\"] }\n", "has no paper formula for 'a'"),
    ("[coefficients.hb]\nb3 = { values = [1.0] }\n", "is not a coefficient of 'hb'"),
    ("[coefficients.hb]\nb1 = { modes = [\"fixed\"], values = [\"one\"] }\n", "must hold float values"),
    ("[stages]\nstrides = [2, 2, 2, 2]\ndownsamples = [\"maxpool\"]\n", "offers 'maxpool' but the map may be 1x1"),
])
def test_bad_files_are_one_sentence_config_errors(tmp_path, text, message):
    path = tmp_path / "space.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        SearchSpace.from_toml(DIGITS, path)
    assert message in str(raised.value)
    assert str(raised.value).startswith(str(path)) and "\n" not in str(raised.value)


def test_per_stage_tables_change_one_stage(tmp_path):
    path = tmp_path / "space.toml"
    path.write_text("[stage2]\nwidths = [64]\npatterns = [\"admm\"]\n")
    space = SearchSpace.from_toml(DIGITS, path)
    for genotype in space.sample_random(10, seed=0):
        assert genotype.stages[2].width == 64 and genotype.stages[2].block.pattern == "admm"


def test_random_samples_are_reproducible_and_replayable():
    space = SearchSpace(DIGITS)
    assert space.sample_random(5, seed=7) == space.sample_random(5, seed=7)
    import random

    trial = RandomTrial(random.Random(0))
    genotype = space.sample(trial)
    assert space.sample(optuna.trial.FixedTrial(trial.params)) == genotype


def test_space_command_prints_the_space_and_samples(capsys, tmp_path):
    assert main(["space"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("search space (") and out.count("\n") > 10
    assert "for 1x8x8 inputs, 10 classes: 864,162,432 distinct genotypes" in out.splitlines()[0]
    assert "coefficient agd.b1" in out
    assert main(["space", "--sample", "3", "--seed", "5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    genotypes = [Genotype.from_json(line) for line in lines]
    assert genotypes == SearchSpace(DIGITS).sample_random(3, seed=5)
    bad = tmp_path / "bad.toml"
    bad.write_text("[stages]\nwidths = [0]\n")
    assert main(["space", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("optinas space: error: ") and err.count("\n") == 1


def _membership_spaces():
    """A small space (every genotype enumerable) and a larger one around it."""
    common = dict(strides=(1, 2), depths=(1, 2), overrides=True, downsamples=("stride",))
    small = SearchSpace(
        DIGITS, stem_widths=(8,), widths=(8, 16), patterns=("gd", "agd2"), shortcuts=("pad",),
        coefficients={"agd2": {"beta": {"modes": ("paper", "learnable"), "values": (0.3,)}}},
        layers=("conv", "quant"), layer_options={"quant": {"w_bits": (2,), "scheme": ("linear",), "a_bits": (32,)}},
        per_stage=({"overrides": False},), **common)
    large = SearchSpace(
        DIGITS, stem_widths=(8, 16), widths=(8, 16, 24), patterns=("gd", "agd2", "hb"),
        shortcuts=("projection", "pad"),
        coefficients={"agd2": {"beta": {"modes": ("paper", "learnable", "learnable-paper"), "values": (0.3, 0.5)}}},
        layers=("conv", "quant", "binary"),
        layer_options={"quant": {"w_bits": (2, 4, 8), "scheme": ("linear", "codebook"), "a_bits": (32,)}},
        per_stage=({"depths": (1, 3)},), **common)
    return small, large


def test_contains_agrees_with_enumerating_the_space():
    # The independent reference is the set of every genotype the small space can draw, found
    # by walking every path of choices (pad falling back to projection, overrides included).
    small, large = _membership_spaces()
    members, genotypes = set(), {}
    hashes = every_genotype(small)
    for genotype in large.sample_random(400, seed=4) + small.sample_random(200, seed=5):
        genotypes[genotype.hash] = genotype
    assert small.size() == len(hashes)
    inside = [genotype for key, genotype in genotypes.items() if key in hashes]
    outside = [genotype for key, genotype in genotypes.items() if key not in hashes]
    assert len(inside) >= 100 and len(outside) >= 300
    for genotype in inside:
        params = small.params_for(genotype)
        assert params is not None, genotype.to_json()
        assert small.sample(optuna.trial.FixedTrial(params)) == genotype
        members.add(genotype.hash)
    assert not [genotype.to_json() for genotype in outside if small.contains(genotype)]
    assert all(large.contains(genotype) for genotype in genotypes.values())
    # Another input spec is another space's point, even with the same stages.
    other = Genotype(InputSpec(1, 8, 8, 3), *(getattr(inside[0], name) for name in ("stem", "stages", "head")))
    assert not small.contains(other)
