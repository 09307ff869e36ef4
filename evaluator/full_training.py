"""Training one architecture from scratch at full fidelity, resumable epoch by epoch.

The step is the proxy's (``train.py``): device-resident data, the same augmentation, Nesterov
SGD without decay on norms and biases, label smoothing, and every layer kind's training
recipe (adder: the l_p schedule and AdderNet eq. 27 gradient scaling; binary: clipped
latent weights and the same scaling; quant: LSQ state in buffers). What is added here:

- a learning-rate schedule as a ``LambdaLR`` (linear warm-up, then cosine or linear decay),
  stepped every batch, so it resumes from its ``state_dict``;
- :meth:`FullTraining.state_dict` / :meth:`~FullTraining.load_state_dict` holding
  everything an epoch boundary needs to continue bit-for-bit on the CPU: model, optimizer,
  schedule, recipe state, the data-order generator and the global generators;
- DistributedDataParallel across torchrun ranks: each rank trains on a disjoint, equal
  slice of every global batch, so the global batch and the gradient are those of one process.

Writing files is the caller's: it gets an :class:`EpochRecord` after each epoch.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from optinas.search_space.errors import ConfigError
from optinas.search_space.recipes import recipes_for

from .distributed import World, sync_from_rank0
from .failures import DivergenceWatch
from .fidelity import Fidelity
from .loader import batch_crop, batch_flip_lr, draw_augmentation, to_device
from .tasks import Task
from .train import CROP_SHIFT, make_optimizer, score_split

__all__ = ["TrainingPlan", "EpochRecord", "FullTraining", "schedule_factor", "DECAYS"]

#: Shapes of the learning-rate decay after the warm-up.
DECAYS = ("cosine", "linear")


def schedule_factor(step: int, warmup_steps: int, total_steps: int, decay: str) -> float:
    """Learning-rate multiplier at 0-based ``step``: linear warm-up to 1, then decay towards 0.

    The warm-up reaches 1 at its last step. Cosine decay is SGDR's half cosine (Loshchilov
    and Hutter, eq. 5, one cycle, minimum 0); linear decay is the proxy's. Both end just
    above 0 on the last step, so no step is spent at a learning rate of exactly 0.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    remaining = total_steps - warmup_steps
    if decay == "linear":
        return (total_steps - step) / remaining
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup_steps) / remaining))


@dataclass(frozen=True)
class TrainingPlan:
    """How long and how: the full-training recipe (validated by the caller's flags)."""

    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.05
    warmup_epochs: float = 1.0
    decay: str = "cosine"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1

    def __post_init__(self) -> None:
        if self.decay not in DECAYS:
            raise ConfigError(f"decay must be one of {', '.join(DECAYS)}, got {self.decay!r}")
        # Fidelity checks every shared field and says which one is wrong.
        self.fidelity()

    def fidelity(self) -> Fidelity:
        return Fidelity(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                        momentum=self.momentum, weight_decay=self.weight_decay,
                        warmup_epochs=self.warmup_epochs, label_smoothing=self.label_smoothing)


@dataclass(frozen=True)
class EpochRecord:
    """One finished epoch; ``epoch`` counts from 1."""

    epoch: int
    train_loss: float
    val_accuracy: float
    val_loss: float
    seconds: float


def _global_rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
             "python": random.getstate()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_global_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


