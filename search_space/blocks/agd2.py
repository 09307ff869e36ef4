"""Second Nesterov block (Li et al., eq. 13): the dense form of Nesterov's method, h tied.

x_{k+1} = ReLU(x_k + sum_{j<=k} h_{k+1,j} (T_j(x_j) - x_j)), eq. 13 with the same h weighing
T(x_j) and -x_j (eq. 4's gradient steps, d_j = T_j(x_j) - x_j being -grad f at x_j). Each
block runs its transform once; d_j is kept for the later blocks that weigh it.

One coefficient, ``beta``, the momentum the h of eq. 5 are built from: paper: beta_{k+1}
from the theta sequence of eq. 3 (the paper's AGD2, best at depth 40 in Table 2); fixed: a
constant momentum (the strongly convex case, footnote 4); learnable: every h_{k+1,j}
becomes its own parameter, initialised from the h of either.

With fixed h a block computes h T(x_k) + (1 - h) x_k + sum_{j<k} h_{k+1,j} d_j (the same sum,
without forming d_k when no later block needs it); with learnable h it sums
x_k + sum_j h_{k+1,j} d_j so that each h stays tied between its two terms.

Stage transition: T_0 downsamples the stage input. x_0 at the new shape, P(x_0) through the
stage's shortcut, is built only when it is weighed: in paper mode h_{1,0} = 1 and
h_{k+1,0} = 0 for k >= 1, so x_1 = T_0(x_0) and no projection exists. The history is
[d_0, ..., d_k, x_{k+1}] with None for the d_j no later block weighs.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ..cost.layer_records import body_records, shortcut_records, sum_record
from ..modules import WeightedSum, make_body, make_shortcut
from ..registry import BlockPattern
from .nesterov import cached_plan, coefficient_value, nesterov_betas, nesterov_h, nesterov_thetas

__all__ = ["TiedNesterovBlock", "AGD2", "agd2_plan"]


def agd2_plan(stage):
    """(rows, learnable): rows[k][j] = h_{k+1,j} (eq. 5) for the stage's ``beta`` coefficient."""
    coefficient = stage["block"]["coefficients"][0]
    value, learnable = coefficient_value(coefficient, 0.0)
    from_formula = coefficient["mode"] == "paper" or coefficient.get("init", "value") == "paper"
    return nesterov_h(stage["depth"], None if from_formula else value), learnable


def agd2_terms(plan, index):
    """Block ``index``'s terms: (kind "t", "x" or "d", j, value, learnable)."""
    rows, learnable = plan
    row = rows[index]
    if learnable:
        return [("x", index, 1.0, False)] + [("d", j, h, True) for j, h in enumerate(row)]
    own = row[index]
    terms = [("t", index, own, False), ("x", index, 1.0 - own, False)]
    return terms + [("d", j, h, False) for j, h in enumerate(row[:index]) if h != 0.0]


def agd2_needs(plan, index):
    """(d_index is weighed by some block, x_index at the block's output shape is used)."""
    rows, learnable = plan
    weighed = learnable or any(rows[k][index] != 0.0 for k in range(index + 1, len(rows)))
    state_used = learnable or weighed or rows[index][index] != 1.0
    return weighed, state_used


class TiedNesterovBlock(nn.Module):
    """x_{k+1} = ReLU(x_k + sum_j h_{k+1,j} (T_j(x_j) - x_j))  (Li et al., eq. 13)."""

    def __init__(self, in_channels, out_channels, stride, stage, index, kinds):
        super().__init__()
        plan = agd2_plan(stage)
        terms = agd2_terms(plan, index)
        self.index = index
        self.terms = [(kind, j) for kind, j, _, _ in terms]
        self.keep_d, state_used = agd2_needs(plan, index)
        self.body = make_body(in_channels, out_channels, stride, stage, kinds)
        if index == 0 and state_used:
            self.shortcut = make_shortcut(in_channels, out_channels, stride, stage, kinds)
        else:
            self.shortcut = None
        self.diff = WeightedSum([1.0, -1.0], [False, False]) if self.keep_d else None
        self.combine = WeightedSum([term[2] for term in terms], [term[3] for term in terms])

    def forward(self, history):
        stored = history[:-1]  # [d_0, ..., d_{k-1}]
        x = history[-1]
        t = self.body(x)
        if self.shortcut is not None:
            x = self.shortcut(x)
        d = self.diff(t, x) if self.diff is not None else None
        chosen = {"t": t, "x": x}
        terms = [chosen[kind] if kind != "d" else (d if j == self.index else stored[j])
                 for kind, j in self.terms]
        new = F.relu(self.combine(*terms))
        return stored + [d, new]


_cached_plan = cached_plan(agd2_plan)


def _cost(prefix, stage, index, in_channels, out_channels, stride, height, width):
    plan = _cached_plan(stage.block, stage.depth)
    keep_d, state_used = agd2_needs(plan, index)
    records, out_h, out_w = body_records(f"{prefix}.body", stage, in_channels, out_channels, stride, height, width)
    if index == 0 and state_used:
        records += shortcut_records(f"{prefix}.shortcut", stage, in_channels, out_channels, stride, height, width)
    if keep_d:
        records.append(sum_record(f"{prefix}.diff", [1.0, -1.0], [False, False], out_channels, out_h, out_w))
    terms = agd2_terms(plan, index)
    records.append(sum_record(f"{prefix}.combine", [term[2] for term in terms], [term[3] for term in terms],
                              out_channels, out_h, out_w))
    return records, out_h, out_w


AGD2 = BlockPattern(
    name="agd2", module=TiedNesterovBlock,
    # Default: a constant momentum of 0.3 (footnote 4); mode "paper" follows eq. 3.
    coefficients=(("beta", 0.3),), cost=_cost,
    paper_modes=frozenset({"beta"}),
    export_objects=(nesterov_thetas, nesterov_betas, nesterov_h, coefficient_value,
                    agd2_plan, agd2_terms, agd2_needs),
    summary="dense Nesterov with tied h (eq. 13), x_{k+1} = x_k + sum_j h_{k+1,j} (T(x_j) - x_j)",
)
