"""table.md and figure.html of ``adder-toys`` (AdderNet, section 5.3, Figs. 4-6).

The figure lays the panels out like the paper's: for each toy, the multiplication network's
decision regions on one row and the AdderNet's on the row below, one column per hidden-unit
count n, with the training points on top.
"""

from __future__ import annotations

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import nn

from optinas.strategies.reproduce.adder_toys.experiment import NETWORKS, SEPARATES, TOYS, ToySettings, predict

__all__ = ["table_markdown", "figure_html", "GRID", "POINTS_SHOWN"]

#: Grid points per axis of each decision-region panel.
GRID = 90
#: Training points drawn on each panel (the same ones on every panel of a toy).
POINTS_SHOWN = 300

_READING = {True: "separates", False: "errs"}


def table_markdown(settings: ToySettings, rows: list[dict], claims: list[dict], comparisons: list[dict],
                   seconds: float) -> str:
    """Training / test accuracy per toy, network and n, with the paper's reading of its figure."""
    iterations = rows[0]["iterations"] if rows else settings.iterations
    lines = [
        "# AdderNet, section 5.3: two-layer FC networks vs AdderNets on 2-D toys", "",
        f"{iterations:,} iterations of Nesterov SGD (lr {settings.lr:g} decaying linearly to 0, momentum "
        f"{settings.momentum:g}, weight decay {settings.weight_decay:g}, batch {settings.batch_size}), "
        f"binary cross-entropy; adder eq. 27 eta {settings.eta:g}, p from 2 to 1 over the first 75 %; best of "
        f"{settings.restarts} restart(s) by final training loss; seed "
        f"{settings.seed}, device {settings.device}, {seconds:.0f} s. The paper: 10,000 iterations, "
        "cosine schedule, one run per cell, figures only.", "",
        "Cells: training accuracy / held-out test accuracy (%), then the paper's reading of its "
        f"figure (separates = classifies (nearly) all points; ours counts as separating from "
        f"{100 * SEPARATES:g} % training accuracy) and how many restarts separated.", "",
    ]
    for toy in settings.toys:
        equation, figure, hidden_counts = TOYS[toy]
        toy_rows = {(row["network"], row["hidden"]): row for row in rows if row["toy"] == toy}
        if not toy_rows:
            continue
        chance = next(iter(toy_rows.values()))["chance"]
        lines += [f"## {toy} (eq. {equation}, Fig. {figure}); majority class {100 * chance:.1f} % of test", "",
                  "| network | " + " | ".join(f"n = {n}" for n in hidden_counts) + " |",
                  "|---" * (len(hidden_counts) + 1) + "|"]
        for network, label in NETWORKS.items():
            cells = []
            for n in hidden_counts:
                row = toy_rows[network, n]
                cells.append(f"{100 * row['train_accuracy']:.1f} / {100 * row['test_accuracy']:.1f} "
                             f"(paper: {_READING[row['paper_separates']]}; "
                             f"{row['separated']}/{row['restarts']})")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    verdict = {True: "holds", False: "does not hold", None: "not checked (cells missing)"}
    lines += ["Section 5.3's comparisons, checked on training accuracy:", ""]
    lines += [f"- {claim['claim']}: **{verdict[claim['holds']]}**" for claim in comparisons]
    lines.append("")
    agree = sum(claim["agrees"] for claim in claims)
    lines.append(f"Cell by cell, the paper's reading holds in {agree} of {len(claims)} (the two-ball and x*y "
                 "boundaries have no margin, so 99 % is strict there):")
    lines += [f"- differs: {claim['toy']}, {NETWORKS[claim['network']]}, n = {claim['hidden']}: the paper "
              f"says it {_READING[claim['paper_separates']]}, ours {_READING[claim['separates']]}"
              for claim in claims if not claim["agrees"]]
    return "\n".join(lines) + "\n"


def _limits(task) -> float:
    # The 99th percentile of |coordinate| keeps a few far outliers from shrinking the balls.
    return 1.1 * float(task.train_x.flatten(1).abs().quantile(0.99))


def figure_html(settings: ToySettings, rows: list[dict], models: dict[tuple[str, str, int], nn.Module],
                tasks: dict) -> str:
    """figure.html: decision regions of every trained network, Figs. 4-6 side by side."""

    by_key = {(row["toy"], row["network"], row["hidden"]): row for row in rows}
    panels = [(toy, network) for toy in settings.toys for network in NETWORKS]
    columns = max(len(TOYS[toy][2]) for toy in settings.toys)
    titles = []
    for toy, network in panels:
        counts = TOYS[toy][2]
        titles += [f"{toy}, {NETWORKS[network]}, n = {n}: "
                   f"{100 * by_key[toy, network, n]['train_accuracy']:.0f} %" for n in counts]
        titles += [""] * (columns - len(counts))
    figure = make_subplots(rows=len(panels), cols=columns, subplot_titles=titles,
                           horizontal_spacing=0.04, vertical_spacing=0.05)
    colours = ("#d62728", "#1f77b4")  # class 0, class 1
    shown_legend = False
    for panel, (toy, network) in enumerate(panels, start=1):
        task = tasks[toy]
        limit = _limits(task)
        axis = torch.linspace(-limit, limit, GRID)
        grid = torch.cartesian_prod(axis, axis)  # (x, y) pairs, y fastest
        generator = torch.Generator().manual_seed(settings.seed)
        chosen = torch.randperm(task.num_train, generator=generator)[:POINTS_SHOWN]
        points, labels = task.train_x.flatten(1)[chosen], task.train_y[chosen]
        for column, n in enumerate(TOYS[toy][2], start=1):
            regions = predict(models[toy, network, n], task, grid).view(GRID, GRID).T  # rows: y
            figure.add_trace(go.Heatmap(x=axis.tolist(), y=axis.tolist(), z=regions.tolist(), zmin=0, zmax=1,
                                        colorscale=[[0, "#fbe3e3"], [1, "#dde9f6"]], showscale=False,
                                        hoverinfo="skip"), row=panel, col=column)
            for label in (0, 1):
                mask = labels == label
                figure.add_trace(go.Scatter(x=points[mask, 0].tolist(), y=points[mask, 1].tolist(),
                                            mode="markers", name=f"class {label}", legendgroup=str(label),
                                            showlegend=not shown_legend,
                                            marker={"size": 3, "color": colours[label]}),
                                 row=panel, col=column)
            shown_legend = True
    figure.update_xaxes(showticklabels=False)
    figure.update_yaxes(showticklabels=False)
    figure.update_layout(
        title=f"AdderNet Figs. 4-6: decision regions (shaded) and training points; per toy, FC on top, "
              f"AdderNet below; {rows[0]['iterations'] if rows else settings.iterations:,} iterations",
        template="plotly_white", height=260 * len(panels), width=260 * columns + 120)
    # plotly.js embedded: the page opens offline, like report.html.
    return figure.to_html(full_html=True, include_plotlyjs=True)
