"""The ``optinas`` command line: search, cost, export, reproduce.

Bad input of any kind (a flag, a file, a genotype) ends with one line on stderr and exit
code 2, never a traceback, and before anything is written under runs/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from search_space.errors import OptinasError

__all__ = ["main"]

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one sentence (no usage dump) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _search_parser(commands) -> None:
    parser = commands.add_parser(
        "search", help="run (or resume) an architecture search",
        description="Search architectures on a task, trading validation accuracy against "
                    "multiplications. Rerunning the same command resumes the study in runs/STUDY/.")
    parser.add_argument("--study", default="digits-demo", help="results go to RUNS/STUDY/ (default: digits-demo)")
    parser.add_argument("--trials", type=int, default=24, help="finished trials the study should hold (default: 24)")
    parser.add_argument("--task", default="digits", help="data set (default: digits, bundled with scikit-learn)")
    parser.add_argument("--epochs", type=int, default=6, help="proxy training epochs per candidate (default: 6)")
    parser.add_argument("--max-mults", metavar="N", help="budget: multiplications per image, e.g. 2e6 or 500k")
    parser.add_argument("--sampler", default="tpe", help="tpe (multivariate), nsga2 or random (default: tpe)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampler, the split and training")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    parser.add_argument("--threads", type=int, help="CPU threads for training (default: half the cores)")
    parser.add_argument("--runs-dir", default="runs", help="where studies are stored (default: ./runs)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.set_defaults(handler=_cmd_search)


def _cost_parser(commands) -> None:
    parser = commands.add_parser("cost", help="per-layer cost table of a genotype",
                                 description="Print multiplications, additions and parameters per layer.")
    parser.add_argument("genotype", help="a genotype JSON file (or a runs/<study>/best/<trial> folder)")
    parser.add_argument("--json", action="store_true", help="print the cost as JSON")
    parser.set_defaults(handler=_cmd_cost)


def _export_parser(commands) -> None:
    parser = commands.add_parser("export", help="write a genotype as a standalone PyTorch file",
                                 description="Write one .py file that imports only torch and defines "
                                             "build_model(); with --weights, weights.pt goes beside it.")
    parser.add_argument("genotype", help="a genotype JSON file (or a runs/<study>/best/<trial> folder)")
    parser.add_argument("-o", "--output", default="model.py", help="output file (default: model.py)")
    parser.add_argument("--weights", help="a state_dict (.pt) of this genotype's model to copy beside the file")
    parser.set_defaults(handler=_cmd_export)


def _reproduce_parser(commands) -> None:
    parser = commands.add_parser(
        "reproduce", help="rerun a seed paper's experiment (table + figure under runs/reproduce/)",
        description="Rerun one of the seed papers' experiments; it writes table.md, table.json and "
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
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.set_defaults(handler=_cmd_reproduce)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="optinas", description="Hardware-aware architecture search over "
                     "optimizer-inspired blocks and cheap arithmetic.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    _search_parser(commands)
    _cost_parser(commands)
    _export_parser(commands)
    _reproduce_parser(commands)
    return parser


def _cmd_search(args) -> int:
    from .config import Budget, SearchConfig, parse_count
    from .optuna_driver import run_search

    budget = Budget(max_mults=parse_count(args.max_mults, "--max-mults") if args.max_mults else None)
    config = SearchConfig(study=args.study, task=args.task, trials=args.trials, seed=args.seed,
                          sampler=args.sampler, epochs=args.epochs, device=args.device,
                          threads=args.threads, budget=budget, runs_dir=Path(args.runs_dir))
    summary = run_search(config, show_progress=not args.quiet)
    print(f"{summary.finished} trials in {summary.run_dir}: {summary.trained} trained, "
          f"{summary.infeasible} over budget, {summary.failed} failed ({summary.seconds:.0f}s this run)")
    print(f"Pareto front: trials {', '.join(map(str, summary.front)) or 'none'}; "
          f"report: {summary.run_dir / 'report.html'}; models: {summary.run_dir / 'best'}/")
    return 0


def _cmd_cost(args) -> int:
    import json

    from search_space import count_cost, load_genotype

    from .results import cost_table_text

    genotype = load_genotype(args.genotype)
    if args.json:
        print(json.dumps(count_cost(genotype).to_dict(), indent=2))
    else:
        print(cost_table_text(genotype), end="")
    return 0


def _cmd_export(args) -> int:
    from .exporting import export_to_file

    path = export_to_file(args.genotype, Path(args.output), args.weights)
    print(f"wrote {path}" + (f" and {path.parent / 'weights.pt'}" if args.weights else ""))
    return 0


def _cmd_reproduce(args) -> int:
    from search_space.errors import ConfigError

    from .reproduce import ReproduceOptions, list_text, parse_depths, reproduce

    if args.list:
        print(list_text())
        return 0
    if not args.name:
        raise ConfigError("name an experiment (optinas reproduce NAME) or pass --list to see them")
    options = ReproduceOptions(fast=args.fast, epochs=args.epochs, batch_size=args.batch_size,
                               depths=parse_depths(args.depths) if args.depths else None,
                               seed=args.seed, device=args.device, runs_dir=Path(args.runs_dir),
                               quiet=args.quiet)
    print(reproduce(args.name, options))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``optinas`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except OptinasError as error:
        print(f"optinas {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"optinas {args.command}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
