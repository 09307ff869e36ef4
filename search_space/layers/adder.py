"""Adder 2-D layer and its training helpers (AdderNet eqs. 2, 5, 20, 21, 27).

``Adder2d`` replaces a convolution's cross-correlation by a negative l_p distance
between each receptive field and each filter (eq. 20). BatchNorm must follow it (its
outputs are all <= 0). Training follows AdderNet Algorithm 1:

1. set the exponent with ``set_adder_p(model, adder_p_at(progress, decay_fraction))``
   before each step: p falls linearly from 2 (l2-AdderNet) to 1 (l1-AdderNet);
2. after ``loss.backward()`` and before ``optimizer.step()``, call
   ``scale_adder_gradients(model, eta)`` (eq. 27, adaptive learning-rate scaling).

At inference p is 1 (the default), so the layer adds and never multiplies.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from ..recipes import rescale_gradient
from .adder_dispatch import adder_forward

__all__ = ["Adder2d", "set_adder_p", "adder_p_at", "scale_adder_gradients"]


def _adder_forward(x, weight, stride, padding, p):
    """The operator of eq. 20 on the kernel ``adder_dispatch`` picks: Triton on CUDA, the
    compiled kernels on the CPU (the default), pure torch otherwise or after a failure.
    The exported model replaces this function by ``adder_ops.adder2d``."""
    return adder_forward(x, weight, stride, padding, p)


class Adder2d(nn.Module):
    """Adder layer (AdderNet eq. 20): Y = -sum_{i,j,k} |X(m+i, n+j, k) - F(i, j, k, t)|^p.

    Eq. 20 over each kernel_size x kernel_size receptive field, zero padding
    kernel_size // 2 (a padded position contributes |F|^p), no bias. Gradients: the
    full-precision X - F for the filters (eq. 5) and HardTanh(F - X) for the input
    (the clipped gradient of the AdderNet code; AdderNet eq. 21 prints the unclipped
    (F - X)^(p-1), see docs/papers.md), at every p. ``self.p`` is a plain float in [1, 2] that training
    lowers from 2 to 1 (``set_adder_p``); it is 1 at inference.

    Filters start as N(0, 1), as in the official AdderNet code: the paper wants filter
    magnitudes similar to the BatchNorm-normalised inputs they are subtracted from (3.3).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        super().__init__()
        for name, value in (
            ("in_channels", in_channels),
            ("out_channels", out_channels),
            ("kernel_size", kernel_size),
            ("stride", stride),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Adder2d: {name} must be an int >= 1, got {value!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = kernel_size // 2
        self.p = 1.0
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, mean=0.0, std=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _adder_forward(x, self.weight, self.stride, self.padding, self.p)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, p={self.p}"
        )


def set_adder_p(model: nn.Module, p: float) -> int:
    """Set the exponent p (eq. 20) of every ``Adder2d`` in model; returns how many were set."""
    if not 1.0 <= p <= 2.0:
        raise ConfigError(f"adder exponent p must lie in [1, 2] (eq. 20), got {p!r}")
    layers = [m for m in model.modules() if isinstance(m, Adder2d)]
    for layer in layers:
        layer.p = float(p)
    return len(layers)


def adder_p_at(progress: float, decay_fraction: float) -> float:
    """AdderNet's l2-to-l1 schedule (section 3.2, eq. 20): p = 2 - progress / decay_fraction.

    Args:
        progress: fraction of training done, 0 at the first step (values outside [0, 1]
            are clipped by the formula's own clip).
        decay_fraction: fraction of training over which p falls linearly from 2 to 1
            (1.0: the whole run, as in the paper); p = 1 from then on.
    """
    if not 0.0 < decay_fraction <= 1.0:
        raise ConfigError(
            f"adder decay_fraction must lie in (0, 1] (part of training over which p "
            f"goes from 2 to 1), got {decay_fraction!r}"
        )
    return min(2.0, max(1.0, 2.0 - progress / decay_fraction))


@torch.no_grad()
def scale_adder_gradients(model: nn.Module, eta: float) -> int:
    """Adaptive learning-rate scaling (AdderNet eq. 27): g <- eta sqrt(k) / ||g||_2 * g.

    Applied to the weight gradient of each ``Adder2d`` (k = weight.numel()), so every
    adder layer takes a step of the same size whatever its gradient norm (eqs. 26-27).
    Call it between ``loss.backward()`` and ``optimizer.step()``; layers without a
    gradient, or with an all-zero one, are left alone. The paper uses eta = 0.1.

    Returns:
        The number of layers whose gradient was rescaled.
    """
    if not eta > 0.0:
        raise ConfigError(f"adder learning-rate scale eta must be > 0 (eq. 27), got {eta!r}")
    layers = (m for m in model.modules() if isinstance(m, Adder2d))
    return sum(rescale_gradient(layer.weight.grad, eta) for layer in layers)
