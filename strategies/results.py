"""What a study leaves in runs/<study>/: trials.jsonl, the Pareto-best exports, the report."""

from __future__ import annotations

import shutil
from pathlib import Path

from search_space import Genotype, count_cost, export_source

from .files import read_toml, replace_dir_atomic, write_jsonl_atomic, write_text_atomic
from .objectives import DEFAULT_OBJECTIVES, objectives_of, parse_objectives, pareto_indices
from .trial import checkpoint_path
from .worker import trial_status

__all__ = ["trial_rows", "pareto_front", "finalize", "cost_table_text", "study_objectives"]


def study_objectives(run_dir: Path):
    """The objectives of the study in ``run_dir`` (config.toml; older studies: accuracy, mults)."""
    path = run_dir / "config.toml"
    return objectives_of(read_toml(path) if path.exists() else {})


def trial_rows(study) -> list[dict]:
    """One plain dict per finished trial (interrupted attempts included, marked as such)."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        if trial.state.name in ("RUNNING", "WAITING"):
            continue
        attrs = trial.user_attrs
        rows.append({
            "number": trial.number,
            "state": trial.state.name,
            "status": trial_status(trial),
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
            "failure": attrs.get("failure") or trial.system_attrs.get("fail_reason"),
            "pruned_at_epoch": attrs.get("pruned_at_epoch"),
            "sparsity": attrs.get("sparsity"),
            "reused_from": attrs.get("reused_from"),
            "retry_of": attrs.get("retry_of"),
            "started": trial.datetime_start.isoformat() if trial.datetime_start else None,
            "finished": trial.datetime_complete.isoformat() if trial.datetime_complete else None,
        })
    return rows


def pareto_front(rows: list[dict], objectives=None) -> list[dict]:
    """Feasible trained trials no other dominates; one per genotype, sorted by the first cost.

    ``objectives`` gives the meaning of each row's values (default: accuracy, mults).
    """
    objectives = objectives or parse_objectives(list(DEFAULT_OBJECTIVES))
    candidates = {}
    for row in rows:
        if row["status"] != "trained" or row["values"] is None:
            continue
        candidates.setdefault(row["hash"], row)
    points = list(candidates.values())
    front = [points[i] for i in pareto_indices([row["values"] for row in points], objectives)]
    key = 1 if len(objectives) > 1 else 0
    return sorted(front, key=lambda row: (row["values"][key], -row["values"][0]))


def cost_table_text(genotype: Genotype, cost=None, hardware=None) -> str:
    """Plain-text per-layer cost table (what ``optinas cost`` prints and cost.txt holds)."""
    from search_space.cost.summary import cost_table

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


def finalize(run_dir: Path, study, exports: bool) -> list[int]:
    """Write trials.jsonl (always) and, with ``exports``, best/ and report.html."""
    rows = trial_rows(study)
    write_jsonl_atomic(run_dir / "trials.jsonl", rows)
    objectives = study_objectives(run_dir)
    front = pareto_front(rows, objectives)
    if exports:
        from .report import write_report

        export_front(run_dir, front, objectives)
        write_report(run_dir, rows, front, study_name=study.study_name, study=study)
    return [row["number"] for row in front]
