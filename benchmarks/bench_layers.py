"""Binary (XNOR-Net++) and quantized layers against nn.Conv2d of the same shape.

Forward + backward (input and weight gradients) time and peak memory at the ResNet-20
CIFAR shapes (batch 128: 16 ch at 32x32, 32 ch at 16x16, 64 ch at 8x8) and one
ImageNet-like shape (batch 32, 64 ch at 56x56), 3x3 kernels, stride 1, in training mode.
Ratios come from the same run. The adder layer has its own benchmark with the official
unfold baseline: ``benchmarks/bench_layers_adder.py``. Usage::

    python benchmarks/bench_layers.py [--device cpu|cuda] [--repeat N] [--threads T]

What is timed: both layers are the simulated ("fake-quantized") training forms that run on
float hardware, so the numbers say what a search pays to train them, not what a popcount
or integer kernel would cost at inference. The binary layer includes its own input
BatchNorm, sign of inputs and weights and the scale; quant includes the LSQ (or codebook)
weight quantizer and, for a_bits < 32, the activation quantizer.

CUDA: layers and inputs cast to bf16, channels-last; median of CUDA
event timings; memory = torch.cuda.max_memory_allocated rise during one step. CPU: float32
NCHW; median wall time (methods take turns, so a busy machine slows all alike); memory =
peak of live bytes from the torch CPU allocator (profiler memory events) during one step.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from optinas.search_space.layers import BinaryConv2d, QuantConv2d  # noqa: E402

SHAPES = (  # name, batch, channels, height = width
    ("cifar 16ch 32x32", 128, 16, 32),
    ("cifar 32ch 16x16", 128, 32, 16),
    ("cifar 64ch 8x8", 128, 64, 8),
    ("imagenet 64ch 56x56", 32, 64, 56),
)
METHODS = {  # name -> layer factory (channels -> module)
    "conv": lambda c: nn.Conv2d(c, c, 3, padding=1, bias=False),
    "binary-ch": lambda c: BinaryConv2d(c, c, 3, scale="channel"),
    "binary-r1": lambda c: BinaryConv2d(c, c, 3, scale="rank1"),
    "q-w4": lambda c: QuantConv2d(c, c, 3, w_bits=4),
    "q-w4a4": lambda c: QuantConv2d(c, c, 3, w_bits=4, a_bits=4),
    "q-cb4": lambda c: QuantConv2d(c, c, 3, w_bits=4, scheme="codebook"),
}


def make_step(method, batch, channels, size, device):
    """A closure running one forward + backward of ``method`` at the given shape."""
    torch.manual_seed(0)
    layer = METHODS[method](channels).to(device)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    fmt = torch.channels_last if device == "cuda" else torch.contiguous_format
    x = torch.randn(batch, channels, size, size, device=device, dtype=dtype).contiguous(memory_format=fmt)
    x.requires_grad_()
    layer(x.detach().float() if dtype != torch.float32 else x.detach())  # lazy sizes, data-initialised steps
    layer = layer.to(dtype=dtype, memory_format=fmt)
    grad = torch.randn(batch, channels, size, size, device=device, dtype=dtype).contiguous(memory_format=fmt)

    def step():
        layer(x).backward(grad)
        x.grad = None  # freed inside the step, so the memory profile sees both ends
        layer.zero_grad(set_to_none=True)

    return step


def cpu_times(steps, repeat):
    """Median wall ms per step, methods taking turns."""
    for step in steps.values():
        step()
    times = {name: [] for name in steps}
    for _ in range(repeat):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(t) for name, t in times.items()}


def cpu_peak_mib(step):
    """Peak of live bytes allocated by torch during one step (profiler memory events)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == "[memory]")
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return peak / 2**20


def cuda_result(step, repeat):
    """(median ms, peak MiB above what was allocated before the step)."""
    step()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        step()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    step()
    torch.cuda.synchronize()
    return statistics.median(times), (torch.cuda.max_memory_allocated() - base) / 2**20


def run_shape(batch, channels, size, device, repeat, methods):
    """{method: (ms, MiB)} for one shape."""
    steps = {m: make_step(m, batch, channels, size, device) for m in methods}
    if device == "cuda":
        return {m: cuda_result(step, repeat) for m, step in steps.items()}
    times = cpu_times(steps, repeat)
    return {m: (times[m], cpu_peak_mib(step)) for m, step in steps.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeat", type=int, default=None, help="timed steps (default 20 cuda, 3 cpu)")
    parser.add_argument("--threads", type=int, default=None, help="cpu: torch threads (default: torch's)")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ",".join(METHODS))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or "conv" not in methods:
        parser.error(f"--methods must include conv and name only {', '.join(METHODS)}; got {args.methods!r}")
    repeat = args.repeat or (20 if args.device == "cuda" else 3)
    device = torch.cuda.get_device_name() if args.device == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"layer benchmark: {device}, torch {torch.__version__}, "
          f"{'bf16 channels-last' if args.device == 'cuda' else 'float32 NCHW'}, repeat {repeat}")
    print("time = forward + backward, median ms (ratio to conv); memory = peak MiB (ratio to conv)")
    others = [m for m in methods if m != "conv"]
    print(f"{'shape':22}{'batch':>6}{'conv ms':>9}" + "".join(f"{m:>18}" for m in others)
          + f"{'conv MiB':>10}" + "".join(f"{m + ' MiB':>18}" for m in others))
    for name, batch, channels, size in SHAPES:
        results = run_shape(batch, channels, size, args.device, repeat, methods)
        conv_ms, conv_mib = results["conv"]
        line = f"{name:22}{batch:6d}{conv_ms:9.1f}"
        line += "".join(f"{results[m][0]:11.1f} ({results[m][0] / conv_ms:4.2f}x)" for m in others)
        line += f"{conv_mib:10.0f}"
        line += "".join(f"{results[m][1]:11.0f} ({results[m][1] / max(conv_mib, 1e-9):4.2f}x)" for m in others)
        print(line, flush=True)
        if args.device == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
