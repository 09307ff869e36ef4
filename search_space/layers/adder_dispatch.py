"""Which kernel computes an adder layer (AdderNet eq. 20), and falling back when a fast one breaks.

- CUDA tensors, Triton importable: the Triton kernels (``adder_triton``). Before their
  first use per (device, dtype) they run beside the torch kernel on a small input
  (``adder_selfcheck.check_against_torch``: forward and both gradients at strides 1 and
  2, p = 1 and fractional); a compile error, a launch error or a mismatch sends that
  (device, dtype) to the torch kernel with one warning. An error in a later call (a new
  shape compiles a new specialisation) does the same, and that call is recomputed by the
  torch kernel. A CUDA out-of-memory error is raised: the evaluator fails the trial.
- CPU tensors, compiled kernels on (the default, ``adder_compiled``): the torch.compile
  kernels, checked the same way on first use per dtype and kernel size; any failure
  sends the whole process to the eager kernel with one warning.
- anything else, and every fallback: ``adder_ops``, pure torch, the exported kernel.

``warm_up_adder(device)`` pays the compile and the check once per process, before the
first trial, so no trial's time limit pays for it.
"""

from __future__ import annotations

import torch

from . import adder_ops, adder_triton
from .adder_compiled import adder2d_compiled, compiled_cpu_enabled, warm_up_compiled
from .adder_selfcheck import check_against_torch, describe_error, warn_fallback

__all__ = ["adder_forward", "warm_up_adder"]

#: (device, dtype) -> True: Triton checked and in use; False: fell back to torch.
_TRITON_OK: dict[tuple[torch.device, torch.dtype], bool] = {}


def _triton_device(x: torch.Tensor) -> bool:
    """Whether x lives where the Triton kernels run: CUDA, with Triton importable."""
    return x.is_cuda and adder_triton.triton_available()


def _triton_failed(key, reason):
    if _TRITON_OK.get(key) is not False:
        _TRITON_OK[key] = False
        warn_fallback("Triton", f"{key[0]} for {key[1]}", reason)


def _triton_ok(device: torch.device, dtype: torch.dtype) -> bool:
    """Check the Triton kernels on (device, dtype) on first use; whether they are in use."""
    key = (device, dtype)
    if key not in _TRITON_OK:
        if device.type == "cuda" and torch.cuda.is_current_stream_capturing():
            return True  # a check synchronises, which a capture forbids: the next call checks
        reason = check_against_torch(adder_triton.adder2d_cuda, device, dtype)
        if reason is None:
            _TRITON_OK[key] = True
        else:
            _triton_failed(key, reason)
    return _TRITON_OK[key]


class _Adder2dTritonSafe(torch.autograd.Function):
    """``adder_triton``'s autograd, each direction recomputed by ``adder_ops`` on an error."""

    @staticmethod
    def forward(ctx, x, weight, stride, padding, p):
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding, ctx.key = stride, padding, (x.device, x.dtype)
        if _TRITON_OK.get(ctx.key) is not False:
            try:
                return adder_triton.adder_forward_triton(x, weight, stride, padding, p)
            except torch.cuda.OutOfMemoryError:
                raise
            except Exception as error:  # noqa: BLE001 - any compile or launch error
                _triton_failed(ctx.key, describe_error(error))
        return adder_ops.adder2d_forward_cpu(x, weight, stride, padding, p)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        need_x, need_w = ctx.needs_input_grad[:2]
        dx = dw = None
        if _TRITON_OK.get(ctx.key) is not False:
            try:
                if need_x:
                    dx = adder_triton.adder_grad_input_triton(x, weight, grad, ctx.stride,
                                                              ctx.padding)
                if need_w:
                    dw = adder_triton.adder_grad_weight(x, weight, grad.to(x.dtype), ctx.stride,
                                                        ctx.padding)
            except torch.cuda.OutOfMemoryError:
                raise
            except Exception as error:  # noqa: BLE001 - any compile or launch error
                _triton_failed(ctx.key, describe_error(error))
        if _TRITON_OK.get(ctx.key) is False:
            dx, dw = adder_ops.adder2d_backward_cpu(x, weight, grad, ctx.stride, ctx.padding,
                                                    need_input_grad=need_x)
        return dx, (dw if need_w else None), None, None, None


def adder_forward(x, weight, stride, padding, p):
    """Adder 2-D operator (eq. 20; ``adder_ops.adder2d``'s arguments and results) on the
    fastest kernel that works for x's device and dtype."""
    if _triton_device(x) and _triton_ok(x.device, x.dtype):
        adder_ops._adder_check_args(x, weight, stride, padding, p)
        return _Adder2dTritonSafe.apply(x, weight, int(stride), int(padding), float(p))
    if x.device.type == "cpu" and compiled_cpu_enabled():
        return adder2d_compiled(x, weight, stride, padding, p)
    return adder_ops.adder2d(x, weight, stride, padding, p)


def warm_up_adder(device: torch.device | str = "cpu", kernel_sizes=(3,)) -> bool:
    """Compile and check the fast adder kernels for ``device``, once per process.

    CPU: the compiled kernels for float32 and each kernel size
    (``adder_compiled.warm_up_compiled``; tens of seconds per size the first time on a
    machine, less once torch's on-disk cache holds them; a size not warmed up compiles
    at its first use). CUDA: the Triton kernels for float32 and bfloat16 (what bf16
    autocast feeds a layer). A kernel that fails falls back to the torch kernel with one
    warning. Returns at once when already done, or when the fast kernels are off
    (``OPTINAS_ADDER_COMPILE=0``) or absent (no Triton).

    Args:
        device: Where the adder layers will run (``"cpu"``, ``"cuda"``, ``"cuda:1"``...).
        kernel_sizes: The adder kernel sizes the search space allows (CPU only; 1x1
            layers are never compiled).

    Returns:
        Whether a fast kernel serves ``device`` (False: the torch kernel does).

    Raises:
        ConfigError: If ``OPTINAS_ADDER_COMPILE`` is neither 0 nor 1.
    """
    device = torch.device(device)
    if device.type == "cuda":
        if not adder_triton.triton_available():
            return False
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        return all([_triton_ok(device, dtype) for dtype in (torch.float32, torch.bfloat16)])
    if device.type == "cpu":
        return compiled_cpu_enabled() and warm_up_compiled(torch.float32, kernel_sizes)
    return False
