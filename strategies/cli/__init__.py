"""The ``optinas`` command line: one module per command (search, train, space, cost, export, report,
reproduce, worker), each with ``add_parser(commands)`` and ``run(args)``.

Bad input of any kind (a flag, a file, a genotype) ends with one line on stderr and exit
code 2, never a traceback, and before anything is written under runs/.
"""

from __future__ import annotations

import argparse
import sys

from optinas.search_space.errors import OptinasError, shown
from optinas.strategies.cli import cost, export, report, reproduce, search, space, train, worker
from optinas.strategies.cli.common import EXIT_USAGE, ArgumentParser, one_line

__all__ = ["main", "build_parser", "COMMANDS"]

#: The commands, in the order ``optinas --help`` lists them.
COMMANDS = (search, train, cost, export, reproduce, space, report, worker)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="optinas", description="Hardware-aware architecture search over "
                            "optimizer-inspired blocks and cheap arithmetic.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    commands.required = True
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``optinas`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except OptinasError as error:
        print(one_line(f"optinas {args.command}: error: {error}"), file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:
        # The paths are checked up front (cli/paths.py); this is the net for what changes
        # between check and use (a disk that fills, a folder made read-only meanwhile).
        if error.filename is None:
            raise
        print(one_line(f"optinas {args.command}: error: cannot use {shown(str(error.filename))}: "
                       f"{error.strerror or error}"), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"optinas {args.command}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
