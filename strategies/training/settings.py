"""What ``optinas train`` trains and how: the flags, checked, and where the results go.

Everything is validated here, before a file is written: a bad flag, a missing target or a
genotype that does not fit the task is one sentence (``ConfigError``/``GenotypeError``).
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from optinas.evaluator.full_training import DECAYS, TrainingPlan
from optinas.search_space import Genotype, InputSpec, load_genotype
from optinas.search_space.errors import ConfigError
from optinas.search_space.presets import PRESETS, preset
from optinas.strategies.files import read_toml
from optinas.strategies.status import TrialStatus

__all__ = ["TrainSettings", "Target", "resolve_target", "with_study_defaults", "proxy_accuracies"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass(frozen=True)
class TrainSettings:
    """The flags of ``optinas train`` (``task=None``: digits, or the study's task for its models)."""

    target: str
    task: str | None = None
    data_dir: str | None = None
    download: bool = False
    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.05
    warmup_epochs: float = 1.0
    schedule: str = "cosine"
    name: str | None = None
    device: str = "auto"
    seed: int = 0
    threads: int | None = None
    runs_dir: Path = Path("runs")

    def __post_init__(self) -> None:
        def bad(flag: str, value: Any, allowed: str) -> ConfigError:
            return ConfigError(f"--{flag} must be {allowed}, got {value!r}")

        if not 1 <= self.epochs <= 100_000:
            raise bad("epochs", self.epochs, "an integer between 1 and 100000")
        if not 1 <= self.batch_size <= 1_000_000:
            raise bad("batch-size", self.batch_size, "a positive integer")
        if not (math.isfinite(self.lr) and 0 < self.lr <= 100):
            raise bad("lr", self.lr, "a number in (0, 100]")
        if not (math.isfinite(self.warmup_epochs) and 0 <= self.warmup_epochs <= self.epochs):
            raise bad("warmup", self.warmup_epochs, f"a number of epochs in [0, --epochs={self.epochs}]")
        if self.schedule not in DECAYS:
            raise bad("schedule", self.schedule, f"one of {', '.join(DECAYS)}")
        if self.name is not None and not _NAME.fullmatch(self.name):  # fullmatch: "$" lets "name\n" in
            raise bad("name", self.name, "1-100 letters, digits, '.', '_' or '-', starting with a letter or digit")
        if not 0 <= self.seed < 2**32:
            raise bad("seed", self.seed, "an integer in 0..2**32 - 1")
        if self.threads is not None and not 1 <= self.threads <= 1024:
            raise bad("threads", self.threads, "a positive integer")
        object.__setattr__(self, "runs_dir", Path(self.runs_dir))

    @property
    def cpu_threads(self) -> int:
        """Given, or half the cores (as ``optinas search``: spinning OpenMP threads fight)."""
        return self.threads or max(1, min(8, (os.cpu_count() or 2) // 2))

    def plan(self) -> TrainingPlan:
        return TrainingPlan(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                            warmup_epochs=self.warmup_epochs, decay=self.schedule)


@dataclass(frozen=True)
class Target:
    """The architecture to train, resolved, and the folder its results go to."""

    genotype: Genotype
    run_dir: Path
    label: str  # what the user named: a preset, a file, or STUDY/best/N
    proxy_accuracy: float | None = None  # the search's validation accuracy, for best/N


def study_task_defaults(study_dir: Path) -> dict[str, Any]:
    """The task, seed and data flags a study was searched with (its config.toml)."""
    config = study_dir / "config.toml"
    if not config.is_file():
        raise ConfigError(f"{str(study_dir)!r} has no config.toml; is it a study folder under runs/?")
    stored = read_toml(config)
    return {key: stored[key] for key in ("task", "seed", "data_dir") if key in stored}


def _best_folder(path: Path) -> bool:
    return path.is_dir() and path.parent.name == "best" and path.name.isdigit()


def with_study_defaults(settings: TrainSettings) -> TrainSettings:
    """For a ``best/N`` target without ``--task``: the study's task, seed and data folder."""
    path = Path(settings.target)
    if settings.task is not None or not _best_folder(path):
        return settings
    stored = study_task_defaults(path.parent.parent)
    return replace(settings, task=stored.get("task", "digits"),
                   data_dir=settings.data_dir or stored.get("data_dir"))


def resolve_target(settings: TrainSettings, input_spec: InputSpec) -> Target:
    """The genotype and run folder of ``settings.target`` for a task with ``input_spec``.

    Raises:
        ConfigError, GenotypeError: If the target is not a preset, genotype file or best/N
            folder, or its input differs from the task's.
    """
    path = Path(settings.target)
    if _best_folder(path):
        if settings.name is not None:
            raise ConfigError(f"--name does not apply to {settings.target!r}: a best/N model is "
                              "trained into its study's final/N/ folder")
        study_dir, number = path.parent.parent, int(path.name)
        genotype = load_genotype(path)
        run_dir, label = study_dir / "final" / path.name, f"{study_dir.name}/best/{number}"
        proxy = _proxy_accuracy(study_dir, number)
    elif settings.target in PRESETS and not path.exists():
        genotype, label, proxy = preset(settings.target, input_spec), settings.target, None
        run_dir = settings.runs_dir / "train" / (settings.name or settings.target)
    else:
        genotype, label, proxy = load_genotype(path), settings.target, None
        run_dir = settings.runs_dir / "train" / (settings.name or _NAME_SAFE.sub("-", path.stem) or "model")
    if genotype.input != input_spec:
        raise ConfigError(f"{label!r} takes input {genotype.input.shape} with {genotype.input.classes} "
                          f"classes, but the task has {input_spec.shape} with {input_spec.classes}; "
                          "choose the task it was searched on (--task)")
    return Target(genotype=genotype, run_dir=run_dir, label=label, proxy_accuracy=proxy)


_NAME_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _proxy_accuracy(study_dir: Path, number: int) -> float | None:
    """The search's validation accuracy of trial ``number`` (trials.jsonl), or None."""
    return proxy_accuracies(study_dir).get(number)


def proxy_accuracies(study_dir: Path) -> dict[int, float]:
    """Trial number -> the proxy (search) validation accuracy, for the study's trained trials.

    The accuracy is the value of the objective named "accuracy" in config.toml's
    ``objectives`` (studies without the key searched accuracy and mults).
    """
    config = study_dir / "config.toml"
    objectives = list(read_toml(config).get("objectives", ["accuracy", "mults"])) if config.is_file() else []
    if "accuracy" not in objectives:
        return {}
    index = objectives.index("accuracy")
    path = study_dir / "trials.jsonl"
    if not path.is_file():
        return {}
    accuracies = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line) if line.strip() else {}
        if row.get("status") == TrialStatus.TRAINED and row.get("values"):
            accuracies[int(row["number"])] = float(row["values"][index])
    return accuracies
