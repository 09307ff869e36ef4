"""Analytic cost: counts from the genotype and input shape alone, no forward pass.

The walk mirrors ``optinas.search_space.modules`` name for name, so each record can be compared with
the hook-based count of the built model (``optinas.search_space.cost.hooks``). Block patterns supply
their own records through ``BlockPattern.cost``, built from the helpers of
``optinas.search_space.cost.layer_records``; every field (ops, MACs, BOPs, parameters, storage,
bit widths) comes from the registry, so a new layer kind or pattern is counted without edits
here. Definitions: ``optinas.search_space.cost.records``.
"""

from __future__ import annotations

from dataclasses import replace

from ..genotype import Genotype
from ..registry import block_pattern
from .layer_records import bn_record, layer_record, linear_record, maxpool_record
from .records import FLOAT_BOPS, Cost, LayerCost

__all__ = ["count_cost"]


def count_cost(genotype: Genotype, hardware=None) -> Cost:
    """Per-layer counts of one image through the network, priced on ``hardware``.

    Args:
        genotype: the architecture; its input spec fixes the image size.
        hardware: a ``HardwareProfile``, a shipped profile name, a TOML path, or None for
            the default (``horowitz45``).
    """
    channels, height, width = genotype.input.shape
    stem = genotype.stem
    # First and last layers are outside AdderNet's count (section 4.2; paper=False), see records.py.
    record, height, width = layer_record(
        "stem.layer", stem.layer, channels, stem.width, stem.kernel_size, stem.stride, height, width,
        paper=False)
    records = [record, bn_record("stem.bn", stem.width, height, width)]
    if stem.pool == "max":
        record, height, width = maxpool_record("stem.pool", stem.width, 3, 2, 1, height, width)
        records.append(record)
    channels = stem.width
    for stage_index, stage in enumerate(genotype.stages):
        pattern = block_pattern(stage.block.pattern)
        pooled = stage.downsample == "maxpool"
        if pooled:
            record, height, width = maxpool_record(
                f"stages.{stage_index}.pool", channels, stage.stride, stage.stride, 0, height, width)
            records.append(record)
        for index in range(stage.depth):
            block_in = channels if index == 0 else stage.width
            stride = stage.stride if index == 0 and not pooled else 1
            # A block with a layer override sees the stage with its own layer, as modules.Stage builds it.
            block_stage = replace(stage, layer=stage.layer_of(index), overrides=()) if stage.overrides else stage
            block_records, height, width = pattern.cost(
                f"stages.{stage_index}.blocks.{index}", block_stage, index, block_in, stage.width,
                stride, height, width)
            records.extend(block_records)
        channels = stage.width
    positions = height * width
    # Mean over positions: HW - 1 additions and one multiplication by 1/HW per channel.
    records.append(LayerCost("pool", "avgpool", (channels,), mul=channels, add=channels * (positions - 1),
                             bops=channels * FLOAT_BOPS))
    records.append(linear_record("fc", genotype.head.layer, channels, genotype.input.classes, paper=False))
    return Cost.from_records(genotype.input.shape, records, hardware)
