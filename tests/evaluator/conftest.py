"""Fixtures shared by the evaluator tests."""

import pytest

from optinas.evaluator import Task, load_task


@pytest.fixture(scope="module")
def digits() -> Task:
    """The digits task (8x8 grey images, 10 classes), loaded once per test module."""
    return load_task("digits", seed=0)
