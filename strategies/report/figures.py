"""The plotly figures of report.html: front, hypervolume, importances, energy breakdown.

Each function takes plain rows (``results.trial_rows``) and returns a ``plotly`` figure; the
page (``optinas.strategies.report.page``) decides where plotly.js goes. Infeasible trials are drawn grey:
they were never trained, and report accuracy 0 only so that they stay dominated.
"""

from __future__ import annotations

import plotly.graph_objects as go

from optinas.strategies.report.breakdown import PARTS
from optinas.strategies.status import WITH_ACCURACY, TrialStatus

__all__ = ["front_figure", "hypervolume_figure", "importance_figure", "breakdown_figure", "row_label"]

_TRAINED, _FRONT, _INFEASIBLE = "#1f77b4", "#d62728", "#b0b0b0"
_PRESET_SYMBOLS = ("diamond", "square", "triangle-up", "cross", "pentagon", "hexagon", "star-square")
_PART_COLOURS = dict(zip(PARTS, ("#7f7f7f", "#c7c7c7", "#d62728", "#1f77b4", "#2ca02c", "#ff7f0e")))
# Above this many points a trace is drawn with WebGL (Scattergl): SVG slows the page to a crawl.
_WEBGL_FROM = 1000
_LAYOUT = {"template": "plotly_white", "margin": {"t": 60, "l": 70, "r": 30, "b": 60}}


def row_label(row: dict) -> str:
    """'trial 7' or 'trial 0 (resnet20)': how the page names a trial everywhere."""
    return f"trial {row['number']}" + (f" ({row['preset']})" if row.get("preset") else "")


def _groups(rows: list[dict], front: list[dict]) -> list[tuple[str, list[dict], dict]]:
    """(legend name, rows, marker) per drawn group: trained, infeasible, front, each preset."""
    front_numbers = {row["number"] for row in front}
    scored = [row for row in rows if row.get("values")]
    plain = [row for row in scored if not row.get("preset") and row["number"] not in front_numbers]
    groups = [
        ("trained", [row for row in plain if row["status"] in WITH_ACCURACY],
         {"color": _TRAINED, "size": 8, "opacity": 0.7}),
        ("infeasible (never trained)", [row for row in plain if row["status"] == TrialStatus.INFEASIBLE],
         {"color": _INFEASIBLE, "size": 7, "opacity": 0.6}),
        ("Pareto front", [row for row in front if not row.get("preset")],
         {"color": _FRONT, "size": 12, "symbol": "star"}),
    ]
    presets = sorted({row["preset"] for row in scored if row.get("preset")})
    for index, name in enumerate(presets):
        chosen = [row for row in scored if row.get("preset") == name]
        feasible = all(row["status"] in WITH_ACCURACY for row in chosen)
        on_front = any(row["number"] in front_numbers for row in chosen)
        groups.append((f"preset {name}" + (" (on the front)" if on_front else ""), chosen, {
            "color": (_FRONT if on_front else "#111111") if feasible else _INFEASIBLE, "size": 13,
            "symbol": _PRESET_SYMBOLS[index % len(_PRESET_SYMBOLS)], "line": {"width": 1, "color": "#000"}}))
    return [group for group in groups if group[1]]


def front_figure(rows: list[dict], front: list[dict], objectives):
    """Accuracy against the cost (log x) for two objectives; a scatter matrix for three or more.

    A single-objective search is drawn against multiplications per image (read from each
    trial's cost), which is then context, not an objective.
    """

    names = [objective.name for objective in objectives]
    if len(objectives) >= 3:
        figure = go.Figure()
        for name, chosen, marker in _groups(rows, front):
            figure.add_trace(go.Splom(
                dimensions=[{"label": objective.label, "values": [row["values"][i] for row in chosen]}
                            for i, objective in enumerate(objectives)],
                name=name, marker=marker, text=[row_label(row) for row in chosen], showupperhalf=False,
                diagonal={"visible": False}))
        figure.update_layout(title="Trials in objective space (the front in red, presets labelled)",
                             height=260 * len(objectives), **_LAYOUT)
        return figure
    accuracy = names.index("accuracy")
    if len(objectives) == 2:
        cost_index, x_title = 1 - accuracy, objectives[1 - accuracy].label
        x_of = lambda row: row["values"][cost_index]  # noqa: E731
    else:
        x_title = "multiplications per image (context: the only objective is accuracy)"
        x_of = lambda row: (row.get("cost") or {}).get("mul")  # noqa: E731
    figure = go.Figure()
    for name, chosen, marker in _groups(rows, front):
        chosen = [row for row in chosen if x_of(row) is not None]
        is_preset = name.startswith("preset ")
        trace = go.Scattergl if len(chosen) > _WEBGL_FROM else go.Scatter
        figure.add_trace(trace(
            x=[x_of(row) for row in chosen], y=[row["values"][accuracy] for row in chosen], name=name,
            mode="markers+text" if is_preset else "markers", marker=marker,
            text=[row["preset"] if is_preset else row_label(row) for row in chosen],
            textposition="top center", hovertext=[row_label(row) for row in chosen], hoverinfo="text+x+y"))
    if front:
        ordered = sorted(front, key=x_of)
        figure.add_trace(go.Scatter(x=[x_of(row) for row in ordered], y=[row["values"][accuracy] for row in ordered],
                                    mode="lines", line={"shape": "hv", "color": _FRONT, "width": 1},
                                    name="front (staircase)", hoverinfo="skip"))
    positive = all((x_of(row) or 0) > 0 for row in rows if row.get("values") and x_of(row) is not None)
    figure.update_layout(title=f"{objectives[accuracy].label} against {x_title}", height=520,
                         xaxis={"title": x_title, "type": "log" if positive else "linear"},
                         yaxis={"title": objectives[accuracy].label}, **_LAYOUT)
    return figure


