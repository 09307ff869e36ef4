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
    "HeadSpec",
    "Genotype",
]

SCHEMA_VERSION = 1
COEFFICIENT_MODES = ("fixed", "learnable", "paper")
SHORTCUTS = ("projection", "pad")
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

    ``fixed`` keeps ``value``; ``learnable`` trains a parameter initialised to ``value``;
    ``paper`` means the value comes from the pattern's formula (the pattern fills it in).
    """

    name: str
    value: float
    mode: str = "fixed"

    def __post_init__(self) -> None:
        where = f"coefficient {self.name!r}"
        _check_finite(where, "value", self.value)
        _check_choice(where, "mode", self.mode, COEFFICIENT_MODES)
        object.__setattr__(self, "value", float(self.value))


@dataclass(frozen=True, slots=True)
class BlockSpec:
    """A block pattern of seed 004 (gd, hb, ...) and its coefficients."""

    pattern: str = "gd"
    coefficients: tuple[Coefficient, ...] = ()

    def __post_init__(self) -> None:
        from .registry import normalise_coefficients

        object.__setattr__(self, "coefficients", normalise_coefficients(self.pattern, self.coefficients))

    def coefficient(self, name: str) -> Coefficient:
        for coefficient in self.coefficients:
            if coefficient.name == name:
                return coefficient
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class StemSpec:
    """The first layer: kernel x kernel layer -> BatchNorm -> ReLU. Float conv by default."""

    width: int
    kernel_size: int = 3
    layer: LayerSpec = field(default_factory=LayerSpec)

    def __post_init__(self) -> None:
        _check_int("stem", "width", self.width, 1, 4096)
        _check_kernel("stem", self.kernel_size)


@dataclass(frozen=True, slots=True)
class StageSpec:
    """``depth`` blocks of one pattern at one width; the first block applies ``stride``."""

    depth: int
    width: int
    stride: int = 1
    kernel_size: int = 3
    block: BlockSpec = field(default_factory=BlockSpec)
    layer: LayerSpec = field(default_factory=LayerSpec)
    shortcut: str = "projection"

    def __post_init__(self) -> None:
        _check_int("stage", "depth", self.depth, 1, 256)
        _check_int("stage", "width", self.width, 1, 4096)
        _check_int("stage", "stride", self.stride, 1, 2)
        _check_kernel("stage", self.kernel_size)
        _check_choice("stage", "shortcut", self.shortcut, SHORTCUTS)


@dataclass(frozen=True, slots=True)
class HeadSpec:
    """Global average pooling and a fully connected classifier, float by default."""

    layer: LayerSpec = field(default_factory=LayerSpec)


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


def _to_plain(value: Any) -> Any:
    if isinstance(value, LayerSpec):
        return {"kind": value.kind, "options": dict(value.options)}
    if hasattr(value, "__dataclass_fields__"):
        return {f.name: _to_plain(getattr(value, f.name)) for f in fields(value)}
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
