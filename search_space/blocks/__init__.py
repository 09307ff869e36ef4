"""Block patterns of Li et al., one file each, registered once.

Registered patterns: ``gd`` (plain, eq. 7), ``hb`` (heavy ball, eq. 16; ResNet and HB-Net),
``agd`` (Nesterov, eq. 17), ``agd_dense`` (dense Nesterov, eqs. 18 and 21; AGD-Net),
``agd2`` (dense Nesterov with tied h, eq. 13) and ``admm`` (two paths, eq. 20; DMRNet).
How each carries its history across a stage transition: ``search_space/blocks/README.md``.
"""

from ..registry import register_pattern
from .admm import ADMM, MergeRunBlock
from .agd import AGD, NesterovBlock
from .agd2 import AGD2, TiedNesterovBlock
from .agd_dense import AGD_DENSE, DenseNesterovBlock
from .gd import GD, PlainBlock
from .hb import HB, HeavyBallBlock

__all__ = ["PlainBlock", "HeavyBallBlock", "NesterovBlock", "DenseNesterovBlock", "TiedNesterovBlock",
           "MergeRunBlock"]

register_pattern(GD)
register_pattern(HB)
register_pattern(AGD)
register_pattern(AGD_DENSE)
register_pattern(AGD2)
register_pattern(ADMM)
