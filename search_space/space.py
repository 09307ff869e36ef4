"""The search space: which genotypes a search may propose, sampled define-by-run.

``SearchSpace.sample(trial)`` asks an Optuna trial (or anything with the same ``suggest_*``
methods, e.g. ``optuna.trial.FixedTrial``) for each choice and returns a Genotype, so a
recorded parameter dict replays to the same genotype. The space itself never imports
Optuna: the trial is duck-typed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from math import prod
from typing import Any, Mapping, Protocol, Sequence

from .errors import ConfigError
from .genotype import BlockSpec, Coefficient, Genotype, InputSpec, StageSpec, StemSpec
from .registry import block_patterns

__all__ = ["SearchSpace", "TrialLike"]


class TrialLike(Protocol):
    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...
    def suggest_int(self, name: str, low: int, high: int) -> int: ...


@dataclass(frozen=True)
class SearchSpace:
    """Ranges and choices per stage; one stage per entry of ``strides``.

    Attributes:
        input: what the task feeds the network.
        strides: the stride of each stage's first block (its length fixes the stage count).
        stem_widths: choices for the stem's output channels.
        depths: inclusive (low, high) number of blocks per stage.
        widths: choices for a stage's channels.
        patterns: block patterns to choose from.
        kernel_sizes: choices for the body's kernel size.
        coefficient_choices: values to choose from per (pattern, coefficient), e.g. hb's b1.
    """

    input: InputSpec
    strides: tuple[int, ...] = (1, 2, 2)
    stem_widths: tuple[int, ...] = (8, 16)
    depths: tuple[int, int] = (1, 2)
    widths: tuple[int, ...] = (8, 16, 24, 32)
    patterns: tuple[str, ...] = ("gd", "hb")
    kernel_sizes: tuple[int, ...] = (3,)
    coefficient_choices: Mapping[str, Mapping[str, tuple[float, ...]]] = field(
        default_factory=lambda: {"hb": {"b1": (0.0, 0.5, 1.0), "b2": (-1.0, -0.5, 0.0)}}
    )

    def __post_init__(self) -> None:
        for name in ("strides", "stem_widths", "widths", "patterns", "kernel_sizes"):
            value = tuple(getattr(self, name))
            if not value:
                raise ConfigError(f"search space: {name} must not be empty")
            object.__setattr__(self, name, value)
        low, high = self.depths
        if not 1 <= low <= high:
            raise ConfigError(f"search space: depths must be (low, high) with 1 <= low <= high, got {self.depths}")
        known = block_patterns()
        for pattern in self.patterns:
            if pattern not in known:
                raise ConfigError(
                    f"search space: unknown block pattern {pattern!r}; choose from {', '.join(sorted(known))}"
                )
        # Validate the extremes once, so a bad range fails here rather than mid-search.
        self._genotype(self.stem_widths[0], [(low, self.widths[0], self.kernel_sizes[0], "gd", ())])

    # -- sampling --------------------------------------------------------------------------

    def sample(self, trial: TrialLike) -> Genotype:
        """Ask ``trial`` for every choice, in a fixed order, and build the genotype."""
        stem_width = trial.suggest_categorical("stem.width", list(self.stem_widths))
        stages = []
        for index in range(len(self.strides)):
            prefix = f"stage{index}"
            depth = trial.suggest_int(f"{prefix}.depth", *self.depths)
            width = trial.suggest_categorical(f"{prefix}.width", list(self.widths))
            kernel = trial.suggest_categorical(f"{prefix}.kernel_size", list(self.kernel_sizes))
            pattern = trial.suggest_categorical(f"{prefix}.pattern", list(self.patterns))
            coefficients = []
            for name, choices in self._coefficient_choices(pattern).items():
                value = trial.suggest_categorical(f"{prefix}.{pattern}.{name}", list(choices))
                coefficients.append((name, value))
            stages.append((depth, width, kernel, pattern, tuple(coefficients)))
        return self._genotype(stem_width, stages)

    def _coefficient_choices(self, pattern: str) -> dict[str, tuple[float, ...]]:
        return {name: tuple(choices) for name, choices in self.coefficient_choices.get(pattern, {}).items()}

    def _genotype(self, stem_width: int, stages: list[tuple]) -> Genotype:
        stage_specs = []
        for (depth, width, kernel, pattern, coefficients), stride in zip(stages, self.strides):
            block = BlockSpec(pattern, tuple(Coefficient(name, value) for name, value in coefficients))
            stage_specs.append(StageSpec(depth=depth, width=width, stride=stride, kernel_size=kernel, block=block))
        return Genotype(input=self.input, stem=StemSpec(stem_width), stages=tuple(stage_specs))

    # -- description -----------------------------------------------------------------------

    def size(self) -> int:
        """Number of distinct genotypes the space can produce."""
        low, high = self.depths
        per_pattern = sum(
            prod(len(choices) for choices in self._coefficient_choices(pattern).values())
            for pattern in self.patterns
        )
        per_stage = (high - low + 1) * len(self.widths) * len(self.kernel_sizes) * per_pattern
        return len(self.stem_widths) * per_stage ** len(self.strides)

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["input"] = {f.name: getattr(self.input, f.name) for f in fields(self.input)}
        data["coefficient_choices"] = {
            pattern: {name: list(values) for name, values in choices.items()}
            for pattern, choices in self.coefficient_choices.items()
        }
        return {key: list(value) if isinstance(value, tuple) else value for key, value in data.items()}
