"""Optuna's grouped multivariate TPE, with its parameter groups kept up to date incrementally.

``TPESampler(multivariate=True, group=True)`` splits the parameters into groups that always
occur together (a layer kind's options, a block pattern's coefficients) and models each group
jointly. To find the groups it walks every finished trial again before every trial: with the
packaged spaces (16 groups) that walk is a fifth of the sampler's time at 1,000 trials and
grows with the study. A finished trial never changes, so this sampler adds each finished
trial's parameters to the groups once, in the same order and by the same refinement as
Optuna's ``_SearchSpaceGroup`` (the resulting groups are equal, so are the samples: a test
checks it), and samples each group with Optuna's public ``TPESampler.sample_relative``.

Used for a study that one process runs alone: with concurrent workers the constant liar
shares each trial's relative parameters through the trial's storage, which Optuna's grouped
sampler does for all groups at once, so there ``TPESampler(group=True)`` itself is used.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

__all__ = ["GroupedTPESampler", "refine_groups"]

_MODELLED = (TrialState.COMPLETE, TrialState.PRUNED)  # as TPESampler(group=True)


def refine_groups(groups: list[dict[str, BaseDistribution]],
                  distributions: dict[str, BaseDistribution]) -> list[dict[str, BaseDistribution]]:
    """Split ``groups`` so that one trial's parameters are a union of groups (Optuna's rule)."""
    keys, refined = set(distributions), []
    for group in groups:
        names = set(group)
        refined.append({name: group[name] for name in names & keys})
        refined.append({name: group[name] for name in names - keys})
        keys -= names
    refined.append({name: distributions[name] for name in keys})
    return [group for group in refined if group]


class GroupedTPESampler(optuna.samplers.BaseSampler):
    """Multivariate TPE per parameter group; groups refined once per finished trial."""

    def __init__(self, *, seed: int | None = None, n_startup_trials: int = 10) -> None:
        self._tpe = optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=n_startup_trials,
                                               constant_liar=False)
        self._groups: list[dict[str, BaseDistribution]] = []
        self._grouped: set[int] = set()  # numbers of the finished trials already in the groups
        self._study_name: str | None = None

    def _refresh_groups(self, study: optuna.Study) -> None:
        if self._study_name not in (None, study.study_name):
            raise ValueError("a GroupedTPESampler serves one study")
        self._study_name = study.study_name
        for trial in study.get_trials(deepcopy=False, states=_MODELLED):
            if trial.number not in self._grouped:
                self._grouped.add(trial.number)
                self._groups = refine_groups(self._groups, trial.distributions)

    def _sampled_groups(self) -> list[dict[str, BaseDistribution]]:
        # Sorted names: Python's string hashing is not deterministic across processes.
        return [{name: dist for name, dist in sorted(group.items()) if not dist.single()} for group in self._groups]

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        self._refresh_groups(study)
        return {name: dist for group in self._sampled_groups() for name, dist in group.items()}

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for group in self._sampled_groups():
            group = {name: dist for name, dist in group.items() if name in search_space}
            params.update(self._tpe.sample_relative(study, trial, group))
        return params

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._tpe.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._tpe.before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values) -> None:
        self._tpe.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._tpe.reseed_rng()
