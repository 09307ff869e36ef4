"""Float convolution and fully connected layers: the multiplicative baseline."""

from __future__ import annotations

from torch import nn

from ..registry import LayerKind, OpCount

__all__ = ["FloatConv2d", "FloatLinear", "CONV"]


class FloatConv2d(nn.Conv2d):
    """k x k convolution with same padding and no bias (BatchNorm follows it)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2, bias=False)


class FloatLinear(nn.Linear):
    """Fully connected classifier layer with bias."""

    def __init__(self, in_features, out_features):
        super().__init__(in_features, out_features, bias=True)


def _per_output(fan_in, options):
    # One multiply and one accumulate per weight (AdderNet Table 2: #Mul = #Add; K = k*k*Cin).
    return OpCount(mul=fan_in, add=fan_in)


CONV = LayerKind(
    name="conv",
    conv=FloatConv2d,
    linear=FloatLinear,
    per_output=_per_output,
    summary="float convolution (multiply-accumulate)",
)
