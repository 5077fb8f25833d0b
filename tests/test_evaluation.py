"""The offline metrics of the retraining protocol, against scikit-learn and hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from hf_prune.evaluation import compute_accuracy, macro_f1


def test_macro_f1_by_hand():
    # class 0: tp 1, predicted 2, actual 1 -> 2/3; class 1: tp 1, predicted 1, actual 2 -> 2/3; class 2: 1.
    assert macro_f1(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2])) == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    # a class present in the labels but never predicted counts as 0
    assert macro_f1(np.array([0, 0, 0]), np.array([0, 0, 1])) == pytest.approx((0.8 + 0.0) / 2)


def test_macro_f1_matches_scikit_learn_on_unbalanced_classes():
    rng = np.random.default_rng(0)
    labels = rng.choice(5, size=400, p=[0.5, 0.25, 0.15, 0.07, 0.03])
    predictions = np.where(rng.random(400) < 0.7, labels, rng.integers(0, 5, 400))
    assert macro_f1(predictions, labels) == pytest.approx(f1_score(labels, predictions, average="macro"))


def test_compute_accuracy_reports_both():
    class Prediction:
        predictions = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]])
        label_ids = np.array([0, 1, 1])

    metrics = compute_accuracy(Prediction())
    assert metrics["accuracy"] == pytest.approx(2 / 3)
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 2 / 3) / 2)
