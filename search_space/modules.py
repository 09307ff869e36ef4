"""The runtime modules every network is made of: stem, stages, body T, shortcuts, head.

These classes are *exportable*: they reference only ``torch``, ``nn``, ``F`` and each other,
and they are built from plain dicts (the genotype's ``to_dict()``) plus a ``kinds`` table
``{"layers": {name: (conv_class, linear_class)}, "blocks": {name: block_class}}``. The
exporter copies their source verbatim into a standalone file, so an exported model is the
in-package model by construction: same parameter names, same arithmetic.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "WeightedSum",
    "Body",
    "BottleneckBody",
    "SingleLayerBody",
    "make_body",
    "PadShortcut",
    "Projection",
    "make_shortcut",
    "Stem",
    "Stage",
    "GlobalAvgPool",
    "Network",
    "EXPORT_OBJECTS",
]


def make_layer(kinds, layer, in_channels, out_channels, kernel_size, stride):
    """Build the conv form of a layer spec dict ``{"kind": ..., "options": {...}}``."""
    conv_class = kinds["layers"][layer["kind"]][0]
    return conv_class(in_channels, out_channels, kernel_size, stride, **layer["options"])


class WeightedSum(nn.Module):
    """sum_i c_i * x_i: how a block combines T(x) with its history (Li et al., eqs. 16-20).

    Fixed coefficients stay Python floats (1 and -1 cost no multiplication); learnable ones
    are entries of the parameter vector ``learned``, initialised to their given values.
    """

    def __init__(self, values, learnable):
        super().__init__()
        self.values = [float(value) for value in values]
        self.learnable = [bool(flag) for flag in learnable]
        initial = [value for value, flag in zip(self.values, self.learnable) if flag]
        if initial:
            self.learned = nn.Parameter(torch.tensor(initial, dtype=torch.float32))

    def forward(self, *terms):
        total = None
        position = 0
        for term, value, flag in zip(terms, self.values, self.learnable):
            sign = 1.0
            if flag:
                term = term * self.learned[position].to(term.dtype)
                position += 1
            elif value == 0.0:
                continue
            elif value in (1.0, -1.0):
                sign = value  # an addition or a subtraction, no multiplication
            else:
                term = term * value
            if total is None:
                total = term if sign > 0 else -term
            else:
                total = total + term if sign > 0 else total - term
        if total is None:
            # Every coefficient is a fixed 0: the sum is a constant zero map and costs nothing.
            return torch.zeros_like(terms[0])
        return total


class Body(nn.Module):
    """The block transform T: layer -> BN -> ReLU -> layer -> BN (ResNet's basic body)."""

    def __init__(self, in_channels, out_channels, stride, kernel_size, layer, kinds):
        super().__init__()
        self.layer1 = make_layer(kinds, layer, in_channels, out_channels, kernel_size, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.layer2 = make_layer(kinds, layer, out_channels, out_channels, kernel_size, 1)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x):
        return self.bn2(self.layer2(F.relu(self.bn1(self.layer1(x)))))


class BottleneckBody(nn.Module):
    """T of ResNet-50: 1x1 layer -> BN -> ReLU -> k x k layer (stride) -> BN -> ReLU -> 1x1 layer -> BN.

    The middle width is out_channels / 4 (expansion 4, He et al. 2016); the stride sits on the
    k x k layer, as in torchvision's ResNet ("v1.5") and AdderNet's ImageNet code.
    """

    def __init__(self, in_channels, out_channels, stride, kernel_size, layer, kinds):
        super().__init__()
        middle = out_channels // 4
        self.layer1 = make_layer(kinds, layer, in_channels, middle, 1, 1)
        self.bn1 = nn.BatchNorm2d(middle)
        self.layer2 = make_layer(kinds, layer, middle, middle, kernel_size, stride)
        self.bn2 = nn.BatchNorm2d(middle)
        self.layer3 = make_layer(kinds, layer, middle, out_channels, 1, 1)
        self.bn3 = nn.BatchNorm2d(out_channels)

    def forward(self, x):
        x = F.relu(self.bn1(self.layer1(x)))
        x = F.relu(self.bn2(self.layer2(x)))
        return self.bn3(self.layer3(x))


class SingleLayerBody(nn.Module):
    """T = BN(layer(x)): one layer per block, the W x of the plain network (Li et al., eq. 7) and VGG."""

    def __init__(self, in_channels, out_channels, stride, kernel_size, layer, kinds):
        super().__init__()
        self.layer1 = make_layer(kinds, layer, in_channels, out_channels, kernel_size, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)

    def forward(self, x):
        return self.bn1(self.layer1(x))


def make_body(in_channels, out_channels, stride, stage, kinds):
    """The transform T of a block in ``stage`` (a plain dict of the stage spec)."""
    body = stage.get("body", "basic")
    if body == "bottleneck":
        body_class = BottleneckBody
    elif body == "single":
        body_class = SingleLayerBody
    else:
        body_class = Body
    return body_class(in_channels, out_channels, stride, stage["kernel_size"], stage["layer"], kinds)


class PadShortcut(nn.Module):
    """Parameter-free shortcut (ResNet option A): subsample, then zero-pad the channels."""

    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.extra_channels = out_channels - in_channels
        self.stride = stride

    def forward(self, x):
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.extra_channels:
            x = F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))
        return x


