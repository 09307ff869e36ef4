"""Deployable export of the CIFAR ResNet-20 presets: seconds and graph size, against the old path.

The optinas path is ``export_onnx`` / ``export_pt2`` (``optinas.search_space.deploy``): the
inference forms of ``deploy_layers`` traced once with a dynamic batch, converted, loaded back
and checked against the model. The baseline is what exporting the in-package model gives
(``torch.onnx.export(model, dynamo=True)`` at a fixed batch of 2: with a dynamic batch the
adder kernel's batch-chunk loop makes ``torch.export`` fail). Both run in this process,
one after the other; the script prints seconds, ONNX node counts and the ratio.

    python benchmarks/bench_export_formats.py                    # resnet20-adder, with baseline
    python benchmarks/bench_export_formats.py --presets resnet20 resnet20-binary --no-baseline
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import time

# The in-package adder kernel compiles itself on first use; the baseline traces its eager
# form, which is what an export of the model meets.
os.environ.setdefault("OPTINAS_ADDER_COMPILE", "0")  # before optinas is imported

import onnx
import torch

from optinas.search_space import build_model
from optinas.search_space.deploy import export_onnx, export_pt2
from optinas.search_space.presets import preset


def _timed(function, *args):
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


def _baseline(model, shape):
    """The old path: the in-package model through torch's ONNX exporter, batch fixed at 2."""
    example = torch.zeros((2, *shape))
    with contextlib.redirect_stdout(io.StringIO()):
        program = torch.onnx.export(model, (example,), dynamo=True, verbose=False)
    return len(program.model_proto.graph.node)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="*", default=["resnet20-adder"])
    parser.add_argument("--no-baseline", action="store_true", help="skip the (slow) old path")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{'preset':<16} {'pt2 s':>6} {'onnx s':>7} {'nodes':>6} {'baseline s':>10} {'nodes':>6} {'ratio':>6}")
    for name in args.presets:
        genotype = preset(name)
        torch.manual_seed(0)
        model = build_model(genotype).eval()
        state = model.state_dict()
        _, pt2_seconds = _timed(export_pt2, genotype, state)
        data, onnx_seconds = _timed(export_onnx, genotype, state)
        nodes = len(onnx.load_from_string(data).graph.node)
        row = f"{name:<16} {pt2_seconds:>6.1f} {onnx_seconds:>7.1f} {nodes:>6}"
        if not args.no_baseline:
            old_nodes, old_seconds = _timed(_baseline, model, genotype.input.shape)
            row += f" {old_seconds:>10.1f} {old_nodes:>6} {old_seconds / onnx_seconds:>5.1f}x"
        print(row, flush=True)


if __name__ == "__main__":
    main()
