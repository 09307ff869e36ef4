"""Registries of layer kinds and block patterns.

Adding an arithmetic kind or a block pattern is one new file plus one ``register_*`` call.
Each entry declares what the rest of optinas needs to know about it: the modules to build,
its options, its cost per output element and the source objects an exported file needs.
Registry-driven tests then cover every entry (forward, cost equals hook count, export).

The registry is a leaf: it imports no layer, block or genotype module. The ``layers`` and
``blocks`` packages register their entries when imported (as timm's model registry does), and
``optinas.search_space`` imports both, so any import of the package sees the full registry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .errors import GenotypeError

__all__ = [
    "OpCount",
    "OptionSpec",
    "LayerKind",
    "dense_params",
    "BlockPattern",
    "register_layer",
    "register_pattern",
    "layer_kind",
    "block_pattern",
    "layer_kinds",
    "block_patterns",
    "layer_kind_of",
    "normalise_layer_options",
]

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_LAYERS: dict[str, "LayerKind"] = {}
_PATTERNS: dict[str, "BlockPattern"] = {}


@dataclass(frozen=True, slots=True)
class OpCount:
    """Arithmetic per output element of a layer (AdderNet's conventions, Tables 2 and 3)."""

    mul: int = 0
    add: int = 0
    xnor: int = 0
    shift: int = 0


@dataclass(frozen=True, slots=True)
class OptionSpec:
    """One option of a layer kind: its type, default and allowed values."""

    default: Any
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None

    def check(self, kind: str, name: str, value: Any) -> Any:
        expected = type(self.default)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not expected:
            raise GenotypeError(
                f"layer {kind!r}: option {name} must be {expected.__name__}, got {value!r}"
            )
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(str(choice) for choice in self.choices)
            raise GenotypeError(f"layer {kind!r}: option {name} must be one of {allowed}; got {value!r}")
        if self.low is not None and not self.low <= value <= self.high:
            raise GenotypeError(
                f"layer {kind!r}: option {name} must be in [{self.low}, {self.high}], got {value!r}"
            )
        return value


def dense_params(form: str, in_channels: int, out_shape: tuple[int, ...], kernel_size: int,
                 options: Mapping[str, Any] | None = None) -> int:
    """Parameters of a plain layer: the weights, plus a bias per output in the linear form."""
    if form == "linear":
        return out_shape[0] * in_channels + out_shape[0]
    return out_shape[0] * in_channels * kernel_size * kernel_size


@dataclass(frozen=True)
class LayerKind:
    """An arithmetic kind: how to build it, what it costs, how to export it.

    Attributes:
        name: registry key used in genotypes ("conv", "adder", ...).
        conv: module class built as ``conv(in_channels, out_channels, kernel_size, stride, **options)``.
        linear: module class built as ``linear(in_features, out_features, **options)``.
        per_output: ops per output element, given the fan-in and the options.
        params: parameter count of one layer without building it:
            ``params(form, in_channels, out_shape, kernel_size, options)`` with form "conv"
            or "linear" and ``out_shape`` (C, H, W) or (features,); defaults to
            ``dense_params`` (weights, plus a bias in the linear form).
        options: the kind's options; modules keep each as an attribute of the same name,
            which is how the hook-based cost count reads them back.
        export_objects: functions and classes (besides ``conv`` and ``linear``) whose source an
            exported file needs, in definition order; they may reference only torch names.
        export_prelude: source placed after those objects (e.g. an alias to a pure-torch path).
        weight_bits: bits per stored weight, from the options (32 for float).
        activation_bits: bits of the activations the layer multiplies or compares (32 for float).
        recipe: a ``optinas.search_space.recipes.TrainingRecipe`` subclass, or None for plain training.
        storage_bits: bits to store one layer, with the same arguments as ``params``; None means
            weights x ``weight_bits`` + every other parameter x 32. A kind that stores more (a
            codebook buffer, a step size) declares it here and gives its module a
            ``storage_bits()`` method returning the same number (what the hook count reads).
        per_input: ops per input element, from the options (e.g. quantising or thresholding
            each input before the layer computes); none by default.
    """

    name: str
    conv: type
    linear: type
    per_output: Callable[[int, Mapping[str, Any]], OpCount]
    params: Callable[..., int] = dense_params
    options: Mapping[str, OptionSpec] = field(default_factory=dict)
    export_objects: tuple[Any, ...] = ()
    export_prelude: str = ""
    weight_bits: Callable[[Mapping[str, Any]], int] = lambda options: 32
    activation_bits: Callable[[Mapping[str, Any]], int] = lambda options: 32
    recipe: type | None = None
    storage_bits: Callable[..., int] | None = None
    per_input: Callable[[Mapping[str, Any]], OpCount] = lambda options: OpCount()
    summary: str = ""


@dataclass(frozen=True)
class BlockPattern:
    """A block pattern of Li et al.: its module, coefficients and analytic cost.

    Attributes:
        name: registry key ("gd", "hb", ...).
        module: class built as ``module(in_channels, out_channels, stride, stage, index, kinds)``
            where ``stage`` is the stage's plain dict and ``index`` the block's place in it.
        coefficients: (name, default value) of each coefficient, in order.
        cost: analytic records of one block (see ``optinas.search_space.cost.analytic``).
        export_objects: extra sources the module needs beyond the shared runtime.
    """

    name: str
    module: type
    coefficients: tuple[tuple[str, float], ...]
    cost: Callable[..., Any]
    paper_modes: frozenset[str] = frozenset()
    export_objects: tuple[Any, ...] = ()
    summary: str = ""


def register_layer(kind: LayerKind) -> LayerKind:
    """Register a layer kind; a duplicate or malformed name is an error."""
    _check_new(kind.name, _LAYERS, "layer kind")
    _LAYERS[kind.name] = kind
    return kind


def register_pattern(pattern: BlockPattern) -> BlockPattern:
    """Register a block pattern; a duplicate or malformed name is an error."""
    _check_new(pattern.name, _PATTERNS, "block pattern")
    _PATTERNS[pattern.name] = pattern
    return pattern


def _check_new(name: str, table: dict[str, Any], what: str) -> None:
    # Names end up as dict keys in generated code, so they must be plain identifiers.
    if not isinstance(name, str) or not _NAME.fullmatch(name):  # fullmatch: "$" lets "name\n" in
        raise ValueError(f"{what} name must match {_NAME.pattern}, got {name!r}")
    if name in table:
        raise ValueError(f"{what} {name!r} is already registered")


def layer_kinds() -> dict[str, LayerKind]:
    """Every registered layer kind, by name."""
    return dict(_LAYERS)


def block_patterns() -> dict[str, BlockPattern]:
    """Every registered block pattern, by name."""
    return dict(_PATTERNS)


def layer_kind(name: str) -> LayerKind:
    """The layer kind called ``name``; an unknown name is a GenotypeError listing the known ones."""
    if name not in _LAYERS:
        raise GenotypeError(f"unknown layer kind {name!r}; choose one of: {', '.join(sorted(_LAYERS))}")
    return _LAYERS[name]


def block_pattern(name: str) -> BlockPattern:
    """The block pattern called ``name``; an unknown name is a GenotypeError listing the known ones."""
    if name not in _PATTERNS:
        raise GenotypeError(f"unknown block pattern {name!r}; choose one of: {', '.join(sorted(_PATTERNS))}")
    return _PATTERNS[name]


def layer_kind_of(module: Any) -> tuple[LayerKind, str] | None:
    """The kind of a built module and whether it is its ``conv`` or ``linear`` form."""
    for kind in _LAYERS.values():
        if type(module) is kind.conv:
            return kind, "conv"
        if type(module) is kind.linear:
            return kind, "linear"
    return None


def normalise_layer_options(kind_name: Any, options: Any) -> tuple[tuple[str, Any], ...]:
    """Validate a layer's options and fill in defaults; returns sorted (name, value) pairs."""
    if not isinstance(kind_name, str):
        raise GenotypeError(f"layer kind must be a string, got {kind_name!r}")
    kind = layer_kind(kind_name)
    given = dict(options)
    for name in given:
        if name not in kind.options:
            allowed = ", ".join(kind.options) or "none"
            raise GenotypeError(f"layer {kind_name!r}: unknown option {name!r}; allowed: {allowed}")
    resolved = {
        name: spec.check(kind_name, name, given.get(name, spec.default))
        for name, spec in kind.options.items()
    }
    return tuple(sorted(resolved.items()))
