"""optnet-table2: Li et al. Table 2, the MSE of optimizer-inspired sigmoid networks by depth."""

from __future__ import annotations

import time
from pathlib import Path

from optinas.evaluator.loader import resolve_device
from optinas.strategies.reproduce.optnet_table2.experiment import Table2Settings, constant_floor, make_data, run_table2
from optinas.strategies.reproduce.optnet_table2.outputs import write_outputs

__all__ = ["run", "FAST"]


#: ``--fast``: a smoke run of every structure (about 10 s on one core), used by the tests.
FAST = {"pairs": 1_000, "epochs": 5, "depths": (10, 20)}


def run(options, folder: Path) -> str:
    """Runs the simulation as ``options`` (a ``ReproduceOptions``) asks; writes ``folder``.

    Returns:
        A summary for the terminal: the table and where the files are.
    """

    base = FAST if options.fast else {}
    settings = Table2Settings(
        depths=options.depths or base.get("depths", Table2Settings.depths),
        pairs=base.get("pairs", Table2Settings.pairs),
        epochs=options.epochs or base.get("epochs", Table2Settings.epochs),
        batch_size=options.batch_size or Table2Settings.batch_size,
        seed=options.seed, device=str(resolve_device(options.device)))

    def report(result: dict) -> None:
        if not options.quiet:
            print(f"{result['structure']:>4} depth {result['depth']:>3}: MSE {result['mse']:.5f} "
                  f"({result['seconds']:.1f} s)", flush=True)

    started = time.perf_counter()
    results = run_table2(settings, report)
    seconds = time.perf_counter() - started
    floor = constant_floor(make_data(settings)[1])
    markdown = write_outputs(folder, settings, results, seconds, floor)
    return (markdown + f"\nwrote {folder / 'table.md'}, {folder / 'table.json'} and {folder / 'figure.html'}")
