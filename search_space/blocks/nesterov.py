"""Nesterov's momentum sequences (Li et al., section 2) and how blocks read their coefficients.

- ``nesterov_thetas``: theta_k of eq. 3, theta_0 = 1 and (1 - theta_k) / theta_k^2 = 1 / theta_{k-1}^2.
- ``nesterov_betas``: beta_k = theta_k (1 - theta_{k-1}) / theta_{k-1}, the momentum of eqs. 3 and 12.
- ``nesterov_h``: h_{k+1, j} of eq. 5, the weights that turn eq. 3 into the dense form of eq. 4
  (and the network of eq. 13).

Indexing inside a stage: block ``k`` (from 0) computes x_{k+1} from x_0..x_k, so it uses
beta_k (eq. 12) and the row h_{k+1, 0..k} (eq. 13). The recursion starts like the algorithm,
with x_{-1} = x_0 (no momentum before the first step), so beta_0 never matters; theta_0 = 1
also makes beta_1 = 0 and h_{1,0} = 1: the first two steps are plain gradient steps.

These functions are exported verbatim into standalone model files (the blocks call them
while they are built), so they use plain float arithmetic and nothing else.
"""

from __future__ import annotations

import functools

__all__ = ["nesterov_thetas", "nesterov_betas", "nesterov_h", "coefficient_value", "plain_stage",
           "cached_plan"]


def nesterov_thetas(count):
    """theta_0 .. theta_{count-1} of Li et al., eq. 3.

    theta_k is the positive root of theta^2 + s theta - s = 0 with s = theta_{k-1}^2, written
    as 2 s / (s + sqrt(s^2 + 4 s)) so that no digits cancel when s gets small.
    """
    thetas = []
    theta = 1.0
    for index in range(count):
        if index > 0:
            square = theta * theta
            theta = 2.0 * square / (square + (square * square + 4.0 * square) ** 0.5)
        thetas.append(theta)
    return thetas


def nesterov_betas(count):
    """beta_0 .. beta_{count-1}: beta_k = theta_k (1 - theta_{k-1}) / theta_{k-1} (eqs. 3, 12); beta_0 = 0."""
    thetas = nesterov_thetas(count)
    return [0.0] + [thetas[k] * (1.0 - thetas[k - 1]) / thetas[k - 1] for k in range(1, count)]


def nesterov_h(depth, momentum=None):
    """Rows h_{k+1, 0..k} for k = 0 .. depth-1 of Li et al., eq. 5.

    With b = beta_{k+1} = theta_{k+1} (1 - theta_k) / theta_k:
    h_{k+1,j} = b h_{k,j} (j <= k-2), b (h_{k,k-1} - 1) (j = k-1) and 1 + b (j = k).

    Args:
        depth: number of rows (blocks in a stage).
        momentum: None for beta from the theta sequence (eq. 3); a number for a constant
            momentum, the strongly convex case of Li et al.'s footnote 4.

    Returns:
        ``rows`` with ``rows[k][j]`` = h_{k+1, j}, ``len(rows[k]) == k + 1``.
    """
    betas = nesterov_betas(depth + 1) if momentum is None else None
    rows = []
    previous = []
    for k in range(depth):
        beta = betas[k + 1] if momentum is None else float(momentum)
        row = [beta * previous[j] for j in range(k - 1)]
        if k >= 1:
            row.append(beta * (previous[k - 1] - 1.0))
        row.append(1.0 + beta)
        rows.append(row)
        previous = row
    return rows


def coefficient_value(coefficient, formula_value=None):
    """(value, learnable) of one coefficient dict where the paper formula gives ``formula_value``.

    ``paper`` takes the formula's value; ``learnable`` starts from ``value`` or, with
    init "paper", from the formula; ``fixed`` keeps ``value``.
    """
    from_formula = coefficient["mode"] == "paper" or coefficient.get("init", "value") == "paper"
    value = formula_value if from_formula else coefficient["value"]
    return float(value), coefficient["mode"] == "learnable"


def plain_stage(block, depth):
    """What the plan functions read of a stage (its depth and block), from a ``BlockSpec``.

    The analytic cost caches plans per (block, depth) with this: a plan depends on nothing
    else, and rebuilding it for every block of a stage would cost O(depth^2) per stage.
    """
    coefficients = [{"name": c.name, "value": c.value, "mode": c.mode, "init": c.init} for c in block.coefficients]
    return {"depth": depth, "block": {"pattern": block.pattern, "coefficients": coefficients}}


def cached_plan(plan):
    """``plan(stage dict)`` as a cached function of ``(BlockSpec, depth)``, for a pattern's cost.

    Not exported: only the analytic cost calls it (the built blocks call ``plan`` directly).
    """

    @functools.lru_cache(maxsize=512)
    def cached(block, depth):
        return plan(plain_stage(block, depth))

    return cached
