"""Heavy-ball block (Li et al., eq. 16): ResNet and HB-Net as special cases."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ..cost.layer_records import body_records, shortcut_records, sum_record
from ..modules import WeightedSum, make_body, make_shortcut
from ..registry import BlockPattern

__all__ = ["HeavyBallBlock", "HB"]


class HeavyBallBlock(nn.Module):
    """x_{k+1} = ReLU(T(x_k) + b1 x_k + b2 x_{k-1})  (Li et al., eq. 16).

    b1 = 1, b2 = 0 is the ResNet basic block; b1 = 1, b2 = -1 is HB-Net (section 6.1, the
    heavy ball with beta = 1). The first block of a stage starts the recursion with
    x_{k-1} = x_k (zero initial momentum, as the heavy-ball method starts), both seen through
    the stage's shortcut P, so it computes T(x_k) + (b1 + b2) P(x_k) and hands on P(x_k) as
    the history the next block reads as x_{k-1}.
    """

    def __init__(self, in_channels, out_channels, stride, stage, index, kinds):
        super().__init__()
        coefficients = {c["name"]: c for c in stage["block"]["coefficients"]}
        b1, b2 = coefficients["b1"], coefficients["b2"]
        self.restart = index == 0
        self.body = make_body(in_channels, out_channels, stride, stage, kinds)
        learn1, learn2 = b1["mode"] == "learnable", b2["mode"] == "learnable"
        if self.restart:
            self.shortcut = make_shortcut(in_channels, out_channels, stride, stage, kinds)
            self.combine = WeightedSum([1.0, b1["value"] + b2["value"]], [False, learn1 or learn2])
        else:
            self.combine = WeightedSum([1.0, b1["value"], b2["value"]], [False, learn1, learn2])

    def forward(self, history):
        x = history[-1]
        if self.restart:
            skip = self.shortcut(x)
            return [skip, F.relu(self.combine(self.body(x), skip))]
        return [x, F.relu(self.combine(self.body(x), x, history[-2]))]


def _cost(prefix, stage, index, in_channels, out_channels, stride, height, width):
    records, out_h, out_w = body_records(f"{prefix}.body", stage, in_channels, out_channels, stride, height, width)
    b1, b2 = stage.block.coefficient("b1"), stage.block.coefficient("b2")
    learn1, learn2 = b1.mode == "learnable", b2.mode == "learnable"
    if index == 0:
        records += shortcut_records(f"{prefix}.shortcut", stage, in_channels, out_channels, stride, height, width)
        values, learnable = [1.0, b1.value + b2.value], [False, learn1 or learn2]
    else:
        values, learnable = [1.0, b1.value, b2.value], [False, learn1, learn2]
    records.append(sum_record(f"{prefix}.combine", values, learnable, out_channels, out_h, out_w))
    return records, out_h, out_w


HB = BlockPattern(name="hb", module=HeavyBallBlock, coefficients=(("b1", 1.0), ("b2", 0.0)), cost=_cost,
                  summary="heavy ball, x_{k+1} = T(x_k) + b1 x_k + b2 x_{k-1}")
