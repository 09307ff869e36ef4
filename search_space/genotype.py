"""The Genotype: a frozen, validated, JSON-serialisable description of one architecture.

A genotype says *what* to build (stem -> stages of blocks -> head) and nothing about how it
was found. Its canonical JSON form (sorted keys, no spaces) is what gets hashed, stored and
exported, so two equal genotypes always share one hash. Its parts (``InputSpec``,
``StageSpec``, ...) are defined in ``optinas.search_space.genotype_specs`` and importable here.

Validation happens in ``__post_init__`` and names the part, the value and what is allowed:
``stage 2: width must be an integer in [1, 4096], got 0``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from .errors import GenotypeError
from .genotype_specs import (
    BODIES,
    BOTTLENECK_EXPANSION,
    DOWNSAMPLES,
    SHORTCUTS,
    STEM_POOLS,
    BlockOverride,
    BlockSpec,
    Coefficient,
    HeadSpec,
    InputSpec,
    LayerSpec,
    StageSpec,
    StemSpec,
    to_plain,
)
from .json_limits import load_bounded_json

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
    # Re-exported from genotype_specs, where they are defined.
    "BODIES", "BOTTLENECK_EXPANSION", "DOWNSAMPLES", "SHORTCUTS", "STEM_POOLS",
]

SCHEMA_VERSION = 1


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
        return to_plain(self)

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
        """Parse JSON text; size, depth, digits and string lengths are bounded (``json_limits``)."""
        return cls.from_dict(load_bounded_json(text))

    @property
    def hash(self) -> str:
        """Stable 16-hex-digit digest of the canonical JSON."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    @property
    def depth(self) -> int:
        return sum(stage.depth for stage in self.stages)


# -- parsing -------------------------------------------------------------------------------


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
