"""What every command shares: the argument parser that fails in one line, and the summary print."""

from __future__ import annotations

import argparse
import re

__all__ = ["ArgumentParser", "EXIT_USAGE", "print_summary", "one_line"]

EXIT_USAGE = 2
#: The longest error line the command line prints, and the longest quoted value in it.
MAX_LINE_CHARS = 600
_LONG_QUOTED = re.compile(r"'(?:[^'\\\n]|\\.){120,}'" + r'|"(?:[^"\\\n]|\\.){120,}"')


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one sentence (no usage dump) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, one_line(f"{self.prog}: error: {message} (see --help)") + "\n")


def one_line(message: str) -> str:
    """An error message as one line of bounded length, whoever wrote it.

    Messages echo values with ``repr`` (or ``errors.shown``, which clips them); this is the net
    under the messages that do not: a quoted value over 120 characters keeps its two ends, line
    breaks (a library's multi-line error text) become "; ", and the line stops at 600 characters.
    """
    def clip(match: re.Match) -> str:
        text = match.group(0)
        return f"{text[:50]}...{text[-50:]} ({len(text) - 2:,} characters)"

    # Linear time: every attempt stops at the next quote of its kind or line break.
    text = _LONG_QUOTED.sub(clip, str(message))
    text = "; ".join(line.strip() for line in text.strip().splitlines() if line.strip())
    return text if len(text) <= MAX_LINE_CHARS else text[:MAX_LINE_CHARS - 3] + "..."


def print_summary(summary) -> None:
    pruned = f", {summary.pruned} pruned" if summary.pruned else ""
    print(f"{summary.finished} trials in {summary.run_dir}: {summary.trained} trained, "
          f"{summary.infeasible} over budget{pruned}, {summary.failed} failed ({summary.seconds:.0f}s this run)")
    print(f"Pareto front: trials {', '.join(map(str, summary.front)) or 'none'}; "
          f"report: {summary.run_dir / 'report.html'}; models: {summary.run_dir / 'best'}/")
