"""What every command shares: the argument parser that fails in one line, and the summary print."""

from __future__ import annotations

import argparse

__all__ = ["ArgumentParser", "EXIT_USAGE", "print_summary"]

EXIT_USAGE = 2


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one sentence (no usage dump) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def print_summary(summary) -> None:
    pruned = f", {summary.pruned} pruned" if summary.pruned else ""
    print(f"{summary.finished} trials in {summary.run_dir}: {summary.trained} trained, "
          f"{summary.infeasible} over budget{pruned}, {summary.failed} failed ({summary.seconds:.0f}s this run)")
    print(f"Pareto front: trials {', '.join(map(str, summary.front)) or 'none'}; "
          f"report: {summary.run_dir / 'report.html'}; models: {summary.run_dir / 'best'}/")
