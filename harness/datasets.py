"""Datasets: loading and validation. Every loader returns pixels scaled to [0, 1] as float32
(n, features) and labels as int64 (n,) in [0, 10)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATASETS = ("digits", "fashion-mnist", "mnist")


class DatasetError(Exception):
    """A dataset that cannot be loaded; the message names the file and the fix."""


@dataclass(frozen=True)
class Dataset:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_digits() -> Dataset:
    """scikit-learn's embedded 8x8 digits (1797 images, pixels 0..16), a fixed stratified
    75/25 split so that every run and every machine sees the same test set."""
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, stratify=y, random_state=0)
    return Dataset("digits", x_tr, y_tr, x_te, y_te)


def load(name: str, data_dir: str | Path | None = None) -> Dataset:
    if name == "digits":
        return load_digits()
    raise DatasetError(f"unknown dataset {name!r}: use one of {', '.join(DATASETS)}")
