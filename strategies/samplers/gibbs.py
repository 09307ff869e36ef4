"""``--sampler gibbs``: exponential weights (a Gibbs posterior) over architectures.

Algorithm 1 of the XNOR-Net++ regret bound (Chee and Loustau) plays an online game: at
round t it draws weights w_t from pi_t = Gibbs_lambda(h_{t-1}), where d Gibbs_lambda(h)(w) ~
exp(-lambda h(w)) d pi(w), pi is the prior of eq. 6 (pi(w) = sum_k alpha_k sum_i beta_i
sum_j gamma_j pi_ijk(w): alpha over the number of layers, beta over the number of filters,
gamma over the filter size) and h_t is the cumulative loss. Theorem 3.2 bounds the regret
against any w by pen_XNOR(w) / lambda: the architecture-level posterior favours candidates
that fit well with sparse weights.

How the online setting maps onto a search (one finished trial is one round):

- **Hypotheses.** A trial's architecture is the set of its sampled parameters. Depth
  parameters (``stageN.depth``) take the prior alpha, width parameters (``stem.width``,
  ``stageN.width``) beta and kernel-size parameters (``*.kernel_size``) gamma; all other
  parameters (pattern, layer kind, options, coefficients) are uniform. The joint prior is
  the product over stem and stages, the per-layer form of eq. 6 in Remark 2 (eq. 11).
- **Loss of round t.** ``l_t = 1 - val_accuracy + penalty_weight * pen_XNOR(w_t)`` for the
  trained candidate (the study's "accuracy" objective, in whatever position
  ``--objectives`` put it; in a study without one, its first maximised objective, else its
  first objective, minimised directly), with pen_XNOR from the trial's "sparsity" user attribute (Theorem 3.2,
  ``optinas.search_space.sparsity.pen_xnor``). ``penalty_weight`` is Theorem 3.2's 1 / (lambda n)
  that turns nats into loss per example; pen_XNOR also stands for the cost objectives of a
  multi-objective study (it grows with the network). Infeasible trials (status
  "infeasible", over budget, never trained) and failed trials (crash, diverged) lose
  ``infeasible_loss``, more than any trained candidate. A PRUNED trial's round loss is
  one minus the last accuracy it reported (an early, so pessimistic, measurement, which is
  what the pruner judged it on) plus the mean penalty; trials pruned before reporting,
  interrupted ones (retried) and running ones are not rounds.
- **Bounded losses.** Algorithm 1's loss takes values in R_+ and its regret bound needs it
  bounded (the quadratic term of Theorem 4.1); one infinite or NaN loss would make
  exp(-lambda h) 0, inf or NaN for every value alike. So each round's loss is clipped into
  [low, high], the range [0, infeasible_loss] widened to hold every finite round loss of
  the study: low = min(0, smallest), high = max(infeasible_loss, largest). A loss of +inf
  (an objective of +inf minimised or -inf maximised) counts as high, -inf as low, and NaN
  (a pruned trial whose last report was NaN, a NaN val_loss or pen_XNOR) as high, the
  loss of a diverged trial. (Optuna fails a trial whose objective is NaN without a reason;
  like other such failures it is no round.)
- **Counterfactual losses.** Algorithm 1 observes the loss of every w each round; a search
  trains one candidate per round. Exponential weights over the ~10^6 whole genotypes would
  put almost all mass either on fresh prior draws or on repeating a trained genotype (which
  trial.py reuses, wasting the trial). So the cumulative loss is modelled additively over
  parameters, h(a) = sum_p h_p(a_p), under which the Gibbs posterior is exactly the product
  of one Gibbs distribution per parameter: pi_{T+1}(a_p = v) ~ q_p(v) exp(-lambda h_p(v)).
  Value v's loss in a round where it was played is that round's loss; in the other rounds
  it is v's smoothed mean observed loss ``(S_v + smoothing * mean) / (n_v + smoothing)``
  (an unplayed value gets the round mean: neither favoured nor penalised), so
  h_p(v) = S_v + (T_p - n_v) * mean_v over the T_p rounds that asked p. Each parameter is
  drawn independently from its posterior, which also suits the define-by-run space: a
  conditional parameter only learns from the rounds that asked for it.
- **Second-order term.** Algorithm 1 adds lambda/2 (l(w) - l(w_t))^2 per round. It is zero
  where v was played, and with a plug-in counterfactual elsewhere it pulls towards values
  whose mean is near the typical loss rather than the best one, so it is off by default
  (``second_order=True`` adds it with the counterfactual).

Draws are seeded per (seed, trial number, parameter name), so a resumed or replayed study
draws the same values and workers sharing a study never repeat each other's draws.
Parameters without finite choices (floats, log-scaled or very wide integers; none in
optinas' spaces) are drawn uniformly by Optuna's RandomSampler, seeded from the same key.
``reseed_rng`` (Optuna calls it in each thread of ``n_jobs > 1``) draws a fresh seed.
"""

