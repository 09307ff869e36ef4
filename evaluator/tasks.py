"""Tasks: a data set split into train, validation and test, stored on the CPU.

A task is what a candidate is trained and scored on. ``load_task`` accepts a registered name
(:data:`TASK_NAMES`) or a path to an image folder / ``.tar.gz`` of one. The loaders live in
their own modules and all end here, in :func:`task_from_splits` or
:func:`task_without_test_split`, which carve the validation split out of the training images
(never out of the test images: the test split is only for the final report of the best
models) and compute the normalisation statistics from the training split alone.

| name | loader | data |
|---|---|---|
| digits | here | scikit-learn's bundled 8x8 digits |
| cifar10, cifar100, mnist, fashion-mnist | ``vision_sets.py`` | torchvision's on-disk formats under ``data_dir`` |
| a path | ``image_folder.py`` | class-per-subfolder images (``train/`` and ``test/``), or a ``.tar.gz`` |
| unit-ball, two-balls, xy-sign, regression | ``synthetic.py`` | AdderNet section 5.3 toys; Li et al. regression pairs |
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from optinas.search_space.errors import DataError

__all__ = [
    "Task", "TASK_NAMES", "TASK_KINDS", "load_task", "stratified_split", "task_from_splits",
    "task_without_test_split", "TEST_FRACTION", "VAL_FRACTION",
]

#: Share of a data set without its own test split that is held out for the final test score.
TEST_FRACTION = 0.2
#: Default share of the training images held out for validation (the score a search
#: optimises). 0.2 keeps digits' validation split usable (288 images); large sets with their
#: own test split pass a smaller share (``VISION_VAL_FRACTION`` in ``vision_sets.py``).
VAL_FRACTION = 0.2
#: What a task predicts: a class (accuracy, cross-entropy) or a real vector (MSE).
TASK_KINDS = ("classification", "regression")


@dataclass(frozen=True, eq=False)
class Task:
    """A data set split into train, validation and test, on the CPU.

    Inputs are ``(N, C, H, W)``: uint8 images in ``0..max_value``, or float32 features for
    the synthetic tasks (a 2-D point is a ``(2, 1, 1)`` "image"). Classification labels are
    int64 ``(N,)``; regression targets are float32 ``(N, num_outputs)``. The tensors are
    shared, not copied: treat them as read-only. ``eq=False`` keeps identity equality and
    hashing, which lets the evaluator cache the device copy per task.

    Attributes:
        name: The name :func:`load_task` knows it by (a folder's or archive's stem).
        input_shape: ``(C, H, W)`` of one input.
        num_classes: Number of classes; for a regression task, the number of outputs.
        train_x, val_x, test_x: Inputs of each split.
        train_y, val_y, test_y: Labels (or targets) of each split.
        mean, std: Per-channel statistics of the training inputs after dividing by
            ``max_value``; a batch is normalised as ``(x / max_value - mean) / std``.
        max_value: The largest pixel value (16 for digits, 255 for 8-bit images, 1 for
            float features).
        augment: Whether random crops and horizontal flips preserve the label.
        kind: ``"classification"`` or ``"regression"``.
        classes: Class names in label order, where the data set has them.
        source: Where the data came from, for logs and benchmark output.
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
    kind: str = "classification"
    classes: tuple[str, ...] = ()
    source: str = ""

    def __post_init__(self) -> None:
        # A loader written for a new task gets one clear sentence instead of a shape error
        # deep inside a convolution.
        if self.kind not in TASK_KINDS:
            raise DataError(f"task {self.name!r}: kind must be one of {TASK_KINDS}, got {self.kind!r}")
        shape = ", ".join(map(str, self.input_shape))
        for split in ("train", "val", "test"):
            x, y = getattr(self, f"{split}_x"), getattr(self, f"{split}_y")
            if x.dtype not in (torch.uint8, torch.float32) or tuple(x.shape[1:]) != self.input_shape:
                raise DataError(
                    f"task {self.name!r}: {split}_x must be uint8 or float32 of shape (N, {shape}), "
                    f"got {x.dtype} {tuple(x.shape)}"
                )
            if self.kind == "classification":
                expected, dtype = (x.shape[0],), torch.int64
            else:
                expected, dtype = (x.shape[0], self.num_classes), torch.float32
            if y.dtype != dtype or tuple(y.shape) != expected:
                raise DataError(
                    f"task {self.name!r}: {split}_y must be {str(dtype)[6:]} of shape {expected}, "
                    f"got {y.dtype} {tuple(y.shape)}"
                )
            if x.shape[0] == 0:
                raise DataError(f"task {self.name!r}: the {split} split is empty")
        channels = self.input_shape[0]
        if len(self.mean) != channels or len(self.std) != channels:
            raise DataError(
                f"task {self.name!r}: mean and std need {channels} values (one per channel), "
                f"got {len(self.mean)} and {len(self.std)}"
            )
        if min(self.std) <= 0:
            raise DataError(f"task {self.name!r}: std must be positive, got {self.std}")

    @property
    def num_train(self) -> int:
        """Number of training inputs."""
        return int(self.train_x.shape[0])


