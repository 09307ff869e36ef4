"""Gradient-descent block: the plain feed-forward network (Li et al., eq. 7)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ..cost.layer_records import body_records
from ..modules import make_body
from ..registry import BlockPattern

__all__ = ["PlainBlock", "GD"]


class PlainBlock(nn.Module):
    """x_{k+1} = ReLU(T(x_k)): one gradient step per block, no side paths (Li et al., eq. 7).

    A stage of these is the plain CNN / VGG of Li et al.'s Table 3.
    """

    def __init__(self, in_channels, out_channels, stride, stage, index, kinds):
        super().__init__()
        self.body = make_body(in_channels, out_channels, stride, stage, kinds)

    def forward(self, history):
        return [F.relu(self.body(history[-1]))]


def _cost(prefix, stage, index, in_channels, out_channels, stride, height, width):
    return body_records(f"{prefix}.body", stage, in_channels, out_channels, stride, height, width)


GD = BlockPattern(name="gd", module=PlainBlock, coefficients=(), cost=_cost,
                  summary="plain network, x_{k+1} = T(x_k)")
