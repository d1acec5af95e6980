"""The scoring functions, against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.results import scores


def test_cross_entropy_matches_the_definition():
    logits = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]], dtype=np.float32)
    labels = np.array([0, 1])
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = -(np.log(p[0, 0]) + np.log(p[1, 1])) / 2
    assert scores.cross_entropy(logits, labels) == pytest.approx(expected, rel=1e-6)


def test_cross_entropy_is_stable_for_large_logits():
    logits = np.array([[1000.0, 0.0]], dtype=np.float32)
    assert scores.cross_entropy(logits, np.array([0])) == pytest.approx(0.0, abs=1e-12)
    assert scores.cross_entropy(logits, np.array([1])) == pytest.approx(1000.0)


def test_accuracy():
    logits = np.array([[1, 0], [0, 1], [1, 0], [0, 1]], dtype=np.float32)
    assert scores.accuracy(logits, np.array([0, 1, 1, 1])) == 0.75


def test_batch_sizes_end_with_the_short_batch():
    assert scores.step_sizes(1347, 128).tolist() == [128] * 10 + [67]
    assert scores.step_sizes(256, 128).tolist() == [128, 128]
    assert scores.step_sizes(5, 128).tolist() == [5]


def test_epoch_train_loss_weights_steps_by_batch_size():
    # 2 samples at loss 1.0 and 1 sample at loss 4.0: the mean over samples is 2.0, not 2.5
    assert scores.epoch_train_loss(np.array([1.0, 4.0]), n=3, batch_size=2) == pytest.approx(2.0)


def test_steady_throughput_leaves_out_the_first_epoch():
    # epoch 1 took 10 s (tracing); epochs 2 and 3 took 1 s each over 100 samples
    assert scores.steady_throughput(100, [10.0, 1.0, 1.0]) == pytest.approx(100.0)
    assert scores.steady_throughput(100, [4.0]) == pytest.approx(25.0)  # nothing else to use


def test_time_to_target():
    acc, sec = [0.5, 0.8, 0.95, 0.97], [3.0, 1.0, 1.0, 1.0]
    assert scores.time_to_target(acc, sec, 0.9) == (3, pytest.approx(5.0))
    assert scores.time_to_target(acc, sec, 0.5) == (1, pytest.approx(3.0))
    assert scores.time_to_target(acc, sec, 0.99) == (None, None)


def test_max_abs_diff():
    assert scores.max_abs_diff(np.array([1.0, 2.0]), np.array([1.0, 2.5])) == pytest.approx(0.5)
    assert scores.max_abs_diff(np.array([1.0]), np.array([1.0, 2.0])) is None  # stopped early
    assert math.isinf(scores.max_abs_diff(np.array([np.nan]), np.array([1.0])))


def test_steps_within_counts_the_leading_agreeing_steps():
    ref = np.array([1.0, 0.9, 0.8, 0.7])
    assert scores.steps_within(ref + 1e-7, ref, 1e-5) == 4  # parity holds: every step
    assert scores.steps_within(ref + [0, 0, 1e-3, 0], ref, 1e-5) == 2
    assert scores.steps_within(ref + [0, np.nan, 0, 0], ref, 1e-5) == 1
    assert scores.steps_within(ref[:3], ref, 1e-5) is None  # a run that stopped early