def stratified_split(
    labels: np.ndarray, seed: int, test_size: float = TEST_FRACTION,
    val_size: float = VAL_FRACTION,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Splits sample indices into train, validation and test, stratified by label.

    The test split is ``test_size`` of all samples (0: no test split) and the validation
    split ``val_size`` of the rest (for digits: 1149 / 288 / 360). With integer labels
    every class keeps its overall proportion in each split; float labels (regression
    targets) are split at random.

    Returns:
        Sorted index arrays ``(train, val, test)``.
    """

    # scikit-learn takes seconds to import; only stratified splits need it, so it loads here.
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(labels))
    stratify = labels if labels.ndim == 1 and labels.dtype.kind in "iu" else None
    test = indices[:0]
    if test_size > 0:
        indices, test = train_test_split(
            indices, test_size=test_size, stratify=stratify, random_state=seed
        )
    train, val = train_test_split(
        indices, test_size=val_size, random_state=seed,
        stratify=None if stratify is None else labels[indices],
    )
    return np.sort(train), np.sort(val), np.sort(test)


#: Most training images the normalisation statistics are computed from (evenly spaced);
#: 8,192 CIFAR images are 8.4 million pixels per channel, far more than the three digits a
#: mean and std need, at a fifth of the time of all 45,000.
STATS_IMAGES = 8192


def _channel_stats(x: np.ndarray, max_value: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and population std of ``x / max_value`` (up to ``STATS_IMAGES``)."""
    x = x[:: max(1, -(-len(x) // STATS_IMAGES))]
    means, stds = [], []
    for channel in range(x.shape[1]):
        values = x[:, channel]
        if values.dtype == np.uint8:
            # A 256-bin histogram is exact and never builds a float copy of the images.
            counts = torch.bincount(torch.from_numpy(np.ascontiguousarray(values)).flatten(),
                                    minlength=256).double().numpy()
            levels = np.arange(256, dtype=np.float64) / max_value
            mean = float(counts @ levels / counts.sum())
            var = float(counts @ (levels - mean) ** 2 / counts.sum())
        else:
            scaled = values.astype(np.float64) / max_value
            mean, var = float(scaled.mean()), float(scaled.var())
        means.append(mean)
        stds.append(var ** 0.5 if var > 0 else 1.0)  # a constant channel is left unscaled
    return tuple(means), tuple(stds)


def _carve_validation(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, val) indices with ``fraction`` of every class (or of all) in val.

    Plain numpy rather than scikit-learn, whose import alone costs more than the rest of
    loading a cached CIFAR-10.
    """
    rng = np.random.default_rng(seed)
    groups = ([np.flatnonzero(labels == c) for c in np.unique(labels)]
              if labels.ndim == 1 and labels.dtype.kind in "iu" else [np.arange(len(labels))])
    val = []
    for members in groups:
        count = int(round(fraction * len(members)))
        count = min(max(count, 1), len(members) - 1) if len(members) > 1 else 0
        val.append(rng.permutation(members)[:count])
    val = np.sort(np.concatenate(val))
    keep = np.ones(len(labels), dtype=bool)
    keep[val] = False
    return np.flatnonzero(keep), val


def _make_task(
    name: str, splits: dict[str, tuple[np.ndarray, np.ndarray]], *, max_value: float,
    augment: bool, num_classes: int, kind: str, classes: tuple[str, ...], source: str,
) -> Task:
    """Wraps ``{"train"|"val"|"test": (x, y)}`` numpy arrays in a Task."""
    # Statistics come from the training split only, so nothing about the held-out samples
    # leaks into the inputs the model sees.
    mean, std = _channel_stats(splits["train"][0], max_value)
    def tensor(array: np.ndarray) -> torch.Tensor:
        array = np.ascontiguousarray(array)
        # A memory-mapped cache file is read-only: copy it into memory the task owns.
        return torch.from_numpy(array if array.flags.writeable else array.copy())

    tensors = {}
    for split, (x, y) in splits.items():
        tensors[f"{split}_x"], tensors[f"{split}_y"] = tensor(x), tensor(y)
    return Task(
        name=name, input_shape=tuple(int(s) for s in splits["train"][0].shape[1:]),
        num_classes=num_classes, mean=mean, std=std, max_value=float(max_value),
        augment=augment, kind=kind, classes=tuple(classes), source=source, **tensors,
    )


def task_from_splits(
    name: str, train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
    test_y: np.ndarray, *, seed: int, val_fraction: float, max_value: float, augment: bool,
    num_classes: int, kind: str = "classification", classes: tuple[str, ...] = (),
    source: str = "",
) -> Task:
    """A task from a data set's own train and test splits; validation comes out of train.

    Args:
        name: Task name.
        train_x, test_x: ``(N, C, H, W)`` uint8 images or float32 features.
        train_y, test_y: int64 labels or float32 targets.
        seed: Seed of the (stratified) train/validation split.
        val_fraction: Share of the training samples held out for validation, in (0, 1).
        max_value, augment, num_classes, kind, classes, source: As on :class:`Task`.
    """
    train, val = _carve_validation(train_y, val_fraction, seed)
    splits = {"train": (train_x[train], train_y[train]), "val": (train_x[val], train_y[val]),
              "test": (test_x, test_y)}
    return _make_task(name, splits, max_value=max_value, augment=augment,
                      num_classes=num_classes, kind=kind, classes=classes, source=source)


def task_without_test_split(
    name: str, x: np.ndarray, y: np.ndarray, *, seed: int, val_fraction: float,
    max_value: float, augment: bool, num_classes: int, kind: str = "classification",
    classes: tuple[str, ...] = (), source: str = "",
) -> Task:
    """A task from one pool of samples: ``TEST_FRACTION`` of it becomes the test split."""
    train, val, test = stratified_split(y, seed, val_size=val_fraction)
    splits = {"train": (x[train], y[train]), "val": (x[val], y[val]), "test": (x[test], y[test])}
    return _make_task(name, splits, max_value=max_value, augment=augment,
                      num_classes=num_classes, kind=kind, classes=classes, source=source)
