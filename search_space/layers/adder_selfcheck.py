"""Checking a fast adder kernel against the torch kernel, and falling back with one warning.

The fast kernels (Triton on CUDA, ``adder_compiled`` on the CPU) compute the same
equations as ``adder_ops`` (AdderNet eqs. 5, 20, 21) by other means, and each can break
in ways the torch kernel cannot: no compiler, a compiler or driver bug, a launch that the
device refuses, wrong values. Before a fast kernel serves a layer it runs once on a small
input beside ``adder_ops.adder2d`` (forward and both gradients, one case per kernel
variant); a raised error or a mismatch makes the caller fall back to the torch kernel and
warn once (``warn_fallback``).
"""

from __future__ import annotations

import warnings

import torch

from . import adder_ops

__all__ = ["check_against_torch", "describe_error", "warn_fallback", "TOLERANCE", "CHECK_CASES"]

#: Largest error relative to the reference's largest magnitude, per input dtype: fp32
#: sums of ~100 terms agree to ~1e-6 (Triton accumulates in fp32 even for float64
#: inputs); bf16 and fp16 inputs are rounded on the way out. A broken kernel is off by
#: far more.
TOLERANCE = {torch.float64: 1e-4, torch.float32: 1e-4, torch.bfloat16: 3e-2, torch.float16: 3e-3}

#: (stride, p) per check: p = 1 and a fractional p are different kernels (eq. 2 and
#: eq. 20); stride 2 takes the strided input-gradient path. Padding: half the kernel.
CHECK_CASES = ((1, 1.0), (2, 1.0), (1, 1.5), (2, 1.5))


def _forward_and_grads(fn, x, weight, grad, stride, padding, p):
    # The first use can come from a model under no_grad or inference_mode (validation).
    with torch.inference_mode(False), torch.enable_grad():
        x = x.clone().requires_grad_()
        weight = weight.clone().requires_grad_()
        y = fn(x, weight, stride, padding, p)
        y.backward(grad)
    return y.detach(), x.grad, weight.grad


def check_against_torch(fn, device, dtype, kernel_size=(3, 3), cases=CHECK_CASES):
    """Run ``fn`` (``adder_ops.adder2d``'s signature) beside ``adder_ops.adder2d``.

    The input has every size distinct and at least 2 (batch 3, 4 -> 5 channels, 11 x 10
    pixels), so a kernel compiled for shapes is compiled for the general case; the
    filters are ``kernel_size`` (at most 11 x 10).

    Returns:
        None if forward, input gradient and weight gradient agree within ``TOLERANCE``
        for every case; otherwise one sentence saying what differed or what was raised.
        A CUDA out-of-memory error is raised, not reported.
    """
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 11, 10, generator=gen).to(device=device, dtype=dtype)
    weight = torch.randn(5, 4, *kernel_size, generator=gen).to(device=device, dtype=dtype)
    padding = min(kernel_size) // 2
    for stride, p in cases:
        ho, wo = (adder_ops._adder_out_size(s, k, stride, padding)
                  for s, k in zip((11, 10), kernel_size))
        grad = torch.randn(3, 5, ho, wo, generator=gen).to(device=device, dtype=dtype)
        args = (grad, stride, padding, p)
        try:
            got = _forward_and_grads(fn, x, weight, *args)
        except torch.cuda.OutOfMemoryError:
            raise
        except Exception as error:  # noqa: BLE001 - any compile or launch error: report it
            return describe_error(error)
        expected = _forward_and_grads(adder_ops.adder2d, x, weight, *args)
        for name, a, b in zip(("output", "input gradient", "weight gradient"), got, expected):
            scale = b.float().abs().max().clamp_min(1e-30)
            error = ((a.float() - b.float()).abs().max() / scale).item()
            if not error <= TOLERANCE[dtype]:  # also catches nan
                return (f"its {name} differs from the torch kernel's by {error:.3g} (relative; "
                        f"allowed {TOLERANCE[dtype]:g}) at stride {stride}, p = {p}")
    return None


def describe_error(error):
    """``"Type: first line of the message"``: compiler errors run to pages."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


def warn_fallback(kernel, where, reason):
    """The one warning of a fallback: which kernel, where, why, and what runs instead."""
    warnings.warn(
        f"adder: the {kernel} kernel failed on {where} ({reason}); "
        f"using the torch kernel there for the rest of this process",
        RuntimeWarning,
        stacklevel=3,
    )
