"""The one exception family of optinas.

Every error caused by user input (a genotype, a config, a flag, a data path) derives from
:class:`OptinasError`. The command line turns these into a single line and exit code 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["OptinasError", "GenotypeError", "ConfigError", "DataError", "shown", "SHOWN_CHARS"]

#: Longest echo of a user value in a message; a 10 MB string in a genotype stays a short line.
SHOWN_CHARS = 80


class OptinasError(Exception):
    """Base class: a message that says what was wrong, what was received and what to do."""


class GenotypeError(OptinasError, ValueError):
    """A genotype (or a part of one) is malformed."""


class ConfigError(OptinasError, ValueError):
    """A search, run or hardware setting is invalid."""


class DataError(OptinasError):
    """A task or data path cannot be loaded."""


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """``repr(value)`` for an error message, clipped to about ``limit`` characters.

    The middle goes (``'xxxx...xxxx' (10000000 characters)``), so both ends of a long path or
    name stay visible; newlines and other control characters are escaped by ``repr``.
    """
    text = repr(value)
    if len(text) <= limit:
        return text
    keep = max(8, limit - 8) // 2
    size = f" ({len(value):,} characters)" if isinstance(value, (str, bytes)) else ""
    return f"{text[:keep]}...{text[-keep:]}{size}"
