"""Triton kernels for the adder operator on CUDA (AdderNet eqs. 5, 20, 21).

Same mathematics as ``adder_ops`` (read its docstring first); this module only changes
how it runs on a GPU:

- forward: Y[m, o] = -sum_k |X[m, k] - F[o, k]|^p is tiled like a matrix product on
  (M = N * Ho * Wo output positions, O output channels) and reduced over k = (c, i, j)
  with implicit im2col: each step loads one input value per output position (zero for
  padding, so padding adds |F|^p) and one filter value per output channel, and updates
  the (BLOCK_M, BLOCK_O) tile with an outer "difference" product. fp32 accumulation;
  fp32, bf16 and fp16 inputs; any strides (NCHW or channels-last, no copies).
- input gradient (the clipped eq. 21 of the AdderNet code, see adder_ops): tiled over (N * H * W input positions, C input
  channels); each tile loads its X values once and gathers the G values of the output
  positions whose receptive field covers it (implicit col2im, no atomics):
  dX[n, c, h, w] = sum_{o,i,j} G[n, o, (h + pad - i) / s, (w + pad - j) / s] HT(F[o,c,i,j] - X).
- weight gradient (eq. 5): dF = G^T X - F sum(G). G^T X is exactly a convolution's
  weight gradient, so cuDNN computes it (``torch.nn.grad.conv2d_weight``: no unfold, same
  memory as a convolution). For bf16/fp16 inputs that term comes back rounded to the
  input dtype, as it does for ``nn.Conv2d``; the subtraction is done in fp32.

Triton is imported lazily (``_kernels``), so importing this module never needs it.
Not measured on a GPU by its author (no GPU in that session): correctness is checked by
running these kernels under TRITON_INTERPRET=1 on the CPU (tests/search_space/test_adder.py).
Layers do not call this module directly: ``adder_dispatch`` checks these kernels against
the torch kernel on first use per (device, dtype) and falls back to it on any failure.
"""

from __future__ import annotations

import functools

import torch

from .adder_ops import _adder_check_args, _adder_empty_like_input, _adder_out_size

__all__ = [
    "adder2d_cuda", "adder_forward_triton", "adder_grad_input_triton", "adder_grad_weight",
    "triton_available",
]

tl = None  # triton.language, bound by _kernels() before the kernels are compiled


