"""``optinas report``: rebuild a study's report.html."""

from __future__ import annotations

from pathlib import Path

from optinas.search_space.errors import ConfigError
from optinas.strategies.cli.paths import is_writable
from optinas.strategies.report.page import build_report
from optinas.strategies.storage import check_storage_url

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

    run_dir = Path(args.run_dir)  # build_report says what is wrong with a folder that is not a study
    if run_dir.is_dir() and not is_writable(run_dir):
        raise ConfigError(f"cannot write {run_dir / 'report.html'}: the study folder is read-only; copy it "
                          "somewhere writable and run optinas report on the copy")
    if args.storage is not None:
        check_storage_url(args.storage, existing=True)
    summary = build_report(run_dir, args.storage)
    print(f"wrote {summary.path}: {summary.trials} finished trials; Pareto front: trials "
          f"{', '.join(map(str, summary.front)) or 'none'}")
    return 0
