"""The HTML sections of report.html that are tables and text: the front table, the reference
point, and the counts of infeasible, pruned and failed trials with their reasons."""

from __future__ import annotations

import html
import re
import shlex
from pathlib import Path

from optinas.strategies.budgets import Budget
from optinas.strategies.objectives import OBJECTIVES
from optinas.strategies.status import NOT_COUNTED, TrialStatus

__all__ = ["budget_from_config", "reference_text", "front_table", "counts_section", "counted_trials"]

_TRACEBACK = re.compile(r"\s*\(traceback in [^)]*\)\s*$")
_LISTED = 20  # trial numbers listed per reason before "and N more"


def budget_from_config(config: dict) -> Budget:
    """The limits config.toml records (``budget.max_mults`` ...); the profile is not loaded."""
    limits = [objective.limit for objective in OBJECTIVES.values() if objective.limit]
    return Budget(**{name: config[f"budget.{name}"] for name in limits if f"budget.{name}" in config})


def _number(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, int) or abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def reference_text(objectives, reference: dict[str, float], config: dict) -> str:
    """The reference point in words, with where each coordinate comes from."""
    parts = []
    for objective in objectives:
        value = reference[objective.name]
        if objective.maximize:
            parts.append(f"{objective.label} {_number(value)}")
            continue
        limit = config.get(f"budget.{objective.limit}")
        source = (f"the --{objective.limit.replace('_', '-')} budget" if limit
                  else "the largest value any trial measured so far")
        parts.append(f"{objective.label} {_number(value)} ({source})")
    return "; ".join(parts)


def _model_link(run_dir: Path, row: dict) -> str:
    link = f"best/{row['number']}/model.py"
    if (run_dir / link).is_file():
        return f"<a href=\"{html.escape(link)}\">{html.escape(link)}</a>"
    return "<span class=\"note\">not exported yet (best/ is rebuilt when the search ends)</span>"


def train_command(run_dir: Path, number: int) -> str:
    """The command that trains front model ``number`` at full fidelity (``optinas train``)."""
    return f"optinas train {shlex.quote(str(run_dir / 'best' / str(number)))}"


def front_table(run_dir: Path, front: list[dict], objectives) -> str:
    """One line per front model: its values, test accuracy, energy, size, export and train command."""
    if not front:
        return "<p>No trained trial yet, so no front.</p>"
    head = "".join(f"<th>{html.escape(objective.label)}</th>" for objective in objectives)
    lines = [f"<table><tr><th>trial</th><th>preset</th>{head}<th>test accuracy</th><th>energy (pJ)</th>"
             "<th>parameters</th><th>model</th><th>full training</th></tr>"]
    for row in front:
        cost, metrics = row.get("cost") or {}, row.get("metrics") or {}
        values = "".join(f"<td>{_number(value)}</td>" for value in row["values"])
        lines.append(f"<tr><td>{row['number']}</td><td>{html.escape(row.get('preset') or '')}</td>{values}"
                     f"<td>{_number(metrics.get('test_accuracy'))}</td><td>{_number(cost.get('energy_pj'))}</td>"
                     f"<td>{_number(cost.get('params'))}</td><td>{_model_link(run_dir, row)}</td>"
                     f"<td><code>{html.escape(train_command(run_dir, row['number']))}</code></td></tr>")
    lines.append("</table><p class=\"note\">Test accuracy is measured once, on the held-out test split, "
                 "and played no part in the search. The last column trains a model from scratch at full fidelity "
                 "(results in final/N/; add --epochs, --task and the other flags of optinas train).</p>")
    return "\n".join(lines)


def _trial_list(numbers: list[int]) -> str:
    shown = ", ".join(map(str, numbers[:_LISTED]))
    return shown + (f" and {len(numbers) - _LISTED} more" if len(numbers) > _LISTED else "")


def _grouped(rows: list[dict], reason_of) -> str:
    """Identical reasons once each (tracebacks' log paths aside), most frequent first, with
    their trial numbers."""
    groups: dict[str, list[int]] = {}
    for row in rows:
        reason = _TRACEBACK.sub("", str(reason_of(row)))
        groups.setdefault(reason, []).append(row["number"])
    items = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
    return "<ul>" + "".join(f"<li>{html.escape(reason)}: {len(numbers)} trial{'s' * (len(numbers) != 1)} "
                            f"({_trial_list(numbers)})</li>" for reason, numbers in items) + "</ul>"


