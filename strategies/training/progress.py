"""The terminal view of a training run (rich): a bar over all steps with epoch, loss,
validation accuracy and the time left, plus one line per finished epoch."""

from __future__ import annotations

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from optinas.evaluator.full_training import EpochRecord
from optinas.strategies.progress import TerminalProgress

__all__ = ["TrainProgress"]


class TrainProgress(TerminalProgress):
    """Context manager; ``enabled=False`` (``--quiet``, or a rank other than 0) shows nothing."""

    def __init__(self, label: str, epochs: int, steps_per_epoch: int, epochs_done: int,
                 enabled: bool = True) -> None:
        self.label, self.epochs, self.steps = label, epochs, steps_per_epoch
        self.done, self.enabled = epochs_done, enabled
        self.val = "-"

    def __enter__(self) -> "TrainProgress":
        if self.enabled:
            self.progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(),
                TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}  loss {task.fields[loss]}"
                           "  val acc {task.fields[val]}"),
                TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn())
            self.progress.__enter__()
            self.task = self.progress.add_task(
                f"train {self.label}", total=self.epochs * self.steps, completed=self.done * self.steps,
                epoch=min(self.done + 1, self.epochs), epochs=self.epochs, loss="-", val=self.val)
        return self


    def step(self, step: int, loss: float) -> None:
        if self.enabled:
            self.progress.update(self.task, advance=1, loss=f"{loss:.3f}")

    def epoch_done(self, record: EpochRecord) -> None:
        if not self.enabled:
            return
        self.val = f"{record.val_accuracy:.4f}"
        self.progress.console.print(
            f"epoch {record.epoch:>4}/{self.epochs}  loss {record.train_loss:.4f}  "
            f"val acc {record.val_accuracy:.4f}  {record.seconds:6.1f}s")
        self.progress.update(self.task, val=self.val, epoch=min(record.epoch + 1, self.epochs))