def hypervolume_figure(history: list[tuple[int, float]], reference_text: str):
    """Hypervolume of the trials up to each trial number (a step line)."""

    many = len(history) > _WEBGL_FROM
    figure = go.Figure((go.Scattergl if many else go.Scatter)(
        x=[number for number, _ in history], y=[volume for _, volume in history],
        mode="lines" if many else "lines+markers", line={"shape": "hv"}, name="hypervolume"))
    figure.update_layout(title=f"Hypervolume over trials<br><sup>reference point: {reference_text}</sup>", height=420,
                         xaxis={"title": "trial"}, yaxis={"title": "hypervolume (share of the unit box)",
                                                          "rangemode": "tozero"}, **_LAYOUT)
    return figure


def importance_figure(importances: dict[str, float]):
    """fANOVA importances of the sampled parameters for validation accuracy, largest on top."""

    ordered = sorted(importances.items(), key=lambda item: item[1])
    figure = go.Figure(go.Bar(x=[value for _, value in ordered], y=[name for name, _ in ordered],
                              orientation="h", marker={"color": _TRAINED}))
    figure.update_layout(title="Parameter importances for validation accuracy (fANOVA)",
                         height=max(300, 28 * len(ordered) + 120), xaxis={"title": "importance"}, **_LAYOUT)
    return figure


def breakdown_figure(front: list[dict], splits: dict[int, dict[str, float]], title: str, colours=None):
    """Stacked bars of each front model's energy (pJ per image), one segment per key of ``splits``.

    Front models differ in energy by orders of magnitude, so two buttons switch between the
    absolute pJ (the bars' heights are the models' energies) and each part's share.
    """

    shown = [row for row in front if row["number"] in splits]
    totals = [sum(splits[row["number"]].values()) for row in shown]
    labels = [f"{row_label(row)}<br>{total:.3g} pJ" for row, total in zip(shown, totals)]
    keys = [key for key in dict.fromkeys(key for split in splits.values() for key in split)
            if any(splits[row["number"]].get(key) for row in shown)]
    absolute = [[splits[row["number"]].get(key, 0.0) for row in shown] for key in keys]
    shares = [[value / total if total else 0.0 for value, total in zip(values, totals)] for values in absolute]
    figure = go.Figure()
    for key, values, share in zip(keys, absolute, shares):
        figure.add_trace(go.Bar(x=labels, y=values, name=key, customdata=share,
                                marker={"color": (colours or _PART_COLOURS).get(key)},
                                hovertemplate=key + ": %{customdata:.1%} of the model's energy<extra></extra>"))
    buttons = [{"label": "pJ per image", "method": "update",
                "args": [{"y": absolute}, {"yaxis.title.text": "energy per image (pJ)", "yaxis.tickformat": ""}]},
               {"label": "share", "method": "update",
                "args": [{"y": shares}, {"yaxis.title.text": "share of the model's energy",
                                         "yaxis.tickformat": ".0%"}]}]
    figure.update_layout(barmode="stack", title=title, height=480, yaxis={"title": "energy per image (pJ)"},
                         updatemenus=[{"type": "buttons", "direction": "right", "buttons": buttons,
                                       "x": 1.0, "xanchor": "right", "y": 1.15, "yanchor": "top"}],
                         **_LAYOUT)
    return figure
