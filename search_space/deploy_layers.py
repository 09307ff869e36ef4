"""Inference forms of the layer kinds: plain tensor ops with their constants folded, for export.

``torch.export`` and the ONNX exporter trace a network's forward pass. The training forms of
the adder, binary and quant layers trace badly: the adder's CPU kernel loops over batch
chunks (the trace unrolls them: a graph that grows with the batch and cannot take a dynamic
batch dimension), and binary and quant layers recompute their weights on every call (sign,
LSQ grid, codebook sort and bucketize: hundreds of nodes, TopK in ONNX). ``inference_network``
copies a model and swaps each such layer for a module that computes the same inference
output with standard ops and precomputed weights:

- adder (AdderNet eq. 2, p = 1): patches by a grouped convolution with one-hot kernels
  (an im2col that exports as one Conv node), then -sum |patch - filter|: six ONNX nodes per
  layer, whatever the batch. One-hot products are exact (x * 1 + 0 + ...), so the values
  equal the in-package kernel's up to summation order; a non-finite input spreads NaN over
  its receptive fields' neighbours (0 * inf), which the in-package kernel does not.
- binary (XNOR-Net++ eq. 3 with the eq. 12 scale): eval BatchNorm, sign, a convolution with
  the stored sign(W) and one precomputed scale tensor (alpha beta gamma).
- quant (LSQ / codebook): the quantized weights stored as they are, activations quantized
  with divide, round, clamp and multiply (LSQ eq. 1), the grid of the layer's inference state.

Float convolutions and every other module are left as they are.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError
from .layers.adder import Adder2d
from .layers.adder_kind import AdderLinear
from .layers.binary import BinaryConv2d, BinaryLinear
from .layers.quant import QuantConv2d, QuantLinear, _quant_grid

__all__ = ["AdderInference", "BinaryInference", "QuantInference", "inference_network"]


class AdderInference(nn.Module):
    """Y = -sum_k |X_l[k] - F[o, k]| (AdderNet eq. 2) from standard ops.

    The conv form gathers each receptive field with a grouped convolution whose kernels are
    one-hot (channel c, tap i, j -> row c * kh * kw + i * kw + j, the order of F's flattened
    rows), so zero padding contributes |F| as in eq. 20. The linear form (``linear=True``)
    is b_o - sum_i |x_i - W_oi| with the layer's bias b. Memory: the (N, O, K, Ho, Wo)
    difference tensor, 9.4 MB per image in ResNet-20's first stage (16 x 144 x 32 x 32).
    """

    def __init__(self, weight, stride, padding, bias=None, linear=False):
        super().__init__()
        out_channels, in_channels, kh, kw = weight.shape
        self.stride, self.padding, self.linear = stride, padding, linear
        self.gather = not linear and (kh, kw) != (1, 1)
        self.register_buffer("filters", weight.detach().reshape(out_channels, -1, 1, 1).clone())
        if self.gather:
            taps = torch.eye(kh * kw, dtype=weight.dtype, device=weight.device).reshape(kh * kw, 1, kh, kw)
            self.register_buffer("taps", taps.repeat(in_channels, 1, 1, 1))
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    def forward(self, x):
        if self.linear:
            distance = (x.unsqueeze(1) - self.filters.flatten(1)).abs().sum(2)
            return self.bias - distance
        if self.gather:
            x = F.conv2d(x, self.taps, None, self.stride, self.padding, groups=x.shape[1])
        elif self.stride > 1:
            x = x[..., :: self.stride, :: self.stride]  # no slice of the (dynamic) batch axis
        # (N, 1, K, Ho, Wo) - (O, K, 1, 1) -> (N, O, K, Ho, Wo), summed over K.
        return (x.unsqueeze(1) - self.filters).abs().sum(2).neg()


class BinaryInference(nn.Module):
    """sign(BNorm(x)) (+) sign(W), times the folded scale (XNOR-Net++ eqs. 3 and 12)."""

    def __init__(self, layer):
        super().__init__()
        self.linear = isinstance(layer, BinaryLinear)
        self.stride = getattr(layer, "stride", 1)
        self.padding = getattr(layer, "padding", 0)
        for name in ("norm_mean", "norm_var", "norm_weight", "norm_bias"):
            self.register_buffer(name, getattr(layer, name).detach().clone())
        weight = layer.weight.detach()
        self.register_buffer("weight_sign", (weight >= 0).to(weight.dtype) * 2 - 1)
        self.register_buffer("scale", _binary_scale(layer))
        bias = getattr(layer, "bias", None)
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    def forward(self, x):
        x = F.batch_norm(x, self.norm_mean, self.norm_var, self.norm_weight, self.norm_bias,
                         False, 0.0, 1e-5)
        x = (x >= 0).to(x.dtype) * 2 - 1
        if self.linear:
            y = F.linear(x, self.weight_sign)
        else:
            y = F.conv2d(x, self.weight_sign, None, self.stride, self.padding)
        if self.scale is not None:
            y = y * self.scale
        return y if self.bias is None else y + self.bias


def _binary_scale(layer):
    """The layer's output scale as one tensor (None for scale="none"), formed as its forward does."""
    if layer.scale == "none":
        return None
    alpha = layer.scale_channel.detach()
    if isinstance(layer, BinaryLinear):
        return alpha.clone()
    gamma = alpha.view(1, -1, 1, 1)
    if layer.scale == "rank1":
        height, width = layer.scale_height.detach(), layer.scale_width.detach()
        gamma = gamma * height.view(1, 1, -1, 1) * width.view(1, 1, 1, -1)
    return gamma.clone()


