"""The demo task: scikit-learn's bundled 8x8 handwritten digits (no download)."""

from __future__ import annotations

import numpy as np

from optinas.evaluator.tasks import VAL_FRACTION, Task, task_without_test_split

__all__ = ["LOADERS"]


def load_digits_task(seed: int, val_fraction: float | None, **_: object) -> Task:
    """scikit-learn's bundled 8x8 handwritten digits: 1797 images, pixels 0..16, no download.

    Not augmented: a mirrored digit is a different digit (or none), and a 4-pixel shift
    of an 8x8 image would push half the stroke out of the frame.
    """
    # scikit-learn takes seconds to import: only this task needs it, so it loads here.
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.uint8)[:, None]  # (N, 1, 8, 8), whole numbers
    labels = np.asarray(bunch.target, dtype=np.int64)
    return task_without_test_split(
        "digits", images, labels, seed=seed, val_fraction=val_fraction or VAL_FRACTION,
        max_value=16.0, augment=False, num_classes=10, classes=tuple(map(str, range(10))),
        source="sklearn.datasets.load_digits",
    )


LOADERS = {"digits": load_digits_task}
