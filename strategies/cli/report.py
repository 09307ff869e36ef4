"""``optinas report``: rebuild a study's report.html."""

from __future__ import annotations

from pathlib import Path

from optinas.strategies.report.page import build_report

__all__ = ["add_parser", "run"]


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "report", help="rebuild runs/STUDY/report.html from the study's storage",
        description="Rebuild RUN_DIR/report.html from the trials in the study's storage (journal, SQLite "
                    "or database URL). It only reads the trials, so it is safe while a search runs.")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the study's folder, e.g. runs/digits-demo")
    parser.add_argument("--storage", metavar="URL", help="database URL of the study (default: the storage "
                        "key of RUN_DIR/config.toml, else the journal file in RUN_DIR)")
    parser.set_defaults(handler=run)


def run(args) -> int:

    summary = build_report(Path(args.run_dir), args.storage)
    print(f"wrote {summary.path}: {summary.trials} finished trials; Pareto front: trials "
          f"{', '.join(map(str, summary.front)) or 'none'}")
    return 0
