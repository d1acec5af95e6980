from __future__ import annotations

import os

# Quiet TensorFlow's C++ start-up logging; set before any test imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from harness.datasets import load_digits  # noqa: E402
from harness.task import Task, make_task  # noqa: E402

EPOCHS = 3
BATCH = 128  # digits has 1347 training images: 10 full batches and a short one of 67


@pytest.fixture(scope="session")
def digits_task() -> Task:
    return make_task(load_digits(), hidden=(64, 32), epochs=EPOCHS, seed=0)
