"""Optuna samplers by name: ``--sampler tpe|nsga2|random|gp`` (and ``gibbs``, Chee and Loustau).

Budgets reach every sampler as trial constraints (``Trial.set_constraint``); samplers that
model constraints (TPE, NSGA-II, GP) use them, the others ignore them.
"""

from __future__ import annotations

import warnings

import optuna

from optinas.search_space.errors import ConfigError
from optinas.strategies.samplers.gibbs import GibbsSampler
from optinas.strategies.samplers.grouped_tpe import GroupedTPESampler

__all__ = ["SAMPLERS", "make_sampler"]


def _tpe(seed: int, objectives: int, concurrent: bool):

    # Multivariate, grouped TPE models the conditional per-pattern parameters jointly. With
    # concurrent workers, the constant liar counts running trials as bad ones so that workers
    # spread out. Alone in a study, the only running trial is the one being sampled (which TPE
    # leaves out): there the liar changes no sample but re-reads every trial once per group,
    # and GroupedTPESampler also keeps the groups instead of recomputing them; the samples are
    # the same (tests); at 1,000 trials 0.72x the cost (BENCHMARKS.md, bench_tpe_groups.py).
    if not concurrent:
        return GroupedTPESampler(seed=seed, n_startup_trials=8)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, n_startup_trials=8,
                                      constant_liar=True)


def _nsga2(seed: int, objectives: int, concurrent: bool):

    return optuna.samplers.NSGAIISampler(seed=seed, population_size=16)


def _random(seed: int, objectives: int, concurrent: bool):

    return optuna.samplers.RandomSampler(seed=seed)


def _gp(seed: int, objectives: int, concurrent: bool):

    # Optuna's GP sampler handles categorical and conditional spaces (it falls back to
    # independent random sampling for parameters outside the relative search space).
    return optuna.samplers.GPSampler(seed=seed, n_startup_trials=8, warn_independent_sampling=False)


def _gibbs(seed: int, objectives: int, concurrent: bool):

    # Chee and Loustau's exponential weights; it reads values[0] (accuracy) and the trials'
    # sparsity records, so it serves single- and multi-objective studies alike.
    return GibbsSampler(seed=seed)


SAMPLERS = {"tpe": _tpe, "nsga2": _nsga2, "random": _random, "gp": _gp, "gibbs": _gibbs}


def make_sampler(name: str, seed: int, objectives: int = 2, concurrent: bool = True):
    """The sampler called ``name``, seeded; ``objectives`` is the number of objectives.

    ``concurrent``: other trials of the study may run while this sampler samples (worker
    processes, database workers, Ray); False only for a study that one process runs alone.
    """
    if name not in SAMPLERS:
        raise ConfigError(f"--sampler must be one of {', '.join(SAMPLERS)}; got {name!r}")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # group/GP are stable in use
        return SAMPLERS[name](seed, objectives, concurrent)
