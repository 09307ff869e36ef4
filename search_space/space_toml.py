"""The search space as a TOML file: reading, validation and a printable description.

Every mistake in a space file or a ``SearchSpace`` argument is one ``ConfigError`` sentence
that names the setting, the value and what is allowed. The format is documented in the
packaged default, ``search_space/spaces/digits.toml``; which file a name or path means is
``optinas.search_space.packaged_spaces``.
"""

from __future__ import annotations

import math
import tomllib
from typing import Any, Mapping

from .errors import ConfigError, GenotypeError, shown
from .genotype_specs import BODIES, DOWNSAMPLES, SHORTCUTS, STEM_POOLS, Coefficient, LayerSpec
from .packaged_spaces import space_source
from .registry import block_patterns, layer_kinds
from .space_choices import COEFFICIENT_MODES, STAGE_KEYS, default_coefficients

__all__ = ["read_space_toml", "check_space", "describe_space"]

_SECTIONS = {
    "stem": {"widths": "stem_widths", "kernel_sizes": "stem_kernel_sizes", "layers": "stem_layers",
             "stride": "stem_stride", "pool": "stem_pool"},
    "stages": {key: key for key in ("strides", "depths", "widths", "kernel_sizes", "patterns", "bodies",
                                    "shortcuts", "downsamples", "layers", "overrides")},
    "head": {"layers": "head_layers"},
}


#: Most values one choice may list: enough for any sweep, and it keeps ``SearchSpace.size``
#: (a loop over pairs of widths per stage) and the printed description small.
MAX_CHOICES = 64


def _fail(where: str, message: str) -> None:
    raise ConfigError(f"search space: {where} {message}")


def _table(name: str, where: str, value: Any) -> Mapping:
    """``value`` where the file must hold a table ([where] or where = { ... })."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name}: {where} must be a table ([{where}] with settings), got {shown(value)}")
    return value


def _load(source: Any) -> tuple[str, dict]:
    name, text = space_source(source)
    try:
        return name, tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{name}: not valid TOML ({error})") from None


def read_space_toml(source: Any = None) -> dict[str, Any]:
    """``SearchSpace`` keyword arguments from a packaged space's name or a TOML file (None: digits)."""
    name, data = _load(source)
    arguments: dict[str, Any] = {}
    per_stage: dict[int, dict] = {}
    for section, table in data.items():
        if not isinstance(table, Mapping):
            raise ConfigError(f"{name}: {section!r} must be a table ([{section}]), got {table!r}")
        if section in _SECTIONS:
            for key, value in table.items():
                if key not in _SECTIONS[section]:
                    raise ConfigError(f"{name}: [{section}] has no setting {key!r}; "
                                      f"allowed: {', '.join(_SECTIONS[section])}")
                arguments[_SECTIONS[section][key]] = value
        elif section.startswith("stage") and section[5:].isdigit():
            for key in table:
                if key not in STAGE_KEYS:
                    raise ConfigError(f"{name}: [{section}] has no setting {key!r}; allowed: {', '.join(STAGE_KEYS)}")
            per_stage[int(section[5:])] = dict(table)
        elif section == "layers":
            arguments["layer_options"] = {kind: dict(_table(name, f"layers.{kind}", options))
                                          for kind, options in table.items()}
        elif section == "coefficients":
            coefficients = default_coefficients()
            coefficients.update({pattern: dict(_table(name, f"coefficients.{pattern}", entries))
                                 for pattern, entries in table.items()})
            arguments["coefficients"] = coefficients
        else:
            raise ConfigError(f"{name}: unknown table [{section}]; allowed: stem, stages, stageN, head, "
                              "layers, coefficients")
    if per_stage:
        count = len(_tuple("stages strides", arguments.get("strides", (1, 2, 2)), int, 1, 2, unique=False))
        if max(per_stage) >= count:
            raise ConfigError(f"{name}: [stage{max(per_stage)}] names a stage beyond the {count} in "
                              "[stages] strides (stage0 is the first)")
        arguments["per_stage"] = tuple(per_stage.get(index, {}) for index in range(max(per_stage) + 1))
    return arguments


# -- validation ------------------------------------------------------------------------------


def _tuple(where: str, value: Any, kind: type, low: float | None = None, high: float | None = None,
           unique: bool = True) -> tuple:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not value:
        _fail(where, f"must be a non-empty list, got {shown(value)}")
    if len(value) > MAX_CHOICES:
        _fail(where, f"lists {len(value):,} values; at most {MAX_CHOICES} are allowed")
    for item in value:
        wrong_type = not isinstance(item, kind) or isinstance(item, bool)
        if kind is float:
            wrong_type = isinstance(item, bool) or not isinstance(item, (int, float)) or not math.isfinite(item)
        if wrong_type or (low is not None and not low <= item <= high):
            bounds = f" in [{low}, {high}]" if low is not None else ""
            _fail(where, f"must hold {kind.__name__} values{bounds}, got {item!r}")
    if unique and len(set(value)) != len(value):
        _fail(where, f"lists a value twice: {list(value)!r}")
    return tuple(float(item) for item in value) if kind is float else tuple(value)


