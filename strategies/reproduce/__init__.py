"""``optinas reproduce``: the papers' experiments the project can rerun, by name.

Each experiment is one module with a ``run(options, folder) -> str`` function, registered
below with a one-line summary and the optional flags it accepts. It writes its table and
figure under ``RUNS/reproduce/NAME/`` (one atomic swap of the folder) and returns a summary
for the terminal. Experiment modules are imported only when run, so ``--list`` is instant.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

from optinas.search_space.errors import ConfigError

__all__ = ["ReproduceOptions", "Experiment", "EXPERIMENTS", "get_experiment", "list_text",
           "parse_depths", "reproduce"]

MAX_DEPTH = 200


@dataclass(frozen=True)
class ReproduceOptions:
    """What the command line asked for; None means "the experiment's own setting".

    Attributes:
        fast: The experiment's quick smoke setting (seconds, for tests and a first look).
        epochs: Training epochs, overriding the paper's (or ``fast``'s).
        depths: Network depths, overriding the paper's (or ``fast``'s).
        batch_size: Mini-batch size, overriding the experiment's.
        seed: Seeds the data and the training.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        runs_dir: Results go to ``runs_dir/reproduce/NAME/``.
        quiet: No progress lines.
        data_dir: Where an experiment on a real data set finds it (``--data-dir``).
    """

    fast: bool = False
    epochs: int | None = None
    depths: tuple[int, ...] | None = None
    batch_size: int | None = None
    seed: int = 0
    device: str = "auto"
    runs_dir: Path = Path("runs")
    quiet: bool = False
    data_dir: str | None = None

    def __post_init__(self) -> None:
        for flag, value in (("--epochs", self.epochs), ("--batch-size", self.batch_size)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"{flag} must be a positive integer, got {value!r}")
        if self.seed < 0:
            raise ConfigError(f"--seed must be a non-negative integer, got {self.seed!r}")
        if self.depths is not None and not self.depths:
            raise ConfigError("--depths must name at least one depth, got none")

    def given(self) -> set[str]:
        """The optional flags set (not None), by their option name."""
        return {name for name in ("epochs", "depths", "batch_size", "data_dir") if getattr(self, name) is not None}


@dataclass(frozen=True)
class Experiment:
    """One rerunnable experiment of the papers.

    Attributes:
        name: What ``optinas reproduce NAME`` takes.
        summary: One line for ``--list``: the paper, the table or figure, the setting.
        module: The module (inside this package) whose ``run(options, folder)`` runs it.
        accepts: The optional flags it understands (``epochs``, ``depths``, ``batch_size``,
            ``data_dir``).
    """

    name: str
    summary: str
    module: str
    accepts: frozenset[str] = field(default_factory=frozenset)

    def run(self, options: ReproduceOptions) -> str:
        unknown = sorted(options.given() - self.accepts)
        if unknown:
            flags = ", ".join("--" + name.replace("_", "-") for name in unknown)
            raise ConfigError(f"experiment {self.name!r} does not take {flags}; see optinas reproduce --list")
        folder = Path(options.runs_dir) / "reproduce" / self.name
        return importlib.import_module(f"{__name__}.{self.module}").run(options, folder)


EXPERIMENTS: dict[str, Experiment] = {experiment.name: experiment for experiment in (
    Experiment("optnet-table2",
               "Li et al. Table 2: MSE vs depth (10-40) of GD/HB/AGD/AGD2/ADMM-inspired sigmoid nets "
               "on 10,000 random N(0, I) pairs, 1,000 epochs; no data needed; ~3 h on one CPU core",
               "optnet_table2", frozenset({"epochs", "depths", "batch_size"})),
    Experiment("adder-toys",
               "AdderNet Figs. 4-6: two-layer FC nets vs AdderNets on the 2-D toys (unit ball, two "
               "balls, x*y sign), 10,000 iterations; no data needed; ~10 min on one CPU core",
               "adder_toys", frozenset({"batch_size"})),
    Experiment("cifar10-compare",
               "AdderNet Table 2 (ResNet-20: CNN, AdderNet, BNN) and Li et al. Table 4 (ResNet vs HB-Net) "
               "on CIFAR-10, 40 epochs each; needs --data-dir (or OPTINAS_DATA); ~40 min on one GPU "
               "(estimate, not yet run)",
               "cifar10_compare", frozenset({"epochs", "batch_size", "data_dir"})),
)}


def get_experiment(name: str) -> Experiment:
    """The registered experiment called ``name``; a ConfigError naming the known ones otherwise."""
    if name not in EXPERIMENTS:
        raise ConfigError(f"unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)} "
                          "(optinas reproduce --list describes them)")
    return EXPERIMENTS[name]


def list_text() -> str:
    """One line per experiment: its name, then its summary."""
    width = max(map(len, EXPERIMENTS))
    return "\n".join(f"{name:<{width}}  {experiment.summary}" for name, experiment in EXPERIMENTS.items())


def parse_depths(text: str) -> tuple[int, ...]:
    """'10,20,30,40' -> (10, 20, 30, 40); a ConfigError for anything else."""
    parts = [part.strip() for part in str(text).split(",")]
    if not all(part.isdigit() and 1 <= int(part) <= MAX_DEPTH for part in parts):
        raise ConfigError(f"--depths must be comma-separated integers in [1, {MAX_DEPTH}] like 10,20,30,40; "
                          f"got {text!r}")
    return tuple(sorted(set(map(int, parts))))


def reproduce(name: str, options: ReproduceOptions) -> str:
    """Runs experiment ``name`` and returns its summary; see :class:`ReproduceOptions`."""
    return get_experiment(name).run(options)
