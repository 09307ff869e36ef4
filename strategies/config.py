"""Settings of one search, as small frozen dataclasses, one per concern."""

from __future__ import annotations

import hashlib
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optinas.search_space.errors import ConfigError, shown
from optinas.search_space.packaged_spaces import space_source
from optinas.strategies.budgets import Budget, parse_count  # Budget lives in budgets.py; re-exported here
from optinas.strategies.objectives import DEFAULT_OBJECTIVES, parse_objectives
from optinas.strategies.samplers import SAMPLERS
from optinas.strategies.storage import check_storage_url

__all__ = ["Budget", "SearchConfig", "parse_count", "check_study_name", "SAMPLERS", "BACKENDS", "PRUNERS"]

BACKENDS = ("optuna", "ray")
PRUNERS = ("median", "hyperband", "none")
_STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # fullmatch: "$" would let "name\n" in


def check_study_name(name: Any) -> None:
    """A study name is also a folder name under runs/: plain characters only."""
    if not isinstance(name, str) or not _STUDY_NAME.fullmatch(name):
        raise ConfigError(f"--study must be 1-100 letters, digits, '.', '_' or '-' (starting with a letter "
                          f"or digit), got {shown(name)}")


@dataclass(frozen=True)
class SearchConfig:
    """What to search and how long; everything that defines a study's results."""

    study: str = "digits-demo"
    task: str = "digits"
    trials: int = 24
    seed: int = 0
    sampler: str = "tpe"
    # Names from strategies.objectives.OBJECTIVES, in the order of the told values.
    objectives: tuple[str, ...] = DEFAULT_OBJECTIVES
    # Stops unpromising trials early from per-epoch reports (single-objective searches only).
    pruner: str = "median"
    epochs: int = 6
    device: str = "auto"
    threads: int | None = None
    space: Path | None = None
    budget: Budget = field(default_factory=Budget)
    runs_dir: Path = Path("runs")
    # Where torchvision-format data sets live (--data-dir), and whether to fetch them.
    data_dir: Path | None = None
    download: bool = False
    # Proxy fidelity (evaluator.Fidelity): share of the training split used, CUDA-graph
    # capture of the training step, and the narrower or lower-resolution proxy model that
    # trial.py trains through evaluator.proxy_genotype (width_multiplier, resolution).
    train_fraction: float = 1.0
    cuda_graphs: bool = False
    width_multiplier: float = 1.0
    resolution: int | None = None
    # A candidate still training after this many seconds fails ("time limit"); the search goes on.
    trial_time_limit_s: float | None = None
    # Execution: worker processes on this machine, and a database URL shared by machines.
    workers: int = 1
    storage: str | None = None
    # Ray Tune instead of Optuna's own loop: cluster address, resources of one trial.
    backend: str = "optuna"
    address: str | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0

    def __post_init__(self) -> None:
        check_study_name(self.study)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            raise ConfigError(f"--seed must be an integer in 0..4294967295, got {shown(self.seed)}")
        if not 1 <= self.trials <= 1_000_000:
            raise ConfigError(f"--trials must be between 1 and 1000000, got {self.trials}")
        if not 1 <= self.epochs <= 10_000:
            raise ConfigError(f"--epochs must be between 1 and 10000, got {self.epochs}")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"--sampler must be one of {', '.join(SAMPLERS)}; got {self.sampler!r}")
        object.__setattr__(self, "objectives", tuple(o.name for o in parse_objectives(self.objectives)))
        if self.pruner not in PRUNERS:
            raise ConfigError(f"--pruner must be one of {', '.join(PRUNERS)}; got {shown(self.pruner)}")
        if len(self.objectives) > 1 and self.pruner not in ("median", "none"):
            # median is the default, so a multi-objective search given no --pruner is not refused.
            raise ConfigError(f"--pruner {self.pruner} acts only in single-objective searches (it prunes on "
                              f"accuracy alone) and this one has objectives {', '.join(self.objectives)}; "
                              "drop --pruner or pass --objectives accuracy")
        if self.backend not in BACKENDS:
            raise ConfigError(f"--backend must be one of {', '.join(BACKENDS)}; got {self.backend!r}")
        if not 1 <= self.workers <= 256:
            raise ConfigError(f"--workers must be between 1 and 256, got {self.workers}")
        if not 0 < self.width_multiplier <= 1:
            raise ConfigError(f"--width-multiplier must be in (0, 1], got {self.width_multiplier}")
        if self.resolution is not None and not 4 <= self.resolution <= 1024:
            raise ConfigError(f"--resolution must be between 4 and 1024 pixels, got {self.resolution}")
        if self.trial_time_limit_s is not None and not 0 < self.trial_time_limit_s < math.inf:
            raise ConfigError(f"--trial-time-limit must be a positive, finite number of seconds, "
                              f"got {self.trial_time_limit_s}")
        if not 0 < self.cpus_per_trial <= 1024:
            raise ConfigError(f"--cpus-per-trial must be in (0, 1024], got {self.cpus_per_trial}")
        if not 0 <= self.gpus_per_trial <= 8:
            raise ConfigError(f"--gpus-per-trial must be between 0 and 8, got {self.gpus_per_trial}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"--device must be auto, cpu or cuda; got {self.device!r}")
        if self.threads is not None and not 1 <= self.threads <= 1024:
            raise ConfigError(f"--threads must be between 1 and 1024, got {self.threads}")
        if not 0 < self.train_fraction <= 1:
            raise ConfigError(f"--train-fraction must be in (0, 1], got {self.train_fraction}")
        if self.storage is not None:
            check_storage_url(self.storage)
        object.__setattr__(self, "runs_dir", Path(self.runs_dir))
        if self.data_dir is not None:
            object.__setattr__(self, "data_dir", Path(self.data_dir))

    @property
    def cpu_threads(self) -> int:
        """Intra-op threads for CPU training: given, or half the cores.

        Half, because OpenMP threads spin while they wait: on a machine whose cores are also
        busy with anything else, two threads on two cores ran a digits trial 7-9x slower
        than one (measured 2026-11-22 on the 2-core sandbox), and small proxy models gain
        little from more threads anyway.
        """

        return self.threads or max(1, min(8, (os.cpu_count() or 2) // 2))

    @property
    def run_dir(self) -> Path:
        return self.runs_dir / self.study

    @property
    def objective_list(self):
        """The objectives as ``optinas.strategies.objectives.Objective`` records, in value order."""
        return parse_objectives(self.objectives)

    @property
    def prunes(self) -> bool:
        """Pruning applies to single-objective searches only (Optuna prunes one value)."""
        return self.pruner != "none" and len(self.objectives) == 1

    def identity(self) -> dict[str, Any]:
        """The settings a resumed study must share with the one it continues.

        The trial count may grow, and the device, workers and backend resources may change;
        anything else would mix results of different searches in one study. The pruner counts
        only where it acts (single-objective searches).
        """
        extra = {"objectives": list(self.objectives)}
        if self.prunes:
            extra["pruner"] = self.pruner
        return {"task": self.task, "seed": self.seed, "sampler": self.sampler,
                "epochs": self.epochs, **extra, **self.budget.identity(), **self.proxy_identity(),
                **self.space_identity()}

    def space_identity(self) -> dict[str, Any]:
        """A custom space file by its content, so an edited file cannot resume the study."""
        if self.space is None:
            return {}
        _, text = space_source(self.space)  # a packaged name or a file; one sentence if neither
        return {"space.sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]}

    def proxy_identity(self) -> dict[str, Any]:
        """The proxy settings that change results, under ``proxy.`` keys, where not default.

        Left out at their defaults so that studies created before they existed still
        resume; ``cuda_graphs`` changes speed only and is never part of it.
        """
        defaults = {"train_fraction": 1.0, "width_multiplier": 1.0, "resolution": None}
        return {f"proxy.{name}": getattr(self, name) for name, default in defaults.items()
                if getattr(self, name) != default}

    def to_dict(self) -> dict[str, Any]:
        data = {"study": self.study, "trials": self.trials, "device": self.device,
                "backend": self.backend, **self.identity()}
        if self.storage is not None:
            # Never a password on disk: the database driver finds it in PGPASSWORD or ~/.pgpass.
            data["storage"] = re.sub(r"://([^:/@]+):[^@]*@", r"://\1@", self.storage)
        if self.space is not None:
            data["space"] = str(self.space)
        if self.data_dir is not None:
            data["data_dir"] = str(self.data_dir)
        if self.budget.hardware is not None:
            data["hardware"] = self.budget.hardware
        if self.trial_time_limit_s is not None:
            data["trial_time_limit_s"] = self.trial_time_limit_s
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], **overrides: Any) -> "SearchConfig":
        """The config ``to_dict`` wrote (a study's stored settings), with ``overrides`` applied.

        ``optinas worker`` rebuilds the search's config this way, then sets its own
        runs_dir, device and threads.
        """
        limits = {key[len("budget."):]: value for key, value in data.items()
                  if key.startswith("budget.") and key != "budget.hardware"}
        budget = Budget(**limits, hardware=data.get("budget.hardware", data.get("hardware")))
        proxy = {key[len("proxy."):]: value for key, value in data.items() if key.startswith("proxy.")}
        known = ("study", "task", "trials", "seed", "sampler", "objectives", "pruner", "epochs", "device",
                 "space", "data_dir", "storage", "backend", "trial_time_limit_s")
        values = {key: data[key] for key in known if key in data}
        values.setdefault("pruner", "none")  # stored only where it acts
        if "objectives" in values:
            values["objectives"] = tuple(values["objectives"])
        return cls(**{**values, **proxy, "budget": budget, **overrides})
