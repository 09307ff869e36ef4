"""Short proxy training of one candidate: ``evaluate(model, task, fidelity) -> EvalResult``.

The loop follows airbench: the data set lives on the device as uint8 (see ``loader.py``),
each step slices a batch by index, and there is no DataLoader and no ``torch.compile`` (a
per-architecture compile costs more than a proxy run saves). On CUDA the forward runs under
bf16 autocast with channels-last tensors; on the CPU everything is fp32 and, for a given
seed and identical initial weights, bit-for-bit repeatable.
"""

from __future__ import annotations

import contextlib
import gc
import time
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from optinas.search_space.errors import ConfigError
from optinas.search_space.recipes import recipes_for

from .failures import DivergenceWatch, TrialFailed, nonfinite_word
from .fidelity import EvalResult, Fidelity
from .graphs import EagerStep, GraphedStep, graph_eligible
from .loader import (
    DeviceData,
    batch_crop,
    batch_flip_lr,
    draw_augmentation,
    resolve_device,
    to_device,
)
from .tasks import Task

__all__ = ["evaluate", "lr_factor", "CROP_SHIFT", "EVAL_BATCH_SIZE"]

#: Largest random translation, in pixels, for tasks with ``augment`` (pad-4 crop, as for
#: CIFAR-10); capped at the image size minus one for small images.
CROP_SHIFT = 4
#: Images per forward pass when scoring; no gradients are kept, so it can be large.
EVAL_BATCH_SIZE = 1024


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Learning-rate multiplier at 0-based ``step``: linear warm-up, then linear decay to 0.

    The warm-up reaches 1 at its last step; the decay then ends at ``1 / (total - warmup)``
    on the last step, so no step is wasted at a learning rate of exactly 0.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return (total_steps - step) / (total_steps - warmup_steps)


def make_optimizer(
    model: nn.Module, fidelity: Fidelity, lr: float | torch.Tensor | None = None
) -> torch.optim.SGD:
    """Nesterov SGD; ``lr`` a CUDA tensor gives the fused, graph-capturable variant."""
    # Decay only matrices and kernels: decaying BatchNorm scales and biases only fights
    # the normalisation, and scalar block coefficients have no reason to shrink to 0.
    decay, no_decay = [], []
    for parameter in model.parameters():
        if parameter.requires_grad:
            (decay if parameter.ndim > 1 else no_decay).append(parameter)
    if not decay and not no_decay:
        raise ValueError("the model has no trainable parameters; there is nothing to evaluate")
    groups = [
        {"params": params, "weight_decay": wd}
        for params, wd in ((decay, fidelity.weight_decay), (no_decay, 0.0))
        if params
    ]
    fused = isinstance(lr, torch.Tensor)
    return torch.optim.SGD(
        groups, lr=fidelity.lr if lr is None else lr, momentum=fidelity.momentum,
        nesterov=fidelity.momentum > 0, fused=fused or None,
    )


@contextlib.contextmanager
def _seeded_global_rng(seed: int, device: torch.device) -> Iterator[None]:
    # Layers that draw from the global generator (dropout, stochastic rounding) then repeat
    # with the seed too; the caller's generator state is restored afterwards.
    cuda_devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_devices):
        torch.default_generator.manual_seed(seed)
        if cuda_devices:
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        yield