from __future__ import annotations

import math
import re
import zlib
from typing import Any, Mapping

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.trial import TrialState

from optinas.search_space.errors import ConfigError
from optinas.search_space.sparsity import pen_xnor
from optinas.strategies.status import TrialStatus, trial_status

__all__ = ["GibbsSampler", "prior_factor"]

_FACTORS = (("alpha", re.compile(r"(^|\.)depth$")), ("beta", re.compile(r"(^|\.)width$")),
            ("gamma", re.compile(r"(^|\.)kernel_size$")))
_MAX_CHOICES = 10_000  # an integer range wider than this is drawn uniformly
_MEAN_PENALTY = object()  # marks a round that pays the mean penalty of the recorded ones


def prior_factor(name: str) -> str | None:
    """Which factor of eq. 6 a parameter takes: "alpha", "beta", "gamma" or None (uniform)."""
    return next((factor for factor, pattern in _FACTORS if pattern.search(name)), None)


def _check_prior(argument: str, prior: Any) -> Any:
    if isinstance(prior, Mapping):
        if not prior or any(not (isinstance(w, (int, float)) and w >= 0) for w in prior.values()):
            raise ConfigError(f"{argument} must map choices to weights >= 0, got {prior!r}")
        return dict(prior)
    if not (isinstance(prior, (int, float)) and 0 < prior <= 1):
        raise ConfigError(f"{argument} must be a ratio in (0, 1] or a {{choice: weight}} mapping, got {prior!r}")
    return float(prior)


def geometric_prior(choices: list, prior: Any) -> np.ndarray:
    """Normalised prior weights of ``choices``: a mapping's weights, or ratio ** rank.

    The rank is the position of a choice among the choices sorted ascending (their given
    order if they do not sort), so a ratio r < 1 favours small values and the prior does not
    depend on units: on depths 1..L it is the classic alpha_k ~ r^k.
    """
    if isinstance(prior, dict):
        weights = np.array([float(prior.get(choice, 0.0)) for choice in choices])
    else:
        try:
            order = sorted(range(len(choices)), key=lambda i: choices[i])
        except TypeError:
            order = list(range(len(choices)))
        rank = np.empty(len(choices))
        rank[order] = np.arange(len(choices))
        weights = prior ** rank
    if not weights.sum() > 0:
        raise ConfigError(f"the prior gives every choice of {choices!r} weight 0")
    return weights / weights.sum()


