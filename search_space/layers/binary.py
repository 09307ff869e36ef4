"""Binary XNOR/popcount layers (XNOR-Net++; Chee and Loustau eqs. 3 and 12).

A binary layer approximates a convolution by a bitwise one times learned scale factors::

    x_l = (sign(W) (+) sign(BNorm(x_{l-1}))) (.) w_scale              (Chee and Loustau eq. 3)

where (+) is the XNOR/popcount convolution of +-1 tensors and (.) the element-wise product
with the scale. The layer carries its own input BatchNorm because the body feeds it
ReLU outputs: sign(ReLU(x)) would be +1 everywhere. At inference BatchNorm followed by
sign is one threshold compare per input element (BN folded into a per-channel threshold).

Scales (option ``scale``):

- ``none``: the popcount result itself (the BatchNorm after the layer rescales it);
- ``channel``: one learned alpha per output channel (XNOR-Net++ "Gamma = alpha");
- ``rank1``: Gamma = alpha (x) beta (x) gamma over (out-channel, out-height, out-width),
  x_l(i, j, k) = B_l(i, j, k) alpha(i) beta(j) gamma(k) (Chee and Loustau eq. 12). The height and
  width factors are sized from the layer's real output shape on the first forward pass
  (``LazyModuleMixin``): no maximum resolution is fixed. ``optinas.search_space.build_model``
  runs that pass on one blank image, and ``load_state_dict`` sizes them from the stored
  tensors, so a strict load into a fresh module (an exported file) works.

Training (``BinaryRecipe``): Chee and Loustau learn by exponential weights, not SGD, and binary
networks are commonly trained with Adam, whose per-weight normalised steps let latent
weights flip sign. Under the evaluator's SGD the latent weights' gradients are tiny next to
their size (about 1e-4 against 0.04 at init on digits, where under 1% of the signs flipped
per epoch), so the recipe rescales each binary layer's weight gradient to
eta sqrt(k) / ||g||_2 as AdderNet does for adder filters (eq. 27; option ``eta``, 0 turns
it off) and keeps the latent weights in [-1, 1] where the clipped straight-through
gradient is alive (BinaryConnect's clip). On the digits network of
tests/search_space/test_layer_learning.py this lifts validation accuracy from 0.50-0.58
(eta = 0) to 0.87-0.91 (eta = 0.1) in six epochs.

Cost per output element: K XNORs and K popcount accumulations (K = k*k*Cin), plus one
multiplication when scaled (for rank1 the product alpha beta gamma depends on weights
only, so it is formed once after training and applied as one multiplication per output).
Per input element: one threshold compare, counted as an addition.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..recipes import TrainingRecipe, rescale_gradient
from ..registry import LayerKind, OpCount, OptionSpec, dense_params

__all__ = ["BinarySign", "BinaryConv2d", "BinaryLinear", "BinaryRecipe", "BINARY"]

SCALES = ("none", "channel", "rank1")


class BinarySign(torch.autograd.Function):
    """sign(x) in {-1, +1} with sign(0) = +1; clipped straight-through gradient.

    Backward is the straight-through estimator of XNOR-Net/XNOR-Net++: d sign(x)/dx is
    taken as 1 where |x| <= 1 and 0 elsewhere (the gradient of HardTanh), so saturated
    inputs stop receiving gradient. An autograd Function (not the ``detach`` trick) keeps
    the forward values exactly +-1.
    """

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x.abs() <= 1)  # a bool mask: a quarter of saving x
        return (x >= 0).to(x.dtype) * 2 - 1

    @staticmethod
    def backward(ctx, grad):
        (alive,) = ctx.saved_tensors
        return grad * alive.to(grad.dtype)


def _binary_check(name, scale, eta):
    if scale not in ("none", "channel", "rank1"):
        raise ValueError(f"{name}: scale must be one of none, channel, rank1; got {scale!r}")
    if not (isinstance(eta, (int, float)) and eta >= 0.0):
        raise ValueError(f"{name}: eta must be >= 0 (0: plain gradients), got {eta!r}")


def _binary_init(layer, in_features, scale, eta):
    """Input BatchNorm state and the channel scale, shared by the conv and linear forms."""
    layer.scale, layer.eta = scale, float(eta)
    layer.norm_weight = nn.Parameter(torch.ones(in_features))
    layer.norm_bias = nn.Parameter(torch.zeros(in_features))
    layer.register_buffer("norm_mean", torch.zeros(in_features))
    layer.register_buffer("norm_var", torch.ones(in_features))
    if scale != "none":
        # XNOR-Net's analytic optimum mean|W| per output channel, then learned (XNOR-Net++).
        dims = tuple(range(1, layer.weight.dim()))
        layer.scale_channel = nn.Parameter(layer.weight.detach().abs().mean(dim=dims))


def _binary_input(layer, x):
    """sign(BNorm(x)): batch statistics in training, running ones at inference."""
    x = F.batch_norm(x, layer.norm_mean, layer.norm_var, layer.norm_weight, layer.norm_bias,
                     layer.training, 0.1, 1e-5)
    return BinarySign.apply(x)


def _binary_storage(layer):
    """1 bit per weight, 32 bits per other parameter (BN affine, scales, bias)."""
    others = sum(p.numel() for name, p in layer.named_parameters() if name != "weight")
    return layer.weight.numel() + 32 * others


class BinaryConv2d(nn.modules.lazy.LazyModuleMixin, nn.Module):
    """XNOR-Net++ convolution: (sign(W) (+) sign(BNorm(x))) (.) scale (Chee and Loustau eqs. 3, 12).

    Same padding (kernel_size // 2) with zeros, which a popcount kernel handles with a
    per-position correction (as larq's default ``pad_values=0``); no bias.

    Args:
        in_channels, out_channels, kernel_size, stride: as for ``nn.Conv2d``.
        scale: "none", "channel" or "rank1" (see the module docstring).
        eta: latent-weight step of ``BinaryRecipe`` (0: plain gradients).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, scale="rank1", eta=0.1):
        super().__init__()
        _binary_check("BinaryConv2d", scale, eta)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, kernel_size // 2
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)  # nn.Conv2d's default
        _binary_init(self, in_channels, scale, eta)
        if scale == "rank1":
            self.scale_height = nn.parameter.UninitializedParameter()
            self.scale_width = nn.parameter.UninitializedParameter()

    def initialize_parameters(self, x):
        """Size the rank-1 height and width factors from the output of input ``x`` (ones)."""
        if self.scale != "rank1" or not self.has_uninitialized_params():
            return
        height, width = ((size + 2 * self.padding - self.kernel_size) // self.stride + 1
                         for size in x.shape[2:])
        with torch.no_grad():
            self.scale_height.materialize((height,), device=x.device)
            self.scale_width.materialize((width,), device=x.device)
            self.scale_height.fill_(1.0)
            self.scale_width.fill_(1.0)

    def forward(self, x):
        y = F.conv2d(_binary_input(self, x), BinarySign.apply(self.weight), None,
                     self.stride, self.padding)
        if self.scale == "none":
            return y
        gamma = self.scale_channel.view(1, -1, 1, 1).to(y.dtype)
        if self.scale == "rank1":
            if (self.scale_height.shape[0], self.scale_width.shape[0]) != tuple(y.shape[2:]):
                raise ValueError(
                    f"BinaryConv2d: rank-1 scale was sized for {self.scale_height.shape[0]}x"
                    f"{self.scale_width.shape[0]} outputs, got {tuple(y.shape[2:])}; "
                    "a rank1 layer serves one input resolution"
                )
            gamma = gamma * self.scale_height.view(1, 1, -1, 1) * self.scale_width.view(1, 1, 1, -1)
        return y * gamma

    def storage_bits(self):
        """Bits to store the layer: 1 per weight, 32 per scale, BN or bias parameter."""
        return _binary_storage(self)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, scale={self.scale}")


