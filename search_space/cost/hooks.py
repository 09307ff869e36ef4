"""Counting by observation: forward hooks on a built model, one image through it.

This is the independent check of ``analytic.count_cost``: it knows nothing about genotypes,
only module types, their parameters and the tensors that actually flow. The per-element
conventions (what one conv output or one BatchNorm element costs) are shared with the
analytic side; the structure (which modules exist, at what shapes, how often they run) is
observed here and derived there.
"""

from __future__ import annotations

import torch
from torch import nn

from ..modules import GlobalAvgPool, WeightedSum
from ..registry import layer_kind_of
from .records import Cost, LayerCost, combine_ops

__all__ = ["count_with_hooks"]


def _own_params(module: nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters(recurse=False))


def _record(name: str, module: nn.Module, inputs: tuple, output: torch.Tensor) -> LayerCost | None:
    if not isinstance(output, torch.Tensor):
        return None  # blocks and stages pass lists of maps; their leaves are counted
    shape = tuple(output.shape[1:])
    elements = output[0].numel()
    found = layer_kind_of(module)
    if found is not None:
        kind, form = found
        fan_in = module.weight[0].numel()
        options = {name: getattr(module, name) for name in kind.options}
        ops = kind.per_output(fan_in, options)
        return LayerCost(name, kind.name, shape, mul=ops.mul * elements, add=ops.add * elements,
                         xnor=ops.xnor * elements, params=_own_params(module), paper=True)
    if isinstance(module, nn.BatchNorm2d):
        return LayerCost(name, "batchnorm", shape, mul=elements, add=elements, params=_own_params(module))
    if isinstance(module, WeightedSum):
        mul, add, shift = combine_ops(module.values, module.learnable)
        return LayerCost(name, "combine", shape, mul=mul * elements, add=add * elements,
                         shift=shift * elements, params=_own_params(module))
    if isinstance(module, GlobalAvgPool):
        channels, positions = inputs[0].shape[1], inputs[0][0, 0].numel()
        return LayerCost(name, "avgpool", shape, mul=channels, add=channels * (positions - 1))
    if _own_params(module):
        raise TypeError(f"cost hooks do not know how to count {type(module).__name__} at {name!r}")
    return None


@torch.no_grad()
def count_with_hooks(model: nn.Module, input_shape: tuple[int, int, int]) -> Cost:
    """Run one zero image through ``model`` (eval mode) and count what each module did.

    A module that runs more than once (shared weights) is counted every time it runs.
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
    return Cost.from_records(input_shape, records)
