"""The synthetic tasks of the papers: AdderNet's 2-D toys and Li et al.'s regression pairs.

AdderNet, section 5.3 (toy experiments of approximation capacity), labels points of a
2-D normal distribution:

- ``unit-ball`` (eq. 46): 1 where sqrt(x^2 + y^2) < 10, 0 where it is > 15; points in the
  margin between are dropped.
- ``two-balls`` (eq. 47): 1 inside either disc of radius 10 around (10, 10) or
  (-10, -10), 0 elsewhere.
- ``xy-sign`` (eq. 48): 1 where x * y >= 0, else 0.

The paper calls the spread of the points a "variance" of 10 (15 for two balls). Taken
literally (standard deviation sqrt(10) = 3.2) only 1 point in 80,000 would lie beyond
radius 15, so the unit-ball task would have no negative class and Figure 4's comparison
would be empty. We read the number as the standard deviation (scale) of each coordinate,
which gives both classes in comparable numbers (unit ball: ~39 % inside 10, ~32 % beyond 15).

Li et al., section 5.3 (the simulation of Table 2): ``regression`` draws pairs
(x_0, f), both N(0, I) in 100 dimensions, and the network's output is fitted to f with the
mean squared error. It is a ``kind="regression"`` task: ``evaluate`` trains it with MSE and
reports the MSE instead of an accuracy. Its inputs are ``(100, 1, 1)`` "images", so a
fully connected model flattens them (a search over image genotypes does not apply to it).

Every input is float32 ``(N, C, 1, 1)``; the points are normalised per coordinate like
image channels. The sample (not only the split) follows the seed.
"""

from __future__ import annotations

import numpy as np

from optinas.evaluator.tasks import VAL_FRACTION, Task, task_without_test_split

__all__ = ["LOADERS", "toy_points", "TOY_SAMPLES", "REGRESSION_PAIRS", "REGRESSION_DIM"]

#: Points drawn for each 2-D toy (before the unit ball drops its margin).
TOY_SAMPLES = 4000
#: Pairs (x_0, f) and their dimension for Li et al.'s regression (section 5.3).
REGRESSION_PAIRS = 10_000
REGRESSION_DIM = 100


def toy_points(name: str, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` points of an AdderNet toy and their 0/1 labels (eqs. 46-48).

    Returns:
        float32 ``(M, 2)`` points and int64 ``(M,)`` labels; ``M < count`` for the unit
        ball, whose margin points are dropped.
    """
    rng = np.random.default_rng(seed)
    scale = 15.0 if name == "two-balls" else 10.0
    points = rng.normal(0.0, scale, size=(count, 2))
    x, y = points[:, 0], points[:, 1]
    if name == "unit-ball":
        radius = np.hypot(x, y)
        keep = (radius < 10) | (radius > 15)
        points, labels = points[keep], radius[keep] < 10
    elif name == "two-balls":
        labels = (np.hypot(x - 10, y - 10) < 10) | (np.hypot(x + 10, y + 10) < 10)
    elif name == "xy-sign":
        labels = x * y >= 0
    else:
        raise ValueError(f"unknown toy {name!r}; choose unit-ball, two-balls or xy-sign")
    return points.astype(np.float32), labels.astype(np.int64)


def _toy_loader(name: str):
    def load(seed: int, val_fraction: float | None, **_: object) -> Task:
        points, labels = toy_points(name, TOY_SAMPLES, seed)
        return task_without_test_split(
            name, points[:, :, None, None], labels, seed=seed,
            val_fraction=val_fraction or VAL_FRACTION, max_value=1.0, augment=False,
            num_classes=2, classes=("outside", "inside") if name != "xy-sign" else ("x*y<0", "x*y>=0"),
            source=f"AdderNet section 5.3 ({name}), {TOY_SAMPLES} points, seed {seed}",
        )

    load.__doc__ = f"AdderNet's {name} toy (section 5.3)."
    return load


def _load_regression(seed: int, val_fraction: float | None, **_: object) -> Task:
    """Li et al.'s regression pairs: x_0 and f independent N(0, I) in 100 dimensions."""
    rng = np.random.default_rng(seed)
    inputs = rng.standard_normal((REGRESSION_PAIRS, REGRESSION_DIM), dtype=np.float32)
    targets = rng.standard_normal((REGRESSION_PAIRS, REGRESSION_DIM), dtype=np.float32)
    return task_without_test_split(
        "regression", inputs[:, :, None, None], targets, seed=seed,
        val_fraction=val_fraction or VAL_FRACTION, max_value=1.0, augment=False,
        num_classes=REGRESSION_DIM, kind="regression",
        source=f"Li et al. section 5.3, {REGRESSION_PAIRS} pairs N(0, I) in {REGRESSION_DIM}-D",
    )


#: Task name -> loader, merged into ``tasks.load_task``'s table.
LOADERS = {
    **{name: _toy_loader(name) for name in ("unit-ball", "two-balls", "xy-sign")},
    "regression": _load_regression,
}
