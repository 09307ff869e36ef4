"""n-bit quantized layers: linear (LSQ) or codebook weights.

Ding et al. distinguish two ways to keep lambda = 2^n distinct weight values per layer:

- ``linear``: uniform levels, stored as n-bit fixed point. Here the step s is learned as in
  LSQ (Esser et al., "Learned Step Size Quantization", ICLR 2020: quantizer eqs. 1-2, step
  gradient eq. 3, gradient scale and initial step in section 2):
  v_hat = round(clip(v / s, -Q_N, Q_P)) * s with Q_N = 2^(n-1), Q_P = 2^(n-1) - 1 (signed),
  gradient 1 to v inside the clip range and 0 outside (straight through), gradient
  round(v/s) - v/s inside and -Q_N or Q_P outside to s, scaled by g = 1/sqrt(N Q_P)
  (N = weights, or features per image for activations). s starts at 2 mean|v| / sqrt(Q_P).
  One bit is the symmetric {-s, +s} (sign(v/s) * s, sign(0) = +1, start s = mean|w|), since
  the signed 1-bit grid {-s, 0} would not be a binary network (the weight-quantization appendix treats 1-bit
  networks as weights in {-1, +1}).
- ``codebook`` (nonlinear): 2^n learned shared values per layer (initialised at the
  weights' quantiles), every weight replaced by its nearest value and stored as its index
  (Han et al.'s weight sharing). The latent weights get the straight-through gradient
  (clipped to the codebook's range) and each value the sum of the gradients of the weights
  that use it, scaled by sqrt(L / N) as LSQ scales its step (a value gathers about N / L
  weight gradients; unscaled, the values jump and 4-bit codebook networks on digits
  reached 17-38% instead of 94-96%).

Activations (option ``a_bits`` < 32) are quantized with LSQ too, their step initialised
from the first training batch. Their grid is unsigned [0, 2^n - 1] when that batch has no
negative value (ReLU outputs) and signed otherwise, so no level is wasted.

Storage (Ding et al.: number of weights x log2(lambda) bits) is reported by ``storage_bits``,
plus 32 bits per step, codebook value or bias. Cost per output element: K multiplies at
n x a bits and K additions (docs/architecture.md); the per-tensor rescale s_w s_a folds into the
BatchNorm that follows (or, for a classifier head, into the argmax). Quantizing an input
element costs one multiply (by 1/s) and one addition (rounding).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import LayerKind, OpCount, OptionSpec, dense_params

__all__ = ["LsqQuantize", "GradScale", "QuantConv2d", "QuantLinear", "QUANT"]

SCHEMES = ("linear", "codebook")
ACTIVATION_BITS = (1, 2, 3, 4, 5, 6, 7, 8, 32)  # 32: float activations


class LsqQuantize(torch.autograd.Function):
    """LSQ fake quantization s * q(v / s) with the gradients of Esser et al. (LSQ eqs. 1-3).

    ``qn``, ``qp``: the grid is the integers in [-qn, qp]; ``qn = qp = 0`` selects the
    binary grid {-1, +1} (sign, sign(0) = +1, pass-through range |v/s| <= 1).
    ``grad_scale`` multiplies the step's gradient (g = 1/sqrt(N Q_P)).
    """

    @staticmethod
    def forward(ctx, v, step, qn, qp, grad_scale):
        # Only v and s are saved (like a convolution); the grid is recomputed in backward.
        ctx.save_for_backward(v, step)
        ctx.grid = (qn, qp, grad_scale)
        _, q, _ = _lsq_grid_point(v, step, qn, qp)
        return q * step.to(v.dtype)

    @staticmethod
    def backward(ctx, grad):
        v, step = ctx.saved_tensors
        qn, qp, grad_scale = ctx.grid
        scaled, q, inside = _lsq_grid_point(v, step, qn, qp)
        grad_v = grad * inside.to(grad.dtype)
        # Inside: d(s q)/ds = q - v/s (round's derivative taken as 1); outside: the bound q.
        ds = torch.where(inside, q - scaled, q)
        grad_step = (grad * ds).sum().to(step.dtype).reshape(step.shape) * grad_scale
        return grad_v, grad_step, None, None, None


def _lsq_grid_point(v, step, qn, qp):
    """(v / s, its grid point q, whether v / s lies inside the pass-through range)."""
    scaled = v / step.to(v.dtype)
    if qn == 0 and qp == 0:
        return scaled, (scaled >= 0).to(v.dtype) * 2 - 1, scaled.abs() <= 1
    return scaled, scaled.round().clamp(-qn, qp), (scaled > -qn) & (scaled < qp)


class GradScale(torch.autograd.Function):
    """Identity forward, gradient times ``scale`` (exact, unlike the ``detach`` trick)."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


