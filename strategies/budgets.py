"""Hard budgets: limits on what a candidate may cost, checked before it is trained.

Every limit but latency is analytic (``optinas.search_space.count_cost``): multiplications, energy on
a hardware profile, parameters and storage. Latency is *measured*, not modelled: the median
wall time of a batch-1 forward pass of the built, untrained model on the search's device,
taken only for candidates that already meet the analytic limits (it needs the model built).

A trial reports one Optuna constraint per limit, ``measured / limit - 1`` (<= 0 feasible),
through ``Trial.set_constraint``, so the sampler learns the feasible region; relative values
weigh limits of very different scales alike in its penalty (the sum of positive ones).
"""

from __future__ import annotations

import math
import re
import statistics
import time
from dataclasses import dataclass, fields
from typing import Any

import torch

from optinas.search_space.errors import ConfigError

__all__ = ["Budget", "parse_count", "parse_energy", "parse_storage", "measure_latency_ms"]

_COUNT_SUFFIXES = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_NUMBER = r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*"
# Energy units in pJ; "u" and the micro sign both mean micro.
_ENERGY_UNITS = {"pJ": 1.0, "nJ": 1e3, "uJ": 1e6, "µJ": 1e6, "mJ": 1e9, "J": 1e12}
# Storage units in bits: b/bit are bits, B bytes; k/M/G are powers of 1000, Ki/Mi/Gi of 1024.
_STORAGE_UNITS = {
    "b": 1, "bit": 1, "bits": 1, "kb": 10**3, "kbit": 10**3, "Mb": 10**6, "Mbit": 10**6,
    "Gb": 10**9, "Gbit": 10**9,
    "B": 8, "kB": 8 * 10**3, "KB": 8 * 10**3, "MB": 8 * 10**6, "GB": 8 * 10**9,
    "KiB": 8 * 2**10, "MiB": 8 * 2**20, "GiB": 8 * 2**30,
}


