"""``optinas export``: a genotype (and weights) to standalone PyTorch source, ONNX or a torch.export file."""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

import torch

from optinas.search_space import build_model, count_cost, export_source, load_genotype
from optinas.search_space.deploy import export_onnx, export_pt2, require_export_extra
from optinas.search_space.errors import ConfigError, shown
from optinas.strategies.files import write_bytes_atomic, write_text_atomic

__all__ = ["export_to_file", "EXPORT_FORMATS"]

#: ``--format`` -> the file ending it writes: Python source, ONNX, a saved torch.export program.
EXPORT_FORMATS = {"py": ".py", "onnx": ".onnx", "pt2": ".pt2"}


def _checked_weights(genotype, weights: Path) -> bytes:
    """The weights file's bytes, once they are known to load strictly into this genotype.

    Nothing of the genotype's size is allocated: the state dict is first compared with the
    genotype's parameter count (``count_cost``, exact), then key by key and shape by shape with
    the model built on the meta device, so a huge genotype with small weights is refused at once.
    """

    if not weights.is_file():
        raise ConfigError(f"--weights {shown(str(weights))} " + ("is a folder; give a file" if weights.is_dir()
                                                                 else "does not exist"))
    data = weights.read_bytes()
    name = shown(str(weights))
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling errors of every kind mean: not a weights file
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"weights {name} are not a PyTorch state_dict file ({first})") from None
    if not isinstance(state, Mapping) or not all(isinstance(key, str) and isinstance(value, torch.Tensor)
                                                 for key, value in state.items()):
        raise ConfigError(f"weights {name} hold a {type(state).__name__}, not a state_dict (tensors by "
                          "parameter name, as torch.save(model.state_dict(), path) writes)")
    held, needed = sum(value.numel() for value in state.values()), count_cost(genotype).params
    if held < needed:
        raise ConfigError(f"weights {name} do not fit this genotype: they hold {held:,} numbers, the genotype "
                          f"has {needed:,} parameters")
    with torch.device("meta"):  # shapes only, no memory
        expected = build_model(genotype).state_dict()
    missing = [key for key in expected if key not in state]
    extra = [key for key in state if key not in expected]
    wrong = [key for key in expected if key in state and state[key].shape != expected[key].shape]
    if missing or extra:
        key, what = (missing[0], "lack") if missing else (extra[0], "have a tensor the genotype has no place for:")
        more = len(missing) + len(extra) - 1
        raise ConfigError(f"weights {name} do not fit this genotype: they {what} {shown(key)}"
                          + (f" (and {more} more such keys)" if more else ""))
    if wrong:
        key = wrong[0]
        raise ConfigError(f"weights {name} do not fit this genotype: {shown(key)} has shape "
                          f"{tuple(state[key].shape)}, the genotype needs {tuple(expected[key].shape)}")
    return data


def export_to_file(genotype_path: str, output: Path, weights: str | None = None, format: str = "py") -> Path:
    """Write ``output`` in ``format``; validates everything before writing.

    ``py`` writes one source file that imports only torch, with weights.pt copied beside it;
    ``onnx`` and ``pt2`` hold the weights themselves (an untrained model without ``weights``),
    with a dynamic batch dimension and every layer at its inference state.
    """
    if format not in EXPORT_FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(EXPORT_FORMATS)}; got {shown(format)}")
    if format == "onnx":
        require_export_extra()  # one line naming the extra to install, before anything else
    genotype = load_genotype(genotype_path)
    suffix = EXPORT_FORMATS[format]
    if output.suffix != suffix:
        raise ConfigError(f"--output must name a {suffix} file for --format {format}, got {shown(str(output))}")
    weight_bytes = _checked_weights(genotype, Path(weights)) if weights else None
    if format == "py":
        write_text_atomic(output, export_source(genotype, output.name))
        if weight_bytes is not None:
            write_bytes_atomic(output.parent / "weights.pt", weight_bytes)
        return output
    state = torch.load(io.BytesIO(weight_bytes), map_location="cpu", weights_only=True) if weight_bytes else None
    write_bytes_atomic(output, (export_onnx if format == "onnx" else export_pt2)(genotype, state))
    return output
