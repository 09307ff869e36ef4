"""The per-layer cost table that ``optinas cost`` prints and ``best/<trial>/cost.txt`` holds.

Like larq's model summary, but for these arithmetic kinds: one row per counted operation
(layer, type, output shape, mul, add, xnor, BOPs, params, storage bits, energy), then the
two totals and a few lines on storage, activation memory and where the energy goes.
Large counts are shortened to four significant digits (2.359M); ``--json`` has them exact.
"""

from __future__ import annotations

from .records import Cost

__all__ = ["cost_table", "format_count", "format_energy", "format_bits"]

_COLUMNS = (("layer", 38, "<"), ("type", 9, "<"), ("output", 11, "<"), ("mul", 9, ">"), ("add", 9, ">"),
            ("xnor", 9, ">"), ("BOPs", 9, ">"), ("params", 9, ">"), ("bits", 9, ">"), ("energy", 10, ">"))


def format_count(value: float) -> str:
    """Exact below 100,000, else four significant digits with k/M/G/T: 2359296 -> '2.359M'."""
    if abs(value) < 100_000:
        return f"{value:,.0f}"
    for suffix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.4g}{suffix}"
    return str(value)


def format_energy(picojoules: float) -> str:
    """A readable energy: 1234567 pJ -> '1.23 uJ'."""
    for unit, scale in (("J", 1e12), ("mJ", 1e9), ("uJ", 1e6), ("nJ", 1e3)):
        if picojoules >= scale:
            return f"{picojoules / scale:.3g} {unit}"
    return f"{picojoules:.3g} pJ"


def format_bits(bits: float) -> str:
    """A readable size in bytes: 1638400 bits -> '200 KiB'."""
    size = bits / 8
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size:.3g} B"


def _row(cells) -> str:
    parts = []
    for (_, width, align), cell in zip(_COLUMNS, cells):
        text = str(cell)
        if len(text) > width:
            text = text[: width - 1] + "~"  # long names keep their column
        parts.append(f"{text:{align}{width}}")
    return " ".join(parts).rstrip()


def _totals_row(label: str, totals: dict) -> str:
    return _row([label, "", "", format_count(totals["mul"]), format_count(totals["add"]),
                 format_count(totals["xnor"]), format_count(totals["bops"]), format_count(totals["params"]),
                 format_count(totals["storage_bits"]), format_energy(totals["energy_pj"])])


def cost_table(cost: Cost, title: str = "") -> str:
    """The table as text; rows marked * are counted in AdderNet's view."""
    header = _row([name for name, _, _ in _COLUMNS])
    rule = "-" * len(header)
    lines = [title] if title else []
    lines += [header, rule]
    for record, energy in zip(cost.records, cost.energies):
        shape = "x".join(str(size) for size in record.out_shape)
        kind = record.op + ("*" if record.paper else "")
        lines.append(_row([record.name, kind, shape, format_count(record.mul), format_count(record.add),
                           format_count(record.xnor), format_count(record.bops), format_count(record.params),
                           format_count(record.storage_bits), format_energy(energy.total)]))
    total, paper = cost.total, cost.paper
    lines += [rule, _totals_row("total", total), _totals_row("AdderNet view (* rows)", paper),
              _totals_row("weighted layers (* + first, last)", cost.weighted), rule]
    memory = cost.memory
    profile = cost.hardware
    where = {True: "SRAM", False: "DRAM"}
    lines += [
        "* AdderNet counts weighted layers other than the first and the last (no BatchNorm, skip sums, "
        "coefficients or pooling); 'total' counts everything.",
        f"storage: {format_bits(total['storage_bits'])} ({total['storage_bits']:,} bits), "
        f"{total['params']:,} parameters",
        f"activations: {total['activations']:,} elements written per image, largest tensor "
        f"{total['peak_activation']:,} elements ({format_bits(total['peak_activation'] * 32)} at fp32)",
        f"energy on {profile.name}: {format_energy(total['energy_pj'])} per image = compute "
        f"{format_energy(total['energy_compute_pj'])} + weights {format_energy(total['energy_weights_pj'])} "
        f"({where[memory.weights_on_chip]}) + activations {format_energy(total['energy_activations_pj'])} "
        f"({where[memory.activations_on_chip]})",
        f"  {profile.description}",
    ]
    return "\n".join(lines) + "\n"
