"""Speed of the analytic cost model against the hook-based count, on 50-block genotypes.

What a search pays per trial is ``count_cost(genotype)`` plus both totals (energy included);
the target is <= 5 ms for a 50-block genotype on the 2-core CPU sandbox. The baseline is the
independent count the tests compare against: build the model and count it with forward
hooks (``count_with_hooks``), timed with and without the build. Both run in this process,
one after the other, and the script prints their ratio.

    python benchmarks/bench_cost.py            # all six block patterns
    python benchmarks/bench_cost.py --patterns hb --repeats 200
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from optinas.search_space import BlockSpec, Genotype, InputSpec, StageSpec, StemSpec, build_model, count_cost
from optinas.search_space import count_with_hooks
from optinas.search_space.registry import block_patterns

TARGET_MS = 5.0


def fifty_blocks(pattern: str) -> Genotype:
    """CIFAR-shaped, 17 + 17 + 16 blocks of ``pattern`` at 16/32/64 channels."""
    stages = tuple(StageSpec(depth, width, stride=stride, block=BlockSpec(pattern))
                   for depth, width, stride in ((17, 16, 1), (17, 32, 2), (16, 64, 2)))
    return Genotype(InputSpec(3, 32, 32, 10), StemSpec(16), stages)


def _times_ms(function, repeats: int, clock=time.perf_counter) -> list[float]:
    timings = []
    for _ in range(repeats):
        started = clock()
        function()
        timings.append((clock() - started) * 1e3)
    return timings


def analytic(genotype: Genotype) -> None:
    cost = count_cost(genotype)
    cost.total, cost.paper  # a trial records both views, energy included


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patterns", nargs="*", default=sorted(block_patterns()))
    parser.add_argument("--repeats", type=int, default=50, help="analytic repetitions (default 50)")
    parser.add_argument("--hook-repeats", type=int, default=3, help="hook-count repetitions (default 3)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{'pattern':<10} {'records':>7} {'analytic ms':>18} {'cpu ms':>7} {'hooks ms':>9} {'build+hooks':>11} "
          f"{'ratio':>7}  <= {TARGET_MS} ms")
    for pattern in args.patterns:
        genotype = fifty_blocks(pattern)
        analytic(genotype)  # first call resolves the registry; a search pays it once
        fast = _times_ms(lambda: analytic(genotype), args.repeats)
        # CPU time of this process: on a shared machine, wall time also counts others' work.
        cpu = _times_ms(lambda: analytic(genotype), args.repeats, time.process_time)
        model = build_model(genotype)
        hooks = _times_ms(lambda: count_with_hooks(model, genotype.input.shape), args.hook_repeats)
        built = _times_ms(lambda: count_with_hooks(build_model(genotype), genotype.input.shape),
                          args.hook_repeats)
        median = statistics.median(fast)
        print(f"{pattern:<10} {len(count_cost(genotype).records):>7} "
              f"{median:>8.2f} (min {min(fast):5.2f}) {statistics.median(cpu):>7.2f} {statistics.median(hooks):>9.1f} "
              f"{statistics.median(built):>11.1f} {statistics.median(built) / median:>6.0f}x  "
              f"{'yes' if statistics.median(cpu) <= TARGET_MS else 'NO'}")
    print("analytic: count_cost + total + paper, wall median (min) and CPU-time median per call; "
          "ratio = build+hooks median / analytic wall median; target judged on CPU time")


if __name__ == "__main__":
    main()
