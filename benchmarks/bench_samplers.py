"""Samplers by hypervolume: gibbs (Chee and Loustau) against tpe, nsga2 and random on digits.

Each sampler runs the same short (accuracy, mults) search under several seeds through the
public driver (``optinas.strategies.search.run_search``); a seed fixes the data split and the
sampler's draws, so sampler i and j at seed s see the same data. Every run is scored by the
hypervolume of its trained trials against ONE reference point shared by all runs
(accuracy 0, and the largest multiplication count any run measured; see
``strategies/hypervolume.py``), so the numbers are comparable. Prints per-run and
mean +/- std hypervolume per sampler, and gibbs' mean over each baseline's mean.

    python benchmarks/bench_samplers.py [--samplers gibbs,tpe,nsga2,random] [--seeds 0,1,2]
                                        [--trials 20] [--epochs 2]

``--samplers`` may also name ``gibbs-prior``, an ablation registered by this script: gibbs
with lambda -> 0, i.e. draws from the prior of eq. 6 alone.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from optinas.strategies.config import SearchConfig
from optinas.strategies.results.hypervolume import front_hypervolume, reference_point
from optinas.strategies.objectives import parse_objectives
from optinas.strategies.study import open_study
from optinas.strategies.search import run_search
from optinas.strategies.results.records import trial_rows

OBJECTIVES = ("accuracy", "mults")


def register_ablation() -> None:
    """Add ``gibbs-prior`` (lambda -> 0: draws from eq. 6's prior alone) to the sampler registry.

    Benchmark-only: it separates what the small-network prior contributes from what the
    exponential-weights update adds.
    """
    from optinas.strategies.samplers import SAMPLERS
    from optinas.strategies.samplers.gibbs import GibbsSampler

    SAMPLERS.setdefault("gibbs-prior", lambda seed, objectives: GibbsSampler(lambda_=1e-9, seed=seed))


def run_one(runs_dir: Path, sampler: str, seed: int, trials: int, epochs: int) -> tuple[list[dict], float]:
    """One search; returns its trial rows (read back from the study) and its wall time."""
    config = SearchConfig(study=f"{sampler}-seed{seed}", sampler=sampler, seed=seed, trials=trials,
                          epochs=epochs, runs_dir=runs_dir, threads=1, objectives=OBJECTIVES)
    started = time.perf_counter()
    run_search(config, show_progress=False)
    seconds = time.perf_counter() - started
    return trial_rows(open_study(config.run_dir, config.study)), seconds


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samplers", default="gibbs,tpe,nsga2,random")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--runs-dir", type=Path, default=None, help="keep the studies here (default: a temp dir)")
    args = parser.parse_args()
    samplers = [name.strip() for name in args.samplers.split(",")]
    seeds = [int(seed) for seed in args.seeds.split(",")]
    objectives = parse_objectives(OBJECTIVES)
    if "gibbs-prior" in samplers:
        register_ablation()

    runs: dict[tuple[str, int], tuple[list[dict], float]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        runs_dir = args.runs_dir or Path(scratch)
        for seed in seeds:  # seed-major, so background load drifts over all samplers alike
            for sampler in samplers:
                runs[sampler, seed] = run_one(runs_dir, sampler, seed, args.trials, args.epochs)
                rows, seconds = runs[sampler, seed]
                print(f"  {sampler:7s} seed {seed}: {len(rows)} trials in {seconds:.0f} s", flush=True)

    # One reference point for every run: the worst (largest) mults any run measured.
    reference = reference_point(objectives, [row for rows, _ in runs.values() for row in rows])
    print(f"\n{args.trials} trials x {args.epochs} epochs on digits, objectives {','.join(OBJECTIVES)}; "
          f"reference point: accuracy 0, mults {reference['mults']:,.0f}")
    print(f"{'sampler':8s} {'hypervolume mean +/- std':>26s}   per seed ({', '.join(map(str, seeds))})   "
          "best accuracy   s/run")
    means = {}
    for sampler in samplers:
        volumes = [front_hypervolume(runs[sampler, seed][0], objectives, reference) for seed in seeds]
        best = [max((row["values"][0] for row in runs[sampler, seed][0]
                     if row["status"] in ("trained", "reused") and row["values"]), default=0.0)
                for seed in seeds]
        mean, std = _mean_std(volumes)
        means[sampler] = mean
        seconds = statistics.fmean(runs[sampler, seed][1] for seed in seeds)
        print(f"{sampler:8s} {mean:18.4f} +/- {std:.4f}   {', '.join(f'{v:.4f}' for v in volumes)}   "
              f"{statistics.fmean(best):.3f}   {seconds:.0f}")
    if "gibbs" in means:
        ratios = ", ".join(f"gibbs/{name} {means['gibbs'] / means[name]:.3f}"
                           for name in samplers if name != "gibbs" and means[name] > 0)
        print(f"ratio of mean hypervolumes: {ratios}")


if __name__ == "__main__":
    main()
