"""JSON from users (genotype files), read with bounds on everything that could exhaust memory,
time or the terminal.

``json.loads`` alone turns a 5,000-digit integer into a ``ValueError`` (Python's 4,300-digit
limit), deeply nested arrays into a ``RecursionError``, and keeps a 10 MB string that a later
message would echo whole. ``load_bounded_json`` refuses each with one ``GenotypeError``
sentence. The bounds are far above any genotype: 16 stages of 256 blocks with one override each
are about 400 kB of JSON and 7 levels deep.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import GenotypeError, shown

__all__ = ["load_bounded_json", "MAX_JSON_CHARS", "MAX_DEPTH", "MAX_INT_DIGITS", "MAX_STRING_CHARS"]

MAX_JSON_CHARS = 4_000_000
MAX_DEPTH = 32
MAX_INT_DIGITS = 20  # 64-bit integers have at most 20
MAX_STRING_CHARS = 1_000


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise GenotypeError(f"genotype: an integer of {len(text.lstrip('-')):,} digits ({shown(text, 40)}); "
                            f"numbers in a genotype have at most {MAX_INT_DIGITS}")
    return int(text)


def _where(path: tuple) -> str:
    return "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in path).lstrip(".") or "the top"


def _check_shape(data: Any) -> None:
    """Depth and string lengths, walked without recursion."""
    pending = [(data, ())]
    while pending:
        value, path = pending.pop()
        if len(path) > MAX_DEPTH:
            raise GenotypeError(f"genotype: nested more than {MAX_DEPTH} levels deep (at "
                                f"{shown(_where(path[:4]))}...); a genotype is a few levels of objects and lists")
        if isinstance(value, str) and len(value) > MAX_STRING_CHARS:
            raise GenotypeError(f"genotype: the text at {shown(_where(path), 120)} has {len(value):,} characters "
                                f"({shown(value, 40)}); names and values in a genotype have at most "
                                f"{MAX_STRING_CHARS}")
        if isinstance(value, dict):
            for key, item in value.items():
                pending.append((key, path + ("<key>",)))
                pending.append((item, path + (shown(key, 40) if len(key) > 40 else key,)))
        elif isinstance(value, list):
            pending.extend((item, path + (index,)) for index, item in enumerate(value))


def load_bounded_json(text: str | bytes) -> Any:
    """``json.loads(text)`` for a genotype, or a GenotypeError sentence saying which bound it broke."""
    if len(text) > MAX_JSON_CHARS:
        raise GenotypeError(f"genotype: {len(text):,} characters of JSON; a genotype is at most "
                            f"{MAX_JSON_CHARS:,}")
    try:
        data = json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as error:
        raise GenotypeError(f"genotype: not valid JSON ({error.msg} at line {error.lineno})") from None
    except RecursionError:
        raise GenotypeError(f"genotype: nested more than {MAX_DEPTH} levels deep; a genotype is a few "
                            "levels of objects and lists") from None
    except UnicodeDecodeError as error:
        raise GenotypeError(f"genotype: not UTF-8 text ({error.reason})") from None
    _check_shape(data)
    return data
