"""The layer zoo: one module per arithmetic kind, each registered once.

Registered kinds: ``conv`` (float multiply-accumulate), ``adder`` (AdderNet),
``binary`` (XNOR-Net++, Chee and Loustau) and ``quant`` (n-bit linear or codebook: Ding et al.
(quantized ReLU), weight-quantization appendix).
"""

from ..registry import register_layer
from .adder_compiled import set_adder_compile
from .adder_dispatch import warm_up_adder
from .adder_kind import ADDER, AdderConv2d, AdderLinear
from .binary import BINARY, BinaryConv2d, BinaryLinear
from .conv import CONV, FloatConv2d, FloatLinear
from .quant import QUANT, QuantConv2d, QuantLinear

__all__ = [
    "FloatConv2d", "FloatLinear", "AdderConv2d", "AdderLinear",
    "BinaryConv2d", "BinaryLinear", "QuantConv2d", "QuantLinear",
    "warm_up_adder", "set_adder_compile",
]

register_layer(CONV)
register_layer(ADDER)
register_layer(BINARY)
register_layer(QUANT)
