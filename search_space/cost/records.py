"""Cost records: what one layer (or block operation) costs for one input image.

Definitions (per image, batch 1):

- ``mul``, ``add``, ``xnor``, ``shift``: arithmetic operations, AdderNet's conventions per
  output element (Tables 2 and 3); a popcount accumulation is an ``add``.
- ``macs``: weight-activation products of a weighted layer, fan-in x output elements (for an
  adder layer the "product" is |x - f|, for a binary one an XNOR); 0 for other operations.
- ``bops``: bit operations, MACs x weight bits x activation bits (Baskin et al.'s BOPs). A
  float layer counts 32 x 32 per MAC; so does every float multiplication outside weighted
  layers (BatchNorm, block coefficients, pooling). Additions and shifts count none, and a
  binary layer's per-output scale multiplications are left out like its additions.
- ``params``: trainable parameters. ``storage_bits``: bits to store them for inference:
  weights x the kind's ``weight_bits`` plus every other parameter (bias, scales, codebook,
  BatchNorm's folded scale and shift) x 32, or what the kind declares (``LayerKind.storage_bits``).
- ``activations`` (derived from ``out_shape``): elements the operation writes. Network
  totals report the sum (all activations written) and ``peak_activation``, the largest
  single tensor; bytes follow from the storage width (4 per element as the model runs, fp32).
- energy (pJ): see ``optinas.search_space.cost.energy``; it needs a hardware profile.

Two views of the totals, both always reported: ``total`` counts everything the network
computes; ``paper`` follows AdderNet (section 4.2: "we omit [batch normalization, the first
layer and the last layer] when counting FLOPs"): weighted layers other than the first and
the last, no BatchNorm, no skip sums, no block coefficients, no pooling. A third,
``weighted``, keeps the first and the last layer: AdderNet's CNN figures (ResNet-32 in
Table 2, Table 3) turn out to be counted that way, whatever section 4.2 says.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Iterable, NamedTuple, Sequence

from .energy import network_energy
from .profiles import load_profile

__all__ = ["LayerCost", "Cost", "COUNT_FIELDS", "combine_ops", "weighted_cost", "FLOAT_BOPS"]

COUNT_FIELDS = ("mul", "add", "xnor", "shift", "macs", "bops", "params", "storage_bits")
FLOAT_BOPS = 32 * 32  # bit operations of one float multiplication


class LayerCost(NamedTuple):
    """Counts of one named module, per input image (definitions in the module docstring).

    ``name`` is the module's qualified name in the built network, so an analytic record
    and a hook-counted record of the same module compare one to one. ``paper`` marks the
    layers AdderNet's tables count. ``weight_bits`` and ``activation_bits`` are the widths
    the operation computes at (32 for float), which choose its energy per op. A named
    tuple rather than a frozen dataclass: a 50-block network has ~260 records, and a frozen
    dataclass took ~9 us each to build against ~2 us (measured on the 2-core sandbox).
    """

    name: str
    op: str
    out_shape: tuple[int, ...]
    mul: int = 0
    add: int = 0
    xnor: int = 0
    shift: int = 0
    macs: int = 0
    bops: int = 0
    params: int = 0
    storage_bits: int = 0
    weight_bits: int = 32
    activation_bits: int = 32
    paper: bool = False

    @property
    def activations(self) -> int:
        """Elements this operation writes."""
        return math.prod(self.out_shape)

    def is_empty(self) -> bool:
        """True for an operation that computes and stores nothing (e.g. x + 0 x y)."""
        return not (self.mul or self.add or self.xnor or self.shift or self.macs or self.params)

    def to_dict(self) -> dict:
        data = self._asdict()
        data["out_shape"] = list(self.out_shape)
        return data


@dataclass(frozen=True)
class Cost:
    """All records of a network, the hardware they are priced on, and its totals.

    Views: ``total`` (everything), ``paper`` (AdderNet's section-4.2 rule) and ``weighted``
    (every weighted layer); ``sum(select)`` gives any other. Totals and energies are computed
    on first use and kept.
    """

    input_shape: tuple[int, int, int]
    records: tuple[LayerCost, ...]
    hardware: Any = field(default=None, compare=False)  # a HardwareProfile

    @classmethod
    def from_records(cls, input_shape: Sequence[int], records: Iterable[LayerCost], hardware=None) -> "Cost":
        """Keep the non-empty records; ``hardware`` is a profile, a name, a path or None (default)."""
        kept = tuple(record for record in records if not record.is_empty())
        return cls(tuple(input_shape), kept, load_profile(hardware))

    # -- energy --------------------------------------------------------------------------

    @cached_property
    def sizes(self) -> tuple[int, ...]:
        """Elements each record writes (``LayerCost.activations``), computed once."""
        return tuple(math.prod(record.out_shape) for record in self.records)

    @cached_property
    def _energy(self):
        return network_energy(self.records, self.hardware, self.sizes)

    @property
    def energies(self):
        """``energy.Energy`` of every record, in record order."""
        return self._energy[0]

    @property
    def memory(self):
        """The ``energy.MemoryPlan`` (SRAM or DRAM for weights and activations)."""
        return self._energy[1]

    # -- totals --------------------------------------------------------------------------

    def sum(self, select: Callable[[LayerCost], bool] | None = None) -> dict[str, Any]:
        """Totals over the records ``select`` accepts (all when None)."""
        if select is None:
            return _accumulate(self.records, self.sizes, self.energies)
        chosen = [index for index, record in enumerate(self.records) if select(record)]
        return _accumulate([self.records[i] for i in chosen], [self.sizes[i] for i in chosen],
                           [self.energies[i] for i in chosen])

    @cached_property
    def total(self) -> dict[str, Any]:
        """Every operation in the network (BatchNorm, skips, coefficients, pooling included)."""
        return self.sum()

    @cached_property
    def paper(self) -> dict[str, Any]:
        """AdderNet's convention: weighted layers except the first and the last."""
        return self.sum(lambda record: record.paper)

    @cached_property
    def weighted(self) -> dict[str, Any]:
        """Every weighted layer, the first and the last included: the count behind AdderNet's
        CNN figures (see tests/search_space/test_cost_paper.py)."""
        return self.sum(lambda record: record.macs > 0)

    @property
    def mults(self) -> int:
        """Honest multiplication count per image (what ``--max-mults`` bounds)."""
        return self.total["mul"]

    @property
    def params(self) -> int:
        return self.total["params"]

    @property
    def storage_bits(self) -> int:
        return self.total["storage_bits"]

    @property
    def energy_pj(self) -> float:
        return self.total["energy_pj"]

    def by_name(self) -> dict[str, LayerCost]:
        return {record.name: record for record in self.records}

    def to_dict(self) -> dict:
        """JSON form: ``layers`` (each with its ``energy_pj``), ``total``, ``paper``, ``weighted``,
        the hardware's name and where the memory model put weights and activations."""
        layers = []
        for record, energy in zip(self.records, self.energies):
            row = record.to_dict()
            row["activations"] = record.activations
            row["energy_pj"] = energy.total
            layers.append(row)
        memory = self.memory
        return {
            "input_shape": list(self.input_shape),
            "hardware": self.hardware.name,
            "memory": {"weights": "sram" if memory.weights_on_chip else "dram",
                       "activations": "sram" if memory.activations_on_chip else "dram"},
            "layers": layers,
            "total": self.total,
            "paper": self.paper,
            "weighted": self.weighted,
        }


def _accumulate(records: Sequence[LayerCost], sizes: Sequence[int], energies: Sequence[Any]) -> dict[str, Any]:
    """Sum records (with their output sizes and energies) into one totals dict.

    Column-wise (``zip(*records)``) rather than record by record: it runs for every trial,
    and summing columns is several times faster in CPython.
    """
    columns = list(zip(*records)) or [()] * len(LayerCost._fields)
    totals: dict[str, Any] = {name: sum(columns[index]) for name, index in _COUNT_INDEX}
    totals["activations"] = sum(sizes)
    totals["peak_activation"] = max(sizes, default=0)
    compute, weights, traffic = (list(column) for column in zip(*energies)) if energies else ([], [], [])
    # fsum: exactly rounded whatever the order, so two counts of one network agree.
    totals["energy_pj"] = math.fsum(compute + weights + traffic)
    totals["energy_compute_pj"] = math.fsum(compute)
    totals["energy_weights_pj"] = math.fsum(weights)
    totals["energy_activations_pj"] = math.fsum(traffic)
    return totals


_COUNT_INDEX = tuple((name, LayerCost._fields.index(name)) for name in COUNT_FIELDS)


def combine_ops(values: Sequence[float], learnable: Sequence[bool]) -> tuple[int, int, int]:
    """(mul, add, shift) per output element of a weighted sum of terms.

    Coefficients 0 drop their term, +-1 cost nothing beyond the addition (a leading -1 is a
    sign flip), powers of two are shifts, anything else - and every learnable coefficient,
    whose value training moves - is a multiplication.
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


def weighted_cost(name: str, kind: str, out_shape: tuple[int, ...], ops, per_input, outputs: int,
                  in_elements: int, fan_in: int, weights: int, params: int, storage_bits: int | None,
                  weight_bits: int, activation_bits: int, paper: bool) -> LayerCost:
    """Record of a weighted layer from its kind's per-element conventions.

    The one place those conventions turn into counts, for the analytic walk and the hook
    count alike (each supplies the shapes and sizes it derived or observed): ``ops``
    (an ``OpCount``) per output element, ``per_input`` per input element, MACs = fan-in x
    outputs, BOPs = MACs x weight bits x activation bits, and storage ``storage_bits``, or
    when None ``weights`` x weight bits + every other parameter x 32.
    """
    if storage_bits is None:
        storage_bits = weights * weight_bits + (params - weights) * 32
    macs = fan_in * outputs
    return LayerCost(
        name, kind, out_shape,
        mul=ops.mul * outputs + per_input.mul * in_elements,
        add=ops.add * outputs + per_input.add * in_elements,
        xnor=ops.xnor * outputs + per_input.xnor * in_elements,
        shift=ops.shift * outputs + per_input.shift * in_elements,
        macs=macs, bops=macs * weight_bits * activation_bits, params=params, storage_bits=storage_bits,
        weight_bits=weight_bits, activation_bits=activation_bits, paper=paper,
    )


def _is_power_of_two(value: float) -> bool:
    return value > 0 and math.frexp(value)[0] == 0.5
