"""The losses against their formulas, and the reference's edge cases (ignore index, all ignored, QA clamping)."""

import math

import numpy as np
import pytest

from minidistil.modeling import losses


def _ce_by_hand(logits, labels):
    total, n = 0.0, 0
    for row, label in zip(logits, labels):
        if label == -100:
            continue
        total += math.log(sum(math.exp(v) for v in row)) - row[label]
        n += 1
    return total / n


def test_cross_entropy_matches_formula_and_ignores_minus_100():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((6, 5)).astype(np.float32)
    labels = np.array([0, 4, -100, 2, -100, 1])
    got = losses.cross_entropy(logits, labels)
    assert got.dtype == np.float32 and got.shape == ()
    assert float(got) == pytest.approx(_ce_by_hand(logits.astype(float), labels), abs=1e-6)


def test_cross_entropy_is_stable_for_large_logits():
    logits = np.array([[1000.0, 0.0, -1000.0], [-1e4, 1e4, 0.0]], np.float32)
    got = losses.cross_entropy(logits, np.array([0, 0]))
    assert float(got) == pytest.approx((0.0 + 2e4) / 2)


def test_cross_entropy_all_ignored_is_nan_like_the_reference():
    assert np.isnan(losses.cross_entropy(np.zeros((3, 4), np.float32), np.full(3, -100)))


@pytest.mark.parametrize("labels, match", [
    (np.array([0, 5]), "outside"),
    (np.array([0, -1]), "outside"),
    (np.array([0.0, 1.0]), "integers"),
    (np.array([0, 1, 2]), "3 labels for 2 rows"),
])
def test_cross_entropy_rejects_bad_labels(labels, match):
    with pytest.raises(ValueError, match=match):
        losses.cross_entropy(np.zeros((2, 5), np.float32), labels)


def test_mse():
    assert float(losses.mse(np.array([1.0, 2.0]), np.array([0.0, 4.0]))) == pytest.approx(2.5)
    with pytest.raises(ValueError, match="shape"):
        losses.mse(np.zeros(3), np.zeros(2))


def test_bce_with_logits_matches_formula_and_is_stable():
    x = np.array([[-3.0, 0.5], [2.0, 0.0]], np.float32)
    t = np.array([[0.0, 1.0], [1.0, 0.25]], np.float32)
    sig = 1 / (1 + np.exp(-x.astype(float)))
    expected = -(t * np.log(sig) + (1 - t) * np.log(1 - sig)).mean()
    assert float(losses.bce_with_logits(x, t)) == pytest.approx(expected, abs=1e-6)
    big = losses.bce_with_logits(np.array([1e4, -1e4], np.float32), np.array([0.0, 1.0], np.float32))
    assert float(big) == pytest.approx(1e4)


def test_span_loss_clamps_like_the_reference():
    rng = np.random.default_rng(1)
    start = rng.standard_normal((3, 4)).astype(np.float32)
    end = rng.standard_normal((3, 4)).astype(np.float32)
    # positions beyond the sequence clamp to 4 = ignored; negative ones clamp to 0 and count
    got = losses.span_loss(start, end, np.array([1, 10, -5]), np.array([[2], [4], [3]]))
    s = _ce_by_hand(start.astype(float), np.array([1, -100, 0]))
    e = _ce_by_hand(end.astype(float), np.array([2, -100, 3]))
    assert float(got) == pytest.approx((s + e) / 2, abs=1e-6)


def test_span_loss_rejects_bad_positions():
    z = np.zeros((2, 4), np.float32)
    with pytest.raises(ValueError, match="integers"):
        losses.span_loss(z, z, np.array([0.0, 1.0]), np.array([0, 1]))
    with pytest.raises(ValueError, match="batch of 2"):
        losses.span_loss(z, z, np.array([0, 1, 2]), np.array([0, 1, 2]))
