"""Build an ``nn.Module`` from a Genotype."""

from __future__ import annotations

import torch
from torch import nn

from .genotype import Genotype
from .modules import Network
from .registry import block_pattern, layer_kind

__all__ = ["build_model", "kinds_for"]


def kinds_for(genotype: Genotype) -> dict[str, dict]:
    """The ``kinds`` table of the layer kinds and block patterns this genotype uses."""
    layer_names = {genotype.stem.layer.kind, genotype.head.layer.kind}
    layer_names.update(stage.layer.kind for stage in genotype.stages)
    layer_names.update(override.layer.kind for stage in genotype.stages for override in stage.overrides)
    pattern_names = {stage.block.pattern for stage in genotype.stages}
    layers = {}
    for name in sorted(layer_names):
        kind = layer_kind(name)
        layers[name] = (kind.conv, kind.linear)
    blocks = {name: block_pattern(name).module for name in sorted(pattern_names)}
    return {"layers": layers, "blocks": blocks}


def build_model(genotype: Genotype) -> nn.Module:
    """The network a genotype describes, freshly initialised (seed torch first for repeatability)."""
    model = Network(genotype.to_dict(), kinds_for(genotype))
    if any(nn.parameter.is_lazy(parameter) for parameter in model.parameters()):
        # Layers sized by their output (binary rank-1 scales) materialise on one blank
        # image; eval mode leaves BatchNorm statistics and data-dependent inits untouched.
        with torch.no_grad():
            model.eval()(torch.zeros((1, *genotype.input.shape)))
        model.train()
    return model
