"""The parts of a genotype: input, layer, coefficient, block, stem, stage and head specs.

Each part is a frozen dataclass that validates itself in ``__post_init__`` and names the part,
the value and what is allowed (``stage: width must be an integer in [1, 4096], got 0``). Layer
options and block coefficients are checked against the registry, which fills in defaults. The
whole architecture, its hash and its JSON form are in ``optinas.search_space.genotype``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from .errors import GenotypeError, shown
from .registry import block_pattern, normalise_layer_options

__all__ = [
    "InputSpec", "LayerSpec", "Coefficient", "BlockSpec", "StemSpec", "StageSpec", "BlockOverride", "HeadSpec",
    "COEFFICIENT_MODES", "COEFFICIENT_INITS", "SHORTCUTS", "BODIES", "DOWNSAMPLES", "STEM_POOLS",
    "BOTTLENECK_EXPANSION", "Scalar", "to_plain",
]

COEFFICIENT_MODES = ("fixed", "learnable", "paper")
COEFFICIENT_INITS = ("value", "paper")
SHORTCUTS = ("projection", "pad")
BODIES = ("basic", "bottleneck", "single")
DOWNSAMPLES = ("stride", "maxpool")
STEM_POOLS = ("none", "max")
BOTTLENECK_EXPANSION = 4
Scalar = bool | int | float | str


def _check_int(where: str, name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise GenotypeError(f"{where}: {name} must be an integer in [{low}, {high}], got {value!r}")


def _check_choice(where: str, name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise GenotypeError(f"{where}: {name} must be one of {', '.join(allowed)}; got {value!r}")


def _check_finite(where: str, name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise GenotypeError(f"{where}: {name} must be a finite number, got {value!r}")


def _check_kernel(where: str, kernel_size: Any) -> None:
    _check_int(where, "kernel_size", kernel_size, 1, 11)
    if kernel_size % 2 == 0:
        raise GenotypeError(f"{where}: kernel_size must be odd (same padding), got {kernel_size}")


@dataclass(frozen=True, slots=True)
class InputSpec:
    """The data a network takes: channels x height x width images and the number of classes."""

    channels: int
    height: int
    width: int
    classes: int

    def __post_init__(self) -> None:
        _check_int("input", "channels", self.channels, 1, 4096)
        _check_int("input", "height", self.height, 1, 4096)
        _check_int("input", "width", self.width, 1, 4096)
        _check_int("input", "classes", self.classes, 1, 100_000)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)


@dataclass(frozen=True, slots=True)
class LayerSpec:
    """The arithmetic of a layer: a registered kind ("conv", ...) and its options.

    Options are stored as sorted (name, value) pairs so that the spec stays hashable; the
    layer registry validates them and fills in defaults (see ``optinas.search_space.registry``).
    """

    kind: str = "conv"
    options: tuple[tuple[str, Scalar], ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.options, Mapping):
            object.__setattr__(self, "options", tuple(sorted(self.options.items())))
        object.__setattr__(self, "options", normalise_layer_options(self.kind, self.options))

    @property
    def option_dict(self) -> dict[str, Scalar]:
        return dict(self.options)


@dataclass(frozen=True, slots=True)
class Coefficient:
    """One block coefficient (e.g. heavy ball's b1): a value and how it is treated.

    ``fixed`` keeps ``value``; ``learnable`` trains a parameter initialised to ``value``, or
    with ``init="paper"`` to the pattern's formula; ``paper`` means the value comes from the
    pattern's formula (Li et al.: eq. 3 for agd, eq. 5 for agd_dense and agd2), which may differ
    from block to block. Where the formula supplies the value, ``value`` is unused and stored
    as 0.0 so that equal architectures share one hash.
    """

    name: str
    value: float
    mode: str = "fixed"
    init: str = "value"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):  # it becomes a dict key and a parameter name
            raise GenotypeError(f"coefficient: name must be a string, got {type(self.name).__name__} "
                                f"{shown(self.name)}")
        where = f"coefficient {shown(self.name)}"
        _check_finite(where, "value", self.value)
        _check_choice(where, "mode", self.mode, COEFFICIENT_MODES)
        _check_choice(where, "init", self.init, COEFFICIENT_INITS)
        if self.init == "paper" and self.mode != "learnable":
            raise GenotypeError(f"{where}: init 'paper' needs mode 'learnable', got mode {self.mode!r}")
        from_formula = self.mode == "paper" or self.init == "paper"
        object.__setattr__(self, "value", 0.0 if from_formula else float(self.value))


@dataclass(frozen=True, slots=True)
class BlockSpec:
    """A block pattern of Li et al. (gd, hb, ...) and its coefficients."""

    pattern: str = "gd"
    coefficients: tuple[Coefficient, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "coefficients", _normalise_coefficients(self.pattern, self.coefficients))
        for coefficient in self.coefficients:
            # _normalise_coefficients checks mode "paper"; a learnable one may start from the formula too.
            if coefficient.init == "paper" and coefficient.name not in block_pattern(self.pattern).paper_modes:
                raise GenotypeError(
                    f"pattern {self.pattern!r}: coefficient {coefficient.name!r} has no paper formula "
                    "to initialise from; use init 'value'"
                )

    def coefficient(self, name: str) -> Coefficient:
        for coefficient in self.coefficients:
            if coefficient.name == name:
                return coefficient
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class StemSpec:
    """The first layer: kernel x kernel layer -> BatchNorm -> ReLU. Float conv by default.

    ``stride`` 2 and ``pool`` "max" (a 3x3 stride-2 max-pool after the ReLU) give the ImageNet
    ResNet stem (7x7 stride-2 conv + max-pool, He et al. 2016).
    """

    width: int
    kernel_size: int = 3
    layer: LayerSpec = field(default_factory=LayerSpec)
    stride: int = 1
    pool: str = "none"

    def __post_init__(self) -> None:
        _check_int("stem", "width", self.width, 1, 4096)
        _check_kernel("stem", self.kernel_size)
        _check_int("stem", "stride", self.stride, 1, 2)
        _check_choice("stem", "pool", self.pool, STEM_POOLS)


@dataclass(frozen=True, slots=True)
class BlockOverride:
    """The layer spec of one block of a stage (``index`` from 0) instead of the stage's layer."""

    index: int
    layer: LayerSpec

    def __post_init__(self) -> None:
        _check_int("override", "index", self.index, 0, 255)
        if not isinstance(self.layer, LayerSpec):
            raise GenotypeError(f"override: layer must be a layer spec, got {self.layer!r}")


@dataclass(frozen=True, slots=True)
class StageSpec:
    """``depth`` blocks of one pattern at one width; the first block applies ``stride``.

    ``body`` is the block transform T: "basic" (layer-BN-ReLU-layer-BN, ResNet's basic block),
    "bottleneck" (1x1 -> k x k -> 1x1 with expansion 4, ResNet-50; ``width`` is the block's
    output width) or "single" (layer-BN, one layer per block: VGG and eq. 7).
    ``downsample`` "maxpool" applies the stride as a 2x2 max-pool before the first block
    (VGG-small) instead of in its layers. ``overrides`` give single blocks their own layer spec.
    """

    depth: int
    width: int
    stride: int = 1
    kernel_size: int = 3
    block: BlockSpec = field(default_factory=BlockSpec)
    layer: LayerSpec = field(default_factory=LayerSpec)
    shortcut: str = "projection"
    body: str = "basic"
    downsample: str = "stride"
    overrides: tuple[BlockOverride, ...] = ()

    def __post_init__(self) -> None:
        _check_int("stage", "depth", self.depth, 1, 256)
        _check_int("stage", "width", self.width, 1, 4096)
        _check_int("stage", "stride", self.stride, 1, 2)
        _check_kernel("stage", self.kernel_size)
        _check_choice("stage", "shortcut", self.shortcut, SHORTCUTS)
        _check_choice("stage", "body", self.body, BODIES)
        _check_choice("stage", "downsample", self.downsample, DOWNSAMPLES)
        if self.body == "bottleneck" and self.width % BOTTLENECK_EXPANSION:
            raise GenotypeError(
                f"stage: width must be a multiple of {BOTTLENECK_EXPANSION} for body 'bottleneck', got {self.width}"
            )
        if self.downsample == "maxpool" and self.stride != 2:
            raise GenotypeError(f"stage: downsample 'maxpool' needs stride 2, got stride {self.stride}")
        overrides = tuple(sorted(self.overrides, key=lambda override: override.index))
        object.__setattr__(self, "overrides", overrides)
        for position, override in enumerate(overrides):
            if override.index >= self.depth:
                raise GenotypeError(
                    f"stage: override index must be below the depth ({self.depth}), got {override.index}"
                )
            if position and overrides[position - 1].index == override.index:
                raise GenotypeError(f"stage: block {override.index} is overridden twice")

    def layer_of(self, index: int) -> LayerSpec:
        """The layer spec block ``index`` uses: its override, else the stage's layer."""
        for override in self.overrides:
            if override.index == index:
                return override.layer
        return self.layer

    def to_dict(self) -> dict[str, Any]:
        """Plain dict in canonical form (what the runtime modules are built from)."""
        return to_plain(self)


@dataclass(frozen=True, slots=True)
class HeadSpec:
    """Global average pooling and a fully connected classifier, float by default."""

    layer: LayerSpec = field(default_factory=LayerSpec)


# -- plain-data conversion -----------------------------------------------------------------


# Fields added after schema version 1 was first written: left out of the canonical form while
# they hold their default, so every genotype written before them keeps its JSON and its hash.
_OMITTED_AT_DEFAULT = {
    "Coefficient": {"init": "value"},
    "StemSpec": {"stride": 1, "pool": "none"},
    "StageSpec": {"body": "basic", "downsample": "stride", "overrides": ()},
}


def to_plain(value: Any) -> Any:
    """A spec (or a tuple of them) as plain JSON types, in canonical form."""
    if isinstance(value, LayerSpec):
        return {"kind": value.kind, "options": dict(value.options)}
    if hasattr(value, "__dataclass_fields__"):
        omitted = _OMITTED_AT_DEFAULT.get(type(value).__name__, {})
        return {f.name: to_plain(getattr(value, f.name)) for f in fields(value)
                if f.name not in omitted or getattr(value, f.name) != omitted[f.name]}
    if isinstance(value, tuple):
        return [to_plain(item) for item in value]
    return value


def _normalise_coefficients(pattern_name: Any, coefficients: Any) -> tuple[Coefficient, ...]:
    """Validate a block's coefficients against its pattern, in the pattern's order, defaults filled."""
    if not isinstance(pattern_name, str):
        raise GenotypeError(f"block pattern must be a string, got {pattern_name!r}")
    pattern = block_pattern(pattern_name)
    known = dict(pattern.coefficients)
    given: dict[str, Coefficient] = {}
    for coefficient in coefficients:
        if coefficient.name not in known:
            allowed = ", ".join(known) or "none"
            raise GenotypeError(
                f"pattern {pattern_name!r}: unknown coefficient {coefficient.name!r}; allowed: {allowed}"
            )
        if coefficient.name in given:
            raise GenotypeError(f"pattern {pattern_name!r}: coefficient {coefficient.name!r} given twice")
        if coefficient.mode == "paper" and coefficient.name not in pattern.paper_modes:
            raise GenotypeError(
                f"pattern {pattern_name!r}: coefficient {coefficient.name!r} has no paper formula; "
                "use mode fixed or learnable"
            )
        given[coefficient.name] = coefficient
    return tuple(given.get(name, Coefficient(name, default)) for name, default in pattern.coefficients)
