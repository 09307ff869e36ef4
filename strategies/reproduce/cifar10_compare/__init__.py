"""cifar10-compare: see ``experiment.py`` for what it reruns and how."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from optinas.evaluator.loader import resolve_device
from optinas.strategies.reproduce.cifar10_compare.experiment import (
    FAST,
    MODELS,
    CifarSettings,
    find_cifar10,
    load_cifar10,
    run_models,
)
from optinas.strategies.reproduce.cifar10_compare.outputs import figure_html, table_markdown
from optinas.strategies.reproduce.common import write_experiment

__all__ = ["run"]


def run(options, folder: Path) -> str:
    """Runs the comparison as ``options`` (a ``ReproduceOptions``) asks; writes ``folder``.

    Raises:
        ConfigError: Before anything is loaded or written, when no data is given.
    """

    find_cifar10(options.data_dir)  # refuse before the (slow) load when no data is given
    base = FAST if options.fast else {}
    settings = CifarSettings(**{**base, "seed": options.seed, "device": str(resolve_device(options.device)),
                                **({"epochs": options.epochs} if options.epochs else {}),
                                **({"batch_size": options.batch_size} if options.batch_size else {})})
    started = time.perf_counter()
    task = load_cifar10(settings, options.data_dir)

    def report(row: dict) -> None:
        if not options.quiet:
            done = (f"test {100 * row['test_accuracy']:.2f} % ({row['seconds']:.0f} s)"
                    if "failed" not in row else f"failed: {row['failed']}")
            print(f"{row['model']:>16}: {done}", flush=True)

    rows = run_models(task, settings, report)
    seconds = time.perf_counter() - started
    markdown = table_markdown(settings, rows, task, seconds)
    document = {"experiment": "cifar10-compare", "settings": settings.to_dict(), "data": task.source,
                "seconds": round(seconds, 1), "results": rows,
                "paper": {name: asdict(row) for name, row in MODELS.items()}}
    write_experiment(folder, document, markdown, figure_html(settings, rows))
    return markdown + f"\nwrote {folder / 'table.md'}, {folder / 'table.json'} and {folder / 'figure.html'}"
