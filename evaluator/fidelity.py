"""The proxy training recipe (:class:`Fidelity`) and what one evaluation returns.

Both are small flat frozen dataclasses, like Ray Tune's config objects: a recipe is a run
setting, separate from the architecture, and it is validated where it is built so that a
bad TOML value is reported as one sentence naming the field.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from optinas.search_space.errors import ConfigError

__all__ = ["Fidelity", "EvalResult"]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Fidelity:
    """How long and how a candidate is trained: the fidelity of the proxy score.

    SGD with Nesterov momentum; the learning rate rises linearly from 0 over
    ``warmup_epochs`` and falls linearly to 0 over the remaining steps, set every step.

    Attributes:
        epochs: Passes over the (possibly reduced) training split.
        batch_size: Images per step; the last partial batch of an epoch is dropped, so
            every step has the same size (a batch of one breaks BatchNorm).
        lr: Peak learning rate.
        momentum: Nesterov momentum in ``[0, 1)``; 0 gives plain SGD.
        weight_decay: L2 penalty on weights of convolutions and linear layers only, not
            on BatchNorm parameters, biases or scalar block coefficients.
        warmup_epochs: Length of the linear warm-up, in epochs (may be fractional).
        label_smoothing: Label smoothing of the training loss, in ``[0, 1)``.
        train_fraction: Share of the training split used, in ``(0, 1]``; the subset is
            fixed by the seed.
        time_limit_s: Wall-time limit of one evaluation in seconds; None for none.
        width_multiplier: Proxy width: every stem and stage width is scaled by it (rounded,
            at least 1). The caller applies it to the genotype before building the model,
            with :func:`evaluator.proxy_genotype`; cost is still counted on the full one.
        resolution: Proxy input size: images are resized to ``resolution`` x
            ``resolution`` on the device, once per task (None: the task's own size).
            Build the model with :func:`evaluator.proxy_genotype` too, so that layers
            sized by their input (binary rank-1 scales) match.
        cuda_graphs: On CUDA, capture the training step (forward, backward, optimizer) in
            a CUDA graph and replay it, which removes the per-kernel launch cost of small
            models. Models whose layer kinds declare a training recipe (adder) run
            eagerly, since their hooks read values back on the host every step.
    """

    epochs: int = 8
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    train_fraction: float = 1.0
    time_limit_s: float | None = None
    width_multiplier: float = 1.0
    resolution: int | None = None
    cuda_graphs: bool = False

    def __post_init__(self) -> None:
        def bad(field: str, allowed: str) -> ConfigError:
            return ConfigError(f"Fidelity.{field} must be {allowed}, got {getattr(self, field)!r}")

        if not _is_int(self.epochs) or self.epochs < 1:
            raise bad("epochs", "a positive integer")
        if not _is_int(self.batch_size) or self.batch_size < 1:
            raise bad("batch_size", "a positive integer")
        if not _is_number(self.lr) or self.lr <= 0:
            raise bad("lr", "a positive number")
        if not _is_number(self.momentum) or not 0 <= self.momentum < 1:
            raise bad("momentum", "a number in [0, 1)")
        if not _is_number(self.weight_decay) or self.weight_decay < 0:
            raise bad("weight_decay", "a non-negative number")
        if not _is_number(self.warmup_epochs) or not 0 <= self.warmup_epochs <= self.epochs:
            raise bad("warmup_epochs", f"a number in [0, epochs={self.epochs}]")
        if not _is_number(self.label_smoothing) or not 0 <= self.label_smoothing < 1:
            raise bad("label_smoothing", "a number in [0, 1)")
        if not _is_number(self.train_fraction) or not 0 < self.train_fraction <= 1:
            raise bad("train_fraction", "a number in (0, 1]")
        if self.time_limit_s is not None and (
            not _is_number(self.time_limit_s) or self.time_limit_s <= 0
        ):
            raise bad("time_limit_s", "a positive number of seconds or None")
        if not _is_number(self.width_multiplier) or not 0 < self.width_multiplier <= 16:
            raise bad("width_multiplier", "a number in (0, 16]")
        if self.resolution is not None and (
            not _is_int(self.resolution) or not 1 <= self.resolution <= 4096
        ):
            raise bad("resolution", "an integer in [1, 4096] or None")
        if not isinstance(self.cuda_graphs, bool):
            raise bad("cuda_graphs", "True or False")

    def to_dict(self) -> dict[str, Any]:
        """The recipe as a plain dict (for ``config.toml`` and trial records)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Fidelity:
        """Builds a recipe from a dict, refusing keys it does not know.

        Raises:
            ConfigError: On an unknown key or an invalid value.
        """
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"unknown Fidelity field(s) {', '.join(map(repr, unknown))}; "
                f"known fields: {', '.join(sorted(known))}"
            )
        return cls(**values)


@dataclass(frozen=True)
class EvalResult:
    """The scores of one evaluated candidate.

    For a regression task the accuracies are None and the losses are mean squared errors.

    Attributes:
        val_accuracy: Top-1 accuracy on the validation split, in ``[0, 1]`` (the score a
            search optimises).
        test_accuracy: Top-1 accuracy on the test split (reported, never optimised).
        val_loss: Mean cross-entropy on the validation split, without label smoothing.
        train_loss: Mean training loss of the last epoch, with label smoothing.
        wall_time_s: Seconds spent training and evaluating, data copy included.
        epochs: Epochs completed.
        test_loss: Mean cross-entropy (or squared error) on the test split.
    """

    val_accuracy: float | None
    test_accuracy: float | None
    val_loss: float
    train_loss: float
    wall_time_s: float
    epochs: int
    test_loss: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        """The result as a plain, JSON-serialisable dict."""
        return dataclasses.asdict(self)
