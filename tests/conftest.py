"""Shared test helpers: seeded random genotypes that cover every registered choice."""

from __future__ import annotations

import random

import pytest
import torch

from search_space import BlockSpec, Coefficient, Genotype, InputSpec, StageSpec, StemSpec
from search_space.registry import block_patterns


def random_genotype(rng: random.Random, input_spec: InputSpec | None = None) -> Genotype:
    """A random valid genotype: every pattern, shortcut, coefficient mode, kernel and stride."""
    input_spec = input_spec or InputSpec(rng.choice([1, 3]), rng.choice([6, 8, 9]), rng.choice([7, 8]), rng.choice([2, 10]))
    patterns = sorted(block_patterns())
    stem_width = rng.choice([4, 8, 12])
    stages, channels = [], stem_width
    for _ in range(rng.randint(1, 3)):
        pattern = rng.choice(patterns)
        coefficients = tuple(
            Coefficient(name, rng.choice([0.0, 0.5, 1.0, -1.0, -0.5, 0.3, 2.0]), rng.choice(["fixed", "learnable"]))
            for name, _ in block_patterns()[pattern].coefficients)
        width = rng.choice([4, 8, 12, 16])
        shortcut = rng.choice(["projection", "pad"]) if width >= channels else "projection"
        stages.append(StageSpec(depth=rng.randint(1, 3), width=width, stride=rng.choice([1, 2]),
                                kernel_size=rng.choice([1, 3, 5]), block=BlockSpec(pattern, coefficients),
                                shortcut=shortcut))
        channels = width
    return Genotype(input=input_spec, stem=StemSpec(stem_width, kernel_size=rng.choice([3, 5])), stages=tuple(stages))


@pytest.fixture
def genotypes():
    """``genotypes(n, seed)`` -> n random genotypes, reproducible."""
    def make(count: int, seed: int = 0) -> list[Genotype]:
        rng = random.Random(seed)
        return [random_genotype(rng) for _ in range(count)]
    return make


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
    random.seed(0)
