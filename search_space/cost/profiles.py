"""Hardware profiles: energy per operation and per memory access, read from TOML files.

A profile says what one operation costs at each precision and what moving a word costs, so
that ``optinas.search_space.cost.energy`` can turn op counts into picojoules. Two ship with optinas
(``search_space/cost/profiles/*.toml``): ``horowitz45``, the default (the 45 nm table of
Horowitz, ISSCC 2014), and ``int8_accelerator``. A user's profile is a TOML
file of the same form; every problem in it is one ConfigError sentence naming the key::

    name = "my-chip"                 # any text
    description = "..."              # any text
    sources = ["..."]                # optional: where the numbers come from
    float_precision = "fp32"         # how 32-bit (float) layers run: fp32, fp16, bf16 or intN
    activation_bits = 32             # bits per stored activation element
    word_bits = 64                   # bits moved by one memory access
    [ops.mul]  fp32 = 3.7  int8 = 0.2   ...   # pJ per op, by precision
    [ops.add]  ...   [ops.xnor]  int1 = ...   [ops.shift]  ...
    [memory]   sram_bytes, sram_read_pj, sram_write_pj, dram_read_pj, dram_write_pj
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from ..errors import ConfigError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 (the project supports >= 3.10)
    import tomli as tomllib

__all__ = ["HardwareProfile", "load_profile", "profile_names", "parse_profile", "PRECISIONS",
           "OP_KINDS", "DEFAULT_PROFILE"]

DEFAULT_PROFILE = "horowitz45"
PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
# Precision name -> operand bits. Integer names are what quantised layers map to by width.
PRECISIONS = {"fp32": 32, "fp16": 16, "bf16": 16, "int32": 32, "int16": 16, "int8": 8,
              "int4": 4, "int2": 2, "int1": 1}
OP_KINDS = ("mul", "add", "xnor", "shift")
_MEMORY_KEYS = ("sram_bytes", "sram_read_pj", "sram_write_pj", "dram_read_pj", "dram_write_pj")
_TOP_KEYS = ("name", "description", "sources", "float_precision", "activation_bits", "word_bits",
             "ops", "memory")


@dataclass(frozen=True)
class HardwareProfile:
    """Energy per operation (pJ, by op kind and precision) and per memory word.

    Attributes:
        name: the profile's name (a shipped profile's file stem, or what the file says).
        description: one line for reports.
        sources: where the numbers come from.
        float_precision: the precision 32-bit (float) layers run at on this hardware.
        activation_bits: bits per activation element in memory.
        word_bits: bits per memory access.
        ops: ``ops[kind][precision]`` in pJ, kind in ``OP_KINDS``.
        sram_bytes, sram_read_pj, ...: the two-level memory (see ``energy``).
        origin: the file it was read from.
    """

    name: str
    description: str
    sources: tuple[str, ...]
    float_precision: str
    activation_bits: int
    word_bits: int
    ops: Mapping[str, Mapping[str, float]]
    sram_bytes: int
    sram_read_pj: float
    sram_write_pj: float
    dram_read_pj: float
    dram_write_pj: float
    origin: str = ""

    def op_energy(self, kind: str, precision: str) -> float:
        """pJ of one ``kind`` op at ``precision``; integers round up to the next width present.

        A 4-bit multiply on hardware with only int8 multipliers runs on an int8 multiplier.
        """
        table = self.ops[kind]
        if precision in table:
            return table[precision]
        if precision.startswith("int"):
            bits = int(precision[3:])  # any width: a 3-bit quantised layer asks for "int3"
            wider = sorted((PRECISIONS[name], name) for name in table
                           if name.startswith("int") and PRECISIONS[name] >= bits)
            if wider:
                return table[wider[0][1]]
        have = ", ".join(table) or "none"
        raise ConfigError(
            f"hardware profile {self.name!r} has no ops.{kind} energy for {precision} or a wider "
            f"integer (it has: {have}); add ops.{kind}.{precision} to the profile"
        )


def profile_names() -> list[str]:
    """Names of the profiles shipped with optinas."""
    return sorted(path.stem for path in PROFILE_DIR.glob("*.toml"))


def load_profile(spec: "str | Path | HardwareProfile | None" = None) -> HardwareProfile:
    """A profile by shipped name, by TOML path, or as given; None is the default (horowitz45)."""
    if isinstance(spec, HardwareProfile):
        return spec
    if spec is None:
        spec = DEFAULT_PROFILE
    return _load_cached(str(spec))


@functools.lru_cache(maxsize=32)
def _load_cached(spec: str) -> HardwareProfile:
    # Cached by the text given: a search resolves the same profile for every trial.
    path = Path(spec)
    if spec in profile_names():
        path = PROFILE_DIR / f"{spec}.toml"
    elif not path.suffix == ".toml" and not path.exists():
        raise ConfigError(
            f"unknown hardware profile {spec!r}; use one of {', '.join(profile_names())} "
            "or the path of a .toml profile"
        )
    if not path.is_file():
        state = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise ConfigError(f"hardware profile file {spec!r} {state}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read hardware profile {spec!r}: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"hardware profile {spec!r} is not valid TOML: {error}") from None
    return parse_profile(data, where=str(path))


def parse_profile(data: Mapping[str, Any], where: str = "<profile>") -> HardwareProfile:
    """Validate a profile's plain data; each problem is one sentence naming the key."""
    prefix = f"hardware profile {where}"
    for key in data:
        if key not in _TOP_KEYS:
            raise ConfigError(f"{prefix}: unknown key {key!r}; allowed: {', '.join(_TOP_KEYS)}")
    for key in ("name", "description", "float_precision", "activation_bits", "word_bits", "ops", "memory"):
        if key not in data:
            raise ConfigError(f"{prefix}: missing key {key!r}")
    name, description = _text(prefix, "name", data["name"]), _text(prefix, "description", data["description"])
    sources = data.get("sources", [])
    if not isinstance(sources, list) or not all(isinstance(item, str) for item in sources):
        raise ConfigError(f"{prefix}: sources must be a list of strings, got {sources!r}")
    ops = _ops(prefix, data["ops"])
    float_precision = data["float_precision"]
    if float_precision not in PRECISIONS:
        raise ConfigError(f"{prefix}: float_precision must be one of {', '.join(PRECISIONS)}; "
                          f"got {float_precision!r}")
    for kind in ("mul", "add", "shift"):
        if float_precision not in ops[kind]:
            raise ConfigError(f"{prefix}: float_precision is {float_precision!r} but ops.{kind} "
                              f"has no {float_precision} entry; add ops.{kind}.{float_precision}")
    if "int1" not in ops["xnor"] or "int1" not in ops["add"]:
        raise ConfigError(f"{prefix}: binary layers need ops.xnor.int1 and ops.add.int1 "
                          "(pJ per XNOR and per popcount bit)")
    memory = data["memory"]
    if not isinstance(memory, Mapping):
        raise ConfigError(f"{prefix}: memory must be a table, got {memory!r}")
    for key in memory:
        if key not in _MEMORY_KEYS:
            raise ConfigError(f"{prefix}: unknown key memory.{key}; allowed: {', '.join(_MEMORY_KEYS)}")
    values = {}
    for key in _MEMORY_KEYS:
        if key not in memory:
            raise ConfigError(f"{prefix}: missing key memory.{key}")
        values[key] = _energy(prefix, f"memory.{key}", memory[key])
    return HardwareProfile(
        name=name, description=description, sources=tuple(sources), float_precision=float_precision,
        activation_bits=_bits(prefix, "activation_bits", data["activation_bits"], 32),
        word_bits=_bits(prefix, "word_bits", data["word_bits"], 4096),
        ops=MappingProxyType(ops), sram_bytes=_bits(prefix, "memory.sram_bytes", memory["sram_bytes"], 2**50),
        sram_read_pj=values["sram_read_pj"], sram_write_pj=values["sram_write_pj"],
        dram_read_pj=values["dram_read_pj"], dram_write_pj=values["dram_write_pj"], origin=where,
    )


