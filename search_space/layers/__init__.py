"""The layer zoo: one module per arithmetic kind, each registered once.

Registered kinds: ``conv`` (float multiply-accumulate), ``adder`` (AdderNet, seed 000),
``binary`` (XNOR-Net++, seed 003) and ``quant`` (n-bit linear or codebook, seeds 001-002).
"""

from ..registry import register_layer
from .adder_kind import ADDER, AdderConv2d, AdderLinear
from .binary import BINARY, BinaryConv2d, BinaryLinear
from .conv import CONV, FloatConv2d, FloatLinear
from .quant import QUANT, QuantConv2d, QuantLinear

__all__ = [
    "FloatConv2d", "FloatLinear", "AdderConv2d", "AdderLinear",
    "BinaryConv2d", "BinaryLinear", "QuantConv2d", "QuantLinear",
]

register_layer(CONV)
register_layer(ADDER)
register_layer(BINARY)
register_layer(QUANT)
