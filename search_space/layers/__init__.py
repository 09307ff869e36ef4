"""The layer zoo: one module per arithmetic kind, each registered once.

Registered kinds: ``conv`` (float multiply-accumulate).
"""

from ..registry import register_layer
from .conv import CONV, FloatConv2d, FloatLinear

__all__ = ["FloatConv2d", "FloatLinear"]

register_layer(CONV)
