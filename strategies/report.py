"""report.html: the Pareto front and the optimisation history of a study, offline plotly."""

from __future__ import annotations

import html
from pathlib import Path

from .files import write_text_atomic

__all__ = ["write_report"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { padding: 4px 10px; border-bottom: 1px solid #ddd; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
.note { color: #666; font-size: 90%; }
"""
_COLOURS = {"trained": "#1f77b4", "reused": "#1f77b4", "infeasible": "#bbbbbb"}


def _front_figure(rows: list[dict], front: list[dict]):
    import plotly.graph_objects as go

    figure = go.Figure()
    for status in ("trained", "infeasible"):
        chosen = [row for row in rows if row["status"] == status and row["values"]]
        if not chosen:
            continue
        figure.add_trace(go.Scatter(
            x=[row["values"][1] for row in chosen],
            y=[row["values"][0] for row in chosen],  # infeasible trials sit at 0: never trained
            mode="markers", name=f"{status} ({len(chosen)})",
            marker={"color": _COLOURS[status], "size": 8, "opacity": 0.7},
            text=[f"trial {row['number']}" for row in chosen], hoverinfo="text+x+y",
        ))
    if front:
        figure.add_trace(go.Scatter(
            x=[row["values"][1] for row in front], y=[row["values"][0] for row in front],
            mode="lines+markers", name="Pareto front", line={"shape": "hv", "color": "#d62728"},
            marker={"size": 11, "symbol": "star"}, text=[f"trial {row['number']}" for row in front],
        ))
    figure.update_layout(title="Validation accuracy against multiplications per image",
                         xaxis={"title": "multiplications per image", "type": "log"},
                         yaxis={"title": "validation accuracy"}, template="plotly_white", height=480)
    return figure


def _history_figure(rows: list[dict]):
    import plotly.graph_objects as go

    trained = [row for row in rows if row["status"] in ("trained", "reused") and row["values"]]
    best, best_so_far = [], 0.0
    for row in trained:
        best_so_far = max(best_so_far, row["values"][0])
        best.append(best_so_far)
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=[row["number"] for row in trained], y=[row["values"][0] for row in trained],
                                mode="markers", name="trial"))
    figure.add_trace(go.Scatter(x=[row["number"] for row in trained], y=best, mode="lines", name="best so far"))
    figure.update_layout(title="Optimisation history", xaxis={"title": "trial"},
                         yaxis={"title": "validation accuracy"}, template="plotly_white", height=400)
    return figure


def _front_table(front: list[dict]) -> str:
    lines = ["<table><tr><th>trial</th><th>val acc</th><th>test acc</th><th>mults</th>"
             "<th>params</th><th>model</th></tr>"]
    for row in front:
        metrics = row.get("metrics") or {}
        link = f"best/{row['number']}/model.py"
        lines.append(
            f"<tr><td>{row['number']}</td><td>{row['values'][0]:.4f}</td>"
            f"<td>{metrics.get('test_accuracy', float('nan')):.4f}</td><td>{int(row['values'][1]):,}</td>"
            f"<td>{(row.get('cost') or {}).get('params', 0):,}</td>"
            f"<td><a href=\"{html.escape(link)}\">{html.escape(link)}</a></td></tr>")
    lines.append("</table>")
    return "\n".join(lines)


def _failures(rows: list[dict]) -> str:
    failed = [row for row in rows if row["status"] == "failed"]
    if not failed:
        return "<p>No trial failed.</p>"
    items = "".join(f"<li>trial {row['number']}: {html.escape(str(row['failure']))}</li>" for row in failed)
    return f"<ul>{items}</ul>"


def write_report(run_dir: Path, rows: list[dict], front: list[dict], study_name: str) -> Path:
    """Write ``report.html`` with plotly.js embedded, so the page works offline."""
    counts = {status: sum(1 for row in rows if row["status"] == status)
              for status in ("trained", "reused", "infeasible", "failed")}
    summary = ", ".join(f"{count} {status}" for status, count in counts.items())
    front_html = _front_figure(rows, front).to_html(full_html=False, include_plotlyjs=True)
    history_html = _history_figure(rows).to_html(full_html=False, include_plotlyjs=False)
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>optinas: {html.escape(study_name)}</title>
<style>{_STYLE}</style></head><body>
<h1>optinas search <code>{html.escape(study_name)}</code></h1>
<p>{len(rows)} trials: {summary}. Infeasible trials broke a budget and were never trained.</p>
{front_html}
<h2>Pareto front</h2>
<p class="note">Test accuracy is measured once, on the held-out test split, and played no part in the search.</p>
{_front_table(front)}
{history_html}
<h2>Failed trials</h2>
{_failures(rows)}
</body></html>
"""
    path = run_dir / "report.html"
    write_text_atomic(path, page)
    return path
