"""Counting by observation: forward hooks on a built model, one image through it.

This is the independent check of ``analytic.count_cost``: it knows nothing about genotypes,
only module types, their parameters and the tensors that actually flow. The per-element
conventions (what one conv output or one BatchNorm element costs, a kind's declared bit
widths) are shared with the analytic side; everything structural is observed here and
derived there: which modules run, how often, at which input and output shapes, the fan-in
(from the weight tensor), the parameter tensors themselves (params and storage bits, or a
module's own ``storage_bits()``), and which weighted layers ran first and last (the two
that AdderNet's convention leaves out).
"""

from __future__ import annotations

import torch
from torch import nn

from ..modules import GlobalAvgPool, WeightedSum
from ..registry import layer_kind_of
from .records import FLOAT_BOPS, Cost, LayerCost, combine_ops, weighted_cost

__all__ = ["count_with_hooks"]


def _own_params(module: nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters(recurse=False))


def _weighted(name: str, module: nn.Module, kind, inputs: tuple, output: torch.Tensor) -> LayerCost:
    options = {option: getattr(module, option) for option in kind.options}
    weight_bits, activation_bits = kind.weight_bits(options), kind.activation_bits(options)
    fan_in = module.weight[0].numel()
    outputs = output[0].numel()
    in_elements = inputs[0][0].numel()
    storage = int(module.storage_bits()) if callable(getattr(module, "storage_bits", None)) else None
    return weighted_cost(name, kind.name, tuple(output.shape[1:]), kind.per_output(fan_in, options),
                         kind.per_input(options), outputs, in_elements, fan_in, module.weight.numel(),
                         _own_params(module), storage, weight_bits, activation_bits, paper=True)


def _record(name: str, module: nn.Module, inputs: tuple, output: torch.Tensor) -> LayerCost | None:
    if not isinstance(output, torch.Tensor):
        return None  # blocks and stages pass lists of maps; their leaves are counted
    shape = tuple(output.shape[1:])
    elements = output[0].numel()
    found = layer_kind_of(module)
    if found is not None:
        return _weighted(name, module, found[0], inputs, output)
    if isinstance(module, nn.BatchNorm2d):
        params = _own_params(module)
        return LayerCost(name, "batchnorm", shape, mul=elements, add=elements, bops=elements * FLOAT_BOPS,
                         params=params, storage_bits=32 * params)
    if isinstance(module, WeightedSum):
        mul, add, shift = combine_ops(module.values, module.learnable)
        params = _own_params(module)
        return LayerCost(name, "combine", shape, mul=mul * elements, add=add * elements,
                         shift=shift * elements, bops=mul * elements * FLOAT_BOPS, params=params,
                         storage_bits=32 * params)
    if isinstance(module, nn.MaxPool2d):
        # As layer_records.maxpool_record: k*k - 1 comparisons per output, counted as additions.
        size = module.kernel_size
        kernel_h, kernel_w = (size, size) if isinstance(size, int) else size  # (kh, kw): not always square
        return LayerCost(name, "maxpool", shape, add=(kernel_h * kernel_w - 1) * elements)
    if isinstance(module, GlobalAvgPool):
        channels, positions = inputs[0].shape[1], inputs[0][0, 0].numel()
        return LayerCost(name, "avgpool", shape, mul=channels, add=channels * (positions - 1),
                         bops=channels * FLOAT_BOPS)
    if _own_params(module):
        raise TypeError(f"cost hooks do not know how to count {type(module).__name__} at {name!r}")
    return None


def _outside_paper(records: list[LayerCost]) -> list[LayerCost]:
    """Mark the first and the last weighted layer that ran (AdderNet omits both)."""
    weighted = [index for index, record in enumerate(records) if record.macs]
    for index in {weighted[0], weighted[-1]} if weighted else ():
        records[index] = records[index]._replace(paper=False)
    return records


@torch.no_grad()
def count_with_hooks(model: nn.Module, input_shape: tuple[int, int, int], hardware=None) -> Cost:
    """Run one zero image through ``model`` (eval mode) and count what each module did.

    A module that runs more than once (shared weights) is counted every time it runs.
    ``hardware`` prices the records as in ``count_cost``.
    """
    records: list[LayerCost] = []
    handles = []
    for name, module in model.named_modules():
        def hook(module, inputs, output, name=name):
            record = _record(name, module, inputs, output)
            if record is not None:
                records.append(record)
        handles.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        parameter = next(model.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
        model(torch.zeros((1, *input_shape), device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return Cost.from_records(input_shape, _outside_paper(records), hardware)
