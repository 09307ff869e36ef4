"""The TPE sampler of a search run alone vs Optuna's grouped TPE, in one process.

``make_sampler("tpe", concurrent=False)`` (``GroupedTPESampler``: groups kept between trials,
no constant liar) against Optuna's ``TPESampler(multivariate=True, group=True)`` with and
without the constant liar. The three studies sample the packaged digits space in turn (so
the machine's load hits them alike), on the search's journal storage, with an instant score;
printed: ms per ask-and-sample over the first and last 100 trials, and the ratios.

    python benchmarks/bench_tpe_groups.py --trials 1000
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import optuna

from optinas.search_space.packaged_spaces import SPACE_INPUTS
from optinas.search_space.space import SearchSpace
from optinas.strategies.samplers import make_sampler
from optinas.strategies.storage import open_storage


def _samplers(seed: int) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # group=True
        return {
            "optinas (alone)": make_sampler("tpe", seed, 2, concurrent=False),
            "optuna group, liar": optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                                             n_startup_trials=8, constant_liar=True),
            "optuna group, no liar": optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                                                n_startup_trials=8, constant_liar=False),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    space = SearchSpace.from_toml(SPACE_INPUTS["digits"], "digits")
    with tempfile.TemporaryDirectory() as scratch:
        folders = [Path(scratch) / name.replace(" ", "") for name in _samplers(0)]
        for folder in folders:
            folder.mkdir()
        studies = {name: optuna.create_study(storage=open_storage(folder), study_name="s",
                                             directions=["maximize", "minimize"], sampler=sampler)
                   for folder, (name, sampler) in zip(folders, _samplers(0).items())}
        seconds: dict[str, list[float]] = {name: [] for name in studies}
        for _ in range(args.trials):
            for name, study in studies.items():
                started = time.perf_counter()
                trial = study.ask()
                genotype = space.sample(trial)
                seconds[name].append(time.perf_counter() - started)
                size = len(genotype.to_json())
                study.tell(trial, [(size % 101) / 100, float(size % 53)])
    window = min(100, args.trials)
    last = {name: 1000 * sum(times[-window:]) / window for name, times in seconds.items()}
    for name, times in seconds.items():
        print(f"{name:>22}: first {window}: {1000 * sum(times[:window]) / window:6.1f} ms, "
              f"last {window}: {last[name]:6.1f} ms per trial")
    ours = last["optinas (alone)"]
    print(f"last {window}, optinas / optuna group with liar: {ours / last['optuna group, liar']:.2f}x; "
          f"/ without liar: {ours / last['optuna group, no liar']:.2f}x")


if __name__ == "__main__":
    main()
