"""Energy of one image through a network: op counts x energy per op, plus memory traffic.

The model (what ``optinas cost`` and ``--max-energy`` use), for a hardware profile
(``optinas.search_space.cost.profiles``):

**Operations.** Each record's mul, add, xnor and shift counts are priced at the precision
the layer computes in, chosen from its declared bit widths (``LayerKind.weight_bits`` and
``activation_bits``), width = max(weight bits, activation bits):

- width 32 (a float layer; BatchNorm, block sums and pooling are float too): the profile's
  ``float_precision`` (fp32 on the default profile; int8 on an int8 accelerator, which runs
  float layers after post-training quantisation);
- width 1 (a binary layer): XNORs at ``int1``, its additions are popcount bits at ``int1``,
  and its multiplications and shifts are the float scale factors, at ``float_precision``;
- any other width n (a quantised layer): ``int<n>``, rounded up to the narrowest integer
  unit the profile has (a 4-bit multiply runs on an int8 multiplier if that is all there is).
  Accumulating additions are priced at the same width.

A layer's per-input operations (quantising or thresholding each input element) are priced
with the layer. A simplification: a real int8 datapath accumulates in 32 bits, and the
quantisation of float inputs happens at the producer's precision.

**Memory.** A two-level memory: an SRAM of ``sram_bytes`` and DRAM, both priced per
``word_bits`` word (bits / word_bits words, no rounding per tensor):

- activations: every record's output (its ``out_shape``) is written once and read once, at
  ``activation_bits`` per element. They live in SRAM when twice the largest activation (a
  layer's input and output at once) fits in it, else in DRAM. The network input and
  re-reads by several consumers (dense patterns) are not counted.
- weights: every stored bit (``storage_bits``) is read once per image. Float parameters are
  stored at the ``float_precision`` width (32 bits on fp32 hardware, 8 on an int8 one).
  They are read from SRAM when they fit beside the activations' working set, else streamed
  from DRAM.

Energies are in picojoules (pJ).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence

from .profiles import PRECISIONS, HardwareProfile

__all__ = ["Energy", "network_energy", "layer_precision", "op_prices", "MemoryPlan", "memory_plan"]

FLOAT_BITS = 32


class Energy(NamedTuple):
    """pJ of one record: arithmetic, weight reads, activation writes and reads."""

    compute: float
    weights: float
    activations: float

    @property
    def total(self) -> float:
        return self.compute + self.weights + self.activations


@dataclass(frozen=True, slots=True)
class MemoryPlan:
    """Where weights and activations live, and what one bit of traffic costs there."""

    weights_on_chip: bool
    activations_on_chip: bool
    weight_pj_per_bit: float
    activation_pj_per_bit: float  # one write plus one read
    weight_bits: float  # total weight traffic, at the hardware's storage widths
    peak_activation_bytes: float


def layer_precision(weight_bits: int, activation_bits: int, profile: HardwareProfile) -> str:
    """The precision a layer of these widths computes in on ``profile`` (see module docstring)."""
    width = max(weight_bits, activation_bits)
    if width >= FLOAT_BITS:
        return profile.float_precision
    if width == 1:
        return "int1"
    return f"int{width}"


def op_prices(weight_bits: int, activation_bits: int, profile: HardwareProfile) -> tuple[float, ...]:
    """(mul, add, xnor, shift) pJ for a record of these widths on ``profile``.

    The one source of the op prices: ``network_energy`` and ``optinas.strategies.report.breakdown`` both use it.
    """
    precision = layer_precision(weight_bits, activation_bits, profile)
    xnor = profile.op_energy("xnor", "int1")
    if precision == "int1":
        # Binary: products are XNORs, additions are popcount bits, multiplications (and any
        # shifts) are the float scale factors applied to each output.
        scale = profile.float_precision
        return (profile.op_energy("mul", scale), profile.op_energy("add", "int1"), xnor,
                profile.op_energy("shift", scale))
    return (profile.op_energy("mul", precision), profile.op_energy("add", precision), xnor,
            profile.op_energy("shift", precision))


def _stored_bits(record, float_bits: int) -> float:
    # Float parameters take the hardware's float width; quantised/binary ones keep theirs.
    if record.weight_bits >= FLOAT_BITS and float_bits < FLOAT_BITS:
        return record.storage_bits * float_bits / FLOAT_BITS
    return float(record.storage_bits)


def memory_plan(records: Sequence, profile: HardwareProfile, sizes: Sequence[int]) -> MemoryPlan:
    """Decide SRAM or DRAM for the network's activations and weights (module docstring)."""
    float_bits = PRECISIONS[profile.float_precision]
    weight_bits = sum(_stored_bits(record, float_bits) for record in records)
    peak_bytes = max(sizes, default=0) * profile.activation_bits / 8
    working_set = 2 * peak_bytes
    activations_on_chip = working_set <= profile.sram_bytes
    beside = working_set if activations_on_chip else 0.0
    weights_on_chip = weight_bits / 8 + beside <= profile.sram_bytes
    word = profile.word_bits
    if activations_on_chip:
        activation_pj = (profile.sram_write_pj + profile.sram_read_pj) / word
    else:
        activation_pj = (profile.dram_write_pj + profile.dram_read_pj) / word
    weight_pj = (profile.sram_read_pj if weights_on_chip else profile.dram_read_pj) / word
    return MemoryPlan(weights_on_chip, activations_on_chip, weight_pj, activation_pj, weight_bits, peak_bytes)


def network_energy(records: Sequence, profile: HardwareProfile,
                   sizes: Sequence[int]) -> tuple[tuple[Energy, ...], MemoryPlan]:
    """Energy of every record (same order) and the memory plan they were priced under.

    ``sizes`` are the records' output elements (``LayerCost.activations``).
    """
    plan = memory_plan(records, profile, sizes)
    float_bits = PRECISIONS[profile.float_precision]
    weight_pj = plan.weight_pj_per_bit
    activation_pj = profile.activation_bits * plan.activation_pj_per_bit
    prices: dict[tuple[int, int], tuple[float, ...]] = {}
    energies = []
    for record, size in zip(records, sizes):
        key = (record.weight_bits, record.activation_bits)
        price = prices.get(key)
        if price is None:
            price = prices[key] = op_prices(*key, profile)
        compute = (record.mul * price[0] + record.add * price[1]
                   + record.xnor * price[2] + record.shift * price[3])
        # The bits the memory plan counted: float parameters at the hardware's float width.
        weights = _stored_bits(record, float_bits) * weight_pj
        energies.append(Energy(compute, weights, size * activation_pj))
    return tuple(energies), plan
