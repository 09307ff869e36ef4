"""Cost records: what one layer (or block operation) costs for one input image."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

__all__ = ["LayerCost", "Cost", "COUNT_FIELDS", "combine_ops"]

COUNT_FIELDS = ("mul", "add", "xnor", "shift", "params")


@dataclass(frozen=True, slots=True)
class LayerCost:
    """Counts of one named module, per input image.

    ``name`` is the module's qualified name in the built network, so an analytic record
    and a hook-counted record of the same module can be compared one to one. ``paper``
    marks the layers that seed 000's tables count (conv/adder/binary/quantised layers);
    BatchNorm, skip sums, block coefficients and pooling only enter the honest total.
    """

    name: str
    op: str
    out_shape: tuple[int, ...]
    mul: int = 0
    add: int = 0
    xnor: int = 0
    shift: int = 0
    params: int = 0
    paper: bool = False

    def is_empty(self) -> bool:
        return not any(getattr(self, field) for field in COUNT_FIELDS)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["out_shape"] = list(self.out_shape)
        return data


@dataclass(frozen=True)
class Cost:
    """All records of a network plus the two totals (paper convention and honest total)."""

    input_shape: tuple[int, int, int]
    records: tuple[LayerCost, ...]

    @classmethod
    def from_records(cls, input_shape: Sequence[int], records: Iterable[LayerCost]) -> "Cost":
        return cls(tuple(input_shape), tuple(record for record in records if not record.is_empty()))

    def _sum(self, paper_only: bool) -> dict[str, int]:
        chosen = [record for record in self.records if record.paper or not paper_only]
        return {field: sum(getattr(record, field) for record in chosen) for field in COUNT_FIELDS}

    @property
    def total(self) -> dict[str, int]:
        """Every operation in the network (BatchNorm, skips, coefficients, pooling included)."""
        return self._sum(paper_only=False)

    @property
    def paper(self) -> dict[str, int]:
        """Seed 000's convention: only the conv/adder/binary/quantised layers."""
        return self._sum(paper_only=True)

    @property
    def mults(self) -> int:
        """Honest multiplication count per image (what ``--max-mults`` bounds)."""
        return self.total["mul"]

    @property
    def params(self) -> int:
        return self.total["params"]

    def by_name(self) -> dict[str, LayerCost]:
        return {record.name: record for record in self.records}

    def to_dict(self) -> dict:
        return {
            "input_shape": list(self.input_shape),
            "layers": [record.to_dict() for record in self.records],
            "total": self.total,
            "paper": self.paper,
        }


def combine_ops(values: Sequence[float], learnable: Sequence[bool]) -> tuple[int, int, int]:
    """(mul, add, shift) per output element of a weighted sum of terms.

    Coefficients 0 drop their term, +-1 cost nothing beyond the addition (a leading -1 is a
    sign flip), powers of two are shifts, anything else - and every learnable coefficient,
    whose value training moves - is a multiplication (DESIGN.md "Block patterns").
    """
    mul = shift = terms = 0
    for value, flag in zip(values, learnable):
        if not flag and value == 0.0:
            continue
        terms += 1
        if flag:
            mul += 1
        elif abs(value) != 1.0:
            if _is_power_of_two(abs(value)):
                shift += 1
            else:
                mul += 1
    return mul, max(terms - 1, 0), shift


def _is_power_of_two(value: float) -> bool:
    return value > 0 and math.frexp(value)[0] == 0.5
