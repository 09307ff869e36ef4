"""Training recipes per layer kind: hooks the evaluator's loop calls around each step.

A layer kind that trains differently from float conv (adder's l_p schedule and adaptive
learning rate, seed 000; straight-through estimators that need their scales clipped) declares
a ``TrainingRecipe`` subclass on its ``LayerKind``. The evaluator calls, for every kind present
in a model: ``before_step`` before each forward pass, ``after_backward`` between backward and
the optimizer step, and ``for_inference`` before every evaluation and at the end of training.
"""

from __future__ import annotations

from torch import nn

__all__ = ["TrainingRecipe", "recipes_for"]


class TrainingRecipe:
    """Default recipe: plain training, nothing to do (float conv)."""

    def before_step(self, model: nn.Module, progress: float) -> None:
        """Called before each training forward pass; ``progress`` in [0, 1) over the whole run."""

    def after_backward(self, model: nn.Module) -> None:
        """Called after ``loss.backward()`` and before ``optimizer.step()``."""

    def for_inference(self, model: nn.Module) -> None:
        """Put the kind's layers in their inference state (e.g. adder p = 1)."""


def recipes_for(model: nn.Module) -> list[TrainingRecipe]:
    """One recipe instance per layer kind present in ``model`` that declares one."""
    from .registry import layer_kind_of

    recipes: dict[str, TrainingRecipe] = {}
    for module in model.modules():
        found = layer_kind_of(module)
        if found is not None and found[0].recipe is not None and found[0].name not in recipes:
            recipes[found[0].name] = found[0].recipe()
    return list(recipes.values())