def evaluate(
    model: nn.Module,
    task: Task,
    fidelity: Fidelity,
    device: torch.device | str = "cpu",
    seed: int = 0,
    on_epoch: Callable[[int, float], None] | None = None,
) -> EvalResult:
    """Trains ``model`` briefly on ``task`` and scores it on the validation and test splits.

    The model is trained in place and left on ``device`` in its inference state (every
    layer kind's ``for_inference`` hook has run, e.g. adder layers at p = 1), so its weights
    can be exported. Model initialisation is the caller's: seed before building the model,
    and build it from :func:`proxy_genotype` when ``fidelity`` sets a width multiplier or a
    resolution.

    A classification task is trained with label-smoothed cross-entropy and scored by
    accuracy; a regression task (``task.kind == "regression"``) is trained and scored by
    the mean squared error, and its accuracies are None.

    Args:
        model: The candidate, freshly initialised; it must map normalised float inputs
            ``(N, C, H, W)`` (``H = W = fidelity.resolution`` when set) to logits (or
            outputs) ``(N, task.num_classes)``.
        task: The data, from :func:`load_task`.
        fidelity: The training recipe.
        device: A ``torch.device`` or a name for :func:`resolve_device`.
        seed: Seeds shuffling, augmentation, the training subset and the global
            generators used inside the model.
        on_epoch: Called as ``on_epoch(epoch_index, score)`` after each epoch, with
            ``epoch_index`` counting from 0 and ``score`` the validation accuracy (the
            validation MSE for regression); whatever it raises (e.g.
            ``optuna.TrialPruned``) propagates and ends the evaluation.

    Returns:
        The :class:`EvalResult`.

    Raises:
        TrialFailed: If the loss or the outputs become nan or inf, the GPU runs out of
            memory, or ``fidelity.time_limit_s`` is exceeded.
        ConfigError: If ``device`` is invalid or unavailable, or ``seed`` is not an integer.
    """
    start = time.perf_counter()
    if not isinstance(device, torch.device):
        device = resolve_device(device)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"evaluation seed must be an integer, got {seed!r}")
    try:
        with _seeded_global_rng(seed, device):
            return _train_and_score(model, task, fidelity, device, seed, on_epoch, start)
    except torch.cuda.OutOfMemoryError as exc:
        # CUDA's message runs on with allocator statistics; its first two sentences
        # ("CUDA out of memory. Tried to allocate 2.00 GiB") are the useful part.
        first_line = (str(exc) or "allocation failed").splitlines()[0]
        message = ". ".join(first_line.split(". ")[:2]).rstrip(".")
    # Outside the except block the traceback, and the activations and optimizer state its
    # frames hold, are gone, so the cache can really be returned to the driver.
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    raise TrialFailed(
        f"out of GPU memory: {message}; try a smaller batch_size or a smaller search space",
        kind="out_of_memory",
    )


def _train_and_score(
    model: nn.Module, task: Task, fidelity: Fidelity, device: torch.device, seed: int,
    on_epoch: Callable[[int, float], None] | None, start: float,
) -> EvalResult:
    is_cuda = device.type == "cuda"
    memory_format = torch.channels_last if is_cuda else torch.contiguous_format
    data = to_device(task, device, fidelity.resolution)
    model.to(device=device, memory_format=memory_format)
    # bf16 autocast on CUDA: convolutions and matmuls run in bf16; BatchNorm is on none of
    # autocast's lists, so it takes the bf16 activations as they come but keeps its weights
    # and running statistics in fp32 (the model is never cast) and accumulates its batch
    # statistics in fp32. bf16 has fp32's exponent range, so no loss scaling is needed.
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=is_cuda)
    regression = task.kind == "regression"

    def check_time(epoch: int) -> None:
        limit = fidelity.time_limit_s
        if limit is not None and time.perf_counter() - start > limit:
            raise TrialFailed(
                f"time limit of {limit:g} s exceeded at epoch {epoch + 1} of {fidelity.epochs}",
                kind="time_limit",
            )

    # Shuffling draws on the CPU so that a seed means the same batches on every device.
    generator = torch.Generator().manual_seed(seed)
    subset = torch.randperm(task.num_train, generator=generator)
    # At least two images: BatchNorm cannot normalise a batch of one in training mode.
    subset = subset[: max(2, round(fidelity.train_fraction * task.num_train))]
    num_train = len(subset)
    batch_size = min(fidelity.batch_size, num_train)
    steps_per_epoch = num_train // batch_size  # drop the ragged last batch
    total_steps = fidelity.epochs * steps_per_epoch
    warmup_steps = round(fidelity.warmup_epochs * steps_per_epoch)
    max_shift = min(CROP_SHIFT, min(data.train_x.shape[2:]) - 1)

    # Layer kinds that train their own way (adder's l_p schedule and eq. 27 scaling) hook in
    # here; every genotype with such a layer gets its kind's recipe without asking.
    recipes = recipes_for(model)
    loss_fn = (nn.MSELoss() if regression
               else nn.CrossEntropyLoss(label_smoothing=fidelity.label_smoothing))
    if graph_eligible(device, fidelity.cuda_graphs, recipes):
        lr_tensor = torch.full((), fidelity.lr, dtype=torch.float32, device=device)
        step_fn = GraphedStep(model, make_optimizer(model, fidelity, lr_tensor), lr_tensor,
                              loss_fn, torch.bfloat16)
    else:
        step_fn = EagerStep(model, make_optimizer(model, fidelity), loss_fn, autocast, recipes)
    watch = DivergenceWatch(device, fidelity.epochs, steps_per_epoch, check_every_step=not is_cuda)
    val_accuracy = val_loss = train_loss = float("nan")

    def score(split: str, epoch: int) -> tuple[float | None, float]:
        # Every kind's inference state first (adder: p = 1), for each validation pass and
        # for the final test pass alike.
        for recipe in recipes:
            recipe.for_inference(model)
        return score_split(model, data, split, memory_format, autocast, epoch, fidelity.epochs,
                      regression)

    for epoch in range(fidelity.epochs):
        model.train()
        order = subset[torch.randperm(num_train, generator=generator)].to(device)
        if task.augment:
            shifts, flips = draw_augmentation(num_train, max_shift, generator)
            shifts, flips = shifts.to(device), flips.to(device)
        loss_sum = torch.zeros((), device=device)
        for step in range(steps_per_epoch):
            global_step = epoch * steps_per_epoch + step
            batch = slice(step * batch_size, (step + 1) * batch_size)
            index = order[batch]
            images = data.train_x[index]
            if task.augment:
                images = batch_flip_lr(batch_crop(images, shifts[batch]), flips[batch])
            inputs = data.normalise(images).contiguous(memory_format=memory_format)
            loss = step_fn(inputs, data.train_y[index],
                           fidelity.lr * lr_factor(global_step, warmup_steps, total_steps),
                           global_step / total_steps)
            watch.update(loss, global_step)
            loss_sum += loss
            check_time(epoch)
        watch.check()
        train_loss = loss_sum.item() / steps_per_epoch
        val_accuracy, val_loss = score("val", epoch)
        if on_epoch is not None:
            on_epoch(epoch, val_loss if regression else val_accuracy)
        check_time(epoch)

    test_accuracy, test_loss = score("test", fidelity.epochs - 1)
    return EvalResult(
        val_accuracy=val_accuracy, test_accuracy=test_accuracy, val_loss=val_loss,
        train_loss=train_loss, wall_time_s=time.perf_counter() - start, epochs=fidelity.epochs,
        test_loss=test_loss,
    )


