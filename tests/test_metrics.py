"""Exact metric values on hand-made predictions."""

import numpy as np
import pytest

from harness.metrics.quality import classification_metrics, exercise_metrics, group_metrics


def test_binary_metrics_exact():
    y = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    # predictions: 0,0,1 | 1,1,1,0,0  -> TP(1)=3 FP(1)=1 FN(1)=2 ; TP(0)=2 FP(0)=2 FN(0)=1
    p1 = np.array([0.1, 0.2, 0.6, 0.9, 0.8, 0.7, 0.4, 0.3])
    probs = np.stack([1 - p1, p1], axis=1)
    m = classification_metrics(y, probs, ["neg", "pos"])
    assert m["accuracy"] == pytest.approx(5 / 8)
    assert m["per_class"]["pos"]["precision"] == pytest.approx(3 / 4)
    assert m["per_class"]["pos"]["recall"] == pytest.approx(3 / 5)
    assert m["per_class"]["pos"]["f1"] == pytest.approx(2 * 0.75 * 0.6 / 1.35)
    assert m["per_class"]["neg"]["precision"] == pytest.approx(2 / 4)
    assert m["per_class"]["neg"]["recall"] == pytest.approx(2 / 3)
    assert m["f1_macro"] == pytest.approx((2 * 0.75 * 0.6 / 1.35 + 2 * 0.5 * (2 / 3) / (0.5 + 2 / 3)) / 2)
    assert m["f1_micro"] == pytest.approx(5 / 8)
    # ROC-AUC by pair counting: of 15 (neg, pos) pairs, positives outrank negatives in 13.
    assert m["roc_auc"] == pytest.approx(13 / 15)
    assert m["confusion_matrix"] == [[2, 1], [2, 3]]
    assert exercise_metrics(m) == {
        "accuracy": m["accuracy"], "f1": m["f1_macro"], "precision": m["precision_macro"],
        "recall": m["recall_macro"], "average": "macro",
    }


def test_three_class_metrics_and_ovr_auc():
    y = np.array([0, 0, 1, 1, 2, 2])
    probs = np.array(
        [[0.8, 0.1, 0.1], [0.4, 0.5, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.1, 0.2, 0.7], [0.3, 0.3, 0.4]]
    )
    m = classification_metrics(y, probs, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(5 / 6)
    assert m["per_class"]["a"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert m["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["c"]["f1"] == 1.0
    # class c: scores of c-examples (0.7, 0.4) vs others (0.1 x4): all 8 pairs ranked right.
    assert m["roc_auc_per_class"][2] == 1.0
    # class a: positives (0.8, 0.4) vs negatives (0.2, 0.1, 0.1, 0.3): 8 of 8 pairs right.
    assert m["roc_auc_per_class"][0] == 1.0
    assert m["roc_auc"] == pytest.approx(np.mean(m["roc_auc_per_class"]))
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [0, 0, 2]]


def test_single_class_split_reports_auc_as_undefined():
    y = np.array([1, 1, 1])
    probs = np.array([[0.2, 0.8], [0.6, 0.4], [0.1, 0.9]])
    m = classification_metrics(y, probs, ["neg", "pos"])
    assert m["roc_auc"] is None
    assert "single class" in m["roc_auc_note"]
    assert m["accuracy"] == pytest.approx(2 / 3)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        classification_metrics(np.array([0, 1]), np.ones((2, 3)) / 3, ["a", "b"])


def test_group_metrics_match_hand_computed():
    y = np.array([0, 1, 0, 1])
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])
    groups = np.array(["en", "en", "fr", "fr"])
    g = group_metrics(y, probs, groups, ["neg", "pos"])
    assert g["en"]["accuracy"] == 1.0 and g["en"]["n"] == 2
    assert g["fr"]["accuracy"] == 0.0 and g["fr"]["f1_macro"] == 0.0
