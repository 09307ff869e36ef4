"""Analytic records of single layers and block operations, from shapes alone.

What a block pattern's ``BlockPattern.cost`` builds its records from (the blocks import this
module), and what ``optinas.search_space.cost.analytic.count_cost`` walks the network with.
Each record is named like the module it counts (``optinas.search_space.modules``), so it
compares one to one with the hook-based count. Every field comes from the layer registry.
"""

from __future__ import annotations

from ..genotype_specs import LayerSpec, StageSpec
from ..registry import layer_kind
from .records import FLOAT_BOPS, LayerCost, combine_ops, weighted_cost

__all__ = [
    "layer_record",
    "linear_record",
    "bn_record",
    "body_records",
    "shortcut_records",
    "sum_record",
    "maxpool_record",
    "conv_output_size",
]

# LayerSpec -> (spec, kind, options, weight bits, activation bits, ops per input element).
# A genotype has a handful of distinct layer specs and a search re-uses them for every
# trial, so resolving each once keeps the per-layer work to arithmetic.
# Keyed by id (hashing a LayerSpec hashes its options each time); the entry keeps the spec
# alive and is checked by identity, so a recycled id can never return another spec's entry.
_KINDS: dict[int, tuple] = {}


def _resolve(layer: LayerSpec) -> tuple:
    found = _KINDS.get(id(layer))
    if found is None or found[0] is not layer:
        if len(_KINDS) > 4096:
            _KINDS.clear()  # a long search meets many specs; keep the table small
        kind = layer_kind(layer.kind)
        options = layer.option_dict
        found = (layer, kind, options, kind.weight_bits(options), kind.activation_bits(options),
                 kind.per_input(options))
        _KINDS[id(layer)] = found
    return found


def conv_output_size(size: int, kernel_size: int, stride: int) -> int:
    """Output size of a same-padded layer: floor((size + 2*(k//2) - k) / stride) + 1."""
    return (size + 2 * (kernel_size // 2) - kernel_size) // stride + 1


def _weighted_record(name, layer, form, in_channels, in_elements, out_shape, fan_in, kernel_size, paper):
    _, kind, options, weight_bits, activation_bits, per_input = _resolve(layer)
    outputs = 1
    for size in out_shape:
        outputs *= size
    params = kind.params(form, in_channels, out_shape, kernel_size, options)
    storage = None
    if kind.storage_bits is not None:
        storage = kind.storage_bits(form, in_channels, out_shape, kernel_size, options)
    return weighted_cost(name, layer.kind, out_shape, kind.per_output(fan_in, options), per_input,
                         outputs, in_elements, fan_in, out_shape[0] * fan_in, params, storage,
                         weight_bits, activation_bits, paper)


def layer_record(
    name: str, layer: LayerSpec, in_channels: int, out_channels: int,
    kernel_size: int, stride: int, height: int, width: int, paper: bool = True,
) -> tuple[LayerCost, int, int]:
    """Record of one conv-form layer; returns it with the output height and width."""
    out_h = conv_output_size(height, kernel_size, stride)
    out_w = conv_output_size(width, kernel_size, stride)
    record = _weighted_record(name, layer, "conv", in_channels, in_channels * height * width,
                              (out_channels, out_h, out_w), in_channels * kernel_size * kernel_size,
                              kernel_size, paper)
    return record, out_h, out_w


def linear_record(name: str, layer: LayerSpec, in_features: int, out_features: int,
                  paper: bool = True) -> LayerCost:
    """Record of one linear-form layer (the classifier head)."""
    return _weighted_record(name, layer, "linear", in_features, in_features, (out_features,),
                            in_features, 1, paper)


def bn_record(name: str, channels: int, height: int, width: int) -> LayerCost:
    """Inference BatchNorm: one multiply and one add per element; scale and shift, 32 bits each."""
    elements = channels * height * width
    return LayerCost(name, "batchnorm", (channels, height, width), mul=elements, add=elements,
                     bops=elements * FLOAT_BOPS, params=2 * channels, storage_bits=64 * channels)


def body_records(
    prefix: str, stage: StageSpec, in_channels: int, out_channels: int,
    stride: int, height: int, width: int,
) -> tuple[list[LayerCost], int, int]:
    """The transform T of ``modules.make_body``: layers and BatchNorms in module order.

    basic: layer1 (k x k, stride), layer2 (k x k); single: layer1; bottleneck: layer1 (1x1),
    layer2 (k x k, stride), layer3 (1x1) at a middle width of out_channels / 4.
    """
    if stage.body == "bottleneck":
        middle = out_channels // 4
        shapes = [(in_channels, middle, 1, 1), (middle, middle, stage.kernel_size, stride),
                  (middle, out_channels, 1, 1)]
    elif stage.body == "single":
        shapes = [(in_channels, out_channels, stage.kernel_size, stride)]
    else:
        shapes = [(in_channels, out_channels, stage.kernel_size, stride),
                  (out_channels, out_channels, stage.kernel_size, 1)]
    records: list[LayerCost] = []
    for number, (cin, cout, kernel, layer_stride) in enumerate(shapes, start=1):
        record, height, width = layer_record(
            f"{prefix}.layer{number}", stage.layer, cin, cout, kernel, layer_stride, height, width)
        records += [record, bn_record(f"{prefix}.bn{number}", cout, height, width)]
    return records, height, width


def maxpool_record(name: str, channels: int, kernel_size: int, stride: int, padding: int,
                   height: int, width: int) -> tuple[LayerCost, int, int]:
    """A max-pool: k*k - 1 comparisons per output, counted as additions (a compare is a subtract)."""
    out_h = (height + 2 * padding - kernel_size) // stride + 1
    out_w = (width + 2 * padding - kernel_size) // stride + 1
    record = LayerCost(name, "maxpool", (channels, out_h, out_w),
                       add=(kernel_size * kernel_size - 1) * channels * out_h * out_w)
    return record, out_h, out_w


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
    params = sum(1 for flag in learnable if flag)
    return LayerCost(name, "combine", (channels, height, width), mul=mul * elements, add=add * elements,
                     shift=shift * elements, bops=mul * elements * FLOAT_BOPS, params=params,
                     storage_bits=32 * params)
