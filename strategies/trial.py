"""One trial of a search: sample -> cost -> budget check (-> latency) -> build -> train -> record.

Everything a trial learns is stored on the Optuna trial as user attributes, so the study's
storage alone is enough to rebuild ``trials.jsonl``, the report and the exports.

``trial`` is duck-typed: an ``optuna.Trial`` in the Optuna backend, a recording adapter in the
Ray backend. It needs ``number``, ``params``, ``user_attrs``, ``set_user_attr``,
``set_constraint``, the ``suggest_*`` calls of the search space, ``report`` and
``should_prune`` (when the context prunes), and optionally ``study`` (to reuse the result of
an identical genotype trained before).
"""

from __future__ import annotations

import io
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch

from optinas.evaluator import TrialFailed, evaluate, proxy_genotype
from optinas.search_space import Genotype, SearchSpace, build_model, count_cost
from optinas.search_space.layers import warm_up_adder
from optinas.search_space.presets import preset
from optinas.search_space.sparsity import sparsity_stats
from optinas.strategies import fault_hooks
from optinas.strategies.budgets import Budget, measure_latency_ms
from optinas.strategies.files import write_bytes_atomic
from optinas.strategies.objectives import objective_values
from optinas.strategies.status import TrialStatus
from optinas.strategies.study_index import index_of

__all__ = ["TrialContext", "TrialOutcome", "Screened", "screen", "candidate", "run_trial", "checkpoint_path"]


@dataclass(frozen=True)
class TrialContext:
    """What every trial of a study shares."""

    space: SearchSpace
    task: Any  # evaluator.Task
    fidelity: Any  # evaluator.Fidelity
    budget: Budget
    device: torch.device
    seed: int
    run_dir: Path
    objectives: tuple = ()  # strategies.objectives.Objective records, in value order
    prunes: bool = False  # report per-epoch accuracy and stop when the pruner says so
    space_label: str = ""  # which space, for the terminal: a packaged name or a file

    @property
    def latency_objective(self) -> bool:
        return any(objective.name == "latency" for objective in self.objectives)

    @property
    def needs_latency(self) -> bool:
        return self.budget.needs_latency or self.latency_objective


@dataclass(frozen=True)
class TrialOutcome:
    """How a trial ended: the objective values to tell, or a failure reason."""

    status: TrialStatus  # as recorded in the trial's "status" user attribute
    values: tuple[float, ...] | None = None
    reason: str = ""
    genotype: Genotype | None = None


def warm_up_kernels(context: TrialContext) -> None:
    """Compile and check the fast adder kernels once in this process, before the first trial.

    Only where the space can build adder layers; otherwise the first adder candidate (a
    preset, say) compiles them itself. Call it after the CPU thread count is set: the
    compiled code keeps the count it was compiled with.
    """
    space = context.space
    stages = [space.stage_choices(index) for index in range(len(space.strides))]
    if any("adder" in choices["layers"] for choices in stages):
        sizes = sorted({size for choices in stages for size in choices["kernel_sizes"]})
        warm_up_adder(context.device, kernel_sizes=tuple(sizes))


def checkpoint_path(run_dir: Path, number: int) -> Path:
    return run_dir / "checkpoints" / f"{number}.pt"


def _earlier_result(trial, genotype_hash: str) -> Any | None:
    """A finished trial that already trained this exact genotype (same hash), if any."""
    study = getattr(trial, "study", None)
    if study is None:
        return None
    # The trial itself is still running, so never in the index (and a Ray trial's number is
    # Tune's index, not a study number): no exclusion by number is needed.
    return index_of(study).earlier_result(genotype_hash)


@dataclass(frozen=True)
class Screened:
    """A sampled candidate after the budget check: its cost, whether it may train, and the
    model when the latency check had to build it (training then reuses it)."""

    genotype: Genotype
    cost: Any  # search_space.Cost
    feasible: bool
    model: torch.nn.Module | None = None
    failure: str = ""
    latency_ms: float | None = None


def screen(trial, context: TrialContext) -> Screened:
    """Sample a candidate, cost it and check every budget; nothing is trained.

    Records the genotype, its cost (both views, on the budget's hardware) and one constraint
    per limit on ``trial`` (Optuna >= 5 reads ``Trial.set_constraint`` values, so samplers
    learn the feasible region). Latency is measured only for a candidate that meets every
    analytic limit (or for every candidate when latency is an objective), on a model built
    under the trial's seed.
    """
    genotype = candidate(trial, context)
    budget = context.budget
    cost = count_cost(genotype, budget.hardware)
    trial.set_user_attr("genotype", genotype.to_dict())
    trial.set_user_attr("hash", genotype.hash)
    trial.set_user_attr("hardware", budget.hardware or cost.hardware.name)  # as given: a name or a path
    trial.set_user_attr("cost", cost.total)
    trial.set_user_attr("cost_paper", cost.paper)
    violations = budget.violations(cost)
    model, failure, latency = None, "", None
    if context.needs_latency and (context.latency_objective or all(v <= 0 for v in violations.values())):
        try:
            torch.manual_seed(context.seed + trial.number)
            model = build_model(genotype)
            latency = measure_latency_ms(model, genotype.input.shape, context.device)
        except Exception as error:  # a candidate that cannot even run is a failed trial
            failure = _crash_reason(error, trial, context)
        else:
            trial.set_user_attr("latency_ms", latency)
            violations = budget.violations(cost, latency)
    for name, violation in violations.items():
        trial.set_constraint(name, violation)
    trial.set_user_attr("constraints", violations)
    feasible = not failure and all(violation <= 0 for violation in violations.values())
    if not feasible and not failure:
        trial.set_user_attr("status", TrialStatus.INFEASIBLE.value)
    return Screened(genotype, cost, feasible, model, failure, latency)