def _quant_grid(bits, signed):
    """(qn, qp) of an n-bit grid; (0, 0) is the binary {-1, +1} grid."""
    if bits == 1 and signed:
        return 0, 0
    if signed:
        return 2 ** (bits - 1), 2 ** (bits - 1) - 1
    return 0, 2 ** bits - 1


def _quant_init(layer, w_bits, a_bits, scheme):
    """Check the options, then the step or codebook and the activation state of ``layer``."""
    name = type(layer).__name__
    if not (isinstance(w_bits, int) and 1 <= w_bits <= 8):
        raise ValueError(f"{name}: w_bits must be an int in 1..8, got {w_bits!r}")
    if a_bits not in (1, 2, 3, 4, 5, 6, 7, 8, 32):
        raise ValueError(f"{name}: a_bits must be an int in 1..8, or 32 for float, got {a_bits!r}")
    if scheme not in ("linear", "codebook"):
        raise ValueError(f"{name}: scheme must be linear or codebook, got {scheme!r}")
    layer.w_bits, layer.a_bits, layer.scheme = w_bits, a_bits, scheme
    weight = layer.weight.detach()
    if scheme == "linear":
        qp = max(_quant_grid(w_bits, True)[1], 1)
        factor = 1.0 if w_bits == 1 else 2.0 / qp ** 0.5
        layer.weight_step = nn.Parameter(weight.abs().mean() * factor)
    else:
        levels = 2 ** w_bits
        quantiles = (torch.arange(levels, dtype=weight.dtype) + 0.5) / levels
        layer.codebook = nn.Parameter(torch.quantile(weight.flatten(), quantiles))
    if a_bits < 32:
        layer.act_step = nn.Parameter(torch.ones(()))
        layer.register_buffer("act_signed", torch.ones((), dtype=torch.bool))
        layer.register_buffer("act_ready", torch.zeros((), dtype=torch.bool))
        layer._act_cache = (True, False)  # (signed, ready) without a device sync per step
        layer.register_load_state_dict_post_hook(_quant_after_load)


def _quant_after_load(layer, incompatible_keys):
    layer._act_cache = (bool(layer.act_signed), bool(layer.act_ready))


def _quant_weight(layer):
    """The quantized weights: LSQ grid points or codebook values."""
    weight = layer.weight
    if layer.scheme == "linear":
        qn, qp = _quant_grid(layer.w_bits, True)
        grad_scale = 1.0 / (weight.numel() * max(qp, 1)) ** 0.5
        return LsqQuantize.apply(weight, layer.weight_step, qn, qp, grad_scale)
    codebook = GradScale.apply(layer.codebook, (layer.codebook.numel() / weight.numel()) ** 0.5)
    values, _ = torch.sort(codebook)
    index = torch.bucketize(weight.detach(), (values[1:] + values[:-1]) / 2)
    inside = ((weight >= values[0]) & (weight <= values[-1])).to(weight.dtype)
    # values[index] carries the codebook gradient; the zero-valued term the weights' one.
    return values[index] + (weight - weight.detach()) * inside


def _quant_input(layer, x):
    """LSQ-quantized activations, or x itself for a_bits = 32.

    The step and grid are set from the first batch seen in training mode; before that (an
    untrained layer in eval mode) the signed grid with step 1 is used.
    """
    if layer.a_bits == 32:
        return x
    signed, ready = layer._act_cache
    if layer.training and not ready:
        # LSQ's initial step from the first training batch; its sign picks the grid.
        with torch.no_grad():
            signed = bool((x < 0).any())
            qn, qp = _quant_grid(layer.a_bits, signed)
            factor = 1.0 if qp == 0 else 2.0 / qp ** 0.5
            layer.act_step.fill_(max(float(x.abs().mean()) * factor, 1e-8))
            layer.act_signed.fill_(signed)
            layer.act_ready.fill_(True)
        layer._act_cache = (signed, True)
    qn, qp = _quant_grid(layer.a_bits, signed)
    grad_scale = 1.0 / (x[0].numel() * max(qp, 1)) ** 0.5
    return LsqQuantize.apply(x, layer.act_step, qn, qp, grad_scale)