class QuantInference(nn.Module):
    """conv(q_a(x), W_q) or W_q q_a(x) + b with the quantized weights W_q stored (LSQ eq. 1).

    q_a(x) = clamp(round(x / s), -Q_N, Q_P) * s on the grid the layer's inference state
    uses (signed or unsigned as set by its first training batch; sign(x / s) * s for the
    binary grid), or x itself for float activations.
    """

    def __init__(self, layer):
        super().__init__()
        self.linear = isinstance(layer, QuantLinear)
        self.stride = getattr(layer, "stride", 1)
        self.padding = getattr(layer, "padding", 0)
        self.register_buffer("weight", layer.quantized_weight().clone())
        bias = getattr(layer, "bias", None)
        self.register_buffer("bias", None if bias is None else bias.detach().clone())
        self.grid = None
        self.register_buffer("act_step", None)
        if layer.a_bits < 32:
            # The grid eval mode uses: set by the first training batch, signed before it.
            self.grid = _quant_grid(layer.a_bits, bool(layer.act_signed))
            self.act_step = layer.act_step.detach().clone()

    def forward(self, x):
        if self.grid is not None:
            qn, qp = self.grid
            scaled = x / self.act_step
            if qn == 0 and qp == 0:
                q = (scaled >= 0).to(x.dtype) * 2 - 1
            else:
                q = scaled.round().clamp(-qn, qp)
            x = q * self.act_step
        if self.linear:
            return F.linear(x, self.weight, self.bias)
        return F.conv2d(x, self.weight, None, self.stride, self.padding)


def _inference_form(module):
    """The inference form of ``module``, or None when it exports as it is."""
    if isinstance(module, Adder2d):
        if module.p != 1.0:
            raise ConfigError(
                f"adder layers export at their inference state p = 1 (AdderNet eq. 2), got "
                f"p = {module.p!r}; set it with set_adder_p(model, 1.0)"
            )
        if isinstance(module, AdderLinear):
            return AdderInference(module.weight, 1, 0, module.bias, linear=True)
        return AdderInference(module.weight, module.stride, module.padding)
    if isinstance(module, (BinaryConv2d, BinaryLinear)):
        if any(nn.parameter.is_lazy(parameter) for parameter in module.parameters()):
            raise ConfigError("a binary rank1 layer has unsized scales: build the model with "
                              "optinas.search_space.build_model or load its weights first")
        return BinaryInference(module)
    if isinstance(module, (QuantConv2d, QuantLinear)):
        return QuantInference(module)
    return None


@torch.no_grad()
def inference_network(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode with its adder, binary and quant layers in inference form.

    The copy computes what ``model.eval()`` computes (adder at p = 1) and traces to a graph
    whose size does not depend on the batch. ``model`` itself is left untouched.

    Raises:
        ConfigError: an adder layer is not at p = 1, or a binary layer's scales are unsized.
    """
    network = copy.deepcopy(model).eval()
    for parent in list(network.modules()):
        for name, child in list(parent.named_children()):
            form = _inference_form(child)
            if form is not None:
                setattr(parent, name, form)
    return network.requires_grad_(False)
