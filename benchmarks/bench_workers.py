"""Aggregate search throughput: K worker processes on one study vs one process, in one run.

Both settings train the same candidates (the one-process run samples them; the K-worker run
gets them queued in the same order) on the same device; the one-process run gets all the CPU threads, the K workers split them. Small proxy
models leave a GPU (or a many-core CPU) mostly idle, so several trials at once finish more
trials per minute. Prints trials per minute for each setting and the ratio.

    python benchmarks/bench_workers.py [--workers 2] [--trials 8] [--epochs 2] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def _search(workers: int, threads: int, args, runs_dir: Path, queued=()) -> tuple[float, list[dict]]:
    """(trials per minute, the trials' parameters) of one search with ``workers`` processes."""
    from optinas.strategies.config import SearchConfig
    from optinas.strategies.study import create_study, finished_trials
    from optinas.strategies.search import run_search

    config = SearchConfig(study=f"w{workers}t{threads}", task=args.task, trials=args.trials, epochs=args.epochs,
                          sampler="random", seed=0, device=args.device, threads=threads,
                          workers=workers, runs_dir=runs_dir)
    if queued:
        config.run_dir.mkdir(parents=True)
        study = create_study(config)
        for params in queued:
            study.enqueue_trial(params)
    started = time.perf_counter()
    summary = run_search(config, show_progress=False)
    seconds = time.perf_counter() - started
    study = create_study(config)
    return summary.finished / seconds * 60, [trial.params for trial in finished_trials(study)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--task", default="digits")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2,
                        help="CPU threads in all (the workers split them; default: all cores)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        one, candidates = _search(1, args.threads, args, Path(folder))
        # One process with a worker's share of the threads: separates the gain of running
        # trials side by side from the (CPU) cost of more threads per model.
        share = max(1, args.threads // args.workers)
        narrow, _ = _search(1, share, args, Path(folder), queued=candidates)
        many, _ = _search(args.workers, args.threads, args, Path(folder), queued=candidates)
    print(f"{args.trials} trials x {args.epochs} epochs of {args.task} on {args.device}")
    print(f"1 process, {args.threads} threads:  {one:6.1f} trials/min")
    print(f"1 process, {share} threads:  {narrow:6.1f} trials/min")
    print(f"{args.workers} workers, {share} threads each:  {many:6.1f} trials/min   "
          f"ratio {many / one:.2f}x and {many / narrow:.2f}x")


if __name__ == "__main__":
    main()
