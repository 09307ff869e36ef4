"""Where a model's energy goes: per operation type and per layer kind, from the cost model.

The split follows ``optinas.search_space.cost.energy`` exactly (its module docstring is the model):
each record's compute energy is ``mul x p_mul + add x p_add + xnor x p_xnor + shift x p_shift``
at the record's precision, plus the weight reads and the activation traffic of the memory
plan. Here those terms are kept apart instead of summed, so the parts of a model add up to
its ``Cost.total["energy_pj"]`` (up to float rounding) by construction:

- multiplications, additions and shifts of every non-binary record;
- XNOR/popcount: the XNORs and the popcount additions of binary (1-bit) layers; a binary
  layer's multiplications and shifts are its float scale factors and stay with those;
- memory: weight reads and activation writes and reads, as two parts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from optinas.search_space import Genotype, count_cost
from optinas.search_space.cost.energy import layer_precision, op_prices

__all__ = ["EnergyBreakdown", "PARTS", "energy_breakdown"]

# Stacking order of the report's bars, cheapest arithmetic last so memory sits at the bottom.
PARTS = ("memory: weights", "memory: activations", "multiplications", "additions",
         "XNOR/popcount", "shifts")
_OTHER_KIND = "other (BatchNorm, block sums, pooling)"
_LAYER_OPS = ("batchnorm", "combine", "maxpool", "avgpool")


@dataclass(frozen=True)
class EnergyBreakdown:
    """Energy of one model (pJ per image) split two ways.

    Attributes:
        parts: pJ by operation type, keys ``PARTS``.
        kinds: pJ by layer kind (``conv``, ``adder``, ``binary``, ``quant``, ...) with
            BatchNorm, block sums and pooling together under one "other" key.
        total: ``Cost.total["energy_pj"]`` of the recount.
        hardware: the profile's name.
    """

    parts: dict[str, float]
    kinds: dict[str, float]
    total: float
    hardware: str


def _prices(weight_bits: int, activation_bits: int, profile) -> tuple[float, float, float, float, bool]:
    """(mul, add, xnor, shift) pJ and whether the record is binary: the energy model's prices.

    ``energy.op_prices`` is the one source of those prices (a second copy of the pricing
    rules could drift from the one the budgets use).
    """
    binary = layer_precision(weight_bits, activation_bits, profile) == "int1"
    return (*op_prices(weight_bits, activation_bits, profile), binary)


def energy_breakdown(genotype: Genotype | dict, hardware=None) -> EnergyBreakdown:
    """Recount ``genotype`` on ``hardware`` (a profile name or path; None: the default) and
    split its energy by operation type and by layer kind.

    Raises:
        GenotypeError: for a malformed genotype dict.
        ConfigError: for a hardware profile that cannot be loaded.
    """
    if isinstance(genotype, dict):
        genotype = Genotype.from_dict(genotype)
    cost = count_cost(genotype, hardware)
    profile = cost.hardware
    columns: dict[str, list[float]] = {part: [] for part in PARTS}
    kinds: dict[str, list[float]] = {}
    prices: dict[tuple[int, int], tuple] = {}
    for record, energy in zip(cost.records, cost.energies):
        key = (record.weight_bits, record.activation_bits)
        if key not in prices:
            prices[key] = _prices(*key, profile)
        p_mul, p_add, p_xnor, p_shift, binary = prices[key]
        columns["multiplications"].append(record.mul * p_mul)
        columns["shifts"].append(record.shift * p_shift)
        if binary:  # popcount bits are the binary layer's additions (energy.py)
            columns["XNOR/popcount"].append(record.xnor * p_xnor + record.add * p_add)
        else:
            columns["additions"].append(record.add * p_add)
            columns["XNOR/popcount"].append(record.xnor * p_xnor)
        columns["memory: weights"].append(energy.weights)
        columns["memory: activations"].append(energy.activations)
        kind = _OTHER_KIND if record.op in _LAYER_OPS else record.op
        kinds.setdefault(kind, []).append(energy.total)
    return EnergyBreakdown(
        parts={part: math.fsum(values) for part, values in columns.items()},
        kinds={kind: math.fsum(values) for kind, values in sorted(kinds.items())},
        total=float(cost.total["energy_pj"]), hardware=profile.name)
