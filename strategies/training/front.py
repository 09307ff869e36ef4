"""``optinas train runs/STUDY --front``: retrain the study's Pareto front at full fidelity and
compare. The table (final/front.md and final/front.json) puts each model's proxy accuracy
(its search score) beside its final test accuracy, with the Spearman rank correlation of the
two: near 1, the proxy ranks architectures as full training does and can be trusted.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

from optinas.evaluator.distributed import world_from_env
from optinas.search_space.errors import ConfigError
from optinas.strategies.files import write_json_atomic, write_text_atomic
from optinas.strategies.training.run import TrainOutcome, prepare_target, train_target
from optinas.strategies.training.settings import TrainSettings

__all__ = ["front_targets", "train_front", "rank_correlation", "front_table"]


def front_targets(study_dir: Path) -> list[Path]:
    """The best/N folders of a study (its Pareto front), by trial number."""
    if not (study_dir / "config.toml").is_file():
        raise ConfigError(f"--front needs a study folder (runs/STUDY with config.toml), got {str(study_dir)!r}")
    best = study_dir / "best"
    folders = sorted((p for p in best.iterdir() if p.is_dir() and p.name.isdigit()),
                     key=lambda p: int(p.name)) if best.is_dir() else []
    if not folders:
        raise ConfigError(f"study {study_dir.name!r} has no models in best/; let the search finish first")
    return folders


def rank_correlation(proxy: list[float], final: list[float]) -> float | None:
    """Spearman's rho of the two lists; None with fewer than 2 models or a constant list."""
    if len(proxy) < 2 or len(set(proxy)) < 2 or len(set(final)) < 2:
        return None
    # scipy.stats takes about a second to import; only the front table needs it.
    from scipy.stats import spearmanr

    rho = spearmanr(proxy, final).statistic
    return None if not math.isfinite(rho) else float(rho)


def front_table(outcomes: list[TrainOutcome]) -> tuple[dict, str]:
    """The comparison as a JSON-able dict and as markdown."""
    rows = [{"model": outcome.label, "folder": str(outcome.run_dir), "proxy_accuracy": outcome.proxy_accuracy,
             "final_val_accuracy": outcome.val_accuracy, "final_test_accuracy": outcome.test_accuracy}
            for outcome in outcomes]
    paired = [row for row in rows if row["proxy_accuracy"] is not None]
    rho = rank_correlation([row["proxy_accuracy"] for row in paired],
                           [row["final_test_accuracy"] for row in paired])
    lines = ["| model | proxy accuracy | final val accuracy | final test accuracy |",
             "|---|---:|---:|---:|"]
    for row in rows:
        proxy = "n/a" if row["proxy_accuracy"] is None else f"{row['proxy_accuracy']:.4f}"
        lines.append(f"| {row['model']} | {proxy} | {row['final_val_accuracy']:.4f} "
                     f"| {row['final_test_accuracy']:.4f} |")
    verdict = ("n/a (needs at least 2 models with distinct accuracies)" if rho is None else f"{rho:.3f}")
    lines += ["", f"Spearman rank correlation of proxy and final test accuracy: {verdict} "
              f"({len(paired)} models)."]
    return {"models": rows, "spearman": rho, "count": len(paired)}, "\n".join(lines) + "\n"


def train_front(settings: TrainSettings, show_progress: bool = True) -> tuple[dict, Path]:
    """Retrains every best/N model of the study ``settings.target`` into final/N/; writes the table.

    Every target is validated before the first one trains. Returns the table and the
    folder holding front.md and front.json.
    """
    study_dir = Path(settings.target)
    if settings.name is not None:
        raise ConfigError("--name does not apply to --front: each model goes to the study's final/N/")
    folders = front_targets(study_dir)
    per_model = [replace(settings, target=str(folder)) for folder in folders]
    for one in per_model:
        prepare_target(one)
    outcomes = [train_target(one, show_progress=show_progress) for one in per_model]
    table, markdown = front_table(outcomes)
    final = study_dir / "final"
    if not world_from_env().is_main:
        return table, final  # under torchrun only rank 0 writes
    write_json_atomic(final / "front.json", table)
    write_text_atomic(final / "front.md", f"# Proxy vs final accuracy: study {study_dir.name}\n\n" + markdown)
    return table, final
