"""A CUDA-graph capture failure trains that trial eagerly, with one warning (CPU-only).

No GPU here: ``torch.cuda``'s stream and graph entry points are replaced by stand-ins
whose capture fails the way a real one does (an operation not permitted while the stream
is capturing), and the step runs on CPU tensors. The fallback must then train exactly as
the eager step does, warn once per trial, and leave the next trial free to capture.
"""

from __future__ import annotations

import contextlib
import logging

import pytest
import torch
from torch import nn

import optinas.evaluator.train as train_module
from optinas.evaluator import Fidelity, evaluate
from optinas.evaluator.graphs import WARMUP_STEPS, EagerStep, GraphedStep
from optinas.evaluator.train import make_optimizer
from optinas.search_space import Genotype, InputSpec, StageSpec, StemSpec, build_model

CAPTURE_FAILED = "CUDA graph capture failed"


class FakeStream:
    def wait_stream(self, other):
        pass


class FailingCapture:
    """``torch.cuda.graph`` whose capture fails on entry with ``error``; counts attempts."""

    error: BaseException = RuntimeError(
        "CUDA error: operation not permitted when stream is capturing")
    attempts = 0

    def __init__(self, graph, *args, **kwargs):
        pass

    def __enter__(self):
        type(self).attempts += 1
        raise self.error

    def __exit__(self, *exc):
        return False


@pytest.fixture
def failing_capture(monkeypatch):
    """The CUDA stream and graph API on the CPU, with every capture failing."""
    FailingCapture.attempts = 0
    monkeypatch.setattr(torch.cuda, "Stream", FakeStream)
    monkeypatch.setattr(torch.cuda, "current_stream", FakeStream)
    monkeypatch.setattr(torch.cuda, "stream", lambda stream: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "CUDAGraph", lambda: object())
    monkeypatch.setattr(torch.cuda, "graph", FailingCapture)
    return FailingCapture


def _model_and_batches(steps):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    gen = torch.Generator().manual_seed(1)
    batches = [(torch.randn(8, 1, 6, 6, generator=gen), torch.randint(0, 3, (8,), generator=gen))
               for _ in range(steps)]
    return model, batches


def _train(make_step, steps=WARMUP_STEPS + 3):
    model, batches = _model_and_batches(steps)
    lr = torch.full((), 0.1)
    optimizer = make_optimizer(model, Fidelity(lr=0.1), lr)  # fused SGD, tensor lr
    step = make_step(model, optimizer, lr)
    losses = [step(x, y, 0.1 * (i + 1), i / steps).item() for i, (x, y) in enumerate(batches)]
    return losses, model.state_dict(), step


def _graphed(model, optimizer, lr):
    return GraphedStep(model, optimizer, lr, nn.CrossEntropyLoss(), torch.bfloat16)


def _eager(model, optimizer, lr):
    return EagerStep(model, optimizer, nn.CrossEntropyLoss(), contextlib.nullcontext(), [])


@pytest.mark.filterwarnings("ignore:CUDA is not available")  # GraphedStep's CUDA autocast
@pytest.mark.parametrize("error", [
    RuntimeError("CUDA error: operation not permitted when stream is capturing"),
    TypeError("an op without a capturable kernel"),
])
def test_capture_failure_trains_the_trial_eagerly_with_one_warning(failing_capture, caplog, error,
                                                                   monkeypatch):
    monkeypatch.setattr(failing_capture, "error", error)
    with caplog.at_level(logging.WARNING, logger="optinas.evaluator"):
        losses, state, step = _train(_graphed)
    warnings = [r for r in caplog.records if CAPTURE_FAILED in r.getMessage()]
    assert len(warnings) == 1 and type(error).__name__ in warnings[0].getMessage()
    assert step.failed and step.graph is None and failing_capture.attempts == 1
    # The warm-up steps and every step after the failed capture are the eager step's.
    eager_losses, eager_state, _ = _train(_eager)
    assert losses == pytest.approx(eager_losses, rel=1e-6)
    for name, tensor in eager_state.items():
        torch.testing.assert_close(state[name], tensor, rtol=1e-6, atol=1e-6)


@pytest.mark.filterwarnings("ignore:CUDA is not available")  # GraphedStep's CUDA autocast
def test_capture_out_of_memory_is_raised_to_fail_the_trial(failing_capture, monkeypatch):
    monkeypatch.setattr(failing_capture, "error", torch.cuda.OutOfMemoryError("CUDA out of memory"))
    with pytest.raises(torch.cuda.OutOfMemoryError):
        _train(_graphed)


@pytest.mark.filterwarnings("ignore:CUDA is not available")  # GraphedStep's CUDA autocast
def test_each_trial_captures_again_and_warns_once(failing_capture, caplog, digits, monkeypatch):
    """Through ``evaluate``: a trial whose capture fails finishes eagerly; the next trial
    (a new step object) tries its own capture, and warns once too."""
    # Eligible on the CPU too, so evaluate builds a GraphedStep.
    monkeypatch.setattr(train_module, "graph_eligible", lambda device, wanted, recipes: wanted)
    genotype = Genotype(InputSpec(1, 8, 8, 10), StemSpec(8), (StageSpec(1, 8),))
    fidelity = Fidelity(epochs=2, lr=0.2, cuda_graphs=True)  # 17 steps an epoch: capture at the 4th
    results = []
    with caplog.at_level(logging.WARNING, logger="optinas.evaluator"):
        for trial in range(2):
            torch.manual_seed(0)
            results.append(evaluate(build_model(genotype), digits, fidelity, seed=trial))
            warned = [r for r in caplog.records if CAPTURE_FAILED in r.getMessage()]
            assert len(warned) == trial + 1 and failing_capture.attempts == trial + 1
    torch.manual_seed(0)
    eager = evaluate(build_model(genotype), digits, Fidelity(epochs=2, lr=0.2), seed=0)
    assert results[0].val_accuracy == pytest.approx(eager.val_accuracy, abs=0.02)
    assert results[0].train_loss == pytest.approx(eager.train_loss, rel=1e-3)
    assert all(r.val_accuracy > 0.3 for r in results)  # chance: 0.1
