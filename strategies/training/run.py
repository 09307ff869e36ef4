"""``optinas train`` for one target: validate, resume or start, train epoch by epoch, export.

A rerun of the same command continues after the last finished epoch (its checkpoint holds
the metrics so far, so no epoch is ever repeated or lost), and a finished run is reported,
not retrained. Under torchrun every rank trains; only rank 0 writes.
"""

from __future__ import annotations

import hashlib
import io
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import torch

from optinas.evaluator import load_task, resolve_device
from optinas.evaluator.distributed import World, join_from_env, leave, world_from_env
from optinas.evaluator.full_training import FullTraining
from optinas.search_space import InputSpec, build_model, export_source
from optinas.strategies.files import write_bytes_atomic, write_text_atomic
from optinas.strategies.training.progress import TrainProgress
from optinas.strategies.training.records import (
    check_settings,
    latest_checkpoint,
    load_checkpoint,
    read_metrics,
    save_checkpoint,
    write_curves,
    write_metrics,
    write_settings,
)
from optinas.strategies.training.settings import Target, TrainSettings, resolve_target, with_study_defaults

__all__ = ["TrainOutcome", "train_target", "prepare_target"]

#: Test hooks (environment variables), so tests synchronise on events rather than on timing:
#: SIGKILL this process right after epoch N's checkpoint and metrics are written ...
KILL_AFTER_EPOCH_ENV = "OPTINAS_TEST_KILL_AFTER_EPOCH"
#: ... and write each rank's final-weights digest to DIR/rank-R.sha256.
DIGEST_DIR_ENV = "OPTINAS_TEST_DIGEST_DIR"


@dataclass(frozen=True)
class TrainOutcome:
    """What one ``optinas train`` target ended with."""

    run_dir: Path
    label: str
    test_accuracy: float
    val_accuracy: float
    proxy_accuracy: float | None
    already_finished: bool
    resumed_at_epoch: int | None


def _input_spec(task) -> InputSpec:
    channels, height, width = task.input_shape
    return InputSpec(channels=channels, height=height, width=width, classes=task.num_classes)


def prepare_target(settings: TrainSettings):
    """Validates everything and loads the task; returns (settings, task, target, device)."""
    settings = with_study_defaults(settings)
    device = resolve_device(settings.device)
    task = load_task(settings.task or "digits", seed=settings.seed, data_dir=settings.data_dir,
                     download=settings.download)
    target = resolve_target(settings, _input_spec(task))
    settings.plan()  # the plan's own checks (e.g. the batch against the world size come later)
    check_settings(target.run_dir, _identity(settings, target))
    return settings, task, target, device


def _identity(settings: TrainSettings, target: Target) -> dict:
    """The settings a rerun must repeat to continue the same run (device and threads may change)."""
    return {"target": target.label, "genotype": target.genotype.hash, "task": settings.task or "digits",
            "seed": settings.seed, "epochs": settings.epochs, "batch_size": settings.batch_size,
            "lr": settings.lr, "warmup_epochs": settings.warmup_epochs, "schedule": settings.schedule}


def _finished_outcome(target: Target, metrics: dict) -> TrainOutcome:
    return TrainOutcome(run_dir=target.run_dir, label=target.label, test_accuracy=metrics["test_accuracy"],
                        val_accuracy=metrics["history"][-1]["val_accuracy"],
                        proxy_accuracy=target.proxy_accuracy, already_finished=True, resumed_at_epoch=None)


def train_target(settings: TrainSettings, show_progress: bool = True) -> TrainOutcome:
    """Trains (or resumes, or reports) one target; see the module docstring.

    Raises:
        ConfigError, GenotypeError, DataError: Bad input, before anything is written.
        TrialFailed: If training diverges.
    """
    world = world_from_env()
    settings, task, target, device = prepare_target(settings)
    metrics = read_metrics(target.run_dir)
    if metrics is not None and "test_accuracy" in metrics:
        return _finished_outcome(target, metrics)
    if device.type == "cpu":
        torch.set_num_threads(settings.cpu_threads)
    world, device = join_from_env(device)
    try:
        return _train(settings, task, target, device, world, show_progress)
    finally:
        leave(world)


