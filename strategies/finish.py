"""The end of a search, in every backend: final trials.jsonl, best/, report.html and a summary."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from optinas.strategies.config import SearchConfig
from optinas.strategies.report.page import write_report
from optinas.strategies.results.records import export_front, pareto_front, study_objectives, write_trials
from optinas.strategies.status import TrialStatus, trial_status
from optinas.strategies.study import finished_trials

__all__ = ["SearchSummary", "summarize", "write_outputs"]


@dataclass(frozen=True)
class SearchSummary:
    """How a search ended: where its results are and how its counted trials ended."""

    run_dir: Path
    finished: int
    trained: int
    infeasible: int
    failed: int
    front: tuple[int, ...]
    seconds: float
    pruned: int = 0


def write_outputs(run_dir: Path, study, config: SearchConfig | None = None) -> list[int]:
    """Write trials.jsonl, best/ (the Pareto-best exports) and report.html; returns the front.

    The settings come from ``config`` when given (a search's own), else from the study's
    config.toml.
    """
    rows = write_trials(run_dir, study)
    objectives = config.objective_list if config is not None else study_objectives(run_dir)
    front = pareto_front(rows, objectives)
    export_front(run_dir, front, objectives)
    write_report(run_dir, rows, front, study_name=study.study_name, study=study,
                 config=config.to_dict() if config is not None else None)
    return [row["number"] for row in front]


def summarize(config: SearchConfig, study, started: float) -> SearchSummary:
    """Write the final outputs and count how the trials ended."""
    front = write_outputs(config.run_dir, study, config)
    counts: dict[TrialStatus, int] = {}
    counted = finished_trials(study)
    for trial in counted:
        status = trial_status(trial)
        counts[status] = counts.get(status, 0) + 1
    return SearchSummary(run_dir=config.run_dir, finished=len(counted),
                         trained=counts.get(TrialStatus.TRAINED, 0) + counts.get(TrialStatus.REUSED, 0),
                         infeasible=counts.get(TrialStatus.INFEASIBLE, 0),
                         failed=counts.get(TrialStatus.FAILED, 0), pruned=counts.get(TrialStatus.PRUNED, 0),
                         front=tuple(front), seconds=time.perf_counter() - started)
