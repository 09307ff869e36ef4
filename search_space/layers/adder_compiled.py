"""Fused CPU kernels for the adder operator (AdderNet eqs. 5, 20, 21): torch.compile, the default.

The eager CPU path (``adder_ops``) makes two passes over memory per element and direction
(|X - F|: max then sum; eq. 21: subtract and clamp, then a batched product) plus the
patch copies, which holds it at 6-10x ``nn.Conv2d``'s time. Here the two element-wise
sums are written as broadcasts over sliding-window *views* and compiled into one fused
loop each (no patches, no (rows, O, K) block in memory):

- forward (eq. 20), any stride: Y[n, o, i, j] = -sum_{a, b, c} |Xpad[n, c, si + a, sj + b]
  - F[o, c, a, b]|^p over ``unfold`` windows of the zero-padded channels-last input;
- input gradient (eq. 21), stride 1, as the transposed sum: every tap of X[n, c, h, w]
  sees the same X, so dX[n, c, h, w] = sum_{o, a, b} Gpad[n, o, h + a, w + b]
  HardTanh(Fflip[o, c, a, b] - X[n, c, h, w]), with G zero-padded by k - 1 - padding
  and the filters flipped; no fold. Stride > 1 uses ``adder_ops``' patches with a fused
  per-chunk kernel instead;
- weight gradient (eq. 5): G^T X - F sum G, where G^T X is exactly a convolution's weight
  gradient, so ``torch.nn.grad.conv2d_weight`` (oneDNN) computes it.

p = 2 stays ``adder_ops``' matrix product. Results equal the reference to 1e-10 in
float64 (tests). Exported models never use this module.

Default on the CPU; ``OPTINAS_ADDER_COMPILE=0`` (or ``set_adder_compile(False)``) keeps
the eager kernel. Compiling costs time once per process (benchmarks/bench_layers_adder.py;
torch keeps compiled code in its on-disk cache, so later processes pay less):
``warm_up_compiled`` pays it up front, and the first adder call of a dtype pays it
otherwise. Either way the kernels are checked against the eager kernel on a small input
first (``adder_selfcheck``); a compile error (no C++ compiler, an unsupported platform),
a kernel error or a mismatch then means one warning and the eager kernel for the rest of
the process.

Shapes: the kernels are compiled with dynamic shapes and without duck sizing (two sizes
that happen to be equal are not assumed to stay equal), so one graph per kernel, dtype,
kernel size and stride serves every batch, width and resolution a search produces; only
tiny spatial sizes add a graph or two. Layers with a size-1 axis stay eager
(``_worth_compiling``). If a kernel still reaches dynamo's recompile limit (8 graphs),
that call raises instead of running the broadcast formula uncompiled (gigabytes at batch
128) and takes the eager kernel.
"""

from __future__ import annotations

import os

import torch
import torch.fx.experimental._config as shape_config
import torch.nn.functional as F

from ..errors import ConfigError
from . import adder_ops
from .adder_selfcheck import check_against_torch, describe_error, warn_fallback

__all__ = ["set_adder_compile", "compiled_cpu_enabled", "adder2d_compiled", "warm_up_compiled"]

ENV_VAR = "OPTINAS_ADDER_COMPILE"
_STATE = {"override": None, "failed": False, "kernels": None, "checked": set()}


def set_adder_compile(enabled: bool | None) -> None:
    """Use (True) or avoid (False) the compiled CPU kernels; None defers to ``ENV_VAR``."""
    _STATE["override"] = enabled


def compiled_cpu_enabled() -> bool:
    """True when the compiled kernels are wanted (the default) and have not failed here.

    Raises:
        ConfigError: If ``OPTINAS_ADDER_COMPILE`` is set to something other than 0 or 1.
    """
    wanted = _STATE["override"]
    if wanted is None:
        value = os.environ.get(ENV_VAR, "").strip() or "1"
        if value not in ("0", "1"):
            raise ConfigError(
                f"{ENV_VAR} must be 0 (eager CPU adder kernel) or 1 (compiled kernel, the "
                f"default), got {value!r}"
            )
        wanted = value == "1"
    return bool(wanted) and not _STATE["failed"]


