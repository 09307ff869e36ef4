"""The packaged spaces (digits, cifar, imagenet): names, the papers' networks as points, layer kinds."""

from dataclasses import replace

import optuna
import pytest

from optinas.search_space import PACKAGED_SPACES, ConfigError, InputSpec, SearchSpace, default_space_for
from optinas.search_space.genotype import BlockSpec, Coefficient, HeadSpec, LayerSpec
from optinas.search_space.presets import preset

DIGITS = InputSpec(1, 8, 8, 10)
CIFAR10 = InputSpec(3, 32, 32, 10)
CIFAR100 = InputSpec(3, 32, 32, 100)
IMAGENET = InputSpec(3, 224, 224, 1000)
INPUTS = {"digits": DIGITS, "cifar": CIFAR10, "imagenet": IMAGENET}
KINDS = ("conv", "adder", "binary", "quant")

CIFAR_POINTS = [f"resnet{depth}{suffix}" for depth in (20, 32, 56)
                for suffix in ("", "-adder", "-binary", "-quant4")] + ["hb-net20", "dmrnet20"]
IMAGENET_POINTS = ["resnet18", "resnet50"]


def test_the_packaged_spaces_and_the_default_for_each_input():
    assert PACKAGED_SPACES == ("digits", "cifar", "imagenet")
    assert default_space_for(DIGITS) == "digits"
    assert default_space_for(InputSpec(1, 28, 28, 10)) == "digits"  # MNIST-like grey images
    assert default_space_for(CIFAR10) == default_space_for(CIFAR100) == "cifar"
    assert default_space_for(IMAGENET) == "imagenet"
    assert default_space_for(InputSpec(3, 64, 64, 200)) == "imagenet"  # e.g. Tiny ImageNet
    assert default_space_for(InputSpec(3, 48, 48, 10)) == "digits"
    assert default_space_for(InputSpec(1, 224, 224, 2)) == "digits"  # not 3-channel


@pytest.mark.parametrize("name", PACKAGED_SPACES)
def test_every_space_searches_the_layer_kind_per_stage_with_float_ends(name):
    space = SearchSpace.from_toml(INPUTS[name], name)
    assert space.stem_layers == space.head_layers == ("conv",)  # first and last layers float
    for index in range(len(space.strides)):
        assert space.stage_choices(index)["layers"] == KINDS
    quant = space.option_values("quant")
    assert quant["w_bits"] == (2, 4, 8) and quant["scheme"] == ("linear", "codebook")
    # 40 draws (sampling only) meet at least three of the four kinds, and never a float-less end.
    seen = set()
    for genotype in space.sample_random(40, seed=0):
        assert genotype.input == INPUTS[name]
        assert genotype.stem.layer == genotype.head.layer == LayerSpec("conv")
        seen.update(stage.layer.kind for stage in genotype.stages)
    assert len(seen) >= 3, seen


def test_the_space_shapes_the_papers_describe():
    cifar = SearchSpace.from_toml(CIFAR10, "cifar")
    assert cifar.strides == (1, 2, 2) and cifar.depths == (1, 9)
    assert min(cifar.stem_widths) == 16 and max(cifar.stem_widths) == 32
    assert min(cifar.widths) == 16 and max(cifar.widths) == 128
    assert set(cifar.bodies) == {"basic", "bottleneck"}
    imagenet = SearchSpace.from_toml(IMAGENET, "imagenet")
    assert imagenet.strides == (1, 2, 2, 2) and (imagenet.stem_stride, imagenet.stem_pool) == (2, "max")
    assert imagenet.stem_kernel_sizes == (7,) and set(imagenet.bodies) == {"basic", "bottleneck"}
    # A drawn CIFAR genotype takes the task's class count, as `optinas space --space cifar` does.
    assert SearchSpace.from_toml(CIFAR100, "cifar").sample_random(1, seed=0)[0].input == CIFAR100


@pytest.mark.parametrize("name, space_name, input_spec",
                         [(name, "cifar", spec) for name in CIFAR_POINTS for spec in (CIFAR10, CIFAR100)]
                         + [(name, "imagenet", IMAGENET) for name in IMAGENET_POINTS])
def test_each_paper_preset_is_a_point_of_its_space(name, space_name, input_spec):
    space = SearchSpace.from_toml(input_spec, space_name)
    genotype = preset(name, input_spec)
    params = space.params_for(genotype)
    assert params is not None, f"{name} is not a point of {space_name}"
    # The parameters are what an Optuna trial records: replaying them draws the preset itself.
    assert space.sample(optuna.trial.FixedTrial(params)) == genotype
    assert space.contains(genotype)


def test_near_misses_are_not_points():
    cifar = SearchSpace.from_toml(CIFAR10, "cifar")
    resnet20 = preset("resnet20", CIFAR10)
    stages = resnet20.stages

    def with_stage(index, **changes):
        return replace(resnet20, stages=stages[:index] + (replace(stages[index], **changes),) + stages[index + 1:])

    cases = {
        "depth 10 > 9": with_stage(0, depth=10),
        "width 256 > 128": with_stage(2, width=256),
        "a binary first layer": replace(resnet20, stem=replace(resnet20.stem, layer=LayerSpec("binary"))),
        "a 4-bit classifier": replace(resnet20, head=HeadSpec(LayerSpec("quant", {"w_bits": 4}))),
        "8-bit activations": with_stage(1, layer=LayerSpec("quant", {"w_bits": 4, "a_bits": 8})),
        "3-bit weights": with_stage(2, layer=LayerSpec("quant", {"w_bits": 3})),
        "hb with b1 = 2": with_stage(0, block=BlockSpec("hb", (Coefficient("b1", 2.0), Coefficient("b2", 0.0)))),
        "a max-pool downsample (VGG-small)": preset("vgg-small", CIFAR10),
        "ImageNet's stem": preset("resnet18", CIFAR10),
        "100 classes in a 10-class space": preset("resnet20", CIFAR100),
    }
    for what, genotype in cases.items():
        assert not cifar.contains(genotype), what
    assert not SearchSpace.from_toml(IMAGENET, "imagenet").contains(preset("resnet20", IMAGENET))


def test_names_files_and_mistakes(tmp_path, monkeypatch):
    with pytest.raises(ConfigError) as raised:
        SearchSpace.from_toml(CIFAR10, "cifra")
    assert str(raised.value) == ("search space 'cifra' is neither a packaged space (digits, cifar, imagenet) "
                                 "nor an existing file")
    # An existing file wins over a packaged name, as a genotype file wins over a preset name.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cifar").write_text("[stages]\nwidths = [8]\n")
    assert SearchSpace.from_toml(CIFAR10, "cifar").widths == (8,)
    (tmp_path / "cifar").write_text("[stages]\nwidths = [0]\n")
    with pytest.raises(ConfigError, match=r"^cifar: search space: stage0 widths must hold int values"):
        SearchSpace.from_toml(CIFAR10, "cifar")
