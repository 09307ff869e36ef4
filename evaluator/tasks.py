"""Tasks: a labelled image data set split three ways, stored as uint8 on the CPU.

A task is what a candidate is trained and scored on. Each task has one loader function,
registered by name in ``_LOADERS``; adding ``cifar10`` later is one loader (which returns
images as uint8 ``(N, C, H, W)``) plus one line there. The evaluator moves the uint8 tensors
to the device once and normalises each batch there, so a loader never produces floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from search_space.errors import ConfigError, DataError

__all__ = ["Task", "TASK_NAMES", "load_task", "stratified_split", "TEST_FRACTION", "VAL_FRACTION"]

#: Share of the whole data set held out for the final test score.
TEST_FRACTION = 0.2
#: Share of what remains after the test split that is held out for validation (the score a
#: search optimises), so that the test split is never looked at while searching.
VAL_FRACTION = 0.2


@dataclass(frozen=True, eq=False)
class Task:
    """A classification data set, split into train, validation and test, on the CPU.

    Images are uint8 ``(N, C, H, W)`` in ``0..max_value``; labels are int64 ``(N,)``. The
    tensors are shared, not copied: treat them as read-only. ``eq=False`` keeps identity
    equality and hashing (element-wise tensor comparison has no single truth value), which
    also lets the evaluator cache the device copy per task.

    Attributes:
        name: The name :func:`load_task` knows it by.
        input_shape: ``(C, H, W)`` of one image.
        num_classes: Number of labels; labels are ``0..num_classes - 1``.
        train_x, val_x, test_x: uint8 images of each split.
        train_y, val_y, test_y: int64 labels of each split.
        mean, std: Per-channel statistics of the training images after dividing by
            ``max_value``; a batch is normalised as ``(x / max_value - mean) / std``.
        max_value: The largest pixel value (16 for digits, 255 for 8-bit images).
        augment: Whether random crops and horizontal flips preserve the label.
    """

    name: str
    input_shape: tuple[int, int, int]
    num_classes: int
    train_x: torch.Tensor
    val_x: torch.Tensor
    test_x: torch.Tensor
    train_y: torch.Tensor
    val_y: torch.Tensor
    test_y: torch.Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]
    max_value: float
    augment: bool

    def __post_init__(self) -> None:
        # A loader written for a new task gets one clear sentence instead of a shape error
        # deep inside a convolution.
        channels = self.input_shape[0]
        for split in ("train", "val", "test"):
            x, y = getattr(self, f"{split}_x"), getattr(self, f"{split}_y")
            if x.dtype != torch.uint8 or x.dim() != 4 or tuple(x.shape[1:]) != self.input_shape:
                raise DataError(
                    f"task {self.name!r}: {split}_x must be uint8 of shape (N, "
                    f"{', '.join(map(str, self.input_shape))}), got {x.dtype} {tuple(x.shape)}"
                )
            if y.dtype != torch.int64 or y.shape != (x.shape[0],):
                raise DataError(
                    f"task {self.name!r}: {split}_y must be int64 of shape ({x.shape[0]},), "
                    f"got {y.dtype} {tuple(y.shape)}"
                )
            if x.shape[0] == 0:
                raise DataError(f"task {self.name!r}: the {split} split is empty")
        if len(self.mean) != channels or len(self.std) != channels:
            raise DataError(
                f"task {self.name!r}: mean and std need {channels} values (one per channel), "
                f"got {len(self.mean)} and {len(self.std)}"
            )
        if min(self.std) <= 0:
            raise DataError(f"task {self.name!r}: std must be positive, got {self.std}")

    @property
    def num_train(self) -> int:
        """Number of training images."""
        return int(self.train_x.shape[0])


def stratified_split(
    labels: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Splits sample indices into train, validation and test, stratified by label.

    The test split is ``TEST_FRACTION`` of all samples and the validation split is
    ``VAL_FRACTION`` of the rest (for digits: 1149 / 288 / 360). Every class keeps its
    overall proportion in each split.

    Args:
        labels: Integer labels, one per sample.
        seed: ``random_state`` for scikit-learn; the same seed gives the same split.

    Returns:
        Sorted index arrays ``(train, val, test)``.
    """
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(labels))
    rest, test = train_test_split(
        indices, test_size=TEST_FRACTION, stratify=labels, random_state=seed
    )
    train, val = train_test_split(
        rest, test_size=VAL_FRACTION, stratify=labels[rest], random_state=seed
    )
    return np.sort(train), np.sort(val), np.sort(test)


def _task_from_arrays(
    name: str, images: np.ndarray, labels: np.ndarray, num_classes: int,
    max_value: float, augment: bool, seed: int,
) -> Task:
    """Splits uint8 ``(N, C, H, W)`` images and computes train-split statistics."""
    train, val, test = stratified_split(labels, seed)
    # Statistics come from the training split only, so nothing about the held-out images
    # leaks into the inputs the model sees.
    scaled = images[train].astype(np.float64) / max_value
    mean = tuple(float(m) for m in scaled.mean(axis=(0, 2, 3)))
    std = tuple(float(s) for s in scaled.std(axis=(0, 2, 3)))

    def tensors(idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(images[idx].copy()), torch.from_numpy(labels[idx].copy())

    (train_x, train_y), (val_x, val_y), (test_x, test_y) = map(tensors, (train, val, test))
    return Task(
        name=name, input_shape=tuple(images.shape[1:]), num_classes=num_classes,
        train_x=train_x, train_y=train_y, val_x=val_x, val_y=val_y,
        test_x=test_x, test_y=test_y, mean=mean, std=std,
        max_value=float(max_value), augment=augment,
    )


def _load_digits(seed: int) -> Task:
    """scikit-learn's bundled 8x8 handwritten digits: 1797 images, pixels 0..16, no download.

    Not augmented: a mirrored digit is a different digit (or none), and a 4-pixel shift
    of an 8x8 image would push half the stroke out of the frame.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.uint8)[:, None]  # (N, 1, 8, 8), whole numbers
    labels = np.asarray(bunch.target, dtype=np.int64)
    return _task_from_arrays(
        "digits", images, labels, num_classes=10, max_value=16.0, augment=False, seed=seed
    )


# The one visible mapping from task name to loader; TASK_NAMES follows from it.
_LOADERS: dict[str, Callable[[int], Task]] = {
    "digits": _load_digits,
}

#: Names :func:`load_task` accepts.
TASK_NAMES: tuple[str, ...] = tuple(_LOADERS)


def load_task(name: str, seed: int = 0) -> Task:
    """Loads a task by name and splits it with a fixed seed.

    Args:
        name: One of :data:`TASK_NAMES`.
        seed: Seed of the stratified split; keep it fixed across a search so that every
            candidate is scored on the same validation images.

    Returns:
        The :class:`Task`, with all tensors on the CPU.

    Raises:
        DataError: If ``name`` is not a known task.
        ConfigError: If ``seed`` is not an integer in ``0..2**32 - 1``.
    """
    loader = _LOADERS.get(name)
    if loader is None:
        raise DataError(f"unknown task {name!r}; choose one of: {', '.join(TASK_NAMES)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ConfigError(f"task seed must be an integer in 0..2**32 - 1, got {seed!r}")
    return loader(int(seed))