def _infeasible(rows: list[dict]) -> str:
    """Which budget each infeasible trial broke, and by how much at most."""
    broken: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        for name, excess in (row.get("constraints") or {}).items():
            if excess > 0:
                broken.setdefault(name, []).append((row["number"], excess))
    if not broken:
        return "<p>No record of which budget the infeasible trials broke.</p>"
    lines = ["<table><tr><th>budget</th><th>trials over it</th><th>worst excess</th><th>trials</th></tr>"]
    for name, hits in sorted(broken.items()):
        flag = "--" + name.replace("_", "-")
        lines.append(f"<tr><td>{html.escape(flag)}</td><td>{len(hits)}</td>"
                     f"<td>{max(excess for _, excess in hits):.1%} over</td>"
                     f"<td>{_trial_list([number for number, _ in hits])}</td></tr>")
    lines.append("</table><p class=\"note\">A trial can break several budgets at once.</p>")
    return "\n".join(lines)


def counted_trials(rows: list[dict]) -> int:
    """Finished trials that count toward the requested number (not interrupted, not surplus).

    ``row["status"]`` is ``worker.trial_status``; this is ``worker.counts_toward`` on rows.
    """
    return sum(1 for row in rows if row["status"] not in NOT_COUNTED)


def _pruned_reason(row: dict) -> str:
    epoch = row.get("pruned_at_epoch")
    return row.get("failure") or (f"pruned after epoch {epoch}" if epoch else "stopped early by the pruner")


def counts_section(rows: list[dict], study=None) -> str:
    """How the trials ended, with the broken budgets and the grouped failure and pruning reasons.

    Interrupted trials (their process died; the trial was retried) and surplus ones (asked
    for after the study was full) are listed apart: they do not count toward the trials.
    """
    by_status: dict[str, list[dict]] = {}
    for row in rows:
        by_status.setdefault(row["status"], []).append(row)
    counts = {status: len(by_status.get(status, [])) for status in
              (TrialStatus.TRAINED, TrialStatus.REUSED, TrialStatus.INFEASIBLE, TrialStatus.PRUNED,
               TrialStatus.FAILED)}
    extra = {status: len(by_status[status]) for status in NOT_COUNTED if status in by_status}
    running = 0
    if study is not None:
        running = sum(1 for trial in study.get_trials(deepcopy=False) if trial.state.name == "RUNNING")
    counted = counted_trials(rows)
    summary = ", ".join(f"{count} {status}" for status, count in counts.items())
    others = "".join(f"; {count} {status} (retried, not counted)" if status == TrialStatus.INTERRUPTED
                     else f"; {count} {status} (not counted)" for status, count in extra.items())
    body = [f"<section><h2>How the trials ended</h2><p id=\"counts\">{counted} finished trials: {summary}"
            f"{others}" + (f"; {running} running now" if running else "") + ". Reused trials had the genotype "
            "of an earlier trial and took its result without training.</p>"]
    body.append(f"<h3>Infeasible: {counts[TrialStatus.INFEASIBLE]}</h3>")
    if counts[TrialStatus.INFEASIBLE]:
        body.append(_infeasible(by_status[TrialStatus.INFEASIBLE]))
    body.append(f"<h3>Pruned: {counts[TrialStatus.PRUNED]}</h3>")
    if counts[TrialStatus.PRUNED]:
        body.append(_grouped(by_status[TrialStatus.PRUNED], _pruned_reason))
    body.append(f"<h3>Failed: {counts[TrialStatus.FAILED]}</h3>")
    if counts[TrialStatus.FAILED]:
        body.append(_grouped(by_status[TrialStatus.FAILED],
                             lambda row: row.get("failure") or "failed (no reason recorded)"))
    if extra.get(TrialStatus.INTERRUPTED):
        body.append(f"<h3>Interrupted and retried: {extra[TrialStatus.INTERRUPTED]}</h3>")
        body.append(_grouped(by_status[TrialStatus.INTERRUPTED],
                             lambda row: row.get("failure") or "interrupted"))
    return "".join(body) + "</section>"
