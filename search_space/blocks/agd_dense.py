"""Dense Nesterov block (Li et al., eq. 18; AGD-Net, eq. 21): sums instead of concatenation.

x_{k+1} = ReLU(sum_j alpha_{k+1,j} T_j(x_j) + sum_j beta_{k+1,j} x_j), j = 0..k, where each
block's transform runs once on its own input (T_j(x_j) is computed by block j and reused by
every later block: "each preceding layer z_j produces its own output first", section 6.2).

Coefficients (per stage, expanded per block and per j):

- ``alpha``: weight of every T_j(x_j). fixed: that value for all (k, j); paper: h_{k+1,j}
  of eq. 5 (the weights eq. 13 gives them); learnable: one parameter per (k, j), initialised
  from either (eq. 21 co-optimises them).
- ``beta``: scale of eq. 21's momentum term beta (x_k - sum_j h_{k+1,j} x_j), i.e.
  beta_{k+1,j} = beta (delta_jk - h_{k+1,j}) with h from eq. 5. fixed: that beta; paper:
  0.1 (section 6.2); learnable: one parameter per (k, j) initialised to beta (delta - h).

alpha = 1, beta = 0 is the DenseNet wiring of Table 3 (with sums); paper alpha and beta = 1
is eq. 13 (see also ``agd2``, which keeps h tied between the two sums).

Stage transition: T_0 downsamples the stage input itself. x_0 enters the sums only through
beta_{k+1,0}, which is 0 in paper mode (h_{1,0} = 1 and h_{k+1,0} = 0 for k >= 1); where
some block does weigh x_0, the first block projects it once with the stage's shortcut and
that P(x_0) is the x_0 every block reads. The history carries every x_j and T_j(x_j) that a
later block weighs (None for the rest): [x_0, T_0, x_1, T_1, ..., x_k, T_k, x_{k+1}].
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ..cost.layer_records import body_records, shortcut_records, sum_record
from ..modules import WeightedSum, make_body, make_shortcut
from ..registry import BlockPattern
from .nesterov import cached_plan, coefficient_value, nesterov_betas, nesterov_h, nesterov_thetas

__all__ = ["DenseNesterovBlock", "AGD_DENSE", "dense_plan", "PAPER_BETA"]

PAPER_BETA = 0.1  # "The parameter beta is set to be 0.1 in our experiments" (section 6.2)


def dense_plan(stage, paper_beta=0.1):
    """Per block k: the live terms (kind "t" or "x", j, value, learnable) of eq. 18.

    A term is live when its coefficient is learnable or non-zero; block k's own T_k(x_k) is
    always listed, so that the sum has the output's shape even when every weight is 0.
    ``paper_beta`` is section 6.2's beta (a default argument, so exported files carry it).
    """
    coefficients = {coefficient["name"]: coefficient for coefficient in stage["block"]["coefficients"]}
    rows = nesterov_h(stage["depth"])
    plan = []
    for k, row in enumerate(rows):
        transforms, states = [], []
        for j, h in enumerate(row):
            alpha, learn_alpha = coefficient_value(coefficients["alpha"], h)
            beta, learn_beta = coefficient_value(coefficients["beta"], paper_beta)
            beta = beta * ((1.0 if j == k else 0.0) - h)
            if learn_alpha or alpha != 0.0 or j == k:
                transforms.append(("t", j, alpha, learn_alpha))
            if learn_beta or beta != 0.0:
                states.append(("x", j, beta, learn_beta))
        plan.append(transforms + states)
    return plan


def dense_keeps(plan, index):
    """(keep x_index, keep T_index(x_index)): whether a later block weighs them."""
    later = [term for terms in plan[index + 1:] for term in terms if term[1] == index]
    return any(term[0] == "x" for term in later), any(term[0] == "t" for term in later)


def dense_projects(plan):
    """Whether some block weighs x_0, which the first block must then bring to the stage's shape."""
    return any(term[0] == "x" and term[1] == 0 for terms in plan for term in terms)


class DenseNesterovBlock(nn.Module):
    """x_{k+1} = ReLU(sum_j alpha_{k+1,j} T_j(x_j) + sum_j beta_{k+1,j} x_j)  (Li et al., eqs. 18, 21)."""

    def __init__(self, in_channels, out_channels, stride, stage, index, kinds):
        super().__init__()
        plan = dense_plan(stage)
        self.index = index
        self.terms = [(kind, j) for kind, j, _, _ in plan[index]]
        self.keep_x, self.keep_t = dense_keeps(plan, index)
        self.body = make_body(in_channels, out_channels, stride, stage, kinds)
        if index == 0 and dense_projects(plan):
            self.shortcut = make_shortcut(in_channels, out_channels, stride, stage, kinds)
        else:
            self.shortcut = None
        self.combine = WeightedSum([term[2] for term in plan[index]], [term[3] for term in plan[index]])

    def forward(self, history):
        stored = history[:-1]  # [x_0, T_0, ..., x_{k-1}, T_{k-1}]
        x = history[-1]
        t = self.body(x)
        if self.shortcut is not None:
            x = self.shortcut(x)
        terms = []
        for kind, j in self.terms:
            if j == self.index:
                terms.append(t if kind == "t" else x)
            else:
                terms.append(stored[2 * j + 1] if kind == "t" else stored[2 * j])
        new = F.relu(self.combine(*terms))
        return stored + [x if self.keep_x else None, t if self.keep_t else None, new]


_cached_plan = cached_plan(dense_plan)


def _cost(prefix, stage, index, in_channels, out_channels, stride, height, width):
    plan = _cached_plan(stage.block, stage.depth)
    records, out_h, out_w = body_records(f"{prefix}.body", stage, in_channels, out_channels, stride, height, width)
    if index == 0 and dense_projects(plan):
        records += shortcut_records(f"{prefix}.shortcut", stage, in_channels, out_channels, stride, height, width)
    values, learnable = [term[2] for term in plan[index]], [term[3] for term in plan[index]]
    records.append(sum_record(f"{prefix}.combine", values, learnable, out_channels, out_h, out_w))
    return records, out_h, out_w


AGD_DENSE = BlockPattern(
    name="agd_dense", module=DenseNesterovBlock,
    # Defaults: AGD-Net's beta = 0.1 with every transform weighted 1 (the DenseNet sum).
    coefficients=(("alpha", 1.0), ("beta", PAPER_BETA)), cost=_cost,
    paper_modes=frozenset({"alpha", "beta"}),
    export_objects=(nesterov_thetas, nesterov_betas, nesterov_h, coefficient_value,
                    dense_plan, dense_keeps, dense_projects),
    summary="dense Nesterov, x_{k+1} = sum_j alpha T(x_j) + sum_j beta x_j (AGD-Net: h of eq. 5, beta 0.1)",
)
