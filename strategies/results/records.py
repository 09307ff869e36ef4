"""What a study leaves in runs/<study>/: trials.jsonl and the Pareto-best exports in best/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from optinas.search_space import Genotype, count_cost, export_source
from optinas.search_space.cost.summary import cost_table
from optinas.strategies.files import read_toml, replace_dir_atomic, write_jsonl_atomic, write_text_atomic
from optinas.strategies.objectives import (
    DEFAULT_OBJECTIVES,
    accuracy_index,
    objectives_of,
    pareto_indices,
    parse_objectives,
)
from optinas.strategies.status import INTERRUPTED, TrialStatus, trial_status
from optinas.strategies.trial import checkpoint_path

__all__ = ["trial_row", "trial_rows", "pareto_front", "write_trials", "append_trials", "export_front",
           "cost_table_text", "study_objectives"]


def study_objectives(run_dir: Path):
    """The objectives of the study in ``run_dir`` (config.toml; older studies: accuracy, mults)."""
    path = run_dir / "config.toml"
    return objectives_of(read_toml(path) if path.exists() else {})


def trial_rows(study) -> list[dict]:
    """One plain dict per finished trial (interrupted attempts included, marked as such)."""
    return [trial_row(trial) for trial in study.get_trials(deepcopy=False)
            if trial.state.name not in ("RUNNING", "WAITING")]


def trial_row(trial) -> dict:
    """The plain dict of one finished ``optuna.trial.FrozenTrial`` (a line of trials.jsonl)."""
    attrs = trial.user_attrs
    status = trial_status(trial)
    failure = attrs.get("failure") or trial.system_attrs.get("fail_reason")
    return {
        "number": trial.number,
        "state": trial.state.name,
        "status": status,
        "preset": attrs.get("preset"),
        "values": list(trial.values) if trial.values is not None else None,
        "params": trial.params,
        "hash": attrs.get("hash"),
        "genotype": attrs.get("genotype"),
        "cost": attrs.get("cost"),
        "cost_paper": attrs.get("cost_paper"),
        "hardware": attrs.get("hardware"),
        "latency_ms": attrs.get("latency_ms"),
        "constraints": attrs.get("constraints"),
        "metrics": attrs.get("metrics"),
        # A trial failed from outside (its process died) carries no reason of its own.
        "failure": failure or (INTERRUPTED if status == TrialStatus.INTERRUPTED else None),
        "pruned_at_epoch": attrs.get("pruned_at_epoch"),
        "sparsity": attrs.get("sparsity"),
        "reused_from": attrs.get("reused_from"),
        "retry_of": attrs.get("retry_of"),
        "started": trial.datetime_start.isoformat() if trial.datetime_start else None,
        "finished": trial.datetime_complete.isoformat() if trial.datetime_complete else None,
    }


def pareto_front(rows: list[dict], objectives=None) -> list[dict]:
    """Feasible trained trials no other dominates; one per genotype, sorted by the first cost.

    ``objectives`` gives the meaning of each row's values (default: accuracy, mults).
    """
    objectives = objectives or parse_objectives(list(DEFAULT_OBJECTIVES))
    candidates = {}
    for row in rows:
        if row["status"] != TrialStatus.TRAINED or row["values"] is None:
            continue
        candidates.setdefault(row["hash"], row)
    points = list(candidates.values())
    front = [points[i] for i in pareto_indices([row["values"] for row in points], objectives)]
    accuracy = accuracy_index(objectives)
    cost = next((index for index in range(len(objectives)) if index != accuracy), accuracy)
    return sorted(front, key=lambda row: (row["values"][cost], -row["values"][accuracy]))


def cost_table_text(genotype: Genotype, cost=None, hardware=None) -> str:
    """Plain-text per-layer cost table (what ``optinas cost`` prints and cost.txt holds)."""

    cost = cost if cost is not None else count_cost(genotype, hardware)
    return cost_table(cost)


def _export_trial(run_dir: Path, row: dict, folder: Path, objectives) -> None:
    genotype = Genotype.from_dict(row["genotype"])
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / "genotype.json", genotype.to_json(indent=2) + "\n")
    scores = ", ".join(f"{objective.label} {value:,.4g}" for objective, value in zip(objectives, row["values"]))
    title = f"Trial {row['number']} of an optinas search: {scores}."
    write_text_atomic(folder / "model.py", export_source(genotype, "model.py", title=title))
    write_text_atomic(folder / "cost.txt", cost_table_text(genotype, hardware=row.get("hardware")))
    source = checkpoint_path(run_dir, row["number"])
    if source.exists():
        shutil.copyfile(source, folder / "weights.pt")


def export_front(run_dir: Path, front: list[dict], objectives=None) -> None:
    """Rebuild best/ so that it holds exactly the current front (swapped in atomically)."""
    objectives = objectives or study_objectives(run_dir)

    def fill(staging: Path) -> None:
        for row in front:
            _export_trial(run_dir, row, staging / str(row["number"]), objectives)

    replace_dir_atomic(run_dir / "best", fill)


def write_trials(run_dir: Path, study) -> list[dict]:
    """Rewrite trials.jsonl from the study; returns its rows (once per run: O(trials))."""
    rows = trial_rows(study)
    write_jsonl_atomic(run_dir / "trials.jsonl", rows)
    return rows


def append_trials(run_dir: Path, trials) -> None:
    """Append one line per finished trial to trials.jsonl: the per-trial update, O(1) each.

    Each line is written with one ``write`` call on a file opened for appending, so a
    reader sees whole lines; the end of the search rewrites the file from the study.
    """
    lines = "".join(json.dumps(trial_row(trial), sort_keys=True) + "\n" for trial in trials)
    if lines:
        with open(run_dir / "trials.jsonl", "a", encoding="utf-8") as handle:
            handle.write(lines)
