"""Fidelity of the proxy: does a short training rank architectures as a 5x longer one does?

Samples ``--count`` distinct architectures from the default search space (adapted to the
task), trains each twice from the same initial weights -- once with the short proxy
(``--epochs``, optionally on a share of the training split, at a width multiplier or a
proxy resolution) and once ``--factor`` times longer at full fidelity -- and prints the
Spearman rank correlation of their validation accuracies (and of the proxy against the
long run's test accuracy), with the time each fidelity took.

A search only needs the proxy to *order* candidates the way full training would, so rank
correlation, not accuracy, is the figure of merit (rho = 1: same order; 0: unrelated).

Run (digits on the CPU; CIFAR-10 on a GPU):
    python benchmarks/bench_fidelity.py --task digits --count 20 --epochs 2
    python benchmarks/bench_fidelity.py --task $OPTINAS_DATA/cifar10-jpeg.tar.gz --device cuda \\
        --count 20 --epochs 2 --batch-size 256 --lr 0.2
Needs torch and this repository only (no Optuna).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from optinas.evaluator import Fidelity, TrialFailed, evaluate, load_task, proxy_genotype, resolve_device  # noqa: E402
from optinas.search_space import InputSpec, SearchSpace, build_model  # noqa: E402


def ranks(values: list[float]) -> list[float]:
    """1-based ranks, ties sharing their average rank (as Spearman's rho needs)."""
    order = sorted(range(len(values)), key=values.__getitem__)
    result = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):
            result[order[position]] = (start + end) / 2 + 1
        start = end + 1
    return result


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation: Pearson's correlation of the ranks."""
    ra, rb = ranks(a), ranks(b)
    mean_a, mean_b = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - mean_a) * (y - mean_b) for x, y in zip(ra, rb))
    var_a = sum((x - mean_a) ** 2 for x in ra)
    var_b = sum((y - mean_b) ** 2 for y in rb)
    return cov / (var_a * var_b) ** 0.5 if var_a and var_b else float("nan")


def sample(task, count: int, seed: int) -> list:
    channels, height, width = task.input_shape
    space = SearchSpace.from_toml(InputSpec(channels, height, width, task.num_classes))
    unique, draws = {}, 0
    while len(unique) < count and draws < 50 * count:
        for genotype in space.sample_random(count, seed=seed + draws):
            unique.setdefault(genotype.hash, genotype)
        draws += count
    return list(unique.values())[:count]


def train(genotype, task, fidelity: Fidelity, device, seed: int, init: int) -> tuple[float, float, float]:
    """(val accuracy, test accuracy, seconds); a failed trial scores 0, as a search records it."""
    torch.manual_seed(init)
    model = build_model(proxy_genotype(genotype, fidelity))
    started = time.perf_counter()
    try:
        result = evaluate(model, task, fidelity, device=device, seed=seed)
    except TrialFailed as failure:
        print(f"    failed: {failure}")
        return 0.0, 0.0, time.perf_counter() - started
    return result.val_accuracy, result.test_accuracy, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="digits", help="a task name or an image folder / archive path")
    parser.add_argument("--data-dir", help="root of torchvision-format data sets")
    parser.add_argument("--count", type=int, default=20, help="architectures (>= 20 for the issue's figure)")
    parser.add_argument("--epochs", type=int, default=2, help="proxy epochs")
    parser.add_argument("--factor", type=int, default=5, help="the long run trains this many times longer")
    parser.add_argument("--train-fraction", type=float, default=1.0, help="proxy: share of the training split")
    parser.add_argument("--width-multiplier", type=float, default=1.0, help="proxy: width multiplier")
    parser.add_argument("--resolution", type=int, help="proxy: input size")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (1 suits small models)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    task = load_task(args.task, seed=args.seed, data_dir=args.data_dir)
    common = dict(batch_size=args.batch_size, lr=args.lr)
    short = Fidelity(epochs=args.epochs, train_fraction=args.train_fraction,
                     width_multiplier=args.width_multiplier, resolution=args.resolution, **common)
    long = Fidelity(epochs=args.epochs * args.factor, **common)
    genotypes = sample(task, args.count, args.seed)
    print(f"task {task.name} ({task.source}); device {device}; {len(genotypes)} architectures")
    print(f"proxy: {short.epochs} epochs, train_fraction {short.train_fraction}, width x{short.width_multiplier}, "
          f"resolution {short.resolution or 'native'}; long: {long.epochs} epochs at full fidelity")

    rows = []
    for index, genotype in enumerate(genotypes):
        proxy = train(genotype, task, short, device, args.seed, init=args.seed + index)
        full = train(genotype, task, long, device, args.seed, init=args.seed + index)
        rows.append((proxy, full))
        print(f"  {index:2d} {genotype.hash}  proxy val {proxy[0]:.3f} ({proxy[2]:5.1f} s)   "
              f"long val {full[0]:.3f} test {full[1]:.3f} ({full[2]:5.1f} s)")
    proxy_val = [p[0] for p, _ in rows]
    long_val, long_test = [f[0] for _, f in rows], [f[1] for _, f in rows]
    proxy_time, long_time = sum(p[2] for p, _ in rows), sum(f[2] for _, f in rows)
    print(f"Spearman rho, proxy val vs long val : {spearman(proxy_val, long_val):.3f}")
    print(f"Spearman rho, proxy val vs long test: {spearman(proxy_val, long_test):.3f}")
    print(f"Spearman rho, long val vs long test : {spearman(long_val, long_test):.3f} (noise ceiling)")
    print(f"time: proxy {proxy_time:.0f} s, long {long_time:.0f} s, ratio long/proxy {long_time / proxy_time:.2f}x")


if __name__ == "__main__":
    main()
