"""One training step as a function of a batch, eager or replayed from a CUDA graph.

A proxy candidate is small: on a GPU a ResNet-20 step is hundreds of short kernels, and
launching them from Python can take longer than running them. Capturing the step once in
a CUDA graph (``Fidelity(cuda_graphs=True)``) replays all of them with one launch. What the
capture needs, and how this module provides it:

- static tensors: each batch is copied into the captured input and target buffers;
- a learning rate that changes without re-capture: the optimizer is fused SGD with the
  learning rate as a one-element CUDA tensor, filled before each replay;
- no host synchronisation inside the step: the loss is read back only by the caller's
  once-an-epoch divergence check, and layer kinds with training recipes (adder: host-side
  p schedule and gradient norms) are not captured at all (``graph_eligible``);
- warm-up on a side stream before capture (lazy allocations, first-batch initialisations
  such as LSQ's activation step), as the PyTorch CUDA-graph notes prescribe; these warm-up
  steps are real training steps on real batches.

If capture fails anyway (an op that synchronises, an op or library that cannot be
captured; any error but running out of memory), the step logs one warning and runs eagerly
for the rest of that trial; the next trial tries to capture again. Nothing of the failed
capture ran (a capture records kernels, it does not execute them), so the eager steps
continue from the warm-up's state: a slower trial is better than a failed one.
"""

from __future__ import annotations

import logging
from typing import Callable

import torch
from torch import nn

__all__ = ["EagerStep", "GraphedStep", "graph_eligible", "WARMUP_STEPS"]

#: Eager steps on a side stream before the capture.
WARMUP_STEPS = 3
_LOG = logging.getLogger("optinas.evaluator")


def graph_eligible(device: torch.device, requested: bool, recipes: list) -> bool:
    """Whether the training step will be captured: CUDA, requested, no per-step host hooks."""
    return requested and device.type == "cuda" and not recipes


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


class EagerStep:
    """forward, loss, backward, recipe hooks, optimizer step; returns the detached loss."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                 loss_fn: Callable, autocast: torch.autocast, recipes: list) -> None:
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.autocast, self.recipes = autocast, recipes

    def __call__(self, inputs: torch.Tensor, targets: torch.Tensor, lr: float,
                 progress: float) -> torch.Tensor:
        _set_lr(self.optimizer, lr)
        for recipe in self.recipes:
            recipe.before_step(self.model, progress)
        with self.autocast:
            logits = self.model(inputs)
        loss = self.loss_fn(logits.float(), targets)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for recipe in self.recipes:
            recipe.after_backward(self.model)
        self.optimizer.step()
        return loss.detach()


class GraphedStep:
    """The same step, captured in a CUDA graph after ``WARMUP_STEPS`` eager ones.

    Args:
        model: The model, on a CUDA device, in training mode.
        optimizer: Fused SGD whose every group's ``lr`` is the tensor ``lr``.
        lr: The one-element CUDA tensor holding the learning rate.
        loss_fn: ``loss_fn(float32 logits, targets) -> scalar``.
        dtype: The autocast dtype (bfloat16).
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, lr: torch.Tensor,
                 loss_fn: Callable, dtype: torch.dtype) -> None:
        self.model, self.optimizer, self.loss_fn, self.lr = model, optimizer, loss_fn, lr
        # Autocast's weight-cast cache would hold tensors from outside the graph's pool.
        self.autocast = torch.autocast("cuda", dtype=dtype, cache_enabled=False)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.failed = False
        self.calls = 0
        self.static: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def _eager(self, inputs, targets) -> torch.Tensor:
        with self.autocast:
            logits = self.model(inputs)
        loss = self.loss_fn(logits.float(), targets)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def _capture(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        static_inputs, static_targets = inputs.clone(), targets.clone()
        self.optimizer.zero_grad(set_to_none=True)  # gradients are allocated in the graph's pool
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            with self.autocast:
                logits = self.model(static_inputs)
            static_loss = self.loss_fn(logits.float(), static_targets)
            static_loss.backward()
            self.optimizer.step()
        self.graph, self.static = graph, (static_inputs, static_targets, static_loss.detach())

    def __call__(self, inputs: torch.Tensor, targets: torch.Tensor, lr: float,
                 progress: float) -> torch.Tensor:
        self.lr.fill_(lr)  # a device-side fill: no synchronisation, read by the fused kernel
        self.calls += 1
        if self.failed:
            return self._eager(inputs, targets)
        if self.graph is None and self.calls <= WARMUP_STEPS:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                loss = self._eager(inputs, targets)
            torch.cuda.current_stream().wait_stream(side)
            return loss
        if self.graph is None:
            try:
                self._capture(inputs, targets)
            except torch.cuda.OutOfMemoryError:
                raise  # the evaluator fails the trial and frees the memory
            except Exception as error:  # noqa: BLE001 - whatever broke the capture, not the step
                text = str(error).strip()
                reason = type(error).__name__ + (f": {text.splitlines()[0]}" if text else "")
                _LOG.warning("CUDA graph capture failed (%s); training this candidate eagerly",
                             reason)
                self.failed, self.graph = True, None
                self.optimizer.zero_grad(set_to_none=True)
                return self._eager(inputs, targets)
        static_inputs, static_targets, static_loss = self.static
        static_inputs.copy_(inputs)
        static_targets.copy_(targets)
        self.graph.replay()
        return static_loss.clone()