class Projection(nn.Module):
    """Projection shortcut (ResNet option B): 1x1 layer of the stage's kind, then BN."""

    def __init__(self, in_channels, out_channels, stride, layer, kinds):
        super().__init__()
        self.layer = make_layer(kinds, layer, in_channels, out_channels, 1, stride)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x):
        return self.bn(self.layer(x))


def make_shortcut(in_channels, out_channels, stride, stage, kinds):
    """Identity where shapes agree, else the stage's shortcut kind."""
    if in_channels == out_channels and stride == 1:
        return nn.Identity()
    if stage["shortcut"] == "pad":
        return PadShortcut(in_channels, out_channels, stride)
    return Projection(in_channels, out_channels, stride, stage["layer"], kinds)


class Stem(nn.Module):
    """First layer: layer -> BN -> ReLU, then (ImageNet stem) a 3x3 stride-2 max-pool."""

    def __init__(self, in_channels, stem, kinds):
        super().__init__()
        stride = stem.get("stride", 1)
        self.layer = make_layer(kinds, stem["layer"], in_channels, stem["width"], stem["kernel_size"], stride)
        self.bn = nn.BatchNorm2d(stem["width"])
        self.pool = nn.MaxPool2d(3, 2, 1) if stem.get("pool", "none") == "max" else None

    def forward(self, x):
        x = F.relu(self.bn(self.layer(x)))
        return x if self.pool is None else self.pool(x)


class Stage(nn.Module):
    """``depth`` blocks of one pattern; each block maps the stage's history to a new one.

    The history is the list of feature maps a pattern needs (x_k for gd; x_{k-1}, x_k for hb;
    all x_j for dense patterns). It starts as [x_0] at every stage, so each stage restarts
    its optimizer-inspired recursion (Li et al., "Block Based Structure").
    """

    def __init__(self, in_channels, stage, kinds):
        super().__init__()
        block_class = kinds["blocks"][stage["block"]["pattern"]]
        # VGG-style stages downsample with a 2x2 max-pool in front instead of a strided layer.
        pooled = stage.get("downsample", "stride") == "maxpool"
        self.pool = nn.MaxPool2d(stage["stride"]) if pooled else None
        overrides = {override["index"]: override["layer"] for override in stage.get("overrides", [])}
        blocks = []
        for index in range(stage["depth"]):
            block_in = in_channels if index == 0 else stage["width"]
            stride = stage["stride"] if index == 0 and not pooled else 1
            # A per-block layer override is that block's view of the stage: its own layer spec.
            block_stage = dict(stage, layer=overrides[index]) if index in overrides else stage
            blocks.append(block_class(block_in, stage["width"], stride, block_stage, index, kinds))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x):
        if self.pool is not None:
            x = self.pool(x)
        history = [x]
        for block in self.blocks:
            history = block(history)
        return history[-1]


class GlobalAvgPool(nn.Module):
    """Mean over the spatial positions: (N, C, H, W) -> (N, C)."""

    def forward(self, x):
        return x.mean(dim=(2, 3))


class Network(nn.Module):
    """stem -> stages -> global average pool -> classifier, built from a genotype dict."""

    def __init__(self, arch, kinds):
        super().__init__()
        channels = arch["input"]["channels"]
        self.stem = Stem(channels, arch["stem"], kinds)
        channels = arch["stem"]["width"]
        stages = []
        for stage in arch["stages"]:
            stages.append(Stage(channels, stage, kinds))
            channels = stage["width"]
        self.stages = nn.ModuleList(stages)
        self.pool = GlobalAvgPool()
        head = arch["head"]["layer"]
        linear_class = kinds["layers"][head["kind"]][1]
        self.fc = linear_class(channels, arch["input"]["classes"], **head["options"])

    def forward(self, x):
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.fc(self.pool(x))


# Sources the exporter copies, in dependency order (each only uses names defined above it).
EXPORT_OBJECTS = (
    make_layer,
    WeightedSum,
    Body,
    BottleneckBody,
    SingleLayerBody,
    make_body,
    PadShortcut,
    Projection,
    make_shortcut,
    Stem,
    Stage,
    GlobalAvgPool,
    Network,
)
