"""The outputs of optnet-table2: table.md, table.json and figure.html."""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go
from plotly.colors import qualitative

from optinas.strategies.reproduce.common import write_experiment
from optinas.strategies.reproduce.optnet_table2.experiment import (
    PAPER_ORDER,
    PAPER_TABLE2,
    STRUCTURES,
    Table2Settings,
    paper_claims,
)

__all__ = ["table_markdown", "figure_html", "write_outputs"]


def table_markdown(settings: Table2Settings, results: list[dict], seconds: float, floor: float) -> str:
    """table.md: our MSE beside the paper's, the settings, the x_0-blind floor, the claims checked."""
    mse = {(row["structure"], row["depth"]): row["mse"] for row in results}
    columns = [name for name in PAPER_ORDER if name in settings.structures]
    lines = [
        "# Li et al., Table 2: MSE of optimizer-inspired structures (ours, paper in brackets)", "",
        f"{settings.pairs:,} pairs (x0, f) ~ N(0, I) in {settings.width} dimensions, T(x) = sigmoid(W_k x), "
        f"{settings.epochs:,} epochs of Adam (lr {settings.lr:g}, batch {settings.batch_size}), "
        f"seed {settings.seed}, device {settings.device}, {seconds:.0f} s. "
        "MSE is the training loss over all pairs after the last epoch; the paper's is after 1,000 epochs "
        "on 10,000 pairs.", "",
        f"Predicting each coordinate's mean, ignoring x0, gives MSE {floor:.5f} on these pairs "
        "(x0 and f are independent: only memorisation goes below it).", "",
        "| depth | " + " | ".join(STRUCTURES[name] for name in columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for depth in settings.depths:
        cells = []
        for name in columns:
            paper = PAPER_TABLE2[name].get(depth)
            cells.append(f"{mse[name, depth]:.5f}" + (f" ({paper:.5f})" if paper is not None else ""))
        lines.append(f"| {depth} | " + " | ".join(cells) + " |")
    lines += ["", "Section 5.3's reading of Table 2, checked on this run:", ""]
    verdict = {True: "holds", False: "does not hold", None: "not checked (needs all five structures"
               " and, for the last, depth 40)"}
    lines += [f"- {claim['claim']}: **{verdict[claim['holds']]}**" for claim in paper_claims(results)]
    return "\n".join(lines) + "\n"


def figure_html(settings: Table2Settings, results: list[dict], floor: float) -> str:
    """figure.html: MSE against depth, one solid line per structure, the paper's dashed."""

    figure = go.Figure()
    for colour, name in zip(qualitative.Plotly, PAPER_ORDER):
        if name not in settings.structures:
            continue
        rows = sorted((row for row in results if row["structure"] == name), key=lambda row: row["depth"])
        figure.add_trace(go.Scatter(x=[row["depth"] for row in rows], y=[row["mse"] for row in rows],
                                    mode="lines+markers", name=f"{STRUCTURES[name]} ours",
                                    legendgroup=name, line={"color": colour}))
        paper = sorted(PAPER_TABLE2[name].items())
        figure.add_trace(go.Scatter(x=[depth for depth, _ in paper], y=[value for _, value in paper],
                                    mode="lines+markers", name=f"{STRUCTURES[name]} paper",
                                    legendgroup=name, line={"color": colour, "dash": "dash"},
                                    marker={"symbol": "x"}))
    figure.add_hline(y=floor, line={"color": "#888", "dash": "dot"},
                     annotation_text="predict the mean, ignore x0", annotation_position="bottom right")
    figure.update_layout(
        title=f"Li et al. Table 2: training MSE against depth ({settings.pairs:,} pairs, "
              f"{settings.epochs:,} epochs; dashed: the paper, 10,000 pairs, 1,000 epochs)",
        xaxis={"title": "depth (layers)"}, yaxis={"title": "MSE"}, template="plotly_white", height=520)
    # plotly.js embedded: the page opens offline, like report.html.
    return figure.to_html(full_html=True, include_plotlyjs=True)


def write_outputs(folder: Path, settings: Table2Settings, results: list[dict], seconds: float,
                  floor: float) -> str:
    """Replaces ``folder`` with table.md, table.json and figure.html in one atomic swap.

    Returns:
        The markdown written to table.md.
    """

    document = {"experiment": "optnet-table2", "settings": settings.to_dict(), "seconds": round(seconds, 1),
                "results": results, "paper": {name: {str(depth): value for depth, value in values.items()}
                                              for name, values in PAPER_TABLE2.items()},
                "claims": paper_claims(results), "constant_floor": floor}
    markdown = table_markdown(settings, results, seconds, floor)
    write_experiment(folder, document, markdown, figure_html(settings, results, floor))
    return markdown
