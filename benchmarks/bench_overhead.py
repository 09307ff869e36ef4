"""Per-trial machinery time of `optinas search` with near-free trials, and `optinas report` time.

The evaluator (training) and the model build are replaced, in this process only, by instant
stand-ins: each trial still samples, counts its cost, checks the budget, looks for an
identical earlier genotype, saves its weights, is told to the study (the journal file a real
search uses) and goes through the per-trial bookkeeping (trials.jsonl row, progress). The time
between finished trials is split into the sampler's share (every call into the Optuna
sampler, timed) and everything else. Targets (issue 12): <= 120 ms per trial over the last 100
of 1,000 trials; everything but the sampler flat (last 100 no slower than the first 100);
`optinas report` <= 15 s at 1,000 trials and <= 60 s at 10,000.

    python benchmarks/bench_overhead.py --trials 100 1000 [--sampler tpe] [--runs-dir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import optinas.strategies.backends.inprocess as inprocess
import optinas.strategies.study as study_module
import optinas.strategies.trial as trial_module
from optinas.evaluator.fidelity import EvalResult
from optinas.strategies import SearchConfig, run_search

_SAMPLER_METHODS = ("infer_relative_search_space", "sample_relative", "sample_independent", "before_trial",
                    "after_trial")


def _instant_evaluate(model, task, fidelity, device=None, seed=0, on_epoch=None):
    """A deterministic accuracy from the model's parameter count: no training."""
    size = sum(p.numel() for p in model.parameters())
    digest = int(hashlib.sha256(str(size).encode()).hexdigest()[:8], 16)
    return EvalResult(val_accuracy=0.5 + (digest % 5000) / 10000, test_accuracy=None, val_loss=1.0,
                      train_loss=1.0, wall_time_s=0.0, epochs=1)


def _instant_build(genotype):
    """A one-layer stand-in whose size follows the genotype (so accuracies differ)."""
    return torch.nn.Linear(1, 1 + len(genotype.to_json()) % 97)


class _Clock:
    """Sampler seconds so far, and (time, sampler seconds) at each finished trial."""

    def __init__(self):
        self.sampler = 0.0
        self.marks: list[tuple[float, float]] = []

    def timed_sampler(self, make_sampler):
        def make(*args, **kwargs):
            sampler = make_sampler(*args, **kwargs)
            for name in _SAMPLER_METHODS:
                setattr(sampler, name, self._timed(getattr(sampler, name)))
            return sampler
        return make

    def _timed(self, method):
        def call(*args, **kwargs):
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.sampler += time.perf_counter() - start
        return call

    def live_updates(self, original):
        def make(*args, **kwargs):
            on_trial = original(*args, **kwargs)

            def timed(study, frozen):
                on_trial(study, frozen)
                self.marks.append((time.perf_counter(), self.sampler))
            return timed
        return make

    def window(self, first: int, last: int) -> tuple[float, float]:
        """(ms per trial, of which sampler ms) between finished trials ``first`` and ``last``."""
        (t0, s0), (t1, s1) = self.marks[first], self.marks[last]
        count = last - first
        return 1000 * (t1 - t0) / count, 1000 * (s1 - s0) / count


def run(trials: int, sampler: str, runs_dir: Path) -> None:
    clock = _Clock()
    originals = study_module.make_sampler, inprocess.live_updates
    trial_module.evaluate, trial_module.build_model = _instant_evaluate, _instant_build
    study_module.make_sampler = clock.timed_sampler(originals[0])
    inprocess.live_updates = clock.live_updates(originals[1])
    config = SearchConfig(study=f"overhead-{sampler}-{trials}", trials=trials, epochs=1, device="cpu",
                          runs_dir=runs_dir, sampler=sampler, threads=1)
    started = time.perf_counter()
    try:
        run_search(config, show_progress=False)
    finally:
        study_module.make_sampler, inprocess.live_updates = originals
    search_s = time.perf_counter() - started
    window = min(100, len(clock.marks) - 1)
    first, first_sampler = clock.window(0, window)
    last, last_sampler = clock.window(len(clock.marks) - 1 - window, len(clock.marks) - 1)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "optinas.strategies.cli", "report", str(config.run_dir)], check=True,
                   capture_output=True)
    report_s = time.perf_counter() - started
    print(f"{trials} trials ({sampler}): search {search_s:.1f} s (final outputs included); per trial, "
          f"first {window}: {first:.1f} ms (sampler {first_sampler:.1f}, rest {first - first_sampler:.1f}); "
          f"last {window}: {last:.1f} ms (sampler {last_sampler:.1f}, rest {last - last_sampler:.1f}); "
          f"rest last/first {(last - last_sampler) / (first - first_sampler):.2f}x; "
          f"optinas report {report_s:.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--sampler", default="tpe")
    parser.add_argument("--runs-dir", type=Path, help="keep the studies here (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        for trials in args.trials:
            run(trials, args.sampler, args.runs_dir or Path(scratch))


if __name__ == "__main__":
    main()
