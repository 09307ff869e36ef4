"""Nesterov block (Li et al., eq. 17): the momentum is applied before the transform.

x_{k+1} = ReLU(T(b1 x_k + b2 x_{k-1})). With the paper's coefficients b1 = 1 + beta_k and
b2 = -beta_k (beta_k from the theta sequence of eq. 3) this is eq. 12, Nesterov's method
with T = Phi(W .). Every block has its own coefficients (paper values differ per block;
learnable ones are separate parameters per block).

Stage transition: the first block starts with x_{-1} = x_0, so it computes
T((b1 + b2) x_0) on the stage input and T itself downsamples. The second block needs x_0 at
the new shape as its x_{k-1}: the first block hands on P(x_0) (the stage's shortcut,
identity when the shape is unchanged), and only when the second block's b2 is non-zero or
learnable; in paper mode beta_1 = 0, so no projection is built at all.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ..cost.layer_records import body_records, shortcut_records, sum_record
from ..modules import WeightedSum, make_body, make_shortcut
from ..registry import BlockPattern
from .nesterov import cached_plan, coefficient_value, nesterov_betas, nesterov_thetas

__all__ = ["NesterovBlock", "AGD", "agd_plan"]


def agd_plan(stage):
    """Per block k of a stage dict: (b1, b2, b1 learnable, b2 learnable), eq. 17 with eq. 3's beta_k."""
    coefficients = {coefficient["name"]: coefficient for coefficient in stage["block"]["coefficients"]}
    betas = nesterov_betas(stage["depth"])
    plan = []
    for k in range(stage["depth"]):
        b1, learn1 = coefficient_value(coefficients["b1"], 1.0 + betas[k])
        b2, learn2 = coefficient_value(coefficients["b2"], -betas[k])
        plan.append((b1, b2, learn1, learn2))
    return plan


def agd_mix(plan, index):
    """(values, learnable) of block ``index``'s input combination; block 0 has x_{-1} = x_0."""
    b1, b2, learn1, learn2 = plan[index]
    if index == 0:
        return [b1 + b2], [learn1 or learn2]
    return [b1, b2], [learn1, learn2]


def agd_keeps(plan, index):
    """Whether block ``index + 1`` reads x_index (its b2 is non-zero or learnable)."""
    if index + 1 >= len(plan):
        return False
    _, b2, _, learn2 = plan[index + 1]
    return learn2 or b2 != 0.0


class NesterovBlock(nn.Module):
    """x_{k+1} = ReLU(T(b1 x_k + b2 x_{k-1}))  (Li et al., eq. 17; eq. 12 in paper mode).

    History in and out: [x_{k-1} or None, x_k]; None where no later block reads it.
    """

    def __init__(self, in_channels, out_channels, stride, stage, index, kinds):
        super().__init__()
        plan = agd_plan(stage)
        values, learnable = agd_mix(plan, index)
        self.first = index == 0
        self.keep = agd_keeps(plan, index)
        self.mix = WeightedSum(values, learnable)
        self.body = make_body(in_channels, out_channels, stride, stage, kinds)
        if self.first and self.keep:
            self.shortcut = make_shortcut(in_channels, out_channels, stride, stage, kinds)

    def forward(self, history):
        x = history[-1]
        if self.first:
            new = F.relu(self.body(self.mix(x)))
            return [self.shortcut(x) if self.keep else None, new]
        new = F.relu(self.body(self.mix(x, history[-2])))
        return [x if self.keep else None, new]


_cached_plan = cached_plan(agd_plan)


def _cost(prefix, stage, index, in_channels, out_channels, stride, height, width):
    plan = _cached_plan(stage.block, stage.depth)
    values, learnable = agd_mix(plan, index)
    records = [sum_record(f"{prefix}.mix", values, learnable, in_channels, height, width)]
    body, out_h, out_w = body_records(f"{prefix}.body", stage, in_channels, out_channels, stride, height, width)
    records += body
    if index == 0 and agd_keeps(plan, index):
        records += shortcut_records(f"{prefix}.shortcut", stage, in_channels, out_channels, stride, height, width)
    return records, out_h, out_w


AGD = BlockPattern(
    name="agd", module=NesterovBlock,
    # Defaults: Nesterov with the constant momentum beta = 0.3 (footnote 4; the paper's
    # simulation momentum); mode "paper" gives the theta-sequence values of eq. 3.
    coefficients=(("b1", 1.3), ("b2", -0.3)), cost=_cost,
    paper_modes=frozenset({"b1", "b2"}),
    export_objects=(nesterov_thetas, nesterov_betas, coefficient_value, agd_plan, agd_mix, agd_keeps),
    summary="Nesterov, x_{k+1} = T(b1 x_k + b2 x_{k-1}); paper: b1 = 1 + beta_k, b2 = -beta_k",
)