def score_split(
    model: nn.Module, data: DeviceData, split: str, memory_format: torch.memory_format,
    autocast: torch.autocast, epoch: int, epochs: int, regression: bool = False,
) -> tuple[float | None, float]:
    """Accuracy (None for regression) and mean loss on one split, with one device sync.

    The loss is cross-entropy without label smoothing, or the mean squared error per
    output for a regression task.
    """
    images, labels = getattr(data, f"{split}_x"), getattr(data, f"{split}_y")
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=images.device)
    loss_sum = torch.zeros((), dtype=torch.float32, device=images.device)
    has_nan = torch.zeros((), dtype=torch.bool, device=images.device)
    has_inf = torch.zeros((), dtype=torch.bool, device=images.device)
    with torch.no_grad():
        for first in range(0, len(labels), EVAL_BATCH_SIZE):
            batch = slice(first, first + EVAL_BATCH_SIZE)
            inputs = data.normalise(images[batch]).contiguous(memory_format=memory_format)
            with autocast:
                logits = model(inputs)
            logits = logits.float()
            has_nan |= torch.isnan(logits).any()
            has_inf |= torch.isinf(logits).any()
            if regression:
                loss_sum += F.mse_loss(logits, labels[batch], reduction="sum") / logits.shape[1]
            else:
                loss_sum += F.cross_entropy(logits, labels[batch], reduction="sum")
                correct += (logits.argmax(dim=1) == labels[batch]).sum()
    # One read-back for all four numbers: each .item() on a GPU is a synchronisation.
    nan, inf, correct_count, loss_total = torch.stack(
        [has_nan.double(), has_inf.double(), correct.double(), loss_sum.double()]
    ).tolist()
    if nan or inf:
        word = nonfinite_word(float("nan") if nan else float("inf"))
        split_name = "validation" if split == "val" else split
        raise TrialFailed(
            f"training diverged: model outputs became {word} on the {split_name} split "
            f"after epoch {epoch + 1} of {epochs}",
            kind="diverged",
        )
    count = len(labels)
    return (None if regression else correct_count / count), loss_total / count