def _subset(where: str, value: Any, allowed, what: str = "value") -> tuple:
    values = _tuple(where, value, str)
    for item in values:
        if item not in allowed:
            _fail(where, f"has unknown {what} {item!r}; choose from {', '.join(sorted(allowed))}")
    return values


def _check_layers(where: str, kinds: Any) -> tuple:
    return _subset(where, kinds, layer_kinds(), "layer kind")


def _check_stage(space, index: int, choices: dict) -> dict:
    where = f"stage{index}"
    depths = _tuple(f"{where} depths", choices["depths"], int, 1, 256, unique=False)
    if len(depths) != 2 or depths[0] > depths[1]:
        _fail(f"{where} depths", f"must be [low, high] with 1 <= low <= high, got {list(choices['depths'])!r}")
    checked = {
        "depths": depths,
        "widths": _tuple(f"{where} widths", choices["widths"], int, 1, 4096),
        "kernel_sizes": _tuple(f"{where} kernel_sizes", choices["kernel_sizes"], int, 1, 11),
        "patterns": _subset(f"{where} patterns", choices["patterns"], block_patterns(), "block pattern"),
        "bodies": _subset(f"{where} bodies", choices["bodies"], BODIES, "body"),
        "shortcuts": _subset(f"{where} shortcuts", choices["shortcuts"], SHORTCUTS, "shortcut"),
        "downsamples": _subset(f"{where} downsamples", choices["downsamples"], DOWNSAMPLES, "downsample"),
        "layers": _check_layers(f"{where} layers", choices["layers"]),
        "overrides": choices["overrides"],
    }
    if not isinstance(checked["overrides"], bool):
        _fail(f"{where} overrides", f"must be true or false, got {checked['overrides']!r}")
    if any(size % 2 == 0 for size in checked["kernel_sizes"]):
        _fail(f"{where} kernel_sizes", f"must be odd (same padding), got {list(checked['kernel_sizes'])!r}")
    if "bottleneck" in checked["bodies"] and any(width % 4 for width in checked["widths"]):
        _fail(f"{where} widths", f"must be multiples of 4 where bodies include 'bottleneck', "
                                 f"got {list(checked['widths'])!r}")
    return checked


def _check_coefficients(coefficients: Mapping) -> dict:
    patterns = block_patterns()
    result = {}
    for pattern, entries in coefficients.items():
        if pattern not in patterns:
            _fail("coefficients", f"name unknown block pattern {pattern!r}; choose from {', '.join(sorted(patterns))}")
        defaults = dict(patterns[pattern].coefficients)
        result[pattern] = {}
        if not isinstance(entries, Mapping):
            _fail(f"coefficients.{pattern}", f"must be a table of coefficients, got {shown(entries)}")
        for name, spec in entries.items():
            where = f"coefficients.{pattern}.{name}"
            if name not in defaults:
                _fail(where, f"is not a coefficient of {pattern!r}; it has: {', '.join(defaults) or 'none'}")
            if not isinstance(spec, Mapping) or set(spec) - {"modes", "values"}:
                _fail(where, f"must be a table with 'modes' and 'values', got {spec!r}")
            modes = _subset(f"{where} modes", spec.get("modes", ("fixed",)), COEFFICIENT_MODES, "mode")
            values = _tuple(f"{where} values", spec.get("values", (defaults[name],)), float)
            for mode in modes:
                if "paper" in mode and name not in patterns[pattern].paper_modes:
                    _fail(f"{where} modes", f"has {mode!r} but {pattern!r} has no paper formula for {name!r}")
            result[pattern][name] = {"modes": modes, "values": values}
    return result


def _check_options(space) -> None:
    kinds = layer_kinds()
    for kind, options in space.layer_options.items():
        if kind not in kinds:
            _fail("layers", f"names unknown layer kind {kind!r}; choose from {', '.join(sorted(kinds))}")
        if not isinstance(options, Mapping):
            _fail(f"layers.{kind}", f"must be a table of options, got {shown(options)}")
        for option, values in options.items():
            where = f"layers.{kind}.{option}"
            if not isinstance(values, (list, tuple)) or not values:
                _fail(where, f"must be a non-empty list, got {values!r}")
            for value in values:
                try:
                    LayerSpec(kind, {option: value})
                except GenotypeError as error:
                    _fail(where, f"is invalid: {error}")