def _windows(xp, kh, kw, stride):
    """(n, Ho, Wo, 1, kh, kw, C) view of padded channels-last xp (n, Hp, Wp, C), no copy."""
    v = xp.unfold(1, kh, stride).unfold(2, kw, stride)  # (n, Ho, Wo, C, kh, kw)
    return v.permute(0, 1, 2, 4, 5, 3).unsqueeze(3)


def _neg_l1_windows(xp, w2, stride):
    """(n, Ho, Wo, O) -sum |X - F| (eq. 2); w2 (O, kh, kw, C)."""
    return -(_windows(xp, w2.shape[1], w2.shape[2], stride) - w2).abs().sum((-3, -2, -1))


def _neg_lp_windows(xp, w2, stride, p):
    """(n, Ho, Wo, O) -sum |X - F|^p (eq. 20); p a 0-d tensor, so a new p does not recompile."""
    d = (_windows(xp, w2.shape[1], w2.shape[2], stride) - w2).abs().pow(p)
    return -d.sum((-3, -2, -1))


def _hardtanh_grad_windows(xn, gp, wf):
    """(n, H, W, C) sum_{a, b, o} gp[n, h + a, w + b, o] HardTanh(wf[a, b, o, c] - xn[n, h, w, c])
    (eq. 21 summed over the taps that read X[n, h, w, c]); wf (kh, kw, O, C), flipped."""
    u = gp.unfold(1, wf.shape[0], 1).unfold(2, wf.shape[1], 1)  # (n, H, W, O, kh, kw)
    d = (wf - xn[:, :, :, None, None, None, :]).clamp(-1.0, 1.0)  # (n, H, W, kh, kw, O, C)
    return (u.permute(0, 1, 2, 4, 5, 3).unsqueeze(-1) * d).sum((3, 4, 5))


def _hardtanh_grad_cols(cols, w2, g_cols):
    """(R, K) sum_o g_cols[r, o] HardTanh(w2[o, k] - cols[r, k]) (eq. 21), one patch chunk."""
    return (g_cols.unsqueeze(2) * (w2.unsqueeze(0) - cols.unsqueeze(1)).clamp(-1.0, 1.0)).sum(1)


def _kernels():
    if _STATE["kernels"] is None:
        fns = (_neg_l1_windows, _neg_lp_windows, _hardtanh_grad_windows, _hardtanh_grad_cols)
        # torch.compile imports torch._dynamo (seconds): only here, on first use.
        _STATE["kernels"] = tuple(torch.compile(fn, dynamic=True) for fn in fns)
    return _STATE["kernels"]


def _run_kernel(index, *args):
    """``_kernels()[index](*args)``, or None when that kernel has reached dynamo's
    recompile limit (this call then takes the eager kernel)."""
    kernel = _kernels()[index]
    dynamo_config = torch._dynamo.config  # imported by torch.compile in _kernels
    saved = dynamo_config.fail_on_recompile_limit_hit, shape_config.use_duck_shape
    # Read only when a call compiles: no duck sizing (batch 16 and 16 channels must not
    # become one symbol, guarded equal), and raise at the limit instead of running the
    # broadcast uncompiled.
    dynamo_config.fail_on_recompile_limit_hit, shape_config.use_duck_shape = True, False
    try:
        return kernel(*args)
    except torch._dynamo.exc.FailOnRecompileLimitHit:
        return None
    finally:
        dynamo_config.fail_on_recompile_limit_hit, shape_config.use_duck_shape = saved


def _channels_last_copy(t, dtype, padding=0):
    """(n, H + 2 pad, W + 2 pad, C) zero-bordered channels-last copy of t (n, C, H, W)."""
    n, c, h, w = t.shape
    out = t.new_zeros((n, h + 2 * padding, w + 2 * padding, c), dtype=dtype)
    return adder_ops._adder_load_chunk(t, padding, out)


