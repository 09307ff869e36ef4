"""Adder 2-D operator, pure-PyTorch path (AdderNet eqs. 2, 5, 19, 20, 21).

Forward (eq. 20; eq. 2 is p = 1), for output position l with receptive field X_l and
k running over in_channels x kernel_h x kernel_w::

    Y[n, o, l] = -sum_k |X_l[n, k] - F[o, k]|^p,        1 <= p <= 2

Backward, with upstream gradient G[n, o, l]::

    dF[o, k]   = sum_{n,l} G[n, o, l] (X_l[n, k] - F[o, k])              (eq. 5, full precision)
               = (G^T X)[o, k] - F[o, k] sum_{n,l} G[n, o, l]            (a matrix product)
    dX_l[n, k] = sum_o G[n, o, l] HardTanh(F[o, k] - X_l[n, k])          (clipped eq. 21*)

at every p, and dX_l is folded back onto X (receptive fields overlap). *AdderNet eq. 21
prints the unclipped (F - X)^(p-1); the clipped form is the AdderNet code's (docs/papers.md). Zero padding is
X = 0: it contributes |F|^p to the forward and its gradient is dropped by the fold.

Memory: the (N, Cout, K, L) broadcast of the reference code is never built. Patches are
built a batch chunk at a time (channels-last, at most ``chunk_bytes``) and |X - F| a block
of rows at a time (at most ``block_bytes``), in reused buffers: a few MiB beyond the
output and the input gradient. Each element costs two or three vectorised passes over a
cache-resident block (p = 1: max and sum; input gradient: subtract, clamp, batched
matrix-vector product); 2 MiB for both was fastest of 1-4 MiB on 1 AMD EPYC core (AVX2).
Fractional p adds log2 and exp2 per element: ~6x slower than p = 1 on CPU. Timings
against nn.Conv2d: benchmarks/bench_layers_adder.py. A step issues thousands of small
parallel ops, so an oversubscribed CPU (more busy threads than cores) hurts it far more
than a convolution: on 2 cores shared with other jobs (load 2-4) it took 17-140x
nn.Conv2d's time with 2 torch threads against 6.5-11x with 1 (p = 1, the benchmark's
shapes); give each process at most one thread per free core.

Those passes, not the arithmetic, set this path's speed: measured alternatives were no
faster (2026-11-23, 1 thread): ``torch.cdist(p=1)`` runs a scalar loop (0.7-0.9 ns per
element against ~0.25 for max + sum), ``F.pdist`` wastes half its pairs, a ternary
``clamp(F, X - 1, X + 1)`` costs what subtract + clamp cost, multiply + sum is slower
than the batched product, and smaller (L2-sized) blocks lose to per-op overhead. The
fused kernels of ``adder_compiled`` (torch.compile, the CPU default) make one pass
instead and bring the step to ~3-6x nn.Conv2d (median ~4x); this module is their
fallback (``adder_dispatch``) and the exported one.

Export: every object the CPU path needs is a top-level function or class here that
references only ``torch``, ``math``, ``F``, ``nn`` and the others, listed in order in
``EXPORT_OBJECTS`` so the exporter can copy their source; ``adder2d`` is the entry point.
"""

from __future__ import annotations

import torch

__all__ = [
    "Adder2dFunction",
    "adder2d",
    "adder2d_forward_cpu",
    "adder2d_backward_cpu",
    "EXPORT_OBJECTS",
]


def _adder_check_args(x, weight, stride, padding, p):
    """Raise ValueError naming the argument and the value received."""
    if x.dim() != 4 or weight.dim() != 4:
        raise ValueError(
            f"adder2d: x must be (N, C, H, W) and weight (O, C, kh, kw); got x.shape="
            f"{tuple(x.shape)}, weight.shape={tuple(weight.shape)}"
        )
    if x.shape[1] != weight.shape[1]:
        raise ValueError(
            f"adder2d: x has {x.shape[1]} channels but weight expects {weight.shape[1]} "
            "(groups are not supported)"
        )
    if int(stride) != stride or stride < 1 or int(padding) != padding or padding < 0:
        raise ValueError(
            f"adder2d: stride must be an int >= 1 and padding an int >= 0; got "
            f"stride={stride!r}, padding={padding!r}"
        )
    if not 1.0 <= float(p) <= 2.0:
        raise ValueError(f"adder2d: p must lie in [1, 2] (eq. 20); got p={p!r}")
    for size, kernel in zip(x.shape[2:], weight.shape[2:]):
        if size + 2 * padding < kernel:
            raise ValueError(
                f"adder2d: input {tuple(x.shape[2:])} padded by {padding} is smaller than "
                f"the kernel {tuple(weight.shape[2:])}"
            )


