"""Adder layer (seed 000) against nn.Conv2d and the official unfold-and-broadcast code.

Forward + backward (input and weight gradients) time and peak memory at ResNet-20 CIFAR
shapes (batch 128: 16 ch at 32x32, 32 ch at 16x16, 64 ch at 8x8) and one ImageNet-like
shape (batch 32, 64 ch at 56x56), 3x3 kernels, stride 1, padding 1. Ratios come from the
same run. Usage::

    python benchmarks/bench_layers_adder.py [--device cpu|cuda] [--repeat N] [--p P]
                                            [--threads T] [--cpu-unfold-gb GB] [--compile]

CUDA: bf16, channels-last for adder and conv (the official code needs NCHW); time is the
median of CUDA-event timings, memory is torch.cuda.max_memory_allocated during one
forward + backward minus what was allocated before it (inputs, weights).
CPU: float32 NCHW; time is the median wall time, the methods taking turns so that load
changes during the run reach all of them (on a shared machine use --threads 1: the
adder's many small parallel ops suffer far more from oversubscription than a convolution);
memory is the peak of bytes live in torch's CPU allocator during one forward + backward
(from the profiler's allocation events): what the step allocates, inputs and weights
excluded. The unfold baseline's
(O, K, N*L) broadcast would not fit in RAM at full batch, so on CPU it runs at a smaller
batch and both its numbers are scaled linearly.
The adder runs at ``--p`` (default 1, the l1 layer of inference); the baseline is l1.
``--compile`` (CPU) times the opt-in torch.compile kernels (``adder_compiled``, the same
as ``OPTINAS_ADDER_COMPILE=1``) instead of the eager CPU path; compiling happens in the
untimed warm-up step.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from optinas.search_space.layers.adder import Adder2d  # noqa: E402
from optinas.search_space.layers.adder_compiled import set_adder_compile  # noqa: E402
# The timing and memory helpers are bench_layers.py's (this script's folder is on sys.path).
from bench_layers import cpu_peak_mib, cpu_times  # noqa: E402
from bench_layers import cuda_result as run_cuda  # noqa: E402

SHAPES = (  # name, batch, channels, height = width
    ("cifar 16ch 32x32", 128, 16, 32),
    ("cifar 32ch 16x16", 128, 32, 16),
    ("cifar 64ch 8x8", 128, 64, 8),
    ("imagenet 64ch 56x56", 32, 64, 56),
)
METHODS = ("conv", "adder", "unfold")
TARGETS = (
    "targets: unfold/adder >= 10x; adder/conv <= 3x (cuda, bf16) or <= 4x (cpu); "
    "memory adder/conv <= 2x"
)


# ---------------------------------------------------------------- the official baseline


class OfficialAdder(torch.autograd.Function):
    """``adder`` from the official AdderNet code (huawei-noah/AdderNet, adder.py), verbatim
    in substance: the full (O, K, N*L) broadcast, eta = 0.2 gradient scaling included."""

    @staticmethod
    def forward(ctx, w_col, x_col):
        ctx.save_for_backward(w_col, x_col)
        return -(w_col.unsqueeze(2) - x_col.unsqueeze(0)).abs().sum(1)

    @staticmethod
    def backward(ctx, grad_output):
        w_col, x_col = ctx.saved_tensors
        grad_w = ((x_col.unsqueeze(0) - w_col.unsqueeze(2)) * grad_output.unsqueeze(1)).sum(2)
        grad_w = grad_w / grad_w.norm(p=2).clamp(min=1e-12) * math.sqrt(grad_w.numel()) / 5
        grad_x = -(x_col.unsqueeze(0) - w_col.unsqueeze(2)).clamp(-1, 1)
        grad_x = (grad_x * grad_output.unsqueeze(1)).sum(0)
        return grad_w, grad_x


def official_adder2d(x, weight, stride=1, padding=0):
    """``adder2d_function`` of the official code: unfold X, then ``OfficialAdder``."""
    n_filters, _, h_filter, w_filter = weight.shape
    n_x, _, h_x, w_x = x.shape
    h_out = (h_x - h_filter + 2 * padding) // stride + 1
    w_out = (w_x - w_filter + 2 * padding) // stride + 1
    x_col = F.unfold(x.reshape(1, -1, h_x, w_x), h_filter, padding=padding, stride=stride)
    x_col = x_col.view(n_x, -1, h_out * w_out).permute(1, 2, 0).contiguous()
    x_col = x_col.view(x_col.shape[0], -1)
    out = OfficialAdder.apply(weight.view(n_filters, -1), x_col)
    return out.view(n_filters, h_out, w_out, n_x).permute(3, 0, 1, 2).contiguous()


class OfficialAdder2d(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(channels, channels, 3, 3))

    def forward(self, x):
        return official_adder2d(x.contiguous(), self.weight, 1, 1)


# ---------------------------------------------------------------- one case


def make_case(method, batch, channels, size, device, p):
    """A closure running one forward + backward; bf16 channels-last on CUDA, fp32 on CPU."""
    torch.manual_seed(0)
    if method == "conv":
        layer = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
    elif method == "adder":
        layer = Adder2d(channels, channels, 3)
        layer.p = p
    else:
        layer = OfficialAdder2d(channels)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    # The official code views its input and weight as NCHW-contiguous.
    channels_last = device == "cuda" and method != "unfold"
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    layer = layer.to(device=device, dtype=dtype, memory_format=fmt)
    x = torch.randn(batch, channels, size, size, device=device, dtype=dtype)
    x = x.contiguous(memory_format=fmt).requires_grad_()
    grad = torch.randn(batch, channels, size, size, device=device, dtype=dtype)
    grad = grad.contiguous(memory_format=fmt)

    def step():
        layer(x).backward(grad)
        x.grad = None  # freed inside the step, so the CPU memory profile sees both ends
        layer.zero_grad(set_to_none=True)

    return step


def unfold_bytes(batch, channels, size, itemsize):
    """Size of the official code's (O, K, N*L) broadcast, its largest temporary."""
    return channels * channels * 9 * batch * size * size * itemsize


