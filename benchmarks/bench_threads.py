"""CPU intra-op threads for proxy training: 1 thread vs N threads, alternating in one process.

Why `--threads` defaults to half the cores: on a machine whose cores are busy with anything
else, OpenMP threads spin while they wait and a small proxy model trains several times slower
with more threads. Prints seconds per round for each setting and the ratio.

    python benchmarks/bench_threads.py [--threads 2] [--rounds 2] [--epochs 6]
"""

from __future__ import annotations

import argparse
import time

import torch

from optinas.evaluator import Fidelity, evaluate, load_task
from optinas.search_space import InputSpec, SearchSpace, build_model
from optinas.search_space.space import RandomTrial


def _time_round(genotypes, task, epochs: int, threads: int) -> float:
    torch.set_num_threads(threads)
    start = time.perf_counter()
    for genotype in genotypes:
        torch.manual_seed(0)
        evaluate(build_model(genotype), task, Fidelity(epochs=epochs))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="the many-thread setting (default 2)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--models", type=int, default=3, help="demo-space genotypes per round")
    args = parser.parse_args()

    import random

    task = load_task("digits")
    space = SearchSpace.from_toml(InputSpec(1, 8, 8, 10))
    rng = random.Random(3)
    genotypes = [space.sample(RandomTrial(rng)) for _ in range(args.models)]
    one, many = [], []
    for _ in range(args.rounds):  # alternate, so background load hits both settings alike
        one.append(_time_round(genotypes, task, args.epochs, 1))
        many.append(_time_round(genotypes, task, args.epochs, args.threads))
    print(f"{args.models} digits trials x {args.epochs} epochs per round")
    print(f"1 thread:  {', '.join(f'{t:.1f}' for t in one)} s (best {min(one):.1f})")
    print(f"{args.threads} threads: {', '.join(f'{t:.1f}' for t in many)} s (best {min(many):.1f})")
    print(f"ratio {args.threads} threads / 1 thread (best of each): {min(many) / min(one):.2f}x")


if __name__ == "__main__":
    main()