def _adder_out_size(size, kernel, stride, padding):
    """Output length along one spatial axis (dilation 1)."""
    return (size + 2 * padding - kernel) // stride + 1


def _adder_compute_dtype(dtype):
    """float64 stays float64; float32, bfloat16 and float16 are computed in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _adder_empty_like_input(x, shape):
    """Uninitialised tensor of shape with x's dtype, device and memory format."""
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=fmt)


def _adder_plan(x, weight, stride, padding, chunk_bytes, block_bytes):
    """(out_hw, images per chunk, rows per block, compute dtype) for the chunked loops."""
    out_hw = tuple(
        _adder_out_size(s, k, stride, padding) for s, k in zip(x.shape[2:], weight.shape[2:])
    )
    dtype = _adder_compute_dtype(x.dtype)
    k = weight[0].numel()
    itemsize = torch.finfo(dtype).bits // 8
    rows_per_image = out_hw[0] * out_hw[1]
    images = max(1, min(x.shape[0], chunk_bytes // (rows_per_image * k * itemsize)))
    rows = max(1, min(images * rows_per_image, block_bytes // (weight.shape[0] * k * itemsize)))
    return out_hw, images, rows, dtype


def _adder_weight_matrix(weight, dtype):
    """(O, C, kh, kw) -> (O, kh * kw * C), the column order of ``_adder_patches``."""
    return weight.to(dtype).permute(0, 2, 3, 1).reshape(weight.shape[0], -1)


def _adder_load_chunk(x_chunk, padding, xp):
    """Copy x_chunk (n, C, H, W) into the interior of xp, a zero-bordered channels-last
    (images, H + 2 pad, W + 2 pad, C) buffer; its border stays zero (the padding)."""
    n, _, h, w = x_chunk.shape
    xp = xp[:n]
    xp[:, padding : padding + h, padding : padding + w].copy_(x_chunk.permute(0, 2, 3, 1))
    return xp


def _adder_tap(xp, i, j, stride, out_hw):
    """The (n, Ho, Wo, C) view of padded xp read by kernel tap (i, j)."""
    ho, wo = out_hw
    return xp[:, i : i + stride * (ho - 1) + 1 : stride, j : j + stride * (wo - 1) + 1 : stride]


def _adder_patches(xp, kernel, stride, out_hw, out):
    """Fill out (n * Ho * Wo, kh * kw * C) with the receptive fields of xp (n, Hp, Wp, C).

    One strided copy per tap, C-long contiguous runs: ~10x faster than ``F.unfold`` here.
    """
    kh, kw = kernel
    view = out.view(xp.shape[0], out_hw[0], out_hw[1], kh, kw, xp.shape[3])
    for i in range(kh):
        for j in range(kw):
            view[:, :, :, i, j, :].copy_(_adder_tap(xp, i, j, stride, out_hw))
    return out


def _adder_fold_add(dxp, cols, kernel, stride, out_hw):
    """Transpose of ``_adder_patches``: add each tap's columns back onto dxp (n, Hp, Wp, C)."""
    kh, kw = kernel
    view = cols.view(dxp.shape[0], out_hw[0], out_hw[1], kh, kw, dxp.shape[3])
    for i in range(kh):
        for j in range(kw):
            _adder_tap(dxp, i, j, stride, out_hw).add_(view[:, :, :, i, j, :])


def _adder_distance_block(xb, w2, p, buf, out):
    """out (r, O) = sum_k |xb[r, k] - w2[o, k]|^p via buf (r, O, K); for p = 1 only
    sum_k max(xb, w2), which ``_adder_chunk_distances`` completes."""
    if p == 1.0:
        torch.maximum(w2.unsqueeze(0), xb.unsqueeze(1), out=buf)
    else:
        torch.sub(w2.unsqueeze(0), xb.unsqueeze(1), out=buf)
        # |d|^p as 2^(p log2|d|): ~4x faster than pow_ on CPU; log2 0 = -inf gives 0.
        buf.abs_().log2_().mul_(p).exp2_()
    torch.sum(buf, -1, out=out)


def _adder_grad_cols_block(xb, w2, gb, buf, out):
    """out (r, K) = sum_o gb[r, o] HardTanh(w2[o, k] - xb[r, k]), via buf (r, O, K) (eq. 21)."""
    torch.sub(w2.unsqueeze(0), xb.unsqueeze(1), out=buf)
    buf.clamp_(-1.0, 1.0)
    torch.bmm(gb.unsqueeze(1), buf, out=out.unsqueeze(1))


def _adder_chunk_distances(cols, w2, p, buf, out):
    """out (R, O) = sum_k |cols - w2|^p for one chunk of patches cols (R, K)."""
    if p == 2.0:
        # (x - f)^2 = x^2 + f^2 - 2 x f (eq. 19): a matrix product, no broadcast at all.
        torch.mm(cols, w2.t(), out=out)
        out.mul_(-2.0).add_(cols.square().sum(1, keepdim=True)).add_(w2.square().sum(1))
        out.clamp_min_(0.0)
        return
    for r0 in range(0, cols.shape[0], buf.shape[0]):
        r1 = min(r0 + buf.shape[0], cols.shape[0])
        _adder_distance_block(cols[r0:r1], w2, p, buf[: r1 - r0], out[r0:r1])
    if p == 1.0:
        # |x - f| = 2 max(x, f) - x - f: one pass over each block instead of two (~25%).
        out.mul_(2.0).sub_(cols.sum(1, keepdim=True)).sub_(w2.sum(1))


def _adder_chunk_grad_cols(cols, w2, g_cols, buf):
    """Overwrite patches cols (R, K) with sum_o G HardTanh(F - X), block by block; returns cols.

    In place: a block's patches are read into buf before its gradient is written over them.
    """
    for r0 in range(0, cols.shape[0], buf.shape[0]):
        r1 = min(r0 + buf.shape[0], cols.shape[0])
        _adder_grad_cols_block(cols[r0:r1], w2, g_cols[r0:r1], buf[: r1 - r0], cols[r0:r1])
    return cols


def adder2d_forward_cpu(
    x, weight, stride, padding, p, chunk_bytes=2 << 20, block_bytes=2 << 20
):
    """Y = -sum_k |X_l - F|^p (eq. 20) with bounded memory; (N, O, Ho, Wo) like x.

    Besides the output, memory is a few reused buffers: a padded channels-last chunk of
    x and its (images x Ho x Wo, K) patches (at most ``chunk_bytes``, at least one image)
    and one (rows, O, K) block (at most ``block_bytes``, at least one row).
    """
    n, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    plan = _adder_plan(x, weight, stride, padding, chunk_bytes, block_bytes)
    (ho, wo), images, rows, dtype = plan
    w2 = _adder_weight_matrix(weight, dtype)
    xp = x.new_zeros((images, h + 2 * padding, w + 2 * padding, c), dtype=dtype)
    cols = x.new_empty((images * ho * wo, w2.shape[1]), dtype=dtype)
    dist = x.new_empty((images * ho * wo, o), dtype=dtype)
    buf = x.new_empty((rows if p != 2.0 else 0, o, w2.shape[1]), dtype=dtype)
    y = _adder_empty_like_input(x, (n, o, ho, wo))
    for n0 in range(0, n, images):
        x_chunk = x[n0 : n0 + images]
        r = x_chunk.shape[0] * ho * wo
        xp_chunk = _adder_load_chunk(x_chunk, padding, xp)
        chunk = _adder_patches(xp_chunk, (kh, kw), stride, (ho, wo), cols[:r])
        _adder_chunk_distances(chunk, w2, p, buf, dist[:r])
        y[n0 : n0 + x_chunk.shape[0]] = dist[:r].neg_().view(-1, ho, wo, o).permute(0, 3, 1, 2)
    return y


def adder2d_backward_cpu(
    x,
    weight,
    grad,
    stride,
    padding,
    need_input_grad=True,
    chunk_bytes=2 << 20,
    block_bytes=2 << 20,
    grad_cols=_adder_chunk_grad_cols,
):
    """(dX, dF) for upstream gradient ``grad``: eq. 21 (HardTanh) and eq. 5 (G^T X - F sum G).

    dX is None when ``need_input_grad`` is False (that skips the costly part). Buffers
    are those of ``adder2d_forward_cpu`` plus a padded chunk of dX. ``grad_cols(cols,
    w2, g_cols, buf)`` returns one chunk's eq. 21 gradient patches (may overwrite cols);
    ``adder_compiled`` passes a fused kernel and ``block_bytes=0`` (no buf needed).
    """
    n, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    plan = _adder_plan(x, weight, stride, padding, chunk_bytes, block_bytes)
    (ho, wo), images, rows, dtype = plan
    w2 = _adder_weight_matrix(weight, dtype)
    xp = x.new_zeros((images, h + 2 * padding, w + 2 * padding, c), dtype=dtype)
    cols = x.new_empty((images * ho * wo, w2.shape[1]), dtype=dtype)
    dw = torch.zeros_like(w2)
    if need_input_grad:
        dx = _adder_empty_like_input(x, x.shape)
        dxp = torch.empty_like(xp)
        buf = x.new_empty((rows, o, w2.shape[1]), dtype=dtype)
    for n0 in range(0, n, images):
        x_chunk = x[n0 : n0 + images]
        m, r = x_chunk.shape[0], x_chunk.shape[0] * ho * wo
        xp_chunk = _adder_load_chunk(x_chunk, padding, xp)
        chunk = _adder_patches(xp_chunk, (kh, kw), stride, (ho, wo), cols[:r])
        g_cols = grad[n0 : n0 + m].to(dtype).permute(0, 2, 3, 1).reshape(r, o)
        dw.addmm_(g_cols.t(), chunk)  # G^T X, the first term of eq. 5
        if need_input_grad:
            dcols = grad_cols(chunk, w2, g_cols, buf)  # dX patches
            _adder_fold_add(dxp[:m].zero_(), dcols, (kh, kw), stride, (ho, wo))
            dx_chunk = dxp[:m, padding : padding + h, padding : padding + w]
            dx[n0 : n0 + m] = dx_chunk.permute(0, 3, 1, 2)
    dw.sub_(w2 * grad.sum(dim=(0, 2, 3), dtype=dtype).unsqueeze(1))  # - F sum(G), eq. 5
    dw = dw.view(o, kh, kw, c).permute(0, 3, 1, 2).to(weight.dtype).contiguous()
    return (dx if need_input_grad else None), dw


class Adder2dFunction(torch.autograd.Function):
    """Autograd for the adder operator: eq. 20 forward, eq. 21 / eq. 5 backward (AdderNet).

    Saves only x and the weight (like a convolution); patches are rebuilt in backward.
    """

    @staticmethod
    def forward(ctx, x, weight, stride, padding, p):
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding = stride, padding
        return adder2d_forward_cpu(x, weight, stride, padding, p)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        dx, dw = adder2d_backward_cpu(
            x, weight, grad, ctx.stride, ctx.padding, need_input_grad=ctx.needs_input_grad[0]
        )
        return dx, (dw if ctx.needs_input_grad[1] else None), None, None, None


def adder2d(x, weight, stride=1, padding=0, p=1.0):
    """Adder 2-D operator (AdderNet eq. 20): Y = -sum |X - F|^p per receptive field.

    Args:
        x: input (N, C, H, W), float32/float64 (bfloat16/float16 computed in float32).
        weight: filters F (O, C, kh, kw).
        stride: int >= 1, same on both axes (dilation 1, groups 1).
        padding: zero padding >= 0; padded positions contribute |F|^p.
        p: exponent in [1, 2]; 1 is the l1 AdderNet (eq. 2) used at inference.

    Returns:
        (N, O, Ho, Wo), in x's dtype and memory format. Gradients: eq. 5 for the weight,
        HardTanh(F - X) (eq. 21) for the input, at every p.
    """
    _adder_check_args(x, weight, stride, padding, p)
    return Adder2dFunction.apply(x, weight, int(stride), int(padding), float(p))


EXPORT_OBJECTS = (
    _adder_check_args,
    _adder_out_size,
    _adder_compute_dtype,
    _adder_empty_like_input,
    _adder_plan,
    _adder_weight_matrix,
    _adder_load_chunk,
    _adder_tap,
    _adder_patches,
    _adder_fold_add,
    _adder_distance_block,
    _adder_grad_cols_block,
    _adder_chunk_distances,
    _adder_chunk_grad_cols,
    adder2d_forward_cpu,
    adder2d_backward_cpu,
    Adder2dFunction,
    adder2d,
)