def _quant_indices(layer):
    """Codebook index of every weight (into the codebook sorted ascending)."""
    values, _ = torch.sort(layer.codebook.detach())
    return torch.bucketize(layer.weight.detach(), (values[1:] + values[:-1]) / 2)


def _quant_storage(layer):
    """n bits per weight plus 32 per step, codebook value or bias (Ding et al.'s storage)."""
    others = sum(p.numel() for name, p in layer.named_parameters() if name != "weight")
    return layer.weight.numel() * layer.w_bits + 32 * others


class QuantReadouts:
    """What both quantized layers report: the quantized weights, their indices, storage bits."""

    def quantized_weight(self):
        return _quant_weight(self).detach()

    def weight_indices(self):
        return _quant_indices(self)

    def storage_bits(self):
        return _quant_storage(self)


class QuantConv2d(QuantReadouts, nn.Module):
    """n-bit convolution: conv(q_a(x), q_w(W)), same padding, no bias (Ding et al.).

    Args:
        in_channels, out_channels, kernel_size, stride: as for ``nn.Conv2d``.
        w_bits: weight bits 1..8 (lambda = 2^w_bits values).
        a_bits: activation bits 1..8, or 32 for float activations.
        scheme: "linear" (LSQ) or "codebook" (see the module docstring).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, w_bits=8, a_bits=32,
                 scheme="linear"):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, kernel_size // 2
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)
        _quant_init(self, w_bits, a_bits, scheme)

    def forward(self, x):
        return F.conv2d(_quant_input(self, x), _quant_weight(self), None, self.stride, self.padding)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, w_bits={self.w_bits}, a_bits={self.a_bits}, scheme={self.scheme}")


class QuantLinear(QuantReadouts, nn.Module):
    """n-bit fully connected layer with a float bias: q_w(W) q_a(x) + b."""

    def __init__(self, in_features, out_features, w_bits=8, a_bits=32, scheme="linear"):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)
        _quant_init(self, w_bits, a_bits, scheme)
        self.bias = nn.Parameter(torch.zeros(out_features))

    def forward(self, x):
        return F.linear(_quant_input(self, x), _quant_weight(self), self.bias)

    def extra_repr(self):
        return (f"{self.in_features}, {self.out_features}, w_bits={self.w_bits}, "
                f"a_bits={self.a_bits}, scheme={self.scheme}")


def _per_output(fan_in, options):
    return OpCount(mul=fan_in, add=fan_in)


def _per_input(options):
    return OpCount() if options["a_bits"] == 32 else OpCount(mul=1, add=1)


def _params(form, in_channels, out_shape, kernel_size, options):
    extra = 1 if options["scheme"] == "linear" else 2 ** options["w_bits"]
    extra += options["a_bits"] != 32
    return dense_params(form, in_channels, out_shape, kernel_size) + extra


QUANT = LayerKind(
    name="quant",
    conv=QuantConv2d,
    linear=QuantLinear,
    per_output=_per_output,
    per_input=_per_input,
    params=_params,
    options={
        # 8 bits by default: 8-bit convolutions lose no accuracy (Han et al. 2015, in Ding et al.).
        "w_bits": OptionSpec(8, low=1, high=8),
        "a_bits": OptionSpec(32, choices=ACTIVATION_BITS),
        "scheme": OptionSpec("linear", choices=SCHEMES),
    },
    export_objects=(_lsq_grid_point, LsqQuantize, GradScale, _quant_grid, _quant_init, _quant_after_load, _quant_weight,
                    _quant_input, _quant_indices, _quant_storage, QuantReadouts),
    weight_bits=lambda options: options["w_bits"],
    activation_bits=lambda options: options["a_bits"],
    summary="n-bit quantized layer (LSQ linear or codebook weights, optional n-bit activations)",
)
