"""What a search optimises: validation accuracy (maximised) and hardware costs (minimised).

``--objectives accuracy`` is a single-objective search (budgets still apply as constraints,
and per-epoch pruning is available); ``--objectives accuracy,energy`` is a Pareto search.
The order given is the order of the values told to Optuna, so ``trial.values[i]`` belongs to
``objectives[i]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import moocore
import numpy as np

from optinas.search_space.errors import ConfigError

__all__ = ["Objective", "OBJECTIVES", "DEFAULT_OBJECTIVES", "parse_objectives", "objectives_of", "objective_values",
           "directions", "dominates", "pareto_indices", "accuracy_index"]


@dataclass(frozen=True)
class Objective:
    """One objective: its name on the command line, direction, and where its value comes from.

    ``cost_key`` names the field of ``Cost.total`` it reads; accuracy reads the trained
    model's validation accuracy and latency the measured batch-1 forward time instead.
    """

    name: str
    direction: str  # "maximize" or "minimize"
    label: str  # axis title in the report
    cost_key: str | None = None
    limit: str | None = None  # the Budget field that bounds it (max_mults, ...)

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"

    @property
    def worst(self) -> float:
        """The value an untrained (infeasible) candidate reports for a maximised objective."""
        return 0.0


OBJECTIVES: dict[str, Objective] = {objective.name: objective for objective in (
    Objective("accuracy", "maximize", "validation accuracy"),
    Objective("mults", "minimize", "multiplications per image", "mul", "max_mults"),
    Objective("energy", "minimize", "energy per image (pJ)", "energy_pj", "max_energy"),
    Objective("params", "minimize", "parameters", "params", "max_params"),
    Objective("storage", "minimize", "storage (bits)", "storage_bits", "max_storage"),
    Objective("latency", "minimize", "batch-1 latency (ms)", limit="max_latency_ms"),
)}
DEFAULT_OBJECTIVES = ("accuracy", "mults")


def parse_objectives(text: str | list | tuple) -> tuple[Objective, ...]:
    """'accuracy,energy' -> the objectives, in order; accuracy must be one of them.

    A search without accuracy would only ever find the empty network, so it is refused.
    """
    names = [name.strip() for name in text.split(",")] if isinstance(text, str) else list(text)
    unknown = [name for name in names if name not in OBJECTIVES]
    if unknown or not names:
        raise ConfigError(f"--objectives must be a comma-separated list of {', '.join(OBJECTIVES)}; "
                          f"got {text!r}")
    if len(set(names)) != len(names):
        raise ConfigError(f"--objectives names an objective twice: {text!r}")
    if "accuracy" not in names:
        raise ConfigError(f"--objectives must include accuracy (the others are costs to trade it "
                          f"against); got {text!r}")
    return tuple(OBJECTIVES[name] for name in names)


def objectives_of(settings: dict) -> tuple[Objective, ...]:
    """The objectives a study's stored settings (config.toml) name; older studies: the default."""
    names = settings.get("objectives") or DEFAULT_OBJECTIVES
    return parse_objectives(names if isinstance(names, str) else list(names))


def accuracy_index(objectives) -> int:
    """Where accuracy sits among the values (``--objectives mults,accuracy`` puts it second)."""
    return [objective.name for objective in objectives].index("accuracy")


def directions(objectives) -> list[str]:
    return [objective.direction for objective in objectives]


def objective_values(objectives, cost_total: dict, accuracy: float,
                     latency_ms: float | None = None) -> tuple[float, ...]:
    """The values to tell Optuna, in the order of ``objectives``."""
    values = []
    for objective in objectives:
        if objective.name == "accuracy":
            values.append(float(accuracy))
        elif objective.name == "latency":
            if latency_ms is None:
                raise ValueError("the latency objective needs the measured latency")
            values.append(float(latency_ms))
        else:
            values.append(float(cost_total[objective.cost_key]))
    return tuple(values)


def _as_minimised(values, objectives) -> tuple[float, ...]:
    return tuple(-value if objective.maximize else value for value, objective in zip(values, objectives))


def dominates(a, b, objectives) -> bool:
    """Whether values ``a`` Pareto-dominate values ``b`` (no worse everywhere, better once)."""
    a, b = _as_minimised(a, objectives), _as_minimised(b, objectives)
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def pareto_indices(points, objectives) -> list[int]:
    """Indices of the points no other point dominates (ties all kept), in their order.

    The one Pareto filter of optinas (fronts, exports, the report): moocore's
    ``is_nondominated``, which sorts rather than comparing every pair.
    """
    if len(points) == 0:
        return []
    data = np.asarray(points, dtype=float).reshape(len(points), len(objectives))
    keep = moocore.is_nondominated(data, maximise=[objective.maximize for objective in objectives],
                                   keep_weakly=True)
    return [int(index) for index in np.flatnonzero(keep)]
