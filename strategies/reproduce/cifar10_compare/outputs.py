"""table.md and figure.html of ``cifar10-compare`` (AdderNet Table 2, Li et al. Table 4)."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from optinas.strategies.reproduce.cifar10_compare.experiment import MODELS, CifarSettings

__all__ = ["table_markdown", "figure_html"]


def _millions(count: int) -> str:
    return f"{count / 1e6:.2f}M"


def _gap(rows: dict[str, dict], name: str) -> tuple[float | None, float | None]:
    """(our gap, the paper's gap) to the model's baseline, in accuracy points; None if unknown."""
    baseline = MODELS[name].baseline
    if baseline == name:
        return None, None
    ours = paper = None
    if "test_accuracy" in rows.get(baseline, {}) and "test_accuracy" in rows[name]:
        ours = 100 * (rows[baseline]["test_accuracy"] - rows[name]["test_accuracy"])
    if MODELS[name].accuracy is not None and MODELS[baseline].accuracy is not None:
        paper = MODELS[baseline].accuracy - MODELS[name].accuracy
    return ours, paper


def table_markdown(settings: CifarSettings, rows: list[dict], task, seconds: float) -> str:
    """Our test accuracy beside the paper's, with the epochs and the gap to each table's baseline."""
    by_name = {row["model"]: row for row in rows}
    images = f"{task.num_train:,} training, {len(task.val_y):,} validation, {len(task.test_y):,} test images"
    lines = [
        "# CIFAR-10: AdderNet Table 2 (ResNet-20 CNN / AdderNet / BNN) and Li et al. Table 4 (ResNet vs HB-Net)", "",
        f"Data: {task.source} ({images}). Ours: {settings.epochs} epoch(s) of Nesterov SGD, batch "
        f"{settings.batch_size}, lr {settings.lr:g} (warm-up {min(settings.warmup_epochs, settings.epochs):g} "
        f"epochs, linear decay), label smoothing 0.1, crop + flip; seed {settings.seed}, device "
        f"{settings.device}, {seconds:.0f} s in all. Accuracy is on the test images after the last epoch. "
        "The papers train 300-800 epochs, so compare the gaps to each table's baseline first.", "",
        "| model | paper row | paper epochs | paper acc. % | our epochs | our test acc. % | gap to baseline: "
        "ours / paper (points) | mul / add / xnor (counted layers) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in settings.models:
        row, paper = by_name[name], MODELS[name]
        ours = f"{100 * row['test_accuracy']:.2f}" if "test_accuracy" in row else f"failed: {row['failed']}"
        gap_ours, gap_paper = _gap(by_name, name)
        gap = ("baseline" if paper.baseline == name else
               f"{'-' if gap_ours is None else f'{gap_ours:.2f}'} / {'-' if gap_paper is None else f'{gap_paper:.2f}'}"
               f" (vs {paper.baseline})")
        cost = row["cost"]
        lines.append(f"| {name} | {paper.source} | {paper.epochs or '-'} | "
                     f"{'-' if paper.accuracy is None else f'{paper.accuracy:.2f}'} | {row['epochs']} | {ours} | "
                     f"{gap} | {_millions(cost['mul'])} / {_millions(cost['add'])} / {_millions(cost['xnor'])} |")
    lines += ["", "AdderNet counts ResNet-20 at 41.17M multiplications (CNN), 82.34M additions (AddNN) and "
              "41.17M XNORs (BNN), leaving out the first and the last layer; the last column is our count of "
              "the same layers (41.17M matches no count of this network: see tests/search_space/test_cost_paper.py)."]
    return "\n".join(lines) + "\n"


def figure_html(settings: CifarSettings, rows: list[dict]) -> str:
    """figure.html: ours vs the paper per model (bars), and our validation accuracy per epoch."""

    figure = make_subplots(rows=1, cols=2, subplot_titles=(
        "CIFAR-10 test accuracy: ours vs the paper", "our validation accuracy per epoch"))
    names = [row["model"] for row in rows]
    figure.add_trace(go.Bar(x=names, y=[100 * row.get("test_accuracy", float("nan")) for row in rows],
                            name=f"ours ({settings.epochs} epochs)"), row=1, col=1)
    figure.add_trace(go.Bar(x=names, y=[MODELS[name].accuracy for name in names],
                            name="paper (300-800 epochs)"), row=1, col=1)
    for row in rows:
        figure.add_trace(go.Scatter(x=list(range(1, len(row["curve"]) + 1)), y=[100 * a for a in row["curve"]],
                                    mode="lines+markers", name=row["model"]), row=1, col=2)
    figure.update_yaxes(title_text="accuracy (%)", row=1, col=1)
    figure.update_xaxes(title_text="epoch", row=1, col=2)
    figure.update_layout(title="AdderNet Table 2 and Li et al. Table 4 on CIFAR-10", barmode="group",
                         template="plotly_white", height=520)
    # plotly.js embedded: the page opens offline, like report.html.
    return figure.to_html(full_html=True, include_plotlyjs=True)