def _ops(prefix: str, ops: Any) -> dict[str, Mapping[str, float]]:
    if not isinstance(ops, Mapping):
        raise ConfigError(f"{prefix}: ops must be a table of op kinds, got {ops!r}")
    for kind in ops:
        if kind not in OP_KINDS:
            raise ConfigError(f"{prefix}: unknown op kind {kind!r} in ops; allowed: {', '.join(OP_KINDS)}")
    tables = {}
    for kind in OP_KINDS:
        if kind not in ops:
            raise ConfigError(f"{prefix}: missing key ops.{kind}")
        table = ops[kind]
        if not isinstance(table, Mapping) or not table:
            raise ConfigError(f"{prefix}: ops.{kind} must be a non-empty table of precision = pJ")
        for precision, value in table.items():
            if precision not in PRECISIONS:
                raise ConfigError(f"{prefix}: unknown precision {precision!r} in ops.{kind}; "
                                  f"allowed: {', '.join(PRECISIONS)}")
            _energy(prefix, f"ops.{kind}.{precision}", value)
        tables[kind] = MappingProxyType({precision: float(value) for precision, value in table.items()})
    return tables


def _energy(prefix: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{prefix}: {key} must be a non-negative number (pJ), got {value!r}")
    return float(value)


def _bits(prefix: str, key: str, value: Any, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise ConfigError(f"{prefix}: {key} must be an integer in [1, {high}], got {value!r}")
    return value


def _text(prefix: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{prefix}: {key} must be a non-empty string, got {value!r}")
    return value
