"""Block patterns of seed 004, one file each, registered once.

Registered patterns: ``gd`` (plain), ``hb`` (heavy ball; ResNet and HB-Net).
"""

from ..registry import register_pattern
from .gd import GD, PlainBlock
from .hb import HB, HeavyBallBlock

__all__ = ["PlainBlock", "HeavyBallBlock"]

register_pattern(GD)
register_pattern(HB)
