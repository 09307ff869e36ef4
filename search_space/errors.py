"""The one exception family of optinas.

Every error caused by user input (a genotype, a config, a flag, a data path) derives from
:class:`OptinasError`. The command line turns these into a single line and exit code 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["OptinasError", "GenotypeError", "ConfigError", "DataError"]


class OptinasError(Exception):
    """Base class: a message that says what was wrong, what was received and what to do."""


class GenotypeError(OptinasError, ValueError):
    """A genotype (or a part of one) is malformed."""


class ConfigError(OptinasError, ValueError):
    """A search, run or hardware setting is invalid."""


class DataError(OptinasError):
    """A task or data path cannot be loaded."""
