"""Tasks: the digits split is complete, disjoint, stratified and repeatable."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest
import torch

from optinas.evaluator import TASK_NAMES, load_task
from optinas.search_space.errors import ConfigError, DataError, OptinasError

DIGITS_SIZE = 1797


def _samples(x: torch.Tensor, y: torch.Tensor) -> Counter:
    # A sample is its pixels and its label; a Counter compares multisets, so duplicate
    # images in the data set are counted, not merged.
    return Counter((image.tobytes(), int(label)) for image, label in zip(x.numpy(), y.numpy()))


def test_task_names_match_the_loader_table():
    from optinas.evaluator.datasets import LOADERS

    assert set(TASK_NAMES) == set(LOADERS)
    assert TASK_NAMES[0] == "digits"


def test_digits_shapes_and_types(digits):
    assert digits.name == "digits"
    assert digits.input_shape == (1, 8, 8)
    assert digits.num_classes == 10
    assert digits.max_value == 16.0
    assert digits.augment is False
    for split in ("train", "val", "test"):
        x, y = getattr(digits, f"{split}_x"), getattr(digits, f"{split}_y")
        assert x.dtype == torch.uint8 and x.device.type == "cpu"
        assert y.dtype == torch.int64
        assert x.shape[1:] == (1, 8, 8) and len(x) == len(y)
        assert int(x.max()) <= 16
        assert set(y.tolist()) == set(range(10))


def test_split_sizes_sum_to_whole_data_set(digits):
    sizes = (len(digits.train_y), len(digits.val_y), len(digits.test_y))
    assert sum(sizes) == DIGITS_SIZE
    assert sizes == (1149, 288, 360)


def test_splits_are_disjoint_and_cover_every_sample(digits):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    whole = _samples(
        torch.from_numpy(bunch.images.astype(np.uint8)[:, None]), torch.from_numpy(bunch.target)
    )
    parts = (
        _samples(digits.train_x, digits.train_y)
        + _samples(digits.val_x, digits.val_y)
        + _samples(digits.test_x, digits.test_y)
    )
    assert parts == whole


def test_splits_are_stratified(digits):
    overall = np.bincount(
        torch.cat([digits.train_y, digits.val_y, digits.test_y]).numpy(), minlength=10
    ) / DIGITS_SIZE
    for labels in (digits.train_y, digits.val_y, digits.test_y):
        counts = np.bincount(labels.numpy(), minlength=10)
        expected = overall * len(labels)
        # Stratified splitting rounds each class count; it is never off by more than one
        # or two images.
        assert np.all(np.abs(counts - expected) <= 2), (counts, expected)


def test_same_seed_gives_identical_task(digits):
    again = load_task("digits", seed=0)
    for field in ("train_x", "val_x", "test_x", "train_y", "val_y", "test_y"):
        assert torch.equal(getattr(digits, field), getattr(again, field))
    assert (again.mean, again.std) == (digits.mean, digits.std)


def test_other_seed_gives_other_split(digits):
    other = load_task("digits", seed=1)
    assert len(other.val_y) == len(digits.val_y)
    assert not torch.equal(other.val_x, digits.val_x)


def test_mean_and_std_come_from_the_training_split(digits):
    train = digits.train_x.double() / digits.max_value
    assert digits.mean == pytest.approx((float(train.mean()),))
    assert digits.std == pytest.approx((float(train.std(unbiased=False)),))


def test_unknown_task_names_the_choices():
    with pytest.raises(DataError) as excinfo:
        load_task("x")
    assert str(excinfo.value) == (
        f"unknown task 'x'; choose one of: {', '.join(TASK_NAMES)}, "
        "or give the path of an image folder or .tar.gz"
    )
    assert isinstance(excinfo.value, OptinasError)


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True, 2**32])
def test_bad_seed_is_a_config_error(seed):
    with pytest.raises(ConfigError, match="task seed must be an integer"):
        load_task("digits", seed=seed)


def test_task_is_frozen(digits):
    with pytest.raises(dataclasses.FrozenInstanceError):
        digits.name = "other"


def test_malformed_task_is_a_data_error(digits):
    with pytest.raises(DataError, match=r"train_x must be uint8 or float32 of shape \(N, 1, 8, 8\)"):
        dataclasses.replace(digits, train_x=digits.train_x.double())
    with pytest.raises(DataError, match="val_y must be int64"):
        dataclasses.replace(digits, val_y=digits.val_y[:-1])
    with pytest.raises(DataError, match="one per channel"):
        dataclasses.replace(digits, mean=(0.1, 0.2))
