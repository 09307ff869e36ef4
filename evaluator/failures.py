"""How a trial fails: one exception, and a cheap on-device watch for a diverging loss.

A failed trial is an expected outcome of a search (a learning rate too high for an adder
network, a candidate too big for the GPU), not a bug: :class:`TrialFailed` carries one
sentence that the strategies record with the trial, and ``kind`` lets a report group them.
"""

from __future__ import annotations

import math

import torch

from optinas.search_space.errors import OptinasError

__all__ = ["TrialFailed", "FAILURE_KINDS", "DivergenceWatch", "nonfinite_word"]

#: The values of :attr:`TrialFailed.kind`.
FAILURE_KINDS = ("diverged", "out_of_memory", "time_limit")


class TrialFailed(OptinasError):
    """A candidate could not be evaluated; ``str(exc)`` is the one-sentence reason.

    Attributes:
        reason: The sentence, e.g. ``"training diverged: loss became nan at epoch 3 of 8,
            step 12 of 17"``.
        kind: One of :data:`FAILURE_KINDS`, for grouping failures in records and reports.
    """

    def __init__(self, reason: str, kind: str = "diverged") -> None:
        if kind not in FAILURE_KINDS:
            raise ValueError(f"TrialFailed kind must be one of {FAILURE_KINDS}, got {kind!r}")
        super().__init__(reason)
        self.reason = reason
        self.kind = kind

    def __reduce__(self):
        # Keep ``kind`` when the exception crosses a process boundary (Ray workers pickle it).
        return (type(self), (self.reason, self.kind))


def nonfinite_word(value: float) -> str:
    """Names a non-finite float the way a user reads it: ``nan``, ``inf`` or ``-inf``."""
    if math.isnan(value):
        return "nan"
    return "inf" if value > 0 else "-inf"


class DivergenceWatch:
    """Remembers the first step whose training loss was not finite.

    On a GPU, reading the loss back every step (``loss.item()``) stalls the launch queue,
    so the first bad step and its value are kept in device tensors with ``torch.where``
    and read once per epoch. On the CPU reading is free, so :meth:`update` can check
    immediately and the trial stops at the step that diverged.

    Args:
        device: Where the losses live.
        epochs: Total epochs, for the message.
        steps_per_epoch: Steps in one epoch, to turn a global step into (epoch, step).
        check_every_step: Raise from :meth:`update` instead of waiting for :meth:`check`.
    """

    def __init__(
        self, device: torch.device, epochs: int, steps_per_epoch: int, check_every_step: bool
    ) -> None:
        self._epochs = epochs
        self._steps_per_epoch = steps_per_epoch
        self._check_every_step = check_every_step
        self._first_step = torch.full((), -1, dtype=torch.int64, device=device)
        self._first_value = torch.zeros((), dtype=torch.float32, device=device)

    def update(self, loss: torch.Tensor, global_step: int) -> None:
        """Records ``loss`` (a detached scalar) for the 0-based ``global_step``."""
        loss = loss.detach().float()
        if self._check_every_step:
            if not math.isfinite(loss.item()):
                self._raise(global_step, loss.item())
            return
        is_first = ~torch.isfinite(loss) & (self._first_step < 0)
        self._first_step = torch.where(is_first, global_step, self._first_step)
        self._first_value = torch.where(is_first, loss, self._first_value)

    def check(self) -> None:
        """Raises :class:`TrialFailed` if any recorded loss was nan or inf."""
        first_step = int(self._first_step.item())
        if first_step >= 0:
            self._raise(first_step, float(self._first_value.item()))

    def _raise(self, global_step: int, value: float) -> None:
        epoch, step = divmod(global_step, self._steps_per_epoch)
        raise TrialFailed(
            f"training diverged: loss became {nonfinite_word(value)} at epoch {epoch + 1} of "
            f"{self._epochs}, step {step + 1} of {self._steps_per_epoch}; a lower learning rate "
            "or a longer warm-up may help",
            kind="diverged",
        )
