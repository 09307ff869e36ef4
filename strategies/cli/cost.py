"""``optinas cost``: per-layer cost table of a genotype or preset."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

from optinas.search_space import ConfigError, InputSpec, count_cost, load_genotype
from optinas.search_space.errors import OptinasError, shown
from optinas.strategies.results.records import cost_table_text

__all__ = ["add_parser", "run"]


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "cost", help="per-layer cost table of a genotype or preset",
        description="Print ops (mul, add, xnor), BOPs, parameters, storage bits and energy per layer, "
                    "with totals in three views: everything; AdderNet's convention (weighted layers "
                    "other than the first and the last); every weighted layer.")
    parser.add_argument("genotype", help="a genotype JSON file, a runs/<study>/best/<trial> folder, "
                                         "or a preset name (e.g. resnet20, resnet18)")
    parser.add_argument("--hardware", metavar="PROFILE", help="energy profile: a shipped name "
                        "(horowitz45, int8_accelerator) or a .toml file (default: horowitz45)")
    parser.add_argument("--input", metavar="CxHxW", help="count for this input size instead of the genotype's, "
                                                         "e.g. 3x224x224")
    parser.add_argument("--json", action="store_true", help="print the cost as JSON (layers, total, paper, weighted)")
    parser.set_defaults(handler=run)


def _cost_target(text: str, input_text: str | None):
    """The genotype ``optinas cost`` counts: a file or folder, else a preset; ``--input`` resized."""

    if Path(text).exists() or text.endswith(".json") or "/" in text or "\\" in text:
        genotype = load_genotype(text)
    else:
        from optinas.search_space.presets import preset

        genotype = preset(text)
    if input_text is None:
        return genotype
    # At most 9 digits each: Python refuses to read integers of over 4,300 digits, and InputSpec
    # bounds every side far below 10**9 anyway (with a sentence naming it).
    match = re.fullmatch(r"\s*(\d{1,9})\s*[xX]\s*(\d{1,9})\s*[xX]\s*(\d{1,9})\s*", input_text)
    if not match or min(int(group) for group in match.groups()) < 1:
        raise ConfigError(f"--input must be CxHxW with positive integers, e.g. 3x32x32; got {shown(input_text)}")
    channels, height, width = (int(group) for group in match.groups())
    spec = InputSpec(channels, height, width, genotype.input.classes)
    try:
        return replace(genotype, input=spec)
    except OptinasError as error:
        raise ConfigError(f"--input {input_text}: {error}") from None


def run(args) -> int:

    genotype = _cost_target(args.genotype, args.input)
    cost = count_cost(genotype, args.hardware)
    if args.json:
        print(json.dumps(cost.to_dict(), indent=2))
    else:
        print(cost_table_text(genotype, cost), end="")
    return 0
