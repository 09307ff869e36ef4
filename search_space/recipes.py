"""Training recipes per layer kind: hooks the evaluator's loop calls around each step.

A layer kind that trains differently from float conv (adder's l_p schedule and adaptive
learning rate, AdderNet; straight-through estimators that need their scales clipped) declares
a ``TrainingRecipe`` subclass on its ``LayerKind``. The evaluator calls, for every kind present
in a model: ``before_step`` before each forward pass, ``after_backward`` between backward and
the optimizer step, and ``for_inference`` before every evaluation and at the end of training.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .registry import layer_kind_of

__all__ = ["TrainingRecipe", "recipes_for", "rescale_gradient"]


class TrainingRecipe:
    """Default recipe: plain training, nothing to do (float conv)."""

    def before_step(self, model: nn.Module, progress: float) -> None:
        """Called before each training forward pass; ``progress`` in [0, 1) over the whole run."""

    def after_backward(self, model: nn.Module) -> None:
        """Called after ``loss.backward()`` and before ``optimizer.step()``."""

    def for_inference(self, model: nn.Module) -> None:
        """Put the kind's layers in their inference state (e.g. adder p = 1)."""


@torch.no_grad()
def rescale_gradient(grad: torch.Tensor | None, eta: float) -> bool:
    """Adaptive learning-rate scaling (AdderNet, eq. 27): grad <- eta sqrt(k) / ||grad||_2 * grad.

    k = grad.numel(), so a layer steps by about eta sqrt(k) whatever its gradient norm.
    Shared by the adder recipe (the paper's use) and the binary one (latent weights).
    A missing, all-zero or non-finite gradient is left alone.

    Returns:
        Whether the gradient was rescaled.
    """
    if grad is None:
        return False
    norm = float(torch.linalg.vector_norm(grad, dtype=torch.float32))
    if not (norm > 0.0 and math.isfinite(norm)):
        return False
    grad.mul_(eta * math.sqrt(grad.numel()) / norm)
    return True


def recipes_for(model: nn.Module) -> list[TrainingRecipe]:
    """One recipe instance per layer kind present in ``model`` that declares one."""
    recipes: dict[str, TrainingRecipe] = {}
    for module in model.modules():
        found = layer_kind_of(module)
        if found is not None and found[0].recipe is not None and found[0].name not in recipes:
            recipes[found[0].name] = found[0].recipe()
    return list(recipes.values())
