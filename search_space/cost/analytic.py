"""Analytic cost: counts from the genotype and input shape alone, no forward pass.

The walk mirrors ``search_space.modules`` name for name, so each record can be compared with
the hook-based count of the built model (``search_space.cost.hooks``). Block patterns supply
their own records through ``BlockPattern.cost``, built from the helpers below.
"""

from __future__ import annotations

from ..genotype import Genotype, LayerSpec, StageSpec
from ..registry import block_pattern, layer_kind
from .records import Cost, LayerCost, combine_ops

__all__ = [
    "count_cost",
    "layer_record",
    "bn_record",
    "body_records",
    "shortcut_records",
    "sum_record",
    "conv_output_size",
]


def conv_output_size(size: int, kernel_size: int, stride: int) -> int:
    """Output size of a same-padded layer: floor((size + 2*(k//2) - k) / stride) + 1."""
    return (size + 2 * (kernel_size // 2) - kernel_size) // stride + 1


def layer_record(
    name: str, layer: LayerSpec, in_channels: int, out_channels: int,
    kernel_size: int, stride: int, height: int, width: int, paper: bool = True,
) -> tuple[LayerCost, int, int]:
    """Record of one conv-form layer; returns it with the output height and width."""
    kind = layer_kind(layer.kind)
    options = layer.option_dict
    out_h = conv_output_size(height, kernel_size, stride)
    out_w = conv_output_size(width, kernel_size, stride)
    outputs = out_channels * out_h * out_w
    per_output = kind.per_output(in_channels * kernel_size * kernel_size, options)
    params = kind.params("conv", in_channels, (out_channels, out_h, out_w), kernel_size, options)
    record = LayerCost(
        name=name, op=layer.kind, out_shape=(out_channels, out_h, out_w),
        mul=per_output.mul * outputs, add=per_output.add * outputs, xnor=per_output.xnor * outputs,
        params=params, paper=paper,
    )
    return record, out_h, out_w


def linear_record(name: str, layer: LayerSpec, in_features: int, out_features: int) -> LayerCost:
    kind = layer_kind(layer.kind)
    options = layer.option_dict
    per_output = kind.per_output(in_features, options)
    return LayerCost(
        name=name, op=layer.kind, out_shape=(out_features,),
        mul=per_output.mul * out_features, add=per_output.add * out_features,
        xnor=per_output.xnor * out_features,
        params=kind.params("linear", in_features, (out_features,), 1, options), paper=True,
    )


def bn_record(name: str, channels: int, height: int, width: int) -> LayerCost:
    """Inference BatchNorm: one multiply and one add per element, 2 parameters per channel."""
    elements = channels * height * width
    return LayerCost(name=name, op="batchnorm", out_shape=(channels, height, width),
                     mul=elements, add=elements, params=2 * channels)


def body_records(
    prefix: str, stage: StageSpec, in_channels: int, out_channels: int,
    stride: int, height: int, width: int,
) -> tuple[list[LayerCost], int, int]:
    """The transform T of ``modules.Body``: layer1, bn1, (ReLU), layer2, bn2."""
    first, out_h, out_w = layer_record(
        f"{prefix}.layer1", stage.layer, in_channels, out_channels, stage.kernel_size, stride, height, width)
    second, _, _ = layer_record(
        f"{prefix}.layer2", stage.layer, out_channels, out_channels, stage.kernel_size, 1, out_h, out_w)
    records = [first, bn_record(f"{prefix}.bn1", out_channels, out_h, out_w),
               second, bn_record(f"{prefix}.bn2", out_channels, out_h, out_w)]
    return records, out_h, out_w


def shortcut_records(
    prefix: str, stage: StageSpec, in_channels: int, out_channels: int,
    stride: int, height: int, width: int,
) -> list[LayerCost]:
    """Records of ``modules.make_shortcut``: nothing for identity and pad shortcuts."""
    if (in_channels == out_channels and stride == 1) or stage.shortcut == "pad":
        return []
    record, out_h, out_w = layer_record(
        f"{prefix}.layer", stage.layer, in_channels, out_channels, 1, stride, height, width)
    return [record, bn_record(f"{prefix}.bn", out_channels, out_h, out_w)]


def sum_record(name: str, values, learnable, channels: int, height: int, width: int) -> LayerCost:
    """Record of a ``modules.WeightedSum`` over (channels, height, width) maps."""
    mul, add, shift = combine_ops(values, learnable)
    elements = channels * height * width
    return LayerCost(name=name, op="combine", out_shape=(channels, height, width),
                     mul=mul * elements, add=add * elements, shift=shift * elements,
                     params=sum(1 for flag in learnable if flag))


def count_cost(genotype: Genotype) -> Cost:
    """Per-layer counts (mul, add, xnor, shift, params) of one image through the network."""
    channels, height, width = genotype.input.shape
    stem = genotype.stem
    record, height, width = layer_record(
        "stem.layer", stem.layer, channels, stem.width, stem.kernel_size, 1, height, width)
    records = [record, bn_record("stem.bn", stem.width, height, width)]
    channels = stem.width
    for stage_index, stage in enumerate(genotype.stages):
        pattern = block_pattern(stage.block.pattern)
        for index in range(stage.depth):
            block_in = channels if index == 0 else stage.width
            stride = stage.stride if index == 0 else 1
            block_records, height, width = pattern.cost(
                f"stages.{stage_index}.blocks.{index}", stage, index, block_in, stage.width,
                stride, height, width)
            records.extend(block_records)
        channels = stage.width
    records.append(LayerCost(name="pool", op="avgpool", out_shape=(channels,),
                             mul=channels, add=channels * (height * width - 1)))
    records.append(linear_record("fc", genotype.head.layer, channels, genotype.input.classes))
    return Cost.from_records(genotype.input.shape, records)