def candidate(trial, context: TrialContext) -> Genotype:
    """The genotype a trial evaluates: the preset an enqueued trial names, else a sample.

    ``optinas search --presets`` enqueues trials with the user attribute "preset"; the preset
    is adapted to the task's input shape and classes, so seed baselines share the front.
    """
    name = trial.user_attrs.get("preset")
    if name:
        return preset(name, context.space.input)
    return context.space.sample(trial)


def _crash_reason(error: Exception, trial, context: TrialContext) -> str:
    """One line for the trial record; the traceback goes to runs/<study>/logs/."""
    log = context.run_dir / "logs" / f"trial-{trial.number}.txt"
    write_bytes_atomic(log, traceback.format_exc().encode())
    return f"{type(error).__name__}: {error} (traceback in {log.relative_to(context.run_dir)})"


def run_trial(trial, context: TrialContext) -> TrialOutcome:
    """Run one trial; never raises for a candidate's own failure (NaN, OOM, crash).

    Raises ``optuna.TrialPruned`` when the context prunes and the pruner stops the trial
    (after the trial has been marked "pruned").
    """

    screened = screen(trial, context)
    genotype, cost = screened.genotype, screened.cost
    if screened.failure:
        return _failed(trial, screened.failure, genotype)
    if not screened.feasible:
        # Never trained: the worst accuracy keeps it dominated; the constraint tells the sampler why.
        return TrialOutcome(TrialStatus.INFEASIBLE, _values(context, cost, None, screened.latency_ms),
                            genotype=genotype)

    earlier = _earlier_result(trial, genotype.hash)
    if earlier is not None:
        trial.set_user_attr("status", TrialStatus.REUSED.value)
        trial.set_user_attr("reused_from", earlier.user_attrs.get("reused_from", earlier.number))
        trial.set_user_attr("metrics", earlier.user_attrs.get("metrics", {}))
        return TrialOutcome(TrialStatus.REUSED, tuple(earlier.values), genotype=genotype)

    fault_hooks.before_training(trial.number, genotype.hash)  # tests only: a gate, or a crash
    trained = proxy_genotype(genotype, context.fidelity)  # the genotype itself unless a proxy is set
    try:
        model = screened.model if trained is genotype else None
        if model is None:
            torch.manual_seed(context.seed + trial.number)
            model = build_model(trained)
        result = evaluate(model, context.task, context.fidelity, device=context.device, seed=context.seed,
                          on_epoch=_pruning_reporter(trial) if context.prunes else None)
    except TrialFailed as failure:
        return _failed(trial, str(failure), genotype)
    except Exception as error:
        if isinstance(error, optuna.TrialPruned):  # raised by the reporter below
            raise
        # A crash in one candidate must not end the search.
        return _failed(trial, _crash_reason(error, trial, context), genotype)

    if trained is genotype:  # proxy-trained weights do not fit the real architecture
        write_bytes_atomic(checkpoint_path(context.run_dir, trial.number), _state_bytes(model))
    trial.set_user_attr("status", TrialStatus.TRAINED.value)
    trial.set_user_attr("metrics", result.to_dict())
    trial.set_user_attr("sparsity", sparsity_stats(model))
    return TrialOutcome(TrialStatus.TRAINED, _values(context, cost, result.val_accuracy, screened.latency_ms),
                        genotype=genotype)


def _values(context: TrialContext, cost, accuracy: float | None, latency_ms: float | None) -> tuple[float, ...]:

    return objective_values(context.objectives, cost.total, 0.0 if accuracy is None else accuracy, latency_ms)


def _pruning_reporter(trial):
    """The evaluator's per-epoch callback: report validation accuracy, stop if told to."""
    def report(epoch: int, accuracy: float) -> None:
        trial.report(accuracy, epoch)
        if trial.should_prune():
            trial.set_user_attr("status", TrialStatus.PRUNED.value)
            trial.set_user_attr("pruned_at_epoch", epoch + 1)
            raise optuna.TrialPruned(f"pruned after epoch {epoch + 1} at validation accuracy {accuracy:.4f}")
    return report


def _failed(trial, reason: str, genotype: Genotype) -> TrialOutcome:
    trial.set_user_attr("status", TrialStatus.FAILED.value)
    trial.set_user_attr("failure", reason)
    return TrialOutcome(TrialStatus.FAILED, reason=reason, genotype=genotype)


def _state_bytes(model: torch.nn.Module) -> bytes:

    buffer = io.BytesIO()
    state = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    torch.save(state, buffer)
    return buffer.getvalue()
