"""Deployable exports of a network: an ONNX model or a ``torch.export`` program (.pt2).

Both take the network at its inference state (eval mode, adder layers at p = 1) in the
plain-op forms of ``deploy_layers``, with a dynamic batch dimension, and are checked before
they are returned: the serialized bytes are loaded back (``torch.export.load``, or an
onnxruntime session) and run at batch 1 against the in-package model and at batch 3 against
the traced network, relative error (max |exported - model| / max |model|) at most
``CHECK_TOLERANCE``. They return bytes, so that the caller writes the file atomically.
The ``py`` format (one standalone source file) is ``optinas.search_space.export``.

ONNX needs the ``export`` extra (onnx and onnxscript for torch's exporter, onnxruntime for
the check); ``pt2`` needs only torch.
"""

from __future__ import annotations

import contextlib
import importlib
import io
from collections.abc import Callable, Mapping

import torch
from torch import nn

from .builder import build_model
from .deploy_layers import inference_network
from .errors import ConfigError
from .genotype import Genotype

__all__ = [
    "CHECK_TOLERANCE",
    "FORMATS",
    "export_onnx",
    "export_program",
    "export_pt2",
    "program_to_onnx",
    "program_to_pt2",
    "relative_error",
    "require_export_extra",
]

#: Deployable formats this module writes (``py`` lives in ``export``).
FORMATS = ("onnx", "pt2")
#: Largest relative error (max |a - b| / max |b|) the built-in check lets through. It catches
#: a wrong graph (errors of order 1), not rounding: sign and round turn float32 differences
#: of summation order into steps, and on tiny maps after BatchNorm these reached 8e-4 (60
#: random genotypes on 4x4 to 8x6 images). tests/search_space/test_export_formats.py holds
#: the exports of real networks to 1e-4.
CHECK_TOLERANCE = 1e-2
_EXTRA = ("onnx", "onnxscript", "onnxruntime")
_CHECK_BATCHES = (1, 3)  # neither is the traced example batch (2): the dynamic dimension is used


def require_export_extra() -> None:
    """Raise ConfigError, in one line, unless the ``export`` extra's packages import."""
    missing = []
    for name in _EXTRA:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ConfigError(
            f"--format onnx needs the export extra ({', '.join(missing)} missing): "
            "pip install 'optinas[export]'"
        )


def export_program(model: nn.Module, input_shape: tuple[int, int, int]) -> torch.export.ExportedProgram:
    """``model``'s inference form traced by ``torch.export`` with a dynamic batch dimension.

    Args:
        model: an optinas network (any mode; it is copied, not changed).
        input_shape: (channels, height, width) of one image; only the batch may vary.
    """
    return _trace(inference_network(model), input_shape)


def _trace(network, input_shape):
    # A fixed example: the trace must not depend on the caller's random state.
    example = torch.randn((2, *input_shape), generator=torch.Generator().manual_seed(0))
    batch = torch.export.Dim("batch", min=1)
    return torch.export.export(network, (example,), dynamic_shapes=({0: batch},))


def program_to_pt2(program: torch.export.ExportedProgram) -> bytes:
    """The bytes ``torch.export.save`` writes for ``program``."""
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


def program_to_onnx(program: torch.export.ExportedProgram) -> bytes:
    """``program`` converted by torch's ONNX exporter, serialized (input ``images``, output ``logits``).

    Raises:
        ConfigError: the ``export`` extra is not installed.
    """
    require_export_extra()
    # The exporter prints progress lines; callers (the CLI) own stdout.
    with contextlib.redirect_stdout(io.StringIO()):
        onnx_program = torch.onnx.export(program, dynamo=True, input_names=["images"],
                                         output_names=["logits"], verbose=False)
    proto = onnx_program.model_proto
    # The exporter names the batch after its internal symbol ("s77"); readers expect a word.
    symbol = proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param
    for value in (*proto.graph.input, *proto.graph.output, *proto.graph.value_info):
        for dim in value.type.tensor_type.shape.dim:
            if symbol and dim.dim_param == symbol:
                dim.dim_param = "batch"
    return proto.SerializeToString()


def export_pt2(genotype: Genotype, state_dict: Mapping[str, torch.Tensor] | None = None) -> bytes:
    """A checked ``torch.export`` program of ``genotype`` (with ``state_dict`` if given), as bytes.

    Load it with ``torch.export.load(path).module()``; it takes (N, C, H, W) for any N >= 1.

    Raises:
        ConfigError: ``state_dict`` does not fit the genotype.
    """
    model = _model(genotype, state_dict)
    network = inference_network(model)
    data = program_to_pt2(_trace(network, genotype.input.shape))
    program = torch.export.load(io.BytesIO(data))
    _check(model, network, program.module(), genotype.input.shape, "pt2")
    return data


def export_onnx(genotype: Genotype, state_dict: Mapping[str, torch.Tensor] | None = None) -> bytes:
    """A checked ONNX model of ``genotype`` (with ``state_dict`` if given), as bytes.

    Input ``images`` (batch, C, H, W) with a symbolic batch, output ``logits`` (batch, classes).

    Raises:
        ConfigError: the ``export`` extra is missing, or ``state_dict`` does not fit.
    """
    require_export_extra()
    model = _model(genotype, state_dict)
    network = inference_network(model)
    data = program_to_onnx(_trace(network, genotype.input.shape))
    _check(model, network, _onnx_runner(data), genotype.input.shape, "onnx")
    return data


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max |actual - expected| / max |expected| (0 when both are all zeros)."""
    scale = expected.abs().max().item()
    difference = (actual - expected).abs().max().item()
    return difference / scale if scale > 0 else difference


def _model(genotype, state_dict):
    """The in-package network in eval mode: ``state_dict`` loaded strictly, else seeded weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # without weights the export is still reproducible
        model = build_model(genotype)
    if state_dict is not None:
        try:
            model.load_state_dict(state_dict, strict=True)
        except (RuntimeError, ValueError) as error:
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise ConfigError(f"the weights do not fit this genotype: {first_line}") from None
    return model.eval()


def _onnx_runner(data: bytes) -> Callable[[torch.Tensor], torch.Tensor]:
    # Lazy: onnxruntime is an optional (export extra) and heavy import; pt2 never needs it.
    import onnxruntime

    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: torch.from_numpy(session.run(None, {name: x.numpy()})[0])


@torch.no_grad()
def _check(model, network, run, input_shape, form):
    """Raise RuntimeError (a bug, not bad input) if ``run`` differs from the model.

    Batch 1 is compared with the in-package model (which checks the inference forms), batch
    3 with the traced inference network (which checks the dynamic batch): the in-package CPU
    adder kernel may compile itself for a new batch size, seconds an export should not pay.
    """
    generator = torch.Generator().manual_seed(1)
    for batch, reference in zip(_CHECK_BATCHES, (model, network)):
        x = torch.randn((batch, *input_shape), generator=generator)
        error = relative_error(run(x), reference(x))
        if not error <= CHECK_TOLERANCE:
            raise RuntimeError(f"the {form} export differs from the model at batch {batch}: "
                               f"relative error {error:.2e} > {CHECK_TOLERANCE:g}")
