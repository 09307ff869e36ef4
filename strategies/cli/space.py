"""``optinas space``: print or sample the search space."""

from __future__ import annotations

from optinas.evaluator import load_task
from optinas.search_space import ConfigError, InputSpec, SearchSpace
from optinas.search_space.space_toml import describe_space

__all__ = ["add_parser", "run"]


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "space", help="print the search space and its size, or sample genotypes from it",
        description="Print every choice of the search space (the packaged default, or a TOML file) and "
                    "the exact number of distinct genotypes; with --sample N, print N genotypes as JSON lines.")
    parser.add_argument("--config", metavar="FILE", help="a search-space TOML file (default: the packaged "
                        "search_space/spaces/default.toml)")
    parser.add_argument("--task", default="digits", help="the task whose input shape and classes the space "
                        "is for (default: digits)")
    parser.add_argument("--sample", type=int, metavar="N", help="print N genotypes drawn uniformly, one JSON per line")
    parser.add_argument("--seed", type=int, default=0, help="seed of --sample (default: 0)")
    parser.set_defaults(handler=run)


def run(args) -> int:

    if args.sample is not None and not 1 <= args.sample <= 100_000:
        raise ConfigError(f"--sample must be between 1 and 100000, got {args.sample}")
    task = load_task(args.task, seed=0)
    channels, height, width = task.input_shape
    space = SearchSpace.from_toml(InputSpec(channels, height, width, task.num_classes), args.config)
    if args.sample is None:
        print(describe_space(space, args.config or "default.toml"), end="")
        return 0
    for genotype in space.sample_random(args.sample, args.seed):
        print(genotype.to_json())
    return 0
