"""The ``adder`` layer kind: AdderNet conv and linear forms, options and training recipe.

The operator and its gradients live in ``adder_ops`` (pure torch), ``adder_compiled``
(fused CPU) and ``adder_triton`` (CUDA), picked by ``adder_dispatch``; ``adder.Adder2d``
is the module. This file adds what the registry needs (AdderNet):

- ``AdderConv2d``: ``Adder2d`` plus the per-layer training options ``p_decay`` and ``eta``;
- ``AdderLinear``: Y_o = b_o - sum_i |x_i - W_oi|^p, the fully connected form (AdderNet
  section 4.1: "the fully connected layer can be regarded as a convolutional layer"),
  computed as a 1x1 adder layer on a 1x1 map, so it has the same gradients (eqs. 5, 21);
- ``AdderRecipe``: AdderNet Algorithm 1: before each step p = 2 - progress / p_decay
  clipped to [1, 2] (eq. 20's l2-to-l1 schedule), after backward each layer's weight
  gradient rescaled to eta sqrt(k) / ||g||_2 (eq. 27), and p = 1 for inference.

``p_decay`` defaults to 0.75: in AdderNet Table 6 p reaches 1 after 600 of 800 epochs,
the best of 300..700 (decaying over the whole run leaves too little l1 training, a short
decay too little l_p guidance). ``eta`` defaults to 0.1, the paper's CIFAR setting (eq. 27).

Cost per output element: K subtractions and K accumulations, no multiplication (2K
additions, AdderNet Table 2 convention; for the linear form the bias is the K-th add).
"""

from __future__ import annotations

import torch
from torch import nn

from ..recipes import TrainingRecipe
from ..registry import LayerKind, OpCount, OptionSpec
from . import adder_ops
from .adder import Adder2d, _adder_forward, adder_p_at, scale_adder_gradients, set_adder_p

__all__ = ["AdderConv2d", "AdderLinear", "AdderRecipe", "ADDER"]


def _adder_options(layer, p_decay, eta):
    """Check and keep the recipe options (the names the cost hooks read back)."""
    name = type(layer).__name__
    if not (isinstance(p_decay, (int, float)) and 0.0 < p_decay <= 1.0):
        raise ValueError(f"{name}: p_decay must be a fraction of training in (0, 1], got {p_decay!r}")
    if not (isinstance(eta, (int, float)) and eta > 0.0):
        raise ValueError(f"{name}: eta must be > 0 (eq. 27), got {eta!r}")
    layer.p_decay, layer.eta = float(p_decay), float(eta)


class AdderConv2d(Adder2d):
    """``Adder2d`` (eq. 20) carrying its l_p schedule length and adaptive-LR coefficient.

    Args:
        in_channels, out_channels, kernel_size, stride: as for ``Adder2d``.
        p_decay: fraction of training over which p falls linearly from 2 to 1 (eq. 20).
        eta: the adaptive learning-rate coefficient of eq. 27.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, p_decay=0.75, eta=0.1):
        super().__init__(in_channels, out_channels, kernel_size, stride)
        _adder_options(self, p_decay, eta)


class AdderLinear(Adder2d):
    """Fully connected adder layer: Y_o = b_o - sum_i |x_i - W_oi|^p (AdderNet eq. 20).

    The weight is stored (out_features, in_features, 1, 1): a 1x1 ``Adder2d`` applied to
    the (N, in_features, 1, 1) view of the input, so gradients are eq. 5 and eq. 21 and
    ``set_adder_p`` / ``scale_adder_gradients`` treat it like any adder layer. The float
    bias shifts the (all negative) distances: a classifier head has no BatchNorm after it.
    """

    def __init__(self, in_features, out_features, p_decay=0.75, eta=0.1):
        super().__init__(in_features, out_features, 1, 1)
        _adder_options(self, p_decay, eta)
        self.in_features, self.out_features = in_features, out_features
        self.bias = nn.Parameter(torch.zeros(out_features))

    def forward(self, x):
        y = _adder_forward(x[:, :, None, None], self.weight, 1, 0, self.p)
        return y.flatten(1) + self.bias.to(y.dtype)

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, p={self.p}"


class AdderRecipe(TrainingRecipe):
    """AdderNet Algorithm 1 for the adder layers of a model, each with its own options."""

    @staticmethod
    def _layers(model: nn.Module) -> list[Adder2d]:
        return [m for m in model.modules() if isinstance(m, (AdderConv2d, AdderLinear))]

    def before_step(self, model: nn.Module, progress: float) -> None:
        for layer in self._layers(model):
            layer.p = adder_p_at(progress, layer.p_decay)

    def after_backward(self, model: nn.Module) -> None:
        for layer in self._layers(model):
            scale_adder_gradients(layer, layer.eta)

    def for_inference(self, model: nn.Module) -> None:
        set_adder_p(model, 1.0)


def _per_output(fan_in, options):
    return OpCount(add=2 * fan_in)


ADDER = LayerKind(
    name="adder",
    conv=AdderConv2d,
    linear=AdderLinear,
    per_output=_per_output,
    options={
        "p_decay": OptionSpec(0.75, low=0.05, high=1.0),
        "eta": OptionSpec(0.1, low=0.01, high=1.0),
    },
    export_objects=(*adder_ops.EXPORT_OBJECTS, Adder2d, _adder_options),
    # Exported files run the pure-torch operator: no Triton, no dispatch.
    export_prelude=(
        "def _adder_forward(x, weight, stride, padding, p):\n"
        "    return adder2d(x, weight, stride, padding, p)\n"
    ),
    recipe=AdderRecipe,
    summary="AdderNet layer (l1 distance, additions only; l_p training and adaptive LR)",
)
