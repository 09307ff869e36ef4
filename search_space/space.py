"""The search space: which genotypes a search may propose, sampled define-by-run.

``SearchSpace.sample(trial)`` asks an Optuna trial (or anything with the same ``suggest_*``
methods, e.g. ``optuna.trial.FixedTrial``, or ``RandomTrial`` here) for each choice and
returns a Genotype, so a recorded parameter dict replays to the same genotype. The space
itself never imports Optuna: the trial is duck-typed. A choice with a single option is not
asked for (it is no decision), so trial parameters hold only what was actually searched.

The space is written as a TOML file, read by ``SearchSpace.from_toml``: a packaged space by
name (``digits``, the default, whose settings the dataclass defaults below repeat; ``cifar``;
``imagenet``: see ``optinas.search_space.packaged_spaces``) or a file of the format documented
in ``search_space/spaces/digits.toml``. ``SearchSpace.contains`` tells whether the space can
produce a given genotype (the presets are points of the space meant for their data).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, fields
from math import prod
from typing import Any, Mapping, Sequence

from .errors import ConfigError
from .genotype import (
    BlockOverride,
    BlockSpec,
    Coefficient,
    Genotype,
    HeadSpec,
    InputSpec,
    LayerSpec,
    StageSpec,
    StemSpec,
)
from .packaged_spaces import space_label
from .registry import layer_kind
from .space_choices import COEFFICIENT_MODES, STAGE_KEYS, RandomTrial, TrialLike, default_coefficients, pick
from .space_membership import sampling_params
from .space_toml import check_space, read_space_toml

__all__ = ["SearchSpace", "TrialLike", "RandomTrial", "COEFFICIENT_MODES", "STAGE_KEYS"]

_ALL_OPTIONS_UP_TO = 16  # an integer option with at most this many values is searched over all


def _digits_layer_options() -> dict[str, dict[str, tuple]]:
    # As spaces/digits.toml: quant at 2, 4 or 8 bits, linear or codebook, float activations;
    # binary with XNOR-Net++'s rank-1 scale.
    return {"quant": {"w_bits": (2, 4, 8), "scheme": ("linear", "codebook"), "a_bits": (32,)},
            "binary": {"scale": ("rank1",)}}


@dataclass(frozen=True)
class SearchSpace:
    """Ranges and choices; one stage per entry of ``strides``. Defaults: ``spaces/digits.toml``.

    Attributes:
        input: what the task feeds the network.
        strides: the stride of each stage's first block (its length fixes the stage count).
        stem_widths, stem_kernel_sizes, stem_layers: the stem's choices; ``stem_stride`` and
            ``stem_pool`` are fixed (they set every later feature-map size).
        depths: inclusive (low, high) number of blocks per stage.
        widths, kernel_sizes, patterns, bodies, shortcuts: a stage's choices ("pad" falls back to
            "projection" where the width shrinks, which the pad shortcut cannot do).
        downsamples: "stride" and/or "maxpool", offered on stride-2 stages only.
        layers: layer kinds of a stage; ``layer_options`` lists the values searched per kind and
            option (unlisted: every choice of a choice option, every value of an integer range
            of at most 16, else the default).
        overrides: whether each block may take its own layer (kind and options) from ``layers``.
        head_layers: the classifier's layer kinds.
        coefficients: per pattern and coefficient, ``{"modes": (...), "values": (...)}`` with
            modes from ``COEFFICIENT_MODES``; values serve "fixed" and "learnable". Patterns
            or coefficients left out keep the registry's defaults.
        per_stage: per stage, changes to any of ``STAGE_KEYS`` (TOML tables ``[stage0]``, ...).
        coefficient_choices: older form, values of fixed coefficients ({"hb": {"b1": (...)}}).
    """

    input: InputSpec
    strides: tuple[int, ...] = (1, 2, 2)
    stem_widths: tuple[int, ...] = (8, 16)
    depths: tuple[int, int] = (1, 2)
    widths: tuple[int, ...] = (8, 16)
    patterns: tuple[str, ...] = ("gd", "hb", "agd", "agd_dense", "agd2", "admm")
    kernel_sizes: tuple[int, ...] = (3,)
    coefficient_choices: Mapping[str, Mapping[str, tuple[float, ...]]] = field(default_factory=dict)
    coefficients: Mapping[str, Mapping[str, Mapping[str, tuple]]] = field(default_factory=default_coefficients)
    bodies: tuple[str, ...] = ("basic",)
    shortcuts: tuple[str, ...] = ("projection",)
    downsamples: tuple[str, ...] = ("stride",)
    layers: tuple[str, ...] = ("conv", "adder", "binary", "quant")
    layer_options: Mapping[str, Mapping[str, tuple]] = field(default_factory=_digits_layer_options)
    overrides: bool = False
    stem_kernel_sizes: tuple[int, ...] = (3,)
    stem_layers: tuple[str, ...] = ("conv",)
    stem_stride: int = 1
    stem_pool: str = "none"
    head_layers: tuple[str, ...] = ("conv",)
    per_stage: tuple[Mapping[str, Any], ...] = ()

    def __post_init__(self) -> None:
        # Copies of the tables; anything that is not a table is left for check_space to name.
        coefficients = {pattern: {name: dict(spec) if isinstance(spec, Mapping) else spec
                                  for name, spec in entries.items()} if isinstance(entries, Mapping) else entries
                        for pattern, entries in self.coefficients.items()}
        for pattern, entries in self.coefficient_choices.items():
            for name, values in entries.items():
                coefficients.setdefault(pattern, {})[name] = {"modes": ("fixed",), "values": tuple(values)}
        object.__setattr__(self, "coefficients", coefficients)
        object.__setattr__(self, "coefficients", check_space(self))

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def from_toml(cls, input: InputSpec, source: Any = None) -> "SearchSpace":
        """The space a packaged name ("digits", "cifar", "imagenet") or a TOML file describes.

        None is the packaged default, ``digits``; an existing file wins over a packaged name.
        Settings the file leaves out keep the dataclass defaults; ``[coefficients.PATTERN]``
        tables replace that pattern's defaults.

        Raises:
            ConfigError: one sentence, prefixed with the space's name or path, for a source
                that is neither a packaged space nor a file, or for any invalid setting.
        """
        label = space_label(source)
        try:
            return cls(input=input, **read_space_toml(source))
        except ConfigError as error:
            if label in str(error):
                raise
            raise ConfigError(f"{label}: {error}") from None

    # -- sampling --------------------------------------------------------------------------

    def stage_choices(self, index: int) -> dict[str, Any]:
        """The choices of stage ``index``: the common ones with its ``per_stage`` changes."""
        choices = {key: getattr(self, key) for key in STAGE_KEYS}
        if index < len(self.per_stage):
            choices.update(self.per_stage[index])
        if self.strides[index] != 2:
            choices["downsamples"] = ("stride",)  # a max-pool only replaces a stride of 2
        return choices

    def option_values(self, kind: str) -> dict[str, tuple]:
        """Values searched per option of layer kind ``kind``."""
        given = self.layer_options.get(kind, {})
        values = {}
        for name, spec in layer_kind(kind).options.items():
            if name in given:
                values[name] = tuple(given[name])
            elif spec.choices is not None:
                values[name] = tuple(spec.choices)
            elif (spec.low is not None and isinstance(spec.default, int) and not isinstance(spec.default, bool)
                  and spec.high - spec.low < _ALL_OPTIONS_UP_TO):
                values[name] = tuple(range(int(spec.low), int(spec.high) + 1))
            else:
                values[name] = (spec.default,)
        return values

    def sample_layer(self, trial: TrialLike, prefix: str, kinds: Sequence[str]) -> LayerSpec:
        """A layer kind from ``kinds`` and a value for each of its options."""
        return self._sample_options(trial, prefix, pick(trial, f"{prefix}.layer", kinds))

    def _sample_options(self, trial: TrialLike, prefix: str, kind: str) -> LayerSpec:
        options = {name: pick(trial, f"{prefix}.layer.{kind}.{name}", values)
                   for name, values in self.option_values(kind).items()}
        return LayerSpec(kind, options)

    def sample_coefficients(self, trial: TrialLike, prefix: str, pattern: str) -> tuple[Coefficient, ...]:
        """The searched coefficients of ``pattern``; the others keep the registry's defaults."""
        coefficients = []
        for name, spec in self.coefficients.get(pattern, {}).items():
            mode = pick(trial, f"{prefix}.{pattern}.{name}.mode", spec["modes"])
            if mode in ("paper", "learnable-paper"):
                coefficients.append(Coefficient(name, 0.0, "paper" if mode == "paper" else "learnable",
                                                init="paper" if mode != "paper" else "value"))
            else:
                value = pick(trial, f"{prefix}.{pattern}.{name}", spec["values"])
                coefficients.append(Coefficient(name, value, mode))
        return tuple(coefficients)

    def sample(self, trial: TrialLike) -> Genotype:
        """Ask ``trial`` for every choice, in a fixed order, and build the genotype."""
        stem = StemSpec(pick(trial, "stem.width", self.stem_widths),
                        kernel_size=pick(trial, "stem.kernel_size", self.stem_kernel_sizes),
                        layer=self.sample_layer(trial, "stem", self.stem_layers),
                        stride=self.stem_stride, pool=self.stem_pool)
        stages, channels = [], stem.width
        for index, stride in enumerate(self.strides):
            stage = self._sample_stage(trial, index, stride, channels)
            stages.append(stage)
            channels = stage.width
        head = HeadSpec(self.sample_layer(trial, "head", self.head_layers))
        return Genotype(input=self.input, stem=stem, stages=tuple(stages), head=head)

    def _sample_stage(self, trial: TrialLike, index: int, stride: int, channels: int) -> StageSpec:
        prefix, choices = f"stage{index}", self.stage_choices(index)
        low, high = choices["depths"]
        depth = trial.suggest_int(f"{prefix}.depth", low, high) if low < high else low
        width = pick(trial, f"{prefix}.width", choices["widths"])
        kernel = pick(trial, f"{prefix}.kernel_size", choices["kernel_sizes"])
        pattern = pick(trial, f"{prefix}.pattern", choices["patterns"])
        block = BlockSpec(pattern, self.sample_coefficients(trial, prefix, pattern))
        body = pick(trial, f"{prefix}.body", choices["bodies"])
        shortcut = pick(trial, f"{prefix}.shortcut", choices["shortcuts"])
        if shortcut == "pad" and width < channels:
            shortcut = "projection"  # option A can only add channels
        downsample = pick(trial, f"{prefix}.downsample", choices["downsamples"])
        layer = self.sample_layer(trial, prefix, choices["layers"])
        overrides = []
        for block_index in range(depth if choices["overrides"] else 0):
            block_prefix = f"{prefix}.block{block_index}"
            kind = pick(trial, f"{block_prefix}.layer", ("stage", *choices["layers"]))
            own = layer if kind == "stage" else self._sample_options(trial, block_prefix, kind)
            if own != layer:  # an override equal to the stage's layer is none (one genotype, one hash)
                overrides.append(BlockOverride(block_index, own))
        return StageSpec(depth=depth, width=width, stride=stride, kernel_size=kernel, block=block,
                         layer=layer, shortcut=shortcut, body=body, downsample=downsample,
                         overrides=tuple(overrides))

    def sample_random(self, count: int, seed: int = 0) -> list[Genotype]:
        """``count`` genotypes drawn uniformly choice by choice, reproducible from ``seed``."""
        rng = random.Random(seed)
        return [self.sample(RandomTrial(rng)) for _ in range(count)]

    # -- membership ------------------------------------------------------------------------

    def params_for(self, genotype: Genotype) -> dict[str, Any] | None:
        """The trial parameters that make ``sample`` return ``genotype``, or None if it cannot.

        ``sample(optuna.trial.FixedTrial(params))`` replays them, and ``study.enqueue_trial``
        takes them, so a preset can join a search as one of its own candidates.
        """
        return sampling_params(self, genotype)

    def contains(self, genotype: Genotype) -> bool:
        """Whether the space can produce exactly ``genotype`` (its input spec included)."""
        return self.params_for(genotype) is not None

    # -- description -----------------------------------------------------------------------

    def layer_count(self, kinds: Sequence[str]) -> int:
        """Distinct layer specs over ``kinds``."""
        return sum(prod(len(values) for values in self.option_values(kind).values()) for kind in kinds)

    def coefficient_count(self, pattern: str) -> int:
        """Distinct coefficient settings of ``pattern``."""
        return prod(sum(len(spec["values"]) if mode in ("fixed", "learnable") else 1 for mode in spec["modes"])
                    for spec in self.coefficients.get(pattern, {}).values())

    def size(self) -> int:
        """Number of distinct genotypes the space can produce (exact).

        Counted stage by stage over the previous width, because whether the "pad" shortcut
        is possible depends on it.
        """
        counts = {width: 1 for width in self.stem_widths}
        for index in range(len(self.strides)):
            choices = self.stage_choices(index)
            layers = self.layer_count(choices["layers"])
            low, high = choices["depths"]
            # With overrides every block picks one of the same layer specs (an override equal to
            # the stage's layer counts once).
            depths = sum(layers ** depth if choices["overrides"] else 1 for depth in range(low, high + 1))
            per_width = (depths * len(choices["kernel_sizes"]) * len(choices["bodies"]) * layers
                         * len(choices["downsamples"])
                         * sum(self.coefficient_count(pattern) for pattern in choices["patterns"]))
            following: dict[int, int] = {}
            for previous, count in counts.items():
                for width in choices["widths"]:
                    shortcuts = {"projection" if s == "pad" and width < previous else s for s in choices["shortcuts"]}
                    following[width] = following.get(width, 0) + count * per_width * len(shortcuts)
            counts = following
        stem = len(self.stem_kernel_sizes) * self.layer_count(self.stem_layers)
        return sum(counts.values()) * stem * self.layer_count(self.head_layers)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists for tuples), e.g. for printing or storing with a study."""
        def plain(value):
            if isinstance(value, Mapping):
                return {key: plain(item) for key, item in value.items()}
            if isinstance(value, (tuple, list)):
                return [plain(item) for item in value]
            if isinstance(value, InputSpec):
                return {f.name: getattr(value, f.name) for f in fields(value)}
            return value
        return {f.name: plain(getattr(self, f.name)) for f in fields(self) if f.name != "coefficient_choices"}