def cpu_unfold_batch(batch, channels, size, budget_gb):
    """Halve the batch until the unfold baseline's broadcast fits the budget."""
    while batch > 1 and unfold_bytes(batch, channels, size, 4) > budget_gb * 2**30:
        batch //= 2
    return batch


def run_shape_cpu(batch, channels, size, repeat, p, budget_gb):
    """{method: (ms, MiB)} at the given batch; unfold is scaled from a smaller batch if needed."""
    small = cpu_unfold_batch(batch, channels, size, budget_gb)
    steps = {m: make_case(m, batch, channels, size, "cpu", p) for m in ("conv", "adder")}
    times = cpu_times(steps, repeat)
    results = {m: (times[m], cpu_peak_mib(step)) for m, step in steps.items()}
    del steps
    unfold = make_case("unfold", small, channels, size, "cpu", p)
    unfold_ms = cpu_times({"unfold": unfold}, max(1, repeat // 3))["unfold"]
    scale = batch / small  # the broadcast dominates time and memory, both linear in batch
    results["unfold"] = (unfold_ms * scale, cpu_peak_mib(unfold) * scale)
    return results, small


# ---------------------------------------------------------------- the table


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", choices=("cpu", "cuda"), default=default_device)
    parser.add_argument("--repeat", type=int, default=None, help="timed steps (20 cuda, 3 cpu)")
    parser.add_argument("--p", type=float, default=1.0, help="adder exponent (1: l1, inference)")
    parser.add_argument("--cpu-unfold-gb", type=float, default=1.0, help="cap, unfold broadcast")
    parser.add_argument("--threads", type=int, default=None, help="cpu: torch threads")
    parser.add_argument("--compile", action="store_true", help="cpu: torch.compile kernels")
    return parser.parse_args()


def main():
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    set_adder_compile(args.compile)
    repeat = args.repeat or (20 if args.device == "cuda" else 3)
    print_header(args, repeat)
    for name, batch, channels, size in SHAPES:
        if args.device == "cpu":
            results, unfold_batch = run_shape_cpu(
                batch, channels, size, repeat, args.p, args.cpu_unfold_gb
            )
        else:
            steps = {m: make_case(m, batch, channels, size, "cuda", args.p) for m in METHODS}
            results = {m: run_cuda(step, repeat) for m, step in steps.items()}
            unfold_batch = batch
            del steps
            torch.cuda.empty_cache()
        print_row(name, batch, unfold_batch, results)
    print(TARGETS)


def print_header(args, repeat):
    if args.device == "cuda":
        device, dtype = torch.cuda.get_device_name(), "bf16 channels-last (unfold: bf16 NCHW)"
        memory = "cuda max_memory_allocated rise"
    else:
        path = "compiled (torch.compile)" if args.compile else "eager"
        device, dtype = f"cpu, {torch.get_num_threads()} threads, adder {path}", "float32 NCHW"
        memory = "torch CPU allocator peak (profiler)"
    print(f"adder benchmark: {device}, torch {torch.__version__}, {dtype}, p = {args.p}, "
          f"repeat {repeat}")  # fmt: skip
    print(f"time = forward + backward (median ms); memory = {memory} (MiB)")
    columns = [("shape", 22), ("batch", 6), ("conv ms", 10), ("adder ms", 10), ("unfold ms", 11),
               ("conv MiB", 10), ("adder MiB", 11), ("unfold MiB", 12), ("adder/conv", 12),
               ("unfold/adder", 14), ("mem a/c", 9)]  # fmt: skip
    titles = [f"{t:<{w}}" if i == 0 else f"{t:>{w}}" for i, (t, w) in enumerate(columns)]
    print("".join(titles))


def print_row(name, batch, unfold_batch, results):
    (tc, mc), (ta, ma), (tu, mu) = (results[m] for m in METHODS)
    mark = "*" if unfold_batch != batch else " "
    line = f"{name:22}{batch:6d}{tc:10.1f}{ta:10.1f}{tu:10.0f}{mark}"
    line += f"{mc:10.0f}{ma:11.0f}{mu:11.0f}{mark}"
    line += f"{ta / tc:11.2f}x{tu / ta:13.1f}x{ma / max(mc, 1e-9):8.2f}x"
    print(line, flush=True)
    if unfold_batch != batch:
        print(f"  * unfold run at batch {unfold_batch} (--cpu-unfold-gb), time and memory "
              f"scaled by {batch // unfold_batch}")  # fmt: skip


if __name__ == "__main__":
    main()
