"""The Genotype: a frozen, validated, JSON-serialisable description of one architecture.

A genotype says *what* to build (stem -> stages of blocks -> head) and nothing about how it
was found. Its canonical JSON form (sorted keys, no spaces) is what gets hashed, stored and
exported, so two equal genotypes always share one hash.

Validation happens in ``__post_init__`` and names the part, the value and what is allowed:
``stage 2: width must be an integer in [1, 4096], got 0``.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from .errors import GenotypeError

__all__ = [
    "SCHEMA_VERSION",
    "InputSpec",
    "LayerSpec",
    "Coefficient",
    "BlockSpec",
    "StemSpec",
    "StageSpec",
    "BlockOverride",
    "HeadSpec",
    "Genotype",
]

SCHEMA_VERSION = 1
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
    layer registry validates them and fills in defaults (see ``search_space.registry``).
    """

    kind: str = "conv"
    options: tuple[tuple[str, Scalar], ...] = ()

    def __post_init__(self) -> None:
        from .registry import normalise_layer_options  # late: the registry imports genotype

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
    pattern's formula (seed 004: eq. 3 for agd, eq. 5 for agd_dense and agd2), which may differ
    from block to block. Where the formula supplies the value, ``value`` is unused and stored
    as 0.0 so that equal architectures share one hash.
    """

    name: str
    value: float
    mode: str = "fixed"
    init: str = "value"

    def __post_init__(self) -> None:
        where = f"coefficient {self.name!r}"
        _check_finite(where, "value", self.value)
        _check_choice(where, "mode", self.mode, COEFFICIENT_MODES)
        _check_choice(where, "init", self.init, COEFFICIENT_INITS)
        if self.init == "paper" and self.mode != "learnable":
            raise GenotypeError(f"{where}: init 'paper' needs mode 'learnable', got mode {self.mode!r}")
        from_formula = self.mode == "paper" or self.init == "paper"
        object.__setattr__(self, "value", 0.0 if from_formula else float(self.value))


@dataclass(frozen=True, slots=True)
class BlockSpec:
    """A block pattern of seed 004 (gd, hb, ...) and its coefficients."""

    pattern: str = "gd"
    coefficients: tuple[Coefficient, ...] = ()

    def __post_init__(self) -> None:
        from .registry import block_pattern, normalise_coefficients

        object.__setattr__(self, "coefficients", normalise_coefficients(self.pattern, self.coefficients))
        for coefficient in self.coefficients:
            # normalise_coefficients checks mode "paper"; a learnable one may start from the formula too.
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
        return _to_plain(self)


@dataclass(frozen=True, slots=True)
class HeadSpec:
    """Global average pooling and a fully connected classifier, float by default."""

    layer: LayerSpec = field(default_factory=LayerSpec)


def _check_spatial(genotype: "Genotype") -> None:
    # A 2x2 max-pool needs at least 2x2 pixels; strided layers never shrink a map below 1x1.
    height, width = genotype.input.height, genotype.input.width
    stem = genotype.stem
    height, width = ((size - 1) // stem.stride + 1 for size in (height, width))
    if stem.pool == "max":
        height, width = ((size - 1) // 2 + 1 for size in (height, width))
    for number, stage in enumerate(genotype.stages, start=1):
        if stage.downsample == "maxpool":
            if min(height, width) < 2:
                raise GenotypeError(
                    f"stage {number}: downsample 'maxpool' needs a feature map of at least 2x2, "
                    f"got {height}x{width}; use downsample 'stride'"
                )
            height, width = height // 2, width // 2
        else:
            height, width = ((size - 1) // stage.stride + 1 for size in (height, width))


def _check_kernel(where: str, kernel_size: Any) -> None:
    _check_int(where, "kernel_size", kernel_size, 1, 11)
    if kernel_size % 2 == 0:
        raise GenotypeError(f"{where}: kernel_size must be odd (same padding), got {kernel_size}")


@dataclass(frozen=True, slots=True)
class Genotype:
    """One architecture: input -> stem -> stages -> head."""

    input: InputSpec
    stem: StemSpec
    stages: tuple[StageSpec, ...]
    head: HeadSpec = field(default_factory=HeadSpec)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(self.stages))
        if self.schema_version != SCHEMA_VERSION:
            raise GenotypeError(
                f"genotype: schema_version {self.schema_version!r} is not supported; "
                f"this optinas reads version {SCHEMA_VERSION}"
            )
        if not 1 <= len(self.stages) <= 16:
            raise GenotypeError(f"genotype: needs 1 to 16 stages, got {len(self.stages)}")
        _check_spatial(self)
        channels = self.stem.width
        for number, stage in enumerate(self.stages, start=1):
            # The pad shortcut can only add channels (ResNet option A zero-pads them).
            if stage.shortcut == "pad" and stage.width < channels:
                raise GenotypeError(
                    f"stage {number}: shortcut 'pad' needs width >= the previous width "
                    f"({channels}), got {stage.width}; use shortcut 'projection'"
                )
            channels = stage.width

    # -- serialisation -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict of JSON types (the canonical form before dumping)."""
        return _to_plain(self)

    @classmethod
    def from_dict(cls, data: Any) -> "Genotype":
        """Parse and validate; every problem raises GenotypeError naming the field."""
        return _parse_genotype(data)

    def to_json(self, indent: int | None = None) -> str:
        if indent is None:
            return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return json.dumps(self.to_dict(), sort_keys=True, indent=indent)

    @classmethod
    def from_json(cls, text: str) -> "Genotype":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise GenotypeError(f"genotype: not valid JSON ({error.msg} at line {error.lineno})") from None
        return cls.from_dict(data)

    @property
    def hash(self) -> str:
        """Stable 16-hex-digit digest of the canonical JSON."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    @property
    def depth(self) -> int:
        return sum(stage.depth for stage in self.stages)


# -- plain-data conversion -----------------------------------------------------------------


# Fields added after schema version 1 was first written: left out of the canonical form while
# they hold their default, so every genotype written before them keeps its JSON and its hash.
_OMITTED_AT_DEFAULT = {
    "Coefficient": {"init": "value"},
    "StemSpec": {"stride": 1, "pool": "none"},
    "StageSpec": {"body": "basic", "downsample": "stride", "overrides": ()},
}


def _to_plain(value: Any) -> Any:
    if isinstance(value, LayerSpec):
        return {"kind": value.kind, "options": dict(value.options)}
    if hasattr(value, "__dataclass_fields__"):
        omitted = _OMITTED_AT_DEFAULT.get(type(value).__name__, {})
        return {f.name: _to_plain(getattr(value, f.name)) for f in fields(value)
                if f.name not in omitted or getattr(value, f.name) != omitted[f.name]}
    if isinstance(value, tuple):
        return [_to_plain(item) for item in value]
    return value


def _fields_of(where: str, data: Any, cls: type, required: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise GenotypeError(f"{where}: expected an object, got {type(data).__name__}")
    allowed = [f.name for f in fields(cls)]
    for key in data:
        if key not in allowed:
            raise GenotypeError(f"{where}: unknown field {key!r}; allowed: {', '.join(allowed)}")
    for key in required:
        if key not in data:
            raise GenotypeError(f"{where}: missing required field {key!r}")
    return dict(data)


def _parse_layer(where: str, data: Any) -> LayerSpec:
    if isinstance(data, str):
        return LayerSpec(kind=data)
    values = _fields_of(where, data, LayerSpec, ("kind",))
    options = values.get("options", {})
    if not isinstance(options, Mapping):
        raise GenotypeError(f"{where}: options must be an object, got {type(options).__name__}")
    try:
        return LayerSpec(kind=values["kind"], options=tuple(sorted(options.items())))
    except GenotypeError as error:
        raise GenotypeError(f"{where}: {error}") from None


def _parse_block(where: str, data: Any) -> BlockSpec:
    values = _fields_of(where, data, BlockSpec, ("pattern",))
    raw = values.get("coefficients", [])
    if not isinstance(raw, list):
        raise GenotypeError(f"{where}: coefficients must be a list, got {type(raw).__name__}")
    coefficients = []
    for item in raw:
        item_values = _fields_of(f"{where} coefficient", item, Coefficient, ("name", "value"))
        coefficients.append(Coefficient(**item_values))
    try:
        return BlockSpec(pattern=values["pattern"], coefficients=tuple(coefficients))
    except GenotypeError as error:
        raise GenotypeError(f"{where}: {error}") from None


def _parse_overrides(where: str, data: Any) -> tuple[BlockOverride, ...]:
    if not isinstance(data, list):
        raise GenotypeError(f"{where}: expected a list, got {type(data).__name__}")
    overrides = []
    for item in data:
        values = _fields_of(where, item, BlockOverride, ("index", "layer"))
        values["layer"] = _parse_layer(f"{where} layer", values["layer"])
        try:
            overrides.append(BlockOverride(**values))
        except GenotypeError as error:
            raise GenotypeError(f"{where}: {str(error).removeprefix('override: ')}") from None
    return tuple(overrides)


def _construct(where: str, cls: type, values: dict[str, Any]) -> Any:
    try:
        return cls(**values)
    except GenotypeError as error:
        # Replace the generic prefix ("stage: ...") with the precise location.
        message = str(error)
        prefix = cls.__name__.removesuffix("Spec").lower() + ": "
        raise GenotypeError(where + ": " + message.removeprefix(prefix)) from None


def _parse_genotype(data: Any) -> Genotype:
    values = _fields_of("genotype", data, Genotype, ("input", "stem", "stages"))
    input_spec = _construct("input", InputSpec, _fields_of("input", values["input"], InputSpec, ("channels", "height", "width", "classes")))

    stem_values = _fields_of("stem", values["stem"], StemSpec, ("width",))
    if "layer" in stem_values:
        stem_values["layer"] = _parse_layer("stem layer", stem_values["layer"])
    stem = _construct("stem", StemSpec, stem_values)

    raw_stages = values["stages"]
    if not isinstance(raw_stages, list) or not raw_stages:
        raise GenotypeError("genotype: stages must be a non-empty list")
    stages = []
    for number, raw in enumerate(raw_stages, start=1):
        where = f"stage {number}"
        stage_values = _fields_of(where, raw, StageSpec, ("depth", "width"))
        if "block" in stage_values:
            stage_values["block"] = _parse_block(f"{where} block", stage_values["block"])
        if "layer" in stage_values:
            stage_values["layer"] = _parse_layer(f"{where} layer", stage_values["layer"])
        if "overrides" in stage_values:
            stage_values["overrides"] = _parse_overrides(f"{where} overrides", stage_values["overrides"])
        stages.append(_construct(where, StageSpec, stage_values))

    head = HeadSpec()
    if "head" in values:
        head_values = _fields_of("head", values["head"], HeadSpec, ())
        if "layer" in head_values:
            head_values["layer"] = _parse_layer("head layer", head_values["layer"])
        head = _construct("head", HeadSpec, head_values)
    return _construct("genotype", Genotype, {
        "input": input_spec, "stem": stem, "stages": tuple(stages), "head": head,
        "schema_version": values.get("schema_version", SCHEMA_VERSION),
    })
