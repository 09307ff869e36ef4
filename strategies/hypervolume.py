"""Hypervolume of a search's Pareto front, against a stated reference point.

Values are first mapped to a unit box in which every objective is minimised: accuracy ``a``
becomes ``1 - a`` (reference: accuracy 0) and a cost ``c`` becomes ``c / c_ref``, where
``c_ref`` is the reference cost (reference: 1). The hypervolume is then a number in [0, 1]:
the share of the box between the ideal corner (accuracy 1 at zero cost) and the reference
point that the front dominates. Comparisons (samplers, seeds) must use one reference point.
"""

from __future__ import annotations

__all__ = ["hypervolume", "reference_point", "normalised", "front_hypervolume", "hypervolume_history"]


def hypervolume(points, reference) -> float:
    """Exact hypervolume dominated by ``points`` (minimisation) inside ``reference``.

    Slices along the last coordinate and recurses on the rest (HSO); exact and fast for the
    fronts a search produces (tens of points, a few objectives). Points outside the
    reference box add nothing.
    """
    reference = tuple(float(value) for value in reference)
    inside = [tuple(float(value) for value in point) for point in points
              if all(value < bound for value, bound in zip(point, reference))]
    return _sliced(_nondominated(inside), reference)


def _nondominated(points: list[tuple]) -> list[tuple]:
    unique = sorted(set(points))
    return [p for p in unique
            if not any(q != p and all(a <= b for a, b in zip(q, p)) for q in unique)]


def _sliced(points: list[tuple], reference: tuple) -> float:
    if not points:
        return 0.0
    if len(reference) == 1:
        return reference[0] - min(point[0] for point in points)
    points = sorted(points, key=lambda point: point[-1])
    volume = 0.0
    for index, point in enumerate(points):
        upper = points[index + 1][-1] if index + 1 < len(points) else reference[-1]
        if upper > point[-1]:
            # Between this slice and the next, the points seen so far dominate the same area.
            lower_dims = _nondominated([p[:-1] for p in points[:index + 1]])
            volume += (upper - point[-1]) * _sliced(lower_dims, reference[:-1])
    return volume


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
    return row.get("status") in ("trained", "reused") and bool(row.get("values"))


def front_hypervolume(rows: list[dict], objectives, reference: dict[str, float]) -> float:
    """Hypervolume of the trained trials of ``rows`` against ``reference``."""
    points = [normalised(row["values"], objectives, reference) for row in rows if _is_scored(row)]
    return hypervolume(points, (1.0,) * len(objectives))


def hypervolume_history(rows: list[dict], objectives, reference: dict[str, float]) -> list[tuple[int, float]]:
    """(trial number, hypervolume of the trials up to it) for each trial, in number order."""
    history, points = [], []
    for row in sorted(rows, key=lambda row: row["number"]):
        if _is_scored(row):
            points.append(normalised(row["values"], objectives, reference))
        history.append((row["number"], hypervolume(points, (1.0,) * len(objectives))))
    return history