def check_space(space) -> dict:
    """Validate every setting of ``space`` (raises ConfigError) and store its sequences as tuples.

    Called by ``SearchSpace.__post_init__``; returns the checked coefficient table, with the
    pattern's default value filled in where a mode needs values and the table gives none.
    """
    count = len(_tuple("stages strides", space.strides, int, 1, 2, unique=False))
    if count > 16:
        _fail("stages strides", f"may list at most 16 stages, got {count}")
    _tuple("stem widths", space.stem_widths, int, 1, 4096)
    if any(size % 2 == 0 for size in _tuple("stem kernel_sizes", space.stem_kernel_sizes, int, 1, 11)):
        _fail("stem kernel_sizes", f"must be odd, got {list(space.stem_kernel_sizes)!r}")
    _check_layers("stem layers", space.stem_layers)
    _check_layers("head layers", space.head_layers)
    if space.stem_stride not in (1, 2):
        _fail("stem stride", f"must be 1 or 2, got {space.stem_stride!r}")
    if space.stem_pool not in STEM_POOLS:
        _fail("stem pool", f"must be one of {', '.join(STEM_POOLS)}, got {space.stem_pool!r}")
    if len(space.per_stage) > count:
        _fail("per_stage", f"has {len(space.per_stage)} entries for {count} stages")
    _check_options(space)
    coefficients = _check_coefficients(space.coefficients)
    # The smallest map each stage can see (a max-pool floors, a stride ceils): where a 2x2
    # max-pool is offered it needs 2x2 pixels.
    size = min(space.input.height, space.input.width)
    size = (size - 1) // space.stem_stride + 1
    size = (size - 1) // 2 + 1 if space.stem_pool == "max" else size
    normalised = []
    for index, stride in enumerate(space.strides):
        choices = _check_stage(space, index, space.stage_choices(index))
        if "maxpool" in choices["downsamples"]:
            if size < 2:
                _fail(f"stage{index} downsamples", f"offers 'maxpool' but the map may be {size}x{size} there")
            size //= 2
        else:
            size = (size - 1) // stride + 1
        normalised.append({key: value for key, value in choices.items()
                           if index < len(space.per_stage) and key in space.per_stage[index]})
    object.__setattr__(space, "per_stage", tuple(normalised[:len(space.per_stage)]))
    for name in ("strides", "stem_widths", "stem_kernel_sizes", "stem_layers", "head_layers", "depths",
                 "widths", "kernel_sizes", "patterns", "bodies", "shortcuts", "downsamples", "layers"):
        object.__setattr__(space, name, tuple(getattr(space, name)))
    object.__setattr__(space, "layer_options", {kind: {option: tuple(values) for option, values in options.items()}
                                                for kind, options in space.layer_options.items()})
    _check_coefficient_objects(coefficients)
    return coefficients


def _check_coefficient_objects(coefficients: dict) -> None:
    # Every value must make a valid Coefficient (finite, and so on), caught here, not mid-search.
    for pattern, entries in coefficients.items():
        for name, spec in entries.items():
            for value in spec["values"]:
                try:
                    Coefficient(name, value)
                except GenotypeError as error:
                    _fail(f"coefficients.{pattern}.{name}", f"value is invalid: {error}")


# -- description ---------------------------------------------------------------------------


def _choices(values) -> str:
    return "|".join(str(value) for value in values)


def _count_text(count: int) -> str:
    # Exact up to 30 digits; beyond, the power of ten (an exact count of thousands of digits
    # is unreadable, and Python refuses to print integers of over 4,300 digits).
    if count < 10**30:
        return f"{count:,}"
    return f"about 10^{int((count.bit_length() - 1) * 0.30103)}"


def describe_space(space, source: str = "") -> str:
    """A few lines per part: what each choice can be, and the exact number of genotypes."""
    shape = "x".join(map(str, space.input.shape))
    lines = [f"search space{f' ({source})' if source else ''} for {shape} inputs, {space.input.classes} classes: "
             f"{_count_text(space.size())} distinct genotypes",
             f"stem     width {_choices(space.stem_widths)}  kernel {_choices(space.stem_kernel_sizes)}  "
             f"layer {_choices(space.stem_layers)}  stride {space.stem_stride}  pool {space.stem_pool}"]
    for index, stride in enumerate(space.strides):
        choices = space.stage_choices(index)
        low, high = choices["depths"]
        lines.append(f"stage{index}   stride {stride}  depth {low}..{high}  width {_choices(choices['widths'])}  "
                     f"kernel {_choices(choices['kernel_sizes'])}  body {_choices(choices['bodies'])}  "
                     f"shortcut {_choices(choices['shortcuts'])}  downsample {_choices(choices['downsamples'])}")
        lines.append(f"         patterns {_choices(choices['patterns'])}  layer {_choices(choices['layers'])}  "
                     f"per-block overrides {'on' if choices['overrides'] else 'off'}")
    lines.append(f"head     layer {_choices(space.head_layers)}")
    kinds = sorted({*space.stem_layers, *space.head_layers,
                    *(kind for index in range(len(space.strides)) for kind in space.stage_choices(index)["layers"])})
    for kind in kinds:
        options = space.option_values(kind)
        described = "  ".join(f"{name} {_choices(values)}" for name, values in options.items()) or "no options"
        lines.append(f"layer {kind:<8} {described}")
    for pattern, entries in space.coefficients.items():
        for name, spec in entries.items():
            values = f"  values {_choices(spec['values'])}" if {"fixed", "learnable"} & set(spec["modes"]) else ""
            lines.append(f"coefficient {pattern + '.' + name:<16} modes {_choices(spec['modes'])}{values}")
    return "\n".join(lines) + "\n"
