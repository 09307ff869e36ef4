"""Reading genotypes from files, with one clear sentence for every way that can fail."""

from __future__ import annotations

from pathlib import Path

from .errors import GenotypeError, shown
from .genotype import Genotype
from .json_limits import MAX_JSON_CHARS
from .presets import PRESETS, VARIANT_SUFFIXES, preset

__all__ = ["load_genotype"]


def load_genotype(path: str | Path) -> Genotype:
    """Read a genotype JSON file (as written by ``Genotype.to_json`` or found in runs/), or a preset.

    A name from ``optinas.search_space.presets.PRESETS`` (e.g. "resnet20") that is not an existing
    file gives that preset, at its paper's input size.
    """
    if str(path) in PRESETS and not Path(path).exists():
        return preset(str(path))
    path = Path(path)
    if not path.exists():
        names = [name for name in PRESETS if not name.endswith(VARIANT_SUFFIXES)]
        raise GenotypeError(
            f"genotype file {shown(str(path))} does not exist and is not a preset name "
            f"({', '.join(names)}, and resnetN{'/'.join(VARIANT_SUFFIXES)})"
        )
    if path.is_dir():
        candidate = path / "genotype.json"
        if not candidate.exists():
            raise GenotypeError(f"{shown(str(path))} is a folder without a genotype.json")
        path = candidate
    if not path.is_file():
        raise GenotypeError(f"genotype file {shown(str(path))} is not a regular file")
    if path.stat().st_size > MAX_JSON_CHARS:  # refused before it is read into memory
        raise GenotypeError(f"genotype file {shown(str(path))} has {path.stat().st_size:,} bytes; a genotype "
                            f"is at most {MAX_JSON_CHARS:,}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise GenotypeError(f"genotype file {shown(str(path))} is not UTF-8 text ({error.reason} at byte "
                            f"{error.start})") from None
    except OSError as error:
        raise GenotypeError(f"cannot read genotype file {shown(str(path))}: {error.strerror or error}") from None
    try:
        return Genotype.from_json(text)
    except GenotypeError as error:
        raise GenotypeError(f"{path}: {error}") from None
