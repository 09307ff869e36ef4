"""``optinas export``: write a genotype as a standalone model."""

from __future__ import annotations

from pathlib import Path

from optinas.strategies.results.exports import export_to_file

__all__ = ["add_parser", "run"]


def add_parser(commands) -> None:
    parser = commands.add_parser("export", help="write a genotype as a standalone PyTorch file",
                                 description="Write one .py file that imports only torch and defines "
                                             "build_model(); with --weights, weights.pt goes beside it.")
    parser.add_argument("genotype", help="a genotype JSON file (or a runs/<study>/best/<trial> folder)")
    parser.add_argument("-o", "--output", default="model.py", help="output file (default: model.py)")
    parser.add_argument("--weights", help="a state_dict (.pt) of this genotype's model to copy beside the file")
    parser.set_defaults(handler=run)


def run(args) -> int:

    path = export_to_file(args.genotype, Path(args.output), args.weights)
    print(f"wrote {path}" + (f" and {path.parent / 'weights.pt'}" if args.weights else ""))
    return 0
