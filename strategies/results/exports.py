"""``optinas export``: a genotype (and weights) to a standalone .py file."""

from __future__ import annotations

import io
from pathlib import Path

import torch

from optinas.search_space import build_model, export_source, load_genotype
from optinas.search_space.errors import ConfigError
from optinas.strategies.files import write_bytes_atomic, write_text_atomic

__all__ = ["export_to_file"]


def _checked_weights(genotype, weights: Path) -> bytes:
    """The weights file's bytes, once they are known to load strictly into this genotype."""

    if not weights.is_file():
        raise ConfigError(f"weights file {str(weights)!r} does not exist")
    data = weights.read_bytes()
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        build_model(genotype).load_state_dict(state, strict=True)
    except Exception as error:  # unpickling and shape errors alike mean: not this model's weights
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"weights {str(weights)!r} do not fit this genotype: {first_line}") from None
    return data


def export_to_file(genotype_path: str, output: Path, weights: str | None = None) -> Path:
    """Write ``output`` (and weights.pt beside it); validates everything before writing."""
    genotype = load_genotype(genotype_path)
    if output.suffix != ".py":
        raise ConfigError(f"--output must name a .py file, got {str(output)!r}")
    weight_bytes = _checked_weights(genotype, Path(weights)) if weights else None
    write_text_atomic(output, export_source(genotype, output.name))
    if weight_bytes is not None:
        write_bytes_atomic(output.parent / "weights.pt", weight_bytes)
    return output
