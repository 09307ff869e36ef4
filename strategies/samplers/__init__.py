"""Optuna samplers by name: ``--sampler tpe|nsga2|random|gp`` (and ``gibbs``, Chee and Loustau).

Budgets reach every sampler as trial constraints (``Trial.set_constraint``); samplers that
model constraints (TPE, NSGA-II, GP) use them, the others ignore them.
"""

from __future__ import annotations

import warnings

import optuna

from optinas.search_space.errors import ConfigError
from optinas.strategies.samplers.gibbs import GibbsSampler

__all__ = ["SAMPLERS", "make_sampler"]


def _tpe(seed: int, objectives: int):

    # Multivariate, grouped TPE models the conditional per-pattern parameters jointly.
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, n_startup_trials=8)


def _nsga2(seed: int, objectives: int):

    return optuna.samplers.NSGAIISampler(seed=seed, population_size=16)


def _random(seed: int, objectives: int):

    return optuna.samplers.RandomSampler(seed=seed)


def _gp(seed: int, objectives: int):

    # Optuna's GP sampler handles categorical and conditional spaces (it falls back to
    # independent random sampling for parameters outside the relative search space).
    return optuna.samplers.GPSampler(seed=seed, n_startup_trials=8, warn_independent_sampling=False)


def _gibbs(seed: int, objectives: int):

    # Chee and Loustau's exponential weights; it reads values[0] (accuracy) and the trials'
    # sparsity records, so it serves single- and multi-objective studies alike.
    return GibbsSampler(seed=seed)


SAMPLERS = {"tpe": _tpe, "nsga2": _nsga2, "random": _random, "gp": _gp, "gibbs": _gibbs}


def make_sampler(name: str, seed: int, objectives: int = 2):
    """The sampler called ``name``, seeded; ``objectives`` is the number of objectives."""
    if name not in SAMPLERS:
        raise ConfigError(f"--sampler must be one of {', '.join(SAMPLERS)}; got {name!r}")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # group/GP are stable in use
        return SAMPLERS[name](seed, objectives)
