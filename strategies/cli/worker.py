"""``optinas worker``: join a search whose study lives in a database."""

from __future__ import annotations

from pathlib import Path

from optinas.strategies.backends.database import join_study
from optinas.strategies.cli.common import print_summary
from optinas.strategies.cli.paths import output_folder
from optinas.strategies.config import check_study_name
from optinas.strategies.storage import check_storage_url

__all__ = ["add_parser", "run"]


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "worker", help="join a search whose study lives in a database",
        description="Run trials of a study created by `optinas search --storage URL`, with that search's "
                    "settings, until the study holds its requested number of trials. Start one per "
                    "machine (or per GPU); a worker that dies is noticed by the heartbeat and its trial retried.")
    parser.add_argument("--study", required=True, help="the study's name")
    parser.add_argument("--storage", required=True, metavar="URL", help="the database URL the search was started with")
    parser.add_argument("--runs-dir", default="runs", help="where this worker keeps checkpoints and exports "
                        "(default: ./runs)")
    parser.add_argument("--device", help="auto, cpu or cuda (default: the search's)")
    parser.add_argument("--threads", type=int, help="CPU threads for training (default: half the cores)")
    parser.add_argument("--worker-index", type=int, metavar="N",
                        help="this worker's number, 1, 2, ... (the search process is 0); seeds its sampler from "
                             "the study's seed so that the search is reproducible (default: from the process id)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.set_defaults(handler=run)


def run(args) -> int:

    check_study_name(args.study)
    check_storage_url(args.storage, existing=True)  # a typo must not create an empty SQLite file
    output_folder(Path(args.runs_dir) / args.study, "--runs-dir")
    summary = join_study(args.study, args.storage, runs_dir=Path(args.runs_dir), device=args.device,
                         threads=args.threads, show_progress=not args.quiet,
                         worker_index=getattr(args, "worker_index", None))
    print_summary(summary)
    return 0
