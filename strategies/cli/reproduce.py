"""``optinas reproduce``: rerun a paper's experiment."""

from __future__ import annotations

from pathlib import Path

from optinas.search_space.errors import ConfigError
from optinas.strategies.cli.paths import input_folder, output_folder
from optinas.strategies.reproduce import ReproduceOptions, list_text, parse_depths, reproduce

__all__ = ["add_parser", "run"]


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "reproduce", help="rerun a paper's experiment (table + figure under runs/reproduce/)",
        description="Rerun one of the papers' experiments; it writes table.md, table.json and "
                    "figure.html to RUNS/reproduce/NAME/. --list shows the experiments.")
    parser.add_argument("name", nargs="?", help="the experiment (see --list)")
    parser.add_argument("--list", action="store_true", help="list the experiments, one line each")
    parser.add_argument("--fast", action="store_true", help="a quick smoke setting (seconds), not the paper's")
    parser.add_argument("--epochs", type=int, help="training epochs (default: the paper's)")
    parser.add_argument("--depths", help="comma-separated depths, e.g. 10,20,30,40 (default: the paper's)")
    parser.add_argument("--batch-size", type=int, help="mini-batch size (default: the experiment's)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the data and training (default: 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    parser.add_argument("--runs-dir", default="runs", help="results go to RUNS/reproduce/NAME/ (default: ./runs)")
    parser.add_argument("--data-dir", metavar="DIR", help="where a data set lives, for the experiments that need "
                        "one (default: $OPTINAS_DATA); --list says which")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.set_defaults(handler=run)


def run(args) -> int:

    if args.list:
        print(list_text())
        return 0
    if not args.name:
        raise ConfigError("name an experiment (optinas reproduce NAME) or pass --list to see them")
    output_folder(Path(args.runs_dir), "--runs-dir")
    if args.data_dir is not None and Path(args.data_dir).exists():
        input_folder(args.data_dir, "--data-dir")
    options = ReproduceOptions(fast=args.fast, epochs=args.epochs, batch_size=args.batch_size,
                               depths=parse_depths(args.depths) if args.depths else None,
                               seed=args.seed, device=args.device, runs_dir=Path(args.runs_dir),
                               quiet=args.quiet, data_dir=args.data_dir)
    print(reproduce(args.name, options))
    return 0