def _train(settings, task, target: Target, device, world: World, show_progress: bool) -> TrainOutcome:
    torch.manual_seed(settings.seed)  # the initial weights; identical on every rank
    trainer = FullTraining(build_model(target.genotype), task, settings.plan(), device,
                           seed=settings.seed, world=world)
    checkpoint_path = latest_checkpoint(target.run_dir)
    metrics = {"target": target.label, "history": [], "resumed_at_epoch": []}
    resumed_at = None
    if checkpoint_path is not None:
        checkpoint = load_checkpoint(checkpoint_path)
        trainer.load_state_dict(checkpoint["trainer"])
        metrics, resumed_at = checkpoint["metrics"], trainer.epochs_done
        metrics["resumed_at_epoch"] = [*metrics["resumed_at_epoch"], resumed_at]
    if world.distributed:
        torch.distributed.barrier()  # every rank has read the checkpoint before rank 0 writes
    writes = world.is_main
    if writes:
        write_settings(target.run_dir, _identity(settings, target))
        write_metrics(target.run_dir, metrics)
    kill_after = int(os.environ.get(KILL_AFTER_EPOCH_ENV, "0"))
    with TrainProgress(target.label, settings.epochs, trainer.steps_per_epoch, trainer.epochs_done,
                       enabled=show_progress and writes) as progress:
        if resumed_at is not None:
            progress.note(f"resuming {target.label} after epoch {resumed_at} of {settings.epochs}")
        while not trainer.finished:
            record = trainer.train_epoch(on_step=progress.step)
            metrics["history"].append({"epoch": record.epoch, "val_accuracy": record.val_accuracy,
                                       "train_loss": record.train_loss, "seconds": record.seconds})
            if writes:
                save_checkpoint(target.run_dir, record.epoch, {"trainer": trainer.state_dict(),
                                                               "metrics": metrics})
                write_metrics(target.run_dir, metrics)
                write_curves(target.run_dir, metrics, f"optinas train {target.label}")
            progress.epoch_done(record)
            if record.epoch == kill_after and writes:
                os.kill(os.getpid(), signal.SIGKILL)
    test_accuracy, _ = trainer.score("test")
    _write_digest(trainer.model, world)
    if writes:
        _export(target, trainer.model, record_title=f"{target.label}, trained {settings.epochs} epochs "
                f"by optinas train: test accuracy {test_accuracy:.4f}.")
        metrics["test_accuracy"] = test_accuracy
        write_metrics(target.run_dir, metrics)
        write_curves(target.run_dir, metrics, f"optinas train {target.label}")
    return TrainOutcome(run_dir=target.run_dir, label=target.label, test_accuracy=test_accuracy,
                        val_accuracy=metrics["history"][-1]["val_accuracy"],
                        proxy_accuracy=target.proxy_accuracy, already_finished=False,
                        resumed_at_epoch=resumed_at)


def _export(target: Target, model, record_title: str) -> None:
    """model.py (standalone source) and weights.pt (the inference-state weights)."""
    buffer = io.BytesIO()
    torch.save({key: value.detach().cpu() for key, value in model.state_dict().items()}, buffer)
    write_bytes_atomic(target.run_dir / "weights.pt", buffer.getvalue())
    write_text_atomic(target.run_dir / "genotype.json", target.genotype.to_json(indent=2) + "\n")
    write_text_atomic(target.run_dir / "model.py", export_source(target.genotype, "model.py", title=record_title))


def _write_digest(model, world: World) -> None:
    folder = os.environ.get(DIGEST_DIR_ENV)
    if not folder:
        return
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    Path(folder, f"rank-{world.rank}.sha256").write_text(digest.hexdigest() + "\n")
