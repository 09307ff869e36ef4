"""Shared test helpers: seeded random genotypes that cover every registered choice."""

from __future__ import annotations

import os
import random

import pytest
import torch

from optinas.search_space import BlockSpec, Coefficient, Genotype, HeadSpec, InputSpec, LayerSpec, StageSpec, StemSpec
from optinas.search_space.genotype import BlockOverride
from optinas.search_space.registry import block_patterns, layer_kinds

# The compiled CPU adder kernel, the library's default, compiles for seconds to a minute per
# process: the suite (and the processes it starts, which inherit this) runs the eager kernel,
# and the tests of the compiled kernel turn it on themselves (tests/search_space/test_adder*.py).
os.environ.setdefault("OPTINAS_ADDER_COMPILE", "0")


def random_layer(rng: random.Random) -> LayerSpec:
    """A random registered layer kind with random options (from choices, or low..high)."""
    name = rng.choice(sorted(layer_kinds()))
    options = {}
    for option, spec in layer_kinds()[name].options.items():
        if spec.choices is not None:
            options[option] = rng.choice(spec.choices)
        elif spec.low is not None and isinstance(spec.default, int):
            options[option] = rng.randint(int(spec.low), int(spec.high))
        elif spec.low is not None:
            options[option] = rng.uniform(spec.low, spec.high)
    return LayerSpec(name, options)


def random_coefficients(rng: random.Random, pattern: str) -> tuple[Coefficient, ...]:
    """Every coefficient of ``pattern`` in a random mode: fixed, learnable, and where the
    pattern has a formula, paper or learnable from the paper's value."""
    spec = block_patterns()[pattern]
    coefficients = []
    for name, _ in spec.coefficients:
        modes = ["fixed", "learnable"] + (["paper", "learnable-paper"] if name in spec.paper_modes else [])
        mode = rng.choice(modes)
        value = rng.choice([0.0, 0.5, 1.0, -1.0, -0.5, 0.3, 2.0])
        if mode == "learnable-paper":
            coefficients.append(Coefficient(name, 0.0, "learnable", init="paper"))
        else:
            coefficients.append(Coefficient(name, value, mode))
    return tuple(coefficients)


def random_genotype(rng: random.Random, input_spec: InputSpec | None = None) -> Genotype:
    """A random valid genotype: every pattern, layer kind, body, shortcut, downsampling, stem
    form, coefficient mode, per-block layer override, kernel and stride."""
    input_spec = input_spec or InputSpec(rng.choice([1, 3]), rng.choice([6, 8, 9]), rng.choice([7, 8]), rng.choice([2, 10]))
    patterns = sorted(block_patterns())
    stem_width = rng.choice([4, 8, 12])
    stem_stride, stem_pool = rng.choice([(1, "none"), (1, "none"), (2, "none"), (2, "max")])
    size = (min(input_spec.height, input_spec.width) - 1) // stem_stride + 1
    size = (size - 1) // 2 + 1 if stem_pool == "max" else size
    stages, channels = [], stem_width
    for _ in range(rng.randint(1, 3)):
        pattern = rng.choice(patterns)
        width = rng.choice([4, 8, 12, 16])
        shortcut = rng.choice(["projection", "pad"]) if width >= channels else "projection"
        depth, stride = rng.randint(1, 3), rng.choice([1, 2])
        downsample = "maxpool" if stride == 2 and size >= 2 and rng.random() < 0.3 else "stride"
        size = size // 2 if downsample == "maxpool" else (size - 1) // stride + 1
        overrides = tuple(BlockOverride(index, random_layer(rng)) for index in range(depth) if rng.random() < 0.2)
        stages.append(StageSpec(depth=depth, width=width, stride=stride,
                                kernel_size=rng.choice([1, 3, 5]), block=BlockSpec(pattern, random_coefficients(rng, pattern)),
                                shortcut=shortcut, layer=random_layer(rng), body=rng.choice(["basic", "basic", "single", "bottleneck"]),
                                downsample=downsample, overrides=overrides))
        channels = width
    stem = StemSpec(stem_width, kernel_size=rng.choice([3, 5]), layer=random_layer(rng), stride=stem_stride, pool=stem_pool)
    return Genotype(input=input_spec, stem=stem, stages=tuple(stages), head=HeadSpec(random_layer(rng)))


@pytest.fixture
def genotypes():
    """``genotypes(n, seed)`` -> n random genotypes, reproducible."""
    def make(count: int, seed: int = 0) -> list[Genotype]:
        rng = random.Random(seed)
        return [random_genotype(rng) for _ in range(count)]

    make.random_layer = random_layer  # for tests that vary layers beyond random_genotype
    return make


# One intra-op thread: the models under test are tiny, results stay bit-for-bit repeatable,
# and on a 2-core machine shared with anything else more threads ran 3-9x slower (spinning).
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
    random.seed(0)
    torch.set_num_threads(1)  # again per test: a search run (optuna_driver.prepare) sets its own count