def _to_input_format(y_nhwc, like, shape):
    """Copy (n, H, W, C) y_nhwc into a (n, C, H, W) tensor in ``like``'s memory format."""
    out = adder_ops._adder_empty_like_input(like, shape)
    out.copy_(y_nhwc.permute(0, 3, 1, 2))
    return out


def _forward(x, weight, stride, padding, p):
    """eq. 20 on the fused window kernels; p = 2 is ``adder_ops``' matrix product."""
    if p == 2.0:
        return adder_ops.adder2d_forward_cpu(x, weight, stride, padding, p)
    dtype = adder_ops._adder_compute_dtype(x.dtype)
    xp = _channels_last_copy(x, dtype, padding)
    w2 = weight.to(dtype).permute(0, 2, 3, 1).contiguous()  # (O, kh, kw, C)
    if p == 1.0:
        y = _run_kernel(0, xp, w2, stride)
    else:
        y = _run_kernel(1, xp, w2, stride, torch.tensor(p, dtype=dtype))
    if y is None:
        return adder_ops.adder2d_forward_cpu(x, weight, stride, padding, p)
    n, ho, wo, o = y.shape
    return _to_input_format(y, x, (n, o, ho, wo))


def _chunk_grad_cols(cols, w2, g_cols, buf):
    """``adder_ops.adder2d_backward_cpu``'s ``grad_cols`` hook (stride > 1): fused eq. 21."""
    out = _run_kernel(3, cols, w2, g_cols)
    if out is None:  # the eager blocks, 2 MiB each as in adder_ops
        rows = max(1, (2 << 20) // (w2.numel() * w2.element_size()))
        buf = cols.new_empty((min(rows, cols.shape[0]),) + tuple(w2.shape))
        out = adder_ops._adder_chunk_grad_cols(cols, w2, g_cols, buf)
    return out


def _backward(x, weight, grad, stride, padding, need_input_grad):
    """(dX, dF): eq. 21 on the fused kernels, eq. 5 as G^T X (a convolution's weight
    gradient) minus F sum G."""
    if stride != 1 and need_input_grad:
        return adder_ops.adder2d_backward_cpu(
            x, weight, grad, stride, padding, block_bytes=0, grad_cols=_chunk_grad_cols
        )
    dtype = adder_ops._adder_compute_dtype(x.dtype)
    xc, wc, gc = x.to(dtype), weight.to(dtype), grad.to(dtype)
    dw = torch.nn.grad.conv2d_weight(xc, wc.shape, gc, stride=stride, padding=padding)
    dw = dw.sub_(wc * gc.sum((0, 2, 3))[:, None, None, None]).to(weight.dtype)
    if not need_input_grad:
        return None, dw.contiguous()
    kh, kw = weight.shape[2:]
    # Gpad: G zero-padded (or cropped, if padding > k - 1) by k - 1 - padding per side.
    gp = F.pad(gc, (kw - 1 - padding, kw - 1 - padding, kh - 1 - padding, kh - 1 - padding))
    gp = gp.permute(0, 2, 3, 1).contiguous()
    wf = wc.flip(2, 3).permute(2, 3, 0, 1).contiguous()  # (kh, kw, O, C)
    dxn = _run_kernel(2, _channels_last_copy(x, dtype), gp, wf)
    if dxn is None:
        return adder_ops.adder2d_backward_cpu(x, weight, grad, stride, padding)
    return _to_input_format(dxn, x, x.shape), dw.contiguous()


def _fallback(reason):
    """Eager from now on, with the one warning (none if already fallen back)."""
    if not _STATE["failed"]:
        _STATE["failed"] = True
        warn_fallback("compiled CPU", "the CPU", reason)


def _worth_compiling(x, weight, stride, padding):
    """False for shapes with a size-1 axis (batch, channels, kernel, output): torch.compile
    specialises each such pattern into another compile (8 at most per kernel, then it
    falls back to eager broadcasts); those small layers keep the eager path."""
    n, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    out = (adder_ops._adder_out_size(s, k, stride, padding) for s, k in ((h, kh), (w, kw)))
    return min(n, c, o, kh, kw, *out) >= 2


class Adder2dCompiledFunction(torch.autograd.Function):
    """``adder_ops.Adder2dFunction`` on the fused kernels: same equations, same saved
    tensors (x and the weight); any kernel failure falls back to the eager path."""

    @staticmethod
    def forward(ctx, x, weight, stride, padding, p):
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding = stride, padding
        if not _STATE["failed"]:
            try:
                return _forward(x, weight, stride, padding, p)
            except Exception as error:  # noqa: BLE001 - any compiler failure: fall back
                _fallback(describe_error(error))
        return adder_ops.adder2d_forward_cpu(x, weight, stride, padding, p)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        args = (x, weight, grad, ctx.stride, ctx.padding, ctx.needs_input_grad[0])
        dx = dw = None
        if not _STATE["failed"]:
            try:
                dx, dw = _backward(*args)
            except Exception as error:  # noqa: BLE001 - any compiler failure: fall back
                _fallback(describe_error(error))
        if _STATE["failed"]:
            dx, dw = adder_ops.adder2d_backward_cpu(*args)
        return dx, (dw if ctx.needs_input_grad[1] else None), None, None, None


def _apply_compiled(x, weight, stride=1, padding=0, p=1.0):
    """The compiled kernels, unchecked: what ``check_against_torch`` tests."""
    adder_ops._adder_check_args(x, weight, stride, padding, p)
    if not _worth_compiling(x, weight, int(stride), int(padding)):
        return adder_ops.adder2d(x, weight, stride, padding, p)
    return Adder2dCompiledFunction.apply(x, weight, int(stride), int(padding), float(p))


def warm_up_compiled(dtype: torch.dtype = torch.float32, kernel_sizes=(3,)) -> bool:
    """Compile the kernels for ``dtype`` and each kernel size, and check them; once per
    process, dtype and kernel size.

    For each size compiles what a network of such adder layers trains with (strides 1
    and 2, p = 1 and a fractional p: six graphs) on a small input and compares forward
    and gradients with the eager kernel (``adder_selfcheck.check_against_torch``); an
    error or a mismatch falls back to the eager kernel with one warning. Returns at once
    when already done or disabled.

    Args:
        dtype: The layers' dtype (bfloat16 and float16 are computed as float32).
        kernel_sizes: Square kernel sizes; 1 is never compiled (``_worth_compiling``).

    Returns:
        Whether the compiled kernels are in use.
    """
    dtype = adder_ops._adder_compute_dtype(dtype)
    for size in kernel_sizes:
        if compiled_cpu_enabled() and size >= 2:
            _check((dtype, size, size))
    return compiled_cpu_enabled()


def _check(key):
    """Check the kernels for (compute dtype, kh, kw) unless done; falls back on failure."""
    if key in _STATE["checked"]:
        return
    _STATE["checked"].add(key)  # first: the check itself calls the compiled kernels
    reason = check_against_torch(_apply_compiled, torch.device("cpu"), key[0], key[1:])
    if reason is not None:
        _fallback(reason)


def adder2d_compiled(x, weight, stride=1, padding=0, p=1.0):
    """``adder_ops.adder2d`` (same arguments, results and gradients) on the fused kernels,
    checked against it on the first call per compute dtype and kernel size."""
    adder_ops._adder_check_args(x, weight, stride, padding, p)
    if _worth_compiling(x, weight, int(stride), int(padding)):
        _check((adder_ops._adder_compute_dtype(x.dtype), *weight.shape[2:]))
        if _STATE["failed"]:
            return adder_ops.adder2d(x, weight, stride, padding, p)
    return _apply_compiled(x, weight, stride, padding, p)
