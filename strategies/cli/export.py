"""``optinas export``: write a genotype as a standalone model."""

from __future__ import annotations

from optinas.strategies.cli.paths import input_file, output_file
from optinas.strategies.results.exports import EXPORT_FORMATS, export_to_file

__all__ = ["add_parser", "run"]


def add_parser(commands) -> None:
    parser = commands.add_parser("export", help="write a genotype as PyTorch source, ONNX or torch.export",
                                 description="py (default): one .py file that imports only torch and defines "
                                             "build_model(); with --weights, weights.pt goes beside it. onnx: an "
                                             "ONNX model (needs optinas[export]); pt2: a torch.export program "
                                             "(torch.export.load(path).module()). Both hold the weights, with a "
                                             "dynamic batch dimension.")
    parser.add_argument("genotype", help="a genotype JSON file (or a runs/<study>/best/<trial> folder)")
    parser.add_argument("-o", "--output", help="output file (default: model.py, model.onnx or model.pt2)")
    parser.add_argument("--format", default="py", choices=tuple(EXPORT_FORMATS), help="py, onnx or pt2 "
                        "(default: py)")
    parser.add_argument("--weights", help="a state_dict (.pt) of this genotype's model to copy beside the file")
    parser.set_defaults(handler=run)


def run(args) -> int:

    suffix = EXPORT_FORMATS[args.format]
    output = output_file(args.output or f"model{suffix}", "--output", suffix=suffix)
    if args.weights:
        input_file(args.weights, "--weights")
        if args.format == "py":
            output_file(output.parent / "weights.pt", "--output (its weights.pt)")
    path = export_to_file(args.genotype, output, args.weights, args.format)
    beside = args.weights and args.format == "py"
    print(f"wrote {path}" + (f" and {path.parent / 'weights.pt'}" if beside else ""))
    return 0
