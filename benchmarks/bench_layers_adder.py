"""Adder layer (AdderNet) against nn.Conv2d and the official unfold-and-broadcast code.

Forward + backward (input and weight gradients) time and peak memory at ResNet-20 CIFAR
shapes (batch 128: 16 ch at 32x32, 32 ch at 16x16, 64 ch at 8x8) and one ImageNet-like
shape (batch 32, 64 ch at 56x56), 3x3 kernels, stride 1, padding 1. Ratios come from the
same run. Usage::

    python benchmarks/bench_layers_adder.py [--device cpu|cuda] [--repeat N] [--p P]
                                            [--threads T] [--cpu-unfold-gb GB] [--eager]
                                            [--shapes all|cifar|none] [--no-warm-up-timing]
                                            [--shape-sweep N]

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
CPU: the adder runs the library's default path, the torch.compile kernels of
``adder_compiled``, unless ``--eager`` (or ``OPTINAS_ADDER_COMPILE=0``) selects the eager
kernel. With the compiled path the script first times ``warm_up_adder("cpu")`` in two
fresh processes sharing a new, empty torch compile cache (``TORCHINDUCTOR_CACHE_DIR``):
the first process compiles, the second finds the compiled code on disk, as every process
after the first on a machine does (``--no-warm-up-timing`` skips this); then it warms up
in its own process before timing. ``--shapes cifar`` keeps the three ResNet-20 shapes
(``none``: no table).
``--shape-sweep N`` (compiled path) then trains N random adder layers as a search would
meet them (seeded: batch, widths, resolution, kernel 3 or 5, stride 1 or 2, p in [1, 2])
and prints how many graphs torch.compile built in this process: bounded by the kernel
sizes and strides, not by the number of shapes.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from optinas.search_space.layers import set_adder_compile, warm_up_adder  # noqa: E402
from optinas.search_space.layers.adder import Adder2d  # noqa: E402
from optinas.search_space.layers.adder_compiled import compiled_cpu_enabled  # noqa: E402
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
    elif method in ("adder", "eager"):
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

    def eager_step():
        set_adder_compile(False)  # the eager kernel for this step only
        try:
            step()
        finally:
            set_adder_compile(None)  # the default again

    return eager_step if method == "eager" else step


def unfold_bytes(batch, channels, size, itemsize):
    """Size of the official code's (O, K, N*L) broadcast, its largest temporary."""
    return channels * channels * 9 * batch * size * size * itemsize


def cpu_unfold_batch(batch, channels, size, budget_gb):
    """Halve the batch until the unfold baseline's broadcast fits the budget."""
    while batch > 1 and unfold_bytes(batch, channels, size, 4) > budget_gb * 2**30:
        batch //= 2
    return batch


def run_shape_cpu(batch, channels, size, repeat, p, budget_gb):
    """{method: (ms, MiB)} at the given batch; unfold is scaled from a smaller batch if needed.
    With the compiled kernels on, "eager" is the eager kernel's (ms, MiB), timed in turn."""
    small = cpu_unfold_batch(batch, channels, size, budget_gb)
    methods = ("conv", "adder", "eager") if compiled_cpu_enabled() else ("conv", "adder")
    steps = {m: make_case(m, batch, channels, size, "cpu", p) for m in methods}
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
    parser.add_argument("--eager", action="store_true", help="cpu: the eager adder kernel")
    parser.add_argument("--shapes", choices=("all", "cifar", "none"), default="all",
                        help="cifar: only the ResNet-20 shapes; none: no table")
    parser.add_argument("--no-warm-up-timing", action="store_true",
                        help="cpu: skip timing the warm-up in fresh processes")
    parser.add_argument("--shape-sweep", type=int, default=0, metavar="N",
                        help="cpu, compiled: N random layer shapes, then count graphs")
    parser.add_argument("--warm-up-only", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


def warm_up_seconds():
    """Seconds ``warm_up_adder("cpu")`` takes in this process (compile and self-check)."""
    start = time.perf_counter()
    if not warm_up_adder("cpu"):
        raise SystemExit("the compiled adder kernels fell back to eager (see the warning)")
    return time.perf_counter() - start


def warm_up_in_new_processes(threads):
    """(first, later): warm-up seconds in a process with an empty compile cache, then in
    a second process that finds what the first compiled (torch's on-disk cache)."""
    seconds = []
    with tempfile.TemporaryDirectory(prefix="optinas-compile-cache-") as cache:
        env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=cache)
        command = [sys.executable, __file__, "--warm-up-only", "--threads", str(threads)]
        for _ in range(2):
            out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            seconds.append(float(re.search(r"warm-up s: ([0-9.]+)", out.stdout).group(1)))
    return tuple(seconds)


def shape_sweep(count):
    """Forward + backward of ``count`` random adder layers; prints the graphs compiled."""
    from torch._dynamo.utils import counters  # imported by the compiled kernels already

    rng = random.Random(0)
    before, start = counters["stats"]["unique_graphs"], time.perf_counter()
    for _ in range(count):
        n, c, o = rng.choice([2, 8, 32, 64]), rng.choice([4, 8, 16, 32]), rng.choice([4, 12, 16, 32])
        size, k, stride = rng.choice([4, 7, 8, 9, 16, 32]), rng.choice([3, 5]), rng.choice([1, 2])
        layer = Adder2d(c, o, k, stride)
        layer.p = rng.choice([1.0, 1.0 + rng.random(), 2.0])
        layer(torch.randn(n, c, size, size, requires_grad=True)).sum().backward()
    graphs = counters["stats"]["unique_graphs"] - before
    print(f"shape sweep: {count} random layers, {graphs} new graphs compiled (after the 3x3 "
          f"warm-up's), {time.perf_counter() - start:.0f} s; compiled path still on: "
          f"{compiled_cpu_enabled()}")


def main():
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.warm_up_only:
        print(f"warm-up s: {warm_up_seconds():.2f}")
        return
    if args.eager:
        set_adder_compile(False)
    repeat = args.repeat or (20 if args.device == "cuda" else 3)
    if args.device == "cpu" and compiled_cpu_enabled():
        if not args.no_warm_up_timing:
            first, later = warm_up_in_new_processes(torch.get_num_threads())
            print(f"warm_up_adder('cpu'): first process on an empty compile cache {first:.1f} s, "
                  f"later process {later:.1f} s")
        print(f"warm_up_adder('cpu') in this process: {warm_up_seconds():.1f} s")
    print_header(args, repeat)
    shapes = {"all": SHAPES, "cifar": SHAPES[:3], "none": ()}[args.shapes]
    for name, batch, channels, size in shapes:
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
    if args.shape_sweep and args.device == "cpu" and compiled_cpu_enabled():
        shape_sweep(args.shape_sweep)


def print_header(args, repeat):
    if args.device == "cuda":
        device, dtype = torch.cuda.get_device_name(), "bf16 channels-last (unfold: bf16 NCHW)"
        memory = "cuda max_memory_allocated rise"
    else:
        path = "compiled (torch.compile, default)" if compiled_cpu_enabled() else "eager"
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
    if "eager" in results:
        te = results["eager"][0]
        print(f"  eager adder kernel: {te:.1f} ms = {te / tc:.2f}x conv; the default "
              f"(compiled) adder is {te / ta:.2f}x faster")


if __name__ == "__main__":
    main()