def parse_count(text: str | int | float, what: str) -> int:
    """'2e6', '2M', '500k', '1.5G' -> an integer count; anything else is a ConfigError."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        match = re.fullmatch(_NUMBER + r"([kKmMgGtT]?)\s*", str(text))
        if not match:
            raise ConfigError(f"{what} must be a count like 2000000, 2e6, 2M or 500k; got {text!r}")
        value = float(match.group(1)) * _COUNT_SUFFIXES[match.group(2).lower()]
    # '1e400' is an infinite float: refused here, not an OverflowError in int() below.
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"{what} must be positive and finite, got {text!r}")
    count = int(round(value))
    if count < 1:
        raise ConfigError(f"{what} must be at least 1, got {text!r}")
    return count


def _with_unit(text: str, units: dict[str, float], what: str, example: str) -> float:
    match = re.fullmatch(_NUMBER + r"([A-Za-zµ]+)\s*", str(text))
    if not match or match.group(2) not in units:
        raise ConfigError(f"{what} must be a number with a unit ({', '.join(units)}), e.g. {example}; "
                          f"got {text!r}")
    value = float(match.group(1)) * units[match.group(2)]
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"{what} must be positive and finite, got {text!r}")
    return value


def parse_energy(text: str, what: str = "--max-energy") -> float:
    """'5uJ', '120 nJ', '0.3mJ' -> picojoules."""
    return _with_unit(text, _ENERGY_UNITS, what, "5uJ")


def parse_storage(text: str, what: str = "--max-storage") -> int:
    """'200KB', '1.5MiB', '800kbit' -> bits (B = bytes, b = bits; k/M/G = 1000^n, Ki/Mi = 1024^n)."""
    return int(math.ceil(_with_unit(text, _STORAGE_UNITS, what, "200KB")))


@dataclass(frozen=True)
class Budget:
    """Hard limits checked before any training (None = unlimited).

    Attributes:
        max_mults: multiplications per image (the honest total, ``Cost.mults``).
        max_energy: picojoules per image on ``hardware`` (``Cost.energy_pj``).
        max_params: trainable parameters.
        max_storage: bits to store the model for inference (``Cost.storage_bits``).
        max_latency_ms: measured batch-1 forward time on the search's device, in ms.
        hardware: the profile energies are priced on (name or TOML path; None: horowitz45).
    """

    max_mults: int | None = None
    max_energy: float | None = None
    max_params: int | None = None
    max_storage: int | None = None
    max_latency_ms: float | None = None
    hardware: str | None = None

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name.startswith("max_") and value is not None and not (value > 0 and math.isfinite(value)):
                flag = "--" + item.name.replace("_", "-")
                raise ConfigError(f"{flag} must be positive and finite, got {value!r}")
        if self.hardware is not None:
            from optinas.search_space.cost import load_profile

            load_profile(self.hardware)  # a bad profile fails here, before anything is written

    @classmethod
    def from_flags(cls, max_mults=None, max_energy=None, max_params=None, max_storage=None,
                   max_latency_ms=None, hardware=None) -> "Budget":
        """Parse command-line texts ('2M', '5uJ', '200KB', '12.5'); None leaves a limit off."""
        latency = None
        if max_latency_ms is not None:
            try:
                latency = float(max_latency_ms)
            except ValueError:
                raise ConfigError(f"--max-latency-ms must be a number of milliseconds, got {max_latency_ms!r}") from None
            if not (latency > 0 and math.isfinite(latency)):
                raise ConfigError(f"--max-latency-ms must be positive and finite, got {max_latency_ms!r}")
        return cls(
            max_mults=None if max_mults is None else parse_count(max_mults, "--max-mults"),
            max_energy=None if max_energy is None else parse_energy(max_energy),
            max_params=None if max_params is None else parse_count(max_params, "--max-params"),
            max_storage=None if max_storage is None else parse_storage(max_storage),
            max_latency_ms=latency, hardware=hardware,
        )

    def limits(self) -> dict[str, float]:
        """The limits that are set, by name (``max_mults``, ...)."""
        return {item.name: getattr(self, item.name) for item in fields(self)
                if item.name.startswith("max_") and getattr(self, item.name) is not None}

    def identity(self) -> dict[str, Any]:
        """What a resumed study must share: the limits, and the hardware when energy is bounded."""
        data = {f"budget.{name}": value for name, value in self.limits().items()}
        if self.max_energy is not None:
            data["budget.hardware"] = self.hardware or "horowitz45"
        return data

    @property
    def needs_latency(self) -> bool:
        return self.max_latency_ms is not None

    def measured(self, cost, latency_ms: float | None = None) -> dict[str, float]:
        """What each set limit bounds, for this candidate (latency only when measured)."""
        values = {"max_mults": cost.mults, "max_energy": cost.energy_pj, "max_params": cost.params,
                  "max_storage": cost.storage_bits, "max_latency_ms": latency_ms}
        return {name: values[name] for name in self.limits() if values[name] is not None}

    def violations(self, cost, latency_ms: float | None = None) -> dict[str, float]:
        """Relative excess per limit, Optuna's convention: <= 0 feasible, > 0 infeasible.

        The sign is decided by comparing the values themselves, so rounding in the ratio can
        never call a candidate over its limit feasible (or the reverse).
        """
        result = {}
        for name, value in self.measured(cost, latency_ms).items():
            limit = self.limits()[name]
            ratio = value / limit - 1.0
            result[name] = max(ratio, 1e-12) if value > limit else min(ratio, 0.0)
        return result


def measure_latency_ms(model, input_shape, device, repeats: int = 5) -> float:
    """Median wall time (ms) of a batch-1 forward pass of ``model`` on ``device``, in eval mode.

    One untimed pass first (allocations, lazy initialisation, kernel selection); CUDA is
    synchronised around each timed pass. The model is left on ``device`` in its prior mode.
    """

    was_training = model.training
    model.to(device).eval()
    image = torch.zeros((1, *input_shape), device=device)
    timings = []
    try:
        with torch.no_grad():
            for attempt in range(repeats + 1):
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                started = time.perf_counter()
                model(image)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if attempt:
                    timings.append((time.perf_counter() - started) * 1e3)
    finally:
        model.train(was_training)
    return statistics.median(timings)
