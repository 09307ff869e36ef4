"""Hypervolume of a search's Pareto front, against a stated reference point.

Values are first mapped to a unit box in which every objective is minimised: accuracy ``a``
becomes ``1 - a`` (reference: accuracy 0) and a cost ``c`` becomes ``c / c_ref``, where
``c_ref`` is the reference cost (reference: 1). The hypervolume is then a number in [0, 1]:
the share of the box between the ideal corner (accuracy 1 at zero cost) and the reference
point that the front dominates. Comparisons (samplers, seeds) must use one reference point.
"""

from __future__ import annotations

import moocore
import numpy as np

from optinas.strategies.status import WITH_ACCURACY

__all__ = ["hypervolume", "reference_point", "normalised", "front_hypervolume", "hypervolume_history"]


def hypervolume(points, reference) -> float:
    """Exact hypervolume dominated by ``points`` (minimisation) inside ``reference``.

    moocore's exact ``hypervolume`` (a 120-point, 4-objective front takes well under a
    millisecond). Points outside the reference box add nothing.
    """
    reference = np.asarray(reference, dtype=float)
    data = np.asarray(points, dtype=float).reshape(-1, len(reference))
    inside = data[np.all(data < reference, axis=1)]
    return float(moocore.hypervolume(inside, ref=reference)) if len(inside) else 0.0


def reference_point(objectives, rows: list[dict], budget=None) -> dict[str, float]:
    """The reference point of a study: accuracy 0, and for each cost its budget limit when set,
    else the largest value any trial of the study measured (so every candidate counts)."""
    limits = budget.limits() if budget is not None else {}
    reference = {}
    for index, objective in enumerate(objectives):
        if objective.maximize:
            reference[objective.name] = objective.worst
            continue
        limit = limits.get(objective.limit)
        seen = [row["values"][index] for row in rows if row.get("values")]
        reference[objective.name] = float(limit) if limit else max(seen, default=1.0) or 1.0
    return reference


def normalised(values, objectives, reference: dict[str, float]) -> tuple[float, ...]:
    """Values mapped to the unit minimisation box described in the module docstring."""
    mapped = []
    for value, objective in zip(values, objectives):
        if objective.maximize:
            mapped.append(1.0 - value)  # accuracy in [0, 1]; reference accuracy 0 maps to 1
        else:
            mapped.append(value / reference[objective.name])
    return tuple(mapped)


def _is_scored(row: dict) -> bool:
    """Trained (or reused) within budget: the only trials that can be on a front."""
    return row.get("status") in WITH_ACCURACY and bool(row.get("values"))


def front_hypervolume(rows: list[dict], objectives, reference: dict[str, float]) -> float:
    """Hypervolume of the trained trials of ``rows`` against ``reference``."""
    points = [normalised(row["values"], objectives, reference) for row in rows if _is_scored(row)]
    return hypervolume(points, (1.0,) * len(objectives))


def hypervolume_history(rows: list[dict], objectives, reference: dict[str, float]) -> list[tuple[int, float]]:
    """(trial number, hypervolume of the trials up to it) for each trial, in number order.

    Incremental: the hypervolume changes only when a trial enters the front (it is not
    weakly dominated by a point already there), so only those trials recompute it, on the
    front alone.
    """
    width = len(objectives)
    history, front, volume = [], np.empty((0, width)), 0.0
    for row in sorted(rows, key=lambda row: row["number"]):
        if _is_scored(row):
            point = np.asarray(normalised(row["values"], objectives, reference), dtype=float)
            if np.all(point < 1.0) and not np.any(np.all(front <= point, axis=1)):
                front = np.vstack([front[~np.all(point <= front, axis=1)], point])
                volume = hypervolume(front, (1.0,) * width)
        history.append((row["number"], volume))
    return history