@functools.lru_cache(maxsize=None)
def triton_available() -> bool:
    """True when ``import triton`` works."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def _adder_fwd_kernel(
    x_ptr, w_ptr, y_ptr, p,
    N, C, H, W, O, HO, WO,
    sxn, sxc, sxh, sxw, swo, swc, swh, sww, syn, syo, syh, syw,
    STRIDE: tl.constexpr, PAD: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr,
    P_MODE: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_O: tl.constexpr,
    UNROLL_C: tl.constexpr,
):  # fmt: skip
    """Y tile (BLOCK_M positions, BLOCK_O channels); P_MODE 1: p = 1, 2: p = 2, 0: any p."""
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_o = tl.program_id(1) * BLOCK_O + tl.arange(0, BLOCK_O)
    m_ok = offs_m < N * HO * WO
    o_ok = offs_o < O
    n = (offs_m // (HO * WO)).to(tl.int64)
    oh = (offs_m // WO) % HO
    ow = offs_m % WO
    acc = tl.zeros((BLOCK_M, BLOCK_O), dtype=tl.float32)
    for i in tl.static_range(KH):
        for j in tl.static_range(KW):
            ih = oh * STRIDE - PAD + i
            iw = ow * STRIDE - PAD + j
            inside = m_ok & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
            x_tap = x_ptr + n * sxn + ih * sxh + iw * sxw
            w_tap = w_ptr + offs_o * swo + i * swh + j * sww
            for c0 in range(0, C, UNROLL_C):
                for cc in tl.static_range(UNROLL_C):
                    c = c0 + cc  # c >= C loads x = f = 0, which adds |0 - 0|^p = 0
                    xv = tl.load(x_tap + c * sxc, mask=tl.where(c < C, inside, False), other=0.0)
                    fv = tl.load(w_tap + c * swc, mask=tl.where(c < C, o_ok, False), other=0.0)
                    d = tl.abs(xv.to(tl.float32)[:, None] - fv.to(tl.float32)[None, :])
                    if P_MODE == 1:
                        acc += d
                    elif P_MODE == 2:
                        acc += d * d
                    else:
                        # |d|^p = 2^(p log2 d); the max keeps log2 finite, the where keeps 0^p = 0
                        acc += tl.where(d > 0.0, tl.exp2(p * tl.log2(tl.maximum(d, 1e-30))), 0.0)
    y_ptrs = y_ptr + n[:, None] * syn + offs_o[None, :] * syo + (oh * syh + ow * syw)[:, None]
    tl.store(y_ptrs, (-acc).to(y_ptr.dtype.element_ty), mask=m_ok[:, None] & o_ok[None, :])


def _adder_grad_input_kernel(
    x_ptr, w_ptr, g_ptr, dx_ptr,
    N, C, H, W, O, HO, WO,
    sxn, sxc, sxh, sxw, swo, swc, swh, sww, sgn, sgo, sgh, sgw, sdn, sdc, sdh, sdw,
    STRIDE: tl.constexpr, PAD: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr, UNROLL_O: tl.constexpr,
):  # fmt: skip
    """dX tile (BLOCK_M input positions, BLOCK_C channels) = sum G * HardTanh(F - X)."""
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    m_ok = offs_m < N * H * W
    c_ok = offs_c < C
    n = (offs_m // (H * W)).to(tl.int64)
    ih = (offs_m // W) % H
    iw = offs_m % W
    tile_ok = m_ok[:, None] & c_ok[None, :]
    x_pos = n * sxn + ih * sxh + iw * sxw
    xt = tl.load(x_ptr + x_pos[:, None] + offs_c[None, :] * sxc, mask=tile_ok, other=0.0)
    xt = xt.to(tl.float32)
    acc = tl.zeros((BLOCK_M, BLOCK_C), dtype=tl.float32)
    for i in tl.static_range(KH):
        for j in tl.static_range(KW):
            th = ih + PAD - i  # = oh * STRIDE for the output position that reads X via tap (i, j)
            tw = iw + PAD - j
            th_ok = (th >= 0) & (th % STRIDE == 0) & (th < HO * STRIDE)
            tw_ok = (tw >= 0) & (tw % STRIDE == 0) & (tw < WO * STRIDE)
            hit = m_ok & th_ok & tw_ok
            g_tap = g_ptr + n * sgn + (th // STRIDE) * sgh + (tw // STRIDE) * sgw
            w_tap = w_ptr + offs_c * swc + i * swh + j * sww
            for o0 in range(0, O, UNROLL_O):
                for oo in tl.static_range(UNROLL_O):
                    o = o0 + oo  # o >= O loads g = 0, which adds nothing
                    gv = tl.load(g_tap + o * sgo, mask=tl.where(o < O, hit, False), other=0.0)
                    fv = tl.load(w_tap + o * swo, mask=tl.where(o < O, c_ok, False), other=0.0)
                    ht = tl.minimum(tl.maximum(fv.to(tl.float32)[None, :] - xt, -1.0), 1.0)
                    acc += gv.to(tl.float32)[:, None] * ht
    dx_pos = n * sdn + ih * sdh + iw * sdw
    dx_ptrs = dx_ptr + dx_pos[:, None] + offs_c[None, :] * sdc
    tl.store(dx_ptrs, acc.to(dx_ptr.dtype.element_ty), mask=tile_ok)


@functools.lru_cache(maxsize=None)
def _kernels():
    """JIT the kernels on first use (TRITON_INTERPRET is read here, at decoration)."""
    global tl
    import triton
    import triton.language

    tl = triton.language
    return triton.jit(_adder_fwd_kernel), triton.jit(_adder_grad_input_kernel)


def _tiles(rows, cols, device):
    """(BLOCK_M, BLOCK_N): columns up to 64 (a power of two >= 16, as tl.arange needs),
    ~32 fp32 accumulators per thread at 4 warps, fewer rows while the grid would leave
    SMs idle (< 4 programs per SM, e.g. 64 channels at 8x8)."""
    block_n = max(16, min(64, 1 << max(0, cols - 1).bit_length()))
    block_m = 128 if block_n <= 32 else 64
    sms = 1  # the CPU interpreter
    if device.type == "cuda":
        sms = torch.cuda.get_device_properties(device).multi_processor_count
    while block_m > 32 and -(-rows // block_m) * -(-cols // block_n) < 4 * sms:
        block_m //= 2
    return block_m, block_n


def adder_forward_triton(x, weight, stride, padding, p):
    """Y = -sum |X - F|^p (eq. 20) by the Triton kernel; (N, O, Ho, Wo) in x.dtype."""
    n, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    ho, wo = _adder_out_size(h, kh, stride, padding), _adder_out_size(w, kw, stride, padding)
    y = _adder_empty_like_input(x, (n, o, ho, wo))
    block_m, block_o = _tiles(n * ho * wo, o, x.device)
    grid = (-(-n * ho * wo // block_m), -(-o // block_o))
    p_mode = 1 if p == 1.0 else 2 if p == 2.0 else 0
    _kernels()[0][grid](
        x, weight, y, float(p), n, c, h, w, o, ho, wo,
        *x.stride(), *weight.stride(), *y.stride(),
        STRIDE=stride, PAD=padding, KH=kh, KW=kw, P_MODE=p_mode,
        BLOCK_M=block_m, BLOCK_O=block_o, UNROLL_C=4, num_warps=4,
    )  # fmt: skip
    return y


def adder_grad_input_triton(x, weight, grad, stride, padding):
    """dX = fold(sum_o G HardTanh(F - X)) (the clipped input gradient of the AdderNet code, where AdderNet eq. 21 prints (F - X)^(p-1); docs/papers.md) by the Triton kernel."""
    n, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    ho, wo = grad.shape[2:]
    dx = _adder_empty_like_input(x, x.shape)
    block_m, block_c = _tiles(n * h * w, c, x.device)
    grid = (-(-n * h * w // block_m), -(-c // block_c))
    _kernels()[1][grid](
        x, weight, grad, dx, n, c, h, w, o, ho, wo,
        *x.stride(), *weight.stride(), *grad.stride(), *dx.stride(),
        STRIDE=stride, PAD=padding, KH=kh, KW=kw,
        BLOCK_M=block_m, BLOCK_C=block_c, UNROLL_O=4, num_warps=4,
    )  # fmt: skip
    return dx


def adder_grad_weight(x, weight, grad, stride, padding):
    """dF = G^T X - F sum(G) (eq. 5); G^T X is a convolution weight gradient (cuDNN)."""
    gtx = torch.nn.grad.conv2d_weight(x, weight.shape, grad, stride=stride, padding=padding)
    g_sum = grad.sum(dim=(0, 2, 3), dtype=torch.float32)
    dw = gtx.float() - weight.float() * g_sum[:, None, None, None]
    return dw.to(weight.dtype)


class _Adder2dTriton(torch.autograd.Function):
    """Autograd for the Triton path; saves x and the weight only, like a convolution."""

    @staticmethod
    def forward(ctx, x, weight, stride, padding, p):
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding = stride, padding
        return adder_forward_triton(x, weight, stride, padding, p)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        dx = dw = None
        if ctx.needs_input_grad[0]:
            dx = adder_grad_input_triton(x, weight, grad, ctx.stride, ctx.padding)
        if ctx.needs_input_grad[1]:
            dw = adder_grad_weight(x, weight, grad.to(x.dtype), ctx.stride, ctx.padding)
        return dx, dw, None, None, None


def adder2d_cuda(x, weight, stride=1, padding=0, p=1.0):
    """Adder 2-D operator (AdderNet eq. 20) on the Triton kernels; same contract as
    ``adder_ops.adder2d`` (fp32/bf16/fp16, any p in [1, 2], eq. 21 and eq. 5 gradients).

    Runs on CUDA tensors, or on CPU tensors when TRITON_INTERPRET=1 (tests).
    """
    _adder_check_args(x, weight, stride, padding, p)
    return _Adder2dTriton.apply(x, weight, int(stride), int(padding), float(p))
