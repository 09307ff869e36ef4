"""``optinas space``: print or sample the search space."""

from __future__ import annotations

from optinas.evaluator import load_task
from optinas.search_space import ConfigError, InputSpec, SearchSpace
from optinas.search_space.packaged_spaces import PACKAGED_SPACES, SPACE_INPUTS, space_label
from optinas.search_space.space_toml import describe_space

__all__ = ["add_parser", "run"]


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "space", help="print the search space and its size, or sample genotypes from it",
        description="Print every choice of a search space (a packaged one or a TOML file) and the exact "
                    "number of distinct genotypes; with --sample N, print N genotypes as JSON lines.")
    parser.add_argument("--space", "--config", dest="space", metavar="NAME|FILE", help="a packaged space "
                        f"({', '.join(PACKAGED_SPACES)}) or a search-space TOML file, as in optinas search "
                        "(default: digits)")
    parser.add_argument("--task", help="the task whose input shape and classes the space is for (default: the "
                        "input the packaged space is sized for: digits 1x8x8, cifar 3x32x32 with 10 classes, "
                        "imagenet 3x224x224 with 1000; a TOML file: digits)")
    parser.add_argument("--sample", type=int, metavar="N", help="print N genotypes drawn uniformly, one JSON per line")
    parser.add_argument("--seed", type=int, default=0, help="seed of --sample (default: 0)")
    parser.set_defaults(handler=run)


def run(args) -> int:

    if args.sample is not None and not 1 <= args.sample <= 100_000:
        raise ConfigError(f"--sample must be between 1 and 100000, got {args.sample}")
    label = space_label(args.space)
    if args.task is not None:
        task = load_task(args.task, seed=0)
        channels, height, width = task.input_shape
        input_spec = InputSpec(channels, height, width, task.num_classes)
    else:
        input_spec = SPACE_INPUTS.get(label, SPACE_INPUTS["digits"])
    space = SearchSpace.from_toml(input_spec, args.space)
    if args.sample is None:
        print(describe_space(space, label), end="")
        return 0
    for genotype in space.sample_random(args.sample, args.seed):
        print(genotype.to_json())
    return 0