class GibbsSampler(optuna.samplers.BaseSampler):
    """Exponential weights over architectures (XNOR-Net++ regret bound, Algorithm 1, prior eq. 6).

    Args:
        lambda_: the inverse temperature lambda of Gibbs_lambda (> 0; near 0 the draws follow
            the prior, large values concentrate on the lowest-loss values).
        depth_prior, width_prior, kernel_prior: alpha, beta, gamma of eq. 6: a ratio r in
            (0, 1] giving choice of rank k weight r^k (1: uniform), or {choice: weight}.
            Default 0.5, the 2^-k prior of description-length arguments: small networks
            first, as the paper's sparsity priors favour few weights.
        tau: scale of the sparsity prior in pen_XNOR (Theorem 3.1's tau > 0).
        penalty_weight: loss units per nat of pen_XNOR (>= 0; 0 ignores sparsity). The
            default 5e-6 (= 1 / (lambda n) with n = 1,149 digits training images and
            lambda ~ 175) makes the term 0.04-0.15 for networks of the default digits space
            at initialisation with tau = 0.1 (pen_XNOR 7,400-29,600 nats, measured on six
            random draws), the order of the accuracy differences between candidates.
        smoothing: pseudo-rounds at the mean loss added to each value's mean (>= 0), so one
            lucky trial does not decide a value.
        second_order: add Algorithm 1's lambda/2 (l - l_t)^2 term (see the module docstring).
        loss: "error" (1 - values[0]) or "cross_entropy" (the trial's metrics["val_loss"],
            the paper's H).
        infeasible_loss: the loss of an infeasible or failed round.
        seed: seeds every draw; None draws a seed once.
    """

    def __init__(self, lambda_: float = 2.0, depth_prior: Any = 0.5, width_prior: Any = 0.5,
                 kernel_prior: Any = 0.5, tau: float = 0.1, penalty_weight: float = 5e-6,
                 smoothing: float = 1.0, second_order: bool = False, loss: str = "error",
                 infeasible_loss: float = 2.0, seed: int | None = None):
        for argument, value in (("lambda_", lambda_), ("tau", tau)):
            if not (isinstance(value, (int, float)) and 0 < value < math.inf):
                raise ConfigError(f"{argument} must be a finite number > 0, got {value!r}")
        for argument, value in (("penalty_weight", penalty_weight), ("smoothing", smoothing),
                                ("infeasible_loss", infeasible_loss)):
            if not (isinstance(value, (int, float)) and 0 <= value < math.inf):
                raise ConfigError(f"{argument} must be a finite number >= 0, got {value!r}")
        if loss not in ("error", "cross_entropy"):
            raise ConfigError(f"loss must be 'error' or 'cross_entropy', got {loss!r}")
        self.lambda_, self.tau, self.penalty_weight = float(lambda_), float(tau), float(penalty_weight)
        self.smoothing, self.second_order, self.loss = float(smoothing), bool(second_order), loss
        self.infeasible_loss = float(infeasible_loss)
        self.priors = {"alpha": _check_prior("depth_prior", depth_prior),
                       "beta": _check_prior("width_prior", width_prior),
                       "gamma": _check_prior("kernel_prior", kernel_prior), None: 1.0}
        self.seed = _fresh_seed() if seed is None else int(seed)
        self._rounds: tuple[Any, list] | None = None

    # -- Optuna's interface: every parameter is drawn independently -----------------------

    def infer_relative_search_space(self, study, trial) -> dict:
        return {}

    def sample_relative(self, study, trial, search_space) -> dict:
        return {}

    def before_trial(self, study, trial) -> None:
        self._rounds = None  # the study gained rounds since the last trial

    def reseed_rng(self) -> None:
        """Draw a fresh seed from the OS: every later draw (fallback ones included) changes."""
        self.seed = _fresh_seed()

    def sample_independent(self, study, trial, param_name, param_distribution):
        rng = np.random.default_rng([self.seed % 2 ** 32, trial.number, zlib.crc32(param_name.encode())])
        choices = _choices(param_distribution)
        if choices is None:
            # Optuna's uniform draw, seeded from this draw's key so that it replays too.
            uniform = optuna.samplers.RandomSampler(seed=int(rng.integers(2 ** 32)))
            return uniform.sample_independent(study, trial, param_name, param_distribution)
        posterior = self.posterior(study, param_name, choices)
        return choices[int(rng.choice(len(choices), p=posterior))]

    # -- the posterior ----------------------------------------------------------------------

    def prior(self, param_name: str, choices: list) -> np.ndarray:
        """q_p: the eq. 6 factor of ``param_name`` over ``choices`` (normalised)."""
        return geometric_prior(list(choices), self.priors[prior_factor(param_name)])

    def cumulative_losses(self, study, param_name: str, choices: list) -> np.ndarray:
        """h_p(v) for each choice: played rounds' losses plus counterfactual ones (docstring)."""
        played = [(params[param_name], loss) for params, loss in self.rounds(study)
                  if param_name in params and params[param_name] in choices]
        if not played:
            return np.zeros(len(choices))
        losses = np.array([loss for _, loss in played])
        mean, total = float(losses.mean()), len(played)
        cumulative = np.empty(len(choices))
        for index, choice in enumerate(choices):
            mine = np.array([value == choice for value, _ in played])
            count, summed = int(mine.sum()), float(losses[mine].sum())
            estimate = (summed + self.smoothing * mean) / (count + self.smoothing) if count + self.smoothing else mean
            cumulative[index] = summed + (total - count) * estimate
            if self.second_order:
                cumulative[index] += self.lambda_ / 2 * float(((estimate - losses[~mine]) ** 2).sum())
        return cumulative

    def posterior(self, study, param_name: str, choices: list) -> np.ndarray:
        """pi_{T+1}(a_p = v) ~ q_p(v) exp(-lambda h_p(v)) over ``choices`` (Algorithm 1)."""
        prior = self.prior(param_name, choices)
        allowed = prior > 0
        with np.errstate(over="ignore", invalid="ignore"):
            cumulative = self.cumulative_losses(study, param_name, choices)
            if not np.isfinite(cumulative[allowed]).all():
                return prior  # round losses are finite, but sums of ones near 1e308 overflow
            # h - min h >= 0 and 0 at the best value, whose weight is exp(0): no overflow, no 0/0.
            excess = np.where(allowed, cumulative - cumulative[allowed].min(), np.inf)
            weights = prior * np.exp(-self.lambda_ * excess)
        return weights / weights.sum()

    def rounds(self, study) -> list[tuple[dict, float]]:
        """(params, loss) of every finished round of ``study``, cached until the next trial."""
        trials = study.get_trials(deepcopy=False)
        key = (id(study), len(trials), sum(t.state.is_finished() for t in trials))
        cached = self._rounds  # one read: another thread's before_trial may reset it (n_jobs > 1)
        if cached is None or cached[0] != key:
            cached = self._rounds = (key, self._round_losses(study, trials))
        return cached[1]

    def _round_losses(self, study, trials) -> list[tuple[dict, float]]:
        by_number = {trial.number: trial for trial in trials}
        fit_index = _fit_objective(study)
        maximise = study.directions[fit_index] == optuna.study.StudyDirection.MAXIMIZE
        rounds, penalties = [], []
        for trial in trials:
            attrs = trial.user_attrs
            if trial.state == TrialState.FAIL:
                # worker.trial_status, as the study counts trials: a heartbeat-failed trial
                # (no "interrupted" mark) or a surplus one is no round, only a failure of its own.
                if trial_status(trial) == TrialStatus.FAILED:
                    rounds.append((trial.params, self.infeasible_loss, None))
            elif trial.state == TrialState.PRUNED and trial.intermediate_values:
                # Its last reported accuracy: an early (pessimistic) measurement, as the pruner judged it.
                value = float(trial.intermediate_values[max(trial.intermediate_values)])
                rounds.append((trial.params, 1.0 - value if maximise else value, _MEAN_PENALTY))
            elif trial.state != TrialState.COMPLETE:
                continue  # interrupted, running, waiting, or pruned before any report
            elif attrs.get("status") == TrialStatus.INFEASIBLE:
                rounds.append((trial.params, self.infeasible_loss, None))
            else:
                value = float(trial.values[fit_index])
                fit = 1.0 - value if maximise else value
                if self.loss == "cross_entropy":
                    fit = float((attrs.get("metrics") or {}).get("val_loss", fit))
                penalty = self._penalty(trial, by_number)
                penalties += [penalty] if penalty is not None and math.isfinite(penalty) else []
                rounds.append((trial.params, fit, _MEAN_PENALTY if penalty is None else penalty))
        # A trained round without a sparsity record pays the mean penalty of the others.
        mean = sum(penalties) / len(penalties) if penalties else 0.0
        losses = [fit + (0.0 if penalty is None else mean if penalty is _MEAN_PENALTY else penalty)
                  for _, fit, penalty in rounds]
        return [(params, loss) for (params, _, _), loss in zip(rounds, self._bounded(losses))]

    def _bounded(self, losses: list[float]) -> list[float]:
        """Losses clipped into [min(0, finite ones), max(infeasible_loss, finite ones)]; NaN: the top."""
        finite = [loss for loss in losses if math.isfinite(loss)]
        low, high = min([0.0, *finite]), max([self.infeasible_loss, *finite])
        return [high if math.isnan(loss) else min(max(loss, low), high) for loss in losses]

    def _penalty(self, trial, by_number: dict) -> float | None:
        """penalty_weight * pen_XNOR of the trained weights (a reused trial: of the original)."""
        stats = trial.user_attrs.get("sparsity")
        origin = by_number.get(trial.user_attrs.get("reused_from"))
        if stats is None and origin is not None:
            stats = origin.user_attrs.get("sparsity")
        if stats is None:
            return None
        if not all(math.isfinite(float(value)) for value in stats.values()):
            return math.nan  # diverged weights: a NaN loss (see "Bounded losses")
        return self.penalty_weight * pen_xnor(stats, self.tau)


def _fresh_seed() -> int:
    return int(np.random.SeedSequence().entropy % 2 ** 32)


def _choices(distribution) -> list | None:
    """The finite choices of a distribution, or None for one drawn uniformly."""
    if isinstance(distribution, CategoricalDistribution):
        return list(distribution.choices)
    if isinstance(distribution, IntDistribution) and not distribution.log:
        values = range(distribution.low, distribution.high + 1, distribution.step)
        return list(values) if len(values) <= _MAX_CHOICES else None
    return None


def _fit_objective(study) -> int:
    """Which of the study's values is the round's fit: "accuracy" by name, else the first
    maximised value (accuracy is optinas's only maximised objective), else the first."""
    names = study.metric_names or []
    if "accuracy" in names:
        return names.index("accuracy")
    maximised = [index for index, direction in enumerate(study.directions)
                 if direction == optuna.study.StudyDirection.MAXIMIZE]
    return maximised[0] if maximised else 0
