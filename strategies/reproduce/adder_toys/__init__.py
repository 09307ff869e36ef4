"""adder-toys: see ``experiment.py`` for what it reruns and how."""

from __future__ import annotations

import time
from pathlib import Path

from optinas.evaluator.loader import resolve_device
from optinas.strategies.reproduce.adder_toys.experiment import (
    FAST,
    SEPARATES,
    ToySettings,
    comparative_claims,
    paper_claims,
    run_toys,
)
from optinas.strategies.reproduce.adder_toys.outputs import figure_html, table_markdown
from optinas.strategies.reproduce.common import write_experiment

__all__ = ["run"]


def run(options, folder: Path) -> str:
    """Runs the toys as ``options`` (a ``ReproduceOptions``) asks; writes ``folder``.

    Returns:
        A summary for the terminal: the table and where the files are.
    """

    base = FAST if options.fast else {}
    settings = ToySettings(iterations=base.get("iterations", ToySettings.iterations),
                           restarts=base.get("restarts", ToySettings.restarts),
                           batch_size=options.batch_size or ToySettings.batch_size,
                           seed=options.seed, device=str(resolve_device(options.device)))

    def report(row: dict) -> None:
        if not options.quiet:
            print(f"{row['toy']:>9} {row['network']:>5} n={row['hidden']:<2}: train "
                  f"{100 * row['train_accuracy']:.1f} %, test {100 * row['test_accuracy']:.1f} % "
                  f"({row['separated']}/{row['restarts']} separated, {row['seconds']:.1f} s)", flush=True)

    started = time.perf_counter()
    rows, models, tasks = run_toys(settings, report)
    seconds = time.perf_counter() - started
    claims, comparisons = paper_claims(rows), comparative_claims(rows)
    markdown = table_markdown(settings, rows, claims, comparisons, seconds)
    write_experiment(folder, {"experiment": "adder-toys", "settings": settings.to_dict(),
                           "seconds": round(seconds, 1), "separates_at": SEPARATES,
                           "results": rows, "claims": claims, "comparisons": comparisons},
                  markdown, figure_html(settings, rows, models, tasks))
    return markdown + f"\nwrote {folder / 'table.md'}, {folder / 'table.json'} and {folder / 'figure.html'}"