class BinaryLinear(nn.Module):
    """XNOR-Net++ fully connected layer: (sign(W) sign(BNorm(x)) + b) (.) alpha.

    The output is a vector, so ``rank1`` reduces to one alpha per output (as ``channel``).
    A float bias is kept for classifier heads.
    """

    def __init__(self, in_features, out_features, scale="rank1", eta=0.1):
        super().__init__()
        _binary_check("BinaryLinear", scale, eta)
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)
        _binary_init(self, in_features, scale, eta)
        self.bias = nn.Parameter(torch.zeros(out_features))

    def forward(self, x):
        y = F.linear(_binary_input(self, x), BinarySign.apply(self.weight))
        if self.scale != "none":
            y = y * self.scale_channel.to(y.dtype)
        return y + self.bias.to(y.dtype)

    def storage_bits(self):
        """Bits to store the layer: 1 per weight, 32 per scale, BN or bias parameter."""
        return _binary_storage(self)

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, scale={self.scale}"


class BinaryRecipe(TrainingRecipe):
    """Latent weights clipped to [-1, 1] before each step, gradients rescaled after backward."""

    @staticmethod
    def _layers(model):
        return [m for m in model.modules() if isinstance(m, (BinaryConv2d, BinaryLinear))]

    @torch.no_grad()
    def before_step(self, model, progress):
        for layer in self._layers(model):
            layer.weight.clamp_(-1.0, 1.0)

    @torch.no_grad()
    def after_backward(self, model):
        for layer in self._layers(model):
            if layer.eta > 0.0:
                rescale_gradient(layer.weight.grad, layer.eta)  # AdderNet eq. 27


def _per_output(fan_in, options):
    # K XNORs and K popcount accumulations (AdderNet Table 2: #XNOR = #Add), one multiply by the scale.
    return OpCount(add=fan_in, xnor=fan_in, mul=0 if options["scale"] == "none" else 1)


def _per_input(options):
    # BatchNorm + sign at inference: one compare of each input with a per-channel threshold.
    return OpCount(add=1)


def _params(form, in_channels, out_shape, kernel_size, options):
    scale = options["scale"]
    norm = 2 * in_channels
    if form == "linear":
        scales = 0 if scale == "none" else out_shape[0]
    else:
        scales = {"none": 0, "channel": out_shape[0], "rank1": sum(out_shape)}[scale]
    return dense_params(form, in_channels, out_shape, kernel_size) + norm + scales


BINARY = LayerKind(
    name="binary",
    conv=BinaryConv2d,
    linear=BinaryLinear,
    per_output=_per_output,
    per_input=_per_input,
    params=_params,
    # rank1 by default: Chee and Loustau's layer (eq. 12).
    options={"scale": OptionSpec("rank1", choices=SCALES), "eta": OptionSpec(0.1, low=0.0, high=1.0)},
    export_objects=(BinarySign, _binary_check, _binary_init, _binary_input, _binary_storage),
    weight_bits=lambda options: 1,
    activation_bits=lambda options: 1,
    recipe=BinaryRecipe,
    summary="XNOR-Net++ binary layer (sign weights and activations, learned scale)",
)
