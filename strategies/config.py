"""Settings of one search, as small frozen dataclasses, one per concern."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from search_space.errors import ConfigError

__all__ = ["Budget", "SearchConfig", "parse_count", "SAMPLERS"]

SAMPLERS = ("tpe", "nsga2", "random")
_STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_SUFFIXES = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def parse_count(text: str | int | float, what: str) -> int:
    """'2e6', '2M', '500k', '1.5G' -> an integer count; anything else is a ConfigError."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMgGtT]?)\s*", str(text))
        if not match:
            raise ConfigError(f"{what} must be a count like 2000000, 2e6, 2M or 500k; got {text!r}")
        value = float(match.group(1)) * _SUFFIXES[match.group(2).lower()]
    if value <= 0:
        raise ConfigError(f"{what} must be positive, got {text!r}")
    return int(round(value))


@dataclass(frozen=True)
class Budget:
    """Hard limits checked analytically before any training (None = unlimited)."""

    max_mults: int | None = None

    def limits(self) -> dict[str, int]:
        return {name: value for name, value in asdict(self).items() if value is not None}

    def violations(self, cost) -> dict[str, float]:
        """Relative excess per limit, Optuna's convention: <= 0 feasible, > 0 infeasible.

        Relative (cost / limit - 1) so that limits of very different scales weigh alike in
        the sampler's penalty (the sum of the positive violations).
        """
        measured = {"max_mults": cost.mults}
        return {name: measured[name] / limit - 1.0 for name, limit in self.limits().items()}


@dataclass(frozen=True)
class SearchConfig:
    """What to search and how long; everything that defines a study's results."""

    study: str = "digits-demo"
    task: str = "digits"
    trials: int = 24
    seed: int = 0
    sampler: str = "tpe"
    epochs: int = 6
    device: str = "auto"
    threads: int | None = None
    budget: Budget = field(default_factory=Budget)
    runs_dir: Path = Path("runs")

    def __post_init__(self) -> None:
        if not _STUDY_NAME.match(self.study):
            raise ConfigError(
                f"--study must be 1-100 letters, digits, '.', '_' or '-' (starting with a letter "
                f"or digit), got {self.study!r}"
            )
        if not 1 <= self.trials <= 1_000_000:
            raise ConfigError(f"--trials must be between 1 and 1000000, got {self.trials}")
        if not 1 <= self.epochs <= 10_000:
            raise ConfigError(f"--epochs must be between 1 and 10000, got {self.epochs}")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"--sampler must be one of {', '.join(SAMPLERS)}; got {self.sampler!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"--device must be auto, cpu or cuda; got {self.device!r}")
        if self.threads is not None and not 1 <= self.threads <= 1024:
            raise ConfigError(f"--threads must be between 1 and 1024, got {self.threads}")
        object.__setattr__(self, "runs_dir", Path(self.runs_dir))

    @property
    def cpu_threads(self) -> int:
        """Intra-op threads for CPU training: given, or half the cores.

        Half, because OpenMP threads spin while they wait: on a machine whose cores are also
        busy with anything else, two threads on two cores ran a digits trial 7-9x slower
        than one (measured 2026-11-22 on the 2-core sandbox), and small proxy models gain
        little from more threads anyway.
        """
        import os

        return self.threads or max(1, min(8, (os.cpu_count() or 2) // 2))

    @property
    def run_dir(self) -> Path:
        return self.runs_dir / self.study

    def identity(self) -> dict[str, Any]:
        """The settings a resumed study must share with the one it continues.

        The trial count may grow and the device may change; anything else would mix results
        of different searches in one study.
        """
        return {"task": self.task, "seed": self.seed, "sampler": self.sampler,
                "epochs": self.epochs, **{f"budget.{k}": v for k, v in self.budget.limits().items()}}

    def to_dict(self) -> dict[str, Any]:
        data = {"study": self.study, "trials": self.trials, "device": self.device, **self.identity()}
        return data
