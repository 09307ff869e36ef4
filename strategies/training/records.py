"""What a training run leaves in its folder, each file written atomically.

- ``settings.json``: the settings that define the run, compared on every rerun;
- ``checkpoints/epoch-NNNN.pt``: after each epoch, the trainer's state plus the metrics so
  far, so that a rerun after ``kill -9`` continues from exactly the last finished epoch;
- ``metrics.json``: ``history`` (one entry per epoch), ``resumed_at_epoch`` and, at the end,
  ``test_accuracy``; rewritten after every epoch;
- ``curves.html``: training loss and validation accuracy per epoch (plotly, self-contained).
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from optinas.search_space.errors import ConfigError
from optinas.strategies.files import write_bytes_atomic, write_json_atomic, write_text_atomic

__all__ = ["check_settings", "save_checkpoint", "latest_checkpoint", "load_checkpoint",
           "read_metrics", "write_metrics", "write_curves"]

_CHECKPOINT = re.compile(r"^epoch-(\d+)\.pt$")


def check_settings(run_dir: Path, identity: dict) -> None:
    """Refuses to continue a run folder created with other settings (before anything is written)."""
    path = run_dir / "settings.json"
    if not path.is_file():
        return
    stored = json.loads(path.read_text(encoding="utf-8"))
    for key, value in identity.items():
        if stored.get(key) != value:
            raise ConfigError(f"{str(run_dir)!r} was trained with {key} = {stored.get(key)!r}, not "
                              f"{value!r}; rerun with the same settings to resume, or choose another --name")


def write_settings(run_dir: Path, identity: dict) -> None:
    write_json_atomic(run_dir / "settings.json", identity)


def save_checkpoint(run_dir: Path, epoch: int, state: dict) -> Path:
    """``checkpoints/epoch-NNNN.pt``, written to a temporary file and renamed into place."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    path = run_dir / "checkpoints" / f"epoch-{epoch:04d}.pt"
    write_bytes_atomic(path, buffer.getvalue())
    return path


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint of the last finished epoch, or None."""
    folder = run_dir / "checkpoints"
    found = [(int(match[1]), path) for path in folder.glob("epoch-*.pt")
             if (match := _CHECKPOINT.match(path.name))] if folder.is_dir() else []
    return max(found)[1] if found else None


def load_checkpoint(path: Path) -> dict:
    # Our own files; weights_only=False because the state holds numpy's and Python's
    # generator states, which the weights-only unpickler refuses.
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # a truncated or foreign file: say which, in one line
        raise ConfigError(f"cannot read checkpoint {str(path)!r} ({type(error).__name__}); "
                          "delete it to resume from the one before") from None


def read_metrics(run_dir: Path) -> dict | None:
    path = run_dir / "metrics.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def write_metrics(run_dir: Path, metrics: dict) -> None:
    write_json_atomic(run_dir / "metrics.json", metrics)


def write_curves(run_dir: Path, metrics: dict, title: str) -> None:
    """``curves.html``: training loss and validation accuracy against the epoch, offline."""
    history = metrics["history"]
    epochs = [entry["epoch"] for entry in history]
    figure = make_subplots(rows=1, cols=2, subplot_titles=("training loss", "validation accuracy"))
    figure.add_trace(go.Scatter(x=epochs, y=[entry["train_loss"] for entry in history],
                                mode="lines+markers", name="training loss"), row=1, col=1)
    figure.add_trace(go.Scatter(x=epochs, y=[entry["val_accuracy"] for entry in history],
                                mode="lines+markers", name="validation accuracy"), row=1, col=2)
    for epoch in metrics.get("resumed_at_epoch", []):
        figure.add_vline(x=epoch, line_dash="dot", line_color="gray")
    figure.update_xaxes(title_text="epoch")
    test = metrics.get("test_accuracy")
    figure.update_layout(title=title + (f" (test accuracy {test:.4f})" if test is not None else ""),
                         template="plotly_white")
    # include_plotlyjs=True: the page works without a network connection.
    write_text_atomic(run_dir / "curves.html", figure.to_html(include_plotlyjs=True, full_html=True))
