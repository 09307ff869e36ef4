"""Tasks by name or path: the demo digits, torchvision-format vision sets, 2-D toys, image folders.

``load_task`` is the one entry point; each module here loads one family of data sets into an
``optinas.evaluator.tasks.Task``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from optinas.evaluator.datasets import digits, synthetic, vision_sets
from optinas.evaluator.datasets.image_folder import load_image_folder
from optinas.evaluator.tasks import Task
from optinas.search_space.errors import ConfigError, DataError

__all__ = ["load_task", "TASK_NAMES", "LOADERS"]

#: The one visible mapping from task name to loader.
LOADERS = {**digits.LOADERS, **vision_sets.LOADERS, **synthetic.LOADERS}

#: Names :func:`load_task` accepts (besides a path to an image folder or archive).
TASK_NAMES: tuple[str, ...] = (
    "digits", "cifar10", "cifar100", "mnist", "fashion-mnist",
    "unit-ball", "two-balls", "xy-sign", "regression",
)


def _looks_like_path(name: str) -> bool:
    return "/" in name or "\\" in name or name.endswith((".tar.gz", ".tgz", ".tar")) or Path(name).exists()


def load_task(
    name: str, seed: int = 0, *, data_dir: str | Path | None = None, download: bool = False,
    val_fraction: float | None = None,
) -> Task:
    """Loads a task by name or path and splits it with a fixed seed.

    Args:
        name: One of :data:`TASK_NAMES`, or a path to an image folder (class-per-subfolder,
            optionally under ``train/`` and ``test/``) or to a ``.tar.gz`` of one.
        seed: Seed of the splits (and of the synthetic data); keep it fixed across a search
            so that every candidate is scored on the same validation samples.
        data_dir: Root of torchvision-format data sets (default ``./data``).
        download: Let torchvision fetch a missing data set into ``data_dir``.
        val_fraction: Share of the training samples held out for validation, in (0, 1);
            None for the task's default.

    Returns:
        The :class:`Task`, with all tensors on the CPU.

    Raises:
        DataError: If ``name`` is neither a known task nor an existing path, or the data
            cannot be found or read.
        ConfigError: If ``seed`` or ``val_fraction`` is out of range.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ConfigError(f"task seed must be an integer in 0..2**32 - 1, got {seed!r}")
    if val_fraction is not None and not (
        isinstance(val_fraction, (int, float)) and 0 < val_fraction < 1
    ):
        raise ConfigError(f"val_fraction must be a number in (0, 1), got {val_fraction!r}")
    if not isinstance(name, (str, Path)):
        raise DataError(f"task must be a name or a path, got {name!r}")
    name = str(name)
    loader = LOADERS.get(name)
    if loader is not None:
        return loader(int(seed), val_fraction, data_dir=data_dir, download=download)
    if _looks_like_path(name):
        return load_image_folder(Path(name), int(seed), val_fraction)
    raise DataError(
        f"unknown task {name!r}; choose one of: {', '.join(TASK_NAMES)}, "
        "or give the path of an image folder or .tar.gz"
    )
