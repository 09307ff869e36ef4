"""Sparsity of trained weights, and the complexity term pen_XNOR (Chee and Loustau, Theorem 3.2).

Chee and Loustau split the weights of an XNOR-net into three groups with one prior each (eq. 13):
real-valued weights w^real (sparsity prior of Theorem 3.1), binary weights w^bin in {-1, +1}
(Rademacher prior) and positive scale factors w^scale (eq. 12, sparsity prior on R_+). The
Kullback-Leibler term of its regret bound is then

    pen_XNOR(w) = sum_{v in {w^real, w^scale}} ||v||_0 log(1 + ||v||_1 / (tau ||v||_0))
                  + p_bin log 2                                     (Theorem 3.2)

``sparsity_stats(model)`` measures the norms of a trained model, ``pen_xnor(stats, tau)``
evaluates the formula. How optinas' layer kinds map onto the three groups:

- ``binary`` (search_space/layers/binary.py, XNOR-Net++): the latent ``weight`` enters the
  forward pass only through sign(), so it counts as ``binary`` (p_bin, 1 bit each); the
  learned scales ``scale_channel``, ``scale_height``, ``scale_width`` are w^scale (for rank1
  they are exactly eq. 12's alpha, beta, gamma); its input BatchNorm affine and the linear
  form's bias are real-valued.
- ``quant``: a network's function depends on the quantised weights, so their values (not
  the latent ones) are measured. 1-bit linear weights are sign(v) s (the binary networks of
  the weight-quantization appendix), so they count as binary with the step s as their scale;
  any other bit width counts as real-valued, as Chee and Loustau only treat W = R and
  W = {-1, +1} (section 2.1: "the intermediate case ... is not considered"). The step,
  codebook and activation steps are real-valued parameters.
- ``adder`` and ``conv``, BatchNorm, biases, heads: real-valued weights (an adder filter is
  a real vector in the l1 distance |x - w|, so its norms are those of Theorem 3.1).

Buffers (BatchNorm running statistics) are not learned weights and are not counted. A
weight counts in ||.||_0 when its magnitude exceeds ``zero_tolerance`` (0: exactly non-zero,
the paper's l0).
"""

from __future__ import annotations

import math
from typing import Mapping

import torch
from torch import nn

from .errors import ConfigError

__all__ = ["sparsity_stats", "pen_xnor", "STAT_KEYS"]

#: The keys of ``sparsity_stats``: l0/l1 of the real-valued weights, of the scale factors,
#: and the number of binary weights p_bin.
STAT_KEYS = ("l0", "l1", "scale_l0", "scale_l1", "binary")

_BINARY_LAYERS = ("BinaryConv2d", "BinaryLinear")
_QUANT_LAYERS = ("QuantConv2d", "QuantLinear")
_BINARY_SCALES = ("scale_channel", "scale_height", "scale_width")


def _kind(module: nn.Module) -> str:
    """"binary", "quant" or "" by class name, so exported copies of the classes match too."""
    names = {cls.__name__ for cls in type(module).__mro__}
    if names & set(_BINARY_LAYERS):
        return "binary"
    if names & set(_QUANT_LAYERS):
        return "quant"
    return ""


class _Tally:
    def __init__(self, zero_tolerance: float):
        self.tolerance = zero_tolerance
        self.counts = dict.fromkeys(STAT_KEYS, 0)
        self.counts["l1"] = self.counts["scale_l1"] = 0.0

    def add(self, tensor: torch.Tensor, group: str) -> None:
        """Add a tensor to the "real" or "scale" group (l0 and l1), or to "binary" (count)."""
        if isinstance(tensor, nn.parameter.UninitializedParameter):
            return  # a lazy rank-1 scale never run: it holds no weights yet
        values = tensor.detach().to(torch.float64).abs()
        if group == "binary":
            self.counts["binary"] += values.numel()
            return
        prefix = "" if group == "real" else "scale_"
        nonzero = values > self.tolerance
        self.counts[prefix + "l0"] += int(nonzero.sum())
        self.counts[prefix + "l1"] += float(values[nonzero].sum())


def sparsity_stats(model: nn.Module, zero_tolerance: float = 0.0) -> dict[str, float]:
    """The norms pen_XNOR needs, measured on a (trained) model.

    Args:
        model: a network built by ``optinas.search_space.build_model`` (or an exported copy).
        zero_tolerance: magnitudes at or below it count as zero in ||.||_0 and ||.||_1.

    Returns:
        A JSON-serialisable dict with ``STAT_KEYS``: ``l0``/``l1`` of the real-valued weights,
        ``scale_l0``/``scale_l1`` of the scale factors and ``binary`` (p_bin); see the module
        docstring for which parameter goes where.
    """
    if not zero_tolerance >= 0.0:
        raise ConfigError(f"zero_tolerance must be >= 0, got {zero_tolerance!r}")
    tally = _Tally(float(zero_tolerance))
    for module in model.modules():
        kind = _kind(module)
        for name, parameter in module.named_parameters(recurse=False):
            if kind == "binary" and name == "weight":
                tally.add(parameter, "binary")
            elif kind == "binary" and name in _BINARY_SCALES:
                tally.add(parameter, "scale")
            elif kind == "quant" and name == "weight":
                if module.scheme == "linear" and module.w_bits == 1:
                    tally.add(parameter, "binary")  # sign(v) s: one bit per weight
                else:
                    tally.add(module.quantized_weight(), "real")
            elif kind == "quant" and name == "weight_step" and module.w_bits == 1:
                tally.add(parameter, "scale")  # the s of sign(v) s
            else:
                tally.add(parameter, "real")
    return dict(tally.counts)


def _term(l0: float, l1: float, tau: float) -> float:
    # ||w||_0 log(1 + ||w||_1 / (tau ||w||_0)), which tends to 0 with ||w||_0 (empty group).
    return 0.0 if l0 <= 0 else l0 * math.log1p(l1 / (tau * l0))


def pen_xnor(stats: Mapping[str, float], tau: float) -> float:
    """pen_XNOR of Chee and Loustau, Theorem 3.2, in nats.

    pen_XNOR(w) = ||w^real||_0 log(1 + ||w^real||_1 / (tau ||w^real||_0))
                + ||w^scale||_0 log(1 + ||w^scale||_1 / (tau ||w^scale||_0)) + p_bin log 2.

    A network without binary layers has p_bin = 0 and no scales, leaving the sparsity part of
    Theorem 3.1's pen_3 (eq. 10, there with a factor 4 from a different constant).

    Args:
        stats: a ``sparsity_stats`` dict (keys missing from an older record count as 0).
        tau: the scale of the sparsity prior (Theorem 3.1's tau > 0); smaller tau charges
            each non-zero weight more.

    Returns:
        The penalty, a non-negative float.
    """
    if not (isinstance(tau, (int, float)) and tau > 0 and math.isfinite(tau)):
        raise ConfigError(f"tau must be a finite number > 0 (Theorem 3.1), got {tau!r}")
    unknown = sorted(set(stats) - set(STAT_KEYS))
    if unknown:
        raise ConfigError(f"sparsity stats have unknown key(s) {', '.join(unknown)}; "
                          f"known: {', '.join(STAT_KEYS)}")
    value = {key: float(stats.get(key, 0)) for key in STAT_KEYS}
    if any(v < 0 or not math.isfinite(v) for v in value.values()):
        raise ConfigError(f"sparsity stats must be finite and >= 0, got {dict(stats)!r}")
    return (_term(value["l0"], value["l1"], tau) + _term(value["scale_l0"], value["scale_l1"], tau)
            + value["binary"] * math.log(2.0))
