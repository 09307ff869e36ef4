"""Optional fused CPU kernels for the adder operator (seed 000, eqs. 5, 20, 21), torch.compile.

The eager CPU path (``adder_ops``) needs two passes over memory per element and
direction (|X - F|: max then sum; eq. 21: subtract, clamp, then a batched product), which
caps it at about 6-10x ``nn.Conv2d``'s time. The same two element-wise sums written as
broadcasts and handed to ``torch.compile`` become one fused loop each, with no
(rows, O, K) block in memory: ~2-3x faster per element on 1 AMD EPYC core (AVX2).
Everything else (chunked patches, the eq. 5 matrix product, the fold, p = 2 as a matrix
product) is ``adder_ops``' code, unchanged, so both paths give the same numbers (tests).

Opt-in, because the first call compiles (~20-40 s of C++ on a 2-core machine; dynamic
shapes, so one compile per dtype serves every layer shape and every p): set the
environment variable ``OPTINAS_ADDER_COMPILE=1`` or call ``set_adder_compile(True)``.
If compiling or running a kernel fails (no C++ compiler, an unsupported platform), a
warning is issued once, the eager path takes over for good, and results are unaffected.
Never used by exported models (their ``_adder_forward`` is the eager ``adder2d``).
"""

from __future__ import annotations

import os
import warnings

import torch

from . import adder_ops

__all__ = ["set_adder_compile", "compiled_cpu_enabled", "adder2d_compiled"]

ENV_VAR = "OPTINAS_ADDER_COMPILE"
_STATE = {"override": None, "failed": False, "kernels": None}


def set_adder_compile(enabled: bool | None) -> None:
    """Use (True) or avoid (False) the compiled CPU kernels; None defers to ``ENV_VAR``."""
    _STATE["override"] = enabled


def compiled_cpu_enabled() -> bool:
    """True when the compiled kernels are requested and have not failed in this process."""
    wanted = _STATE["override"]
    if wanted is None:
        wanted = os.environ.get(ENV_VAR, "") == "1"
    return bool(wanted) and not _STATE["failed"]


def _l1_distances(cols, w2):
    """(R, O) sum_k |cols[r, k] - w2[o, k]| (eq. 2); fused, the broadcast is never stored."""
    return (cols.unsqueeze(1) - w2.unsqueeze(0)).abs().sum(-1)


def _lp_distances(cols, w2, p):
    """(R, O) sum_k |cols - w2|^p (eq. 20), p a 0-d tensor so a new p does not recompile."""
    return (cols.unsqueeze(1) - w2.unsqueeze(0)).abs().pow(p).sum(-1)


def _hardtanh_grad_cols(cols, w2, g_cols):
    """(R, K) sum_o g_cols[r, o] HardTanh(w2[o, k] - cols[r, k]) (eq. 21)."""
    return (g_cols.unsqueeze(2) * (w2.unsqueeze(0) - cols.unsqueeze(1)).clamp(-1.0, 1.0)).sum(1)


def _kernels():
    if _STATE["kernels"] is None:
        fns = (_l1_distances, _lp_distances, _hardtanh_grad_cols)
        _STATE["kernels"] = tuple(torch.compile(fn, dynamic=True) for fn in fns)
    return _STATE["kernels"]


def _eager_buffer(cols, w2):
    """A 2 MiB (rows, O, K) block for the eager fallback (``adder_ops``' default size)."""
    rows = max(1, (2 << 20) // (w2.numel() * cols.element_size()))
    return cols.new_empty((rows, *w2.shape))


def _disable(error):
    _STATE["failed"] = True
    warnings.warn(
        f"adder: compiled CPU kernels failed ({type(error).__name__}: {error}); "
        "using the eager CPU path from now on",
        RuntimeWarning,
        stacklevel=3,
    )


def _chunk_distances(cols, w2, p, buf, out):
    """``adder_ops.adder2d_forward_cpu``'s ``distances`` hook: fused |X - F|^p sums."""
    if p == 2.0 or _STATE["failed"]:  # p = 2 is already a matrix product in adder_ops
        if p != 2.0:
            buf = _eager_buffer(cols, w2)
        adder_ops._adder_chunk_distances(cols, w2, p, buf, out)
        return
    l1, lp, _ = _kernels()
    try:
        if p == 1.0:
            out.copy_(l1(cols, w2))
        else:
            out.copy_(lp(cols, w2, torch.tensor(p, dtype=cols.dtype)))
    except Exception as error:  # noqa: BLE001 - any compiler failure means: fall back
        _disable(error)
        adder_ops._adder_chunk_distances(cols, w2, p, _eager_buffer(cols, w2), out)


def _chunk_grad_cols(cols, w2, g_cols, buf):
    """``adder_ops.adder2d_backward_cpu``'s ``grad_cols`` hook: fused eq. 21, (R, K)."""
    if not _STATE["failed"]:
        try:
            return _kernels()[2](cols, w2, g_cols)
        except Exception as error:  # noqa: BLE001 - any compiler failure means: fall back
            _disable(error)
    return adder_ops._adder_chunk_grad_cols(cols, w2, g_cols, _eager_buffer(cols, w2))


class Adder2dCompiledFunction(torch.autograd.Function):
    """``adder_ops.Adder2dFunction`` with the fused kernels: same equations, same buffers
    for patches, no (rows, O, K) block (``block_bytes=0``)."""

    @staticmethod
    def forward(ctx, x, weight, stride, padding, p):
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding = stride, padding
        return adder_ops.adder2d_forward_cpu(
            x, weight, stride, padding, p, block_bytes=0, distances=_chunk_distances
        )

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        dx, dw = adder_ops.adder2d_backward_cpu(
            x,
            weight,
            grad,
            ctx.stride,
            ctx.padding,
            need_input_grad=ctx.needs_input_grad[0],
            block_bytes=0,
            grad_cols=_chunk_grad_cols,
        )
        return dx, (dw if ctx.needs_input_grad[1] else None), None, None, None


def adder2d_compiled(x, weight, stride=1, padding=0, p=1.0):
    """``adder_ops.adder2d`` (same arguments, results and gradients) on the fused kernels."""
    adder_ops._adder_check_args(x, weight, stride, padding, p)
    return Adder2dCompiledFunction.apply(x, weight, int(stride), int(padding), float(p))