class FullTraining:
    """Trains ``model`` on ``task`` for ``plan.epochs`` epochs, one :meth:`train_epoch` at a time.

    Args:
        model: The freshly built (or to-be-restored) classification model.
        task: The data, from ``load_task``; classification only.
        plan: The recipe.
        device: Where to train (this rank's device under torchrun).
        seed: Seeds the data order and augmentation (the model's initialisation is the
            caller's: seed before building it).
        world: This process's rank and the world size (a world of one by default).

    Raises:
        ConfigError: If the task is not a classification task, or the batch cannot be split
            evenly across the ranks.
    """

    def __init__(self, model: nn.Module, task: Task, plan: TrainingPlan,
                 device: torch.device, seed: int = 0, world: World = World()) -> None:
        if task.kind != "classification":
            raise ConfigError(f"optinas train trains classifiers; task {task.name!r} is {task.kind}")
        if plan.batch_size % world.size:
            raise ConfigError(f"--batch-size {plan.batch_size} must be a multiple of the "
                              f"{world.size} torchrun processes, so each takes an equal share")
        self.plan, self.task, self.device, self.world = plan, task, device, world
        self.model = model.to(device)
        self.data = to_device(task, device)
        self.batch_size = min(plan.batch_size, task.num_train - task.num_train % world.size)
        self.steps_per_epoch = task.num_train // self.batch_size  # ragged last batch dropped
        self.total_steps = plan.epochs * self.steps_per_epoch
        warmup = round(plan.warmup_epochs * self.steps_per_epoch)
        self.optimizer = make_optimizer(self.model, plan.fidelity())
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: schedule_factor(
                min(step, self.total_steps - 1), warmup, self.total_steps, plan.decay))
        self.recipes = recipes_for(self.model)
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=plan.label_smoothing)
        # As in the proxy: bf16 autocast on CUDA (BatchNorm stays fp32), plain fp32 on the CPU.
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
        # The data order is drawn on the CPU, identically on every rank, from its own generator.
        self.generator = torch.Generator().manual_seed(seed)
        self.epochs_done = 0
        self.max_shift = min(CROP_SHIFT, min(self.data.train_x.shape[2:]) - 1)
        self.trained = (DistributedDataParallel(self.model, device_ids=[device] if device.type == "cuda"
                                                else None) if world.distributed else self.model)

    @property
    def finished(self) -> bool:
        return self.epochs_done >= self.plan.epochs

    def state_dict(self) -> dict:
        """Everything needed to continue after the last finished epoch."""
        progress = self.epochs_done * self.steps_per_epoch / self.total_steps
        return {
            "epochs_done": self.epochs_done,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            # The recipes' state is a function of training progress (the adder p schedule);
            # the kinds are stored so that a checkpoint of another architecture is refused.
            "recipes": {"kinds": [type(recipe).__name__ for recipe in self.recipes],
                        "progress": progress},
            "data_generator": self.generator.get_state(),
            "global_rng": _global_rng_state(self.device),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restores :meth:`state_dict`'s output (from the same plan and architecture)."""
        kinds = [type(recipe).__name__ for recipe in self.recipes]
        if state["recipes"]["kinds"] != kinds:
            raise ConfigError(f"checkpoint was written for layer recipes {state['recipes']['kinds']}, "
                              f"not {kinds}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        for recipe in self.recipes:
            recipe.before_step(self.model, state["recipes"]["progress"])
        self.generator.set_state(state["data_generator"])
        _set_global_rng_state(state["global_rng"], self.device)
        self.epochs_done = state["epochs_done"]

    def _step(self, inputs: torch.Tensor, targets: torch.Tensor, global_step: int) -> torch.Tensor:
        for recipe in self.recipes:
            recipe.before_step(self.model, global_step / self.total_steps)
        with self.autocast:
            logits = self.trained(inputs)
        loss = self.loss_fn(logits.float(), targets)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # under DDP the gradients are averaged over the ranks here
        for recipe in self.recipes:
            recipe.after_backward(self.model)
        self.optimizer.step()
        self.schedule.step()
        return loss.detach()

    def train_epoch(self, on_step: Callable[[int, float], None] | None = None) -> EpochRecord:
        """Trains the next epoch and scores it on the validation split.

        ``on_step(step, loss)`` is called after each step (``step`` from 1); under torchrun
        the loss is this rank's.
        """
        start = time.perf_counter()
        task, data, world = self.task, self.data, self.world
        epoch = self.epochs_done
        self.trained.train()
        order = torch.randperm(task.num_train, generator=self.generator).to(self.device)
        if task.augment:
            shifts, flips = draw_augmentation(task.num_train, self.max_shift, self.generator)
            shifts, flips = shifts.to(self.device), flips.to(self.device)
        watch = DivergenceWatch(self.device, self.plan.epochs, self.steps_per_epoch, check_every_step=True)
        share = self.batch_size // world.size
        loss_sum = 0.0
        for step in range(self.steps_per_epoch):
            global_step = epoch * self.steps_per_epoch + step
            first = step * self.batch_size + world.rank * share  # this rank's slice of the batch
            batch = slice(first, first + share)
            images = data.train_x[order[batch]]
            if task.augment:
                images = batch_flip_lr(batch_crop(images, shifts[batch]), flips[batch])
            loss = self._step(data.normalise(images), data.train_y[order[batch]], global_step)
            watch.update(loss, global_step)
            loss_sum += float(loss)
            if global_step == 0:
                sync_from_rank0(self.model, world)  # layers initialised from their first batch
            if on_step is not None:
                on_step(step + 1, float(loss))
        sync_from_rank0(self.model, world)  # BatchNorm statistics come from each rank's shard
        train_loss = loss_sum / self.steps_per_epoch
        if world.distributed:
            mean = torch.tensor([train_loss], dtype=torch.float64)
            torch.distributed.all_reduce(mean)
            train_loss = float(mean) / world.size
        val_accuracy, val_loss = self.score("val")
        self.epochs_done += 1
        return EpochRecord(epoch=self.epochs_done, train_loss=train_loss, val_accuracy=val_accuracy,
                           val_loss=val_loss, seconds=time.perf_counter() - start)

    def score(self, split: str) -> tuple[float, float]:
        """Accuracy and cross-entropy on ``"val"`` or ``"test"``, in the inference state."""
        for recipe in self.recipes:
            recipe.for_inference(self.model)
        return score_split(self.model, self.data, split, torch.contiguous_format, self.autocast,
                      max(self.epochs_done - 1, 0),
                      self.plan.epochs)
