"""Metrics of Eqs. (9)-(13): against scikit-learn and a hand-worked LOSO example."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    recall_score,
)
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from mefr.evaluate.metrics import (
    COMPOSITE,
    MetricInputError,
    accuracy,
    confusion_matrix,
    per_class_f1,
    per_class_recall,
    score,
    scores_by_dataset,
    scores_from_confusion,
    uar,
    uf1,
)


def _random_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
    k = int(rng.integers(2, 7))
    n = int(rng.integers(1, 60))
    y_true = rng.integers(0, k, n)
    # sometimes a predictor that never uses some classes
    pred_classes = rng.choice(k, size=int(rng.integers(1, k + 1)), replace=False)
    y_pred = np.where(rng.random(n) < 0.5, y_true, rng.choice(pred_classes, n))
    return y_true, y_pred, k


@pytest.mark.parametrize("seed", range(40))
def test_against_sklearn_on_random_data(seed: int) -> None:
    y_true, y_pred, k = _random_case(np.random.default_rng(seed))
    labels = np.arange(k)
    np.testing.assert_array_equal(
        confusion_matrix(y_true, y_pred, k), sk_confusion_matrix(y_true, y_pred, labels=labels)
    )
    assert accuracy(y_true, y_pred, k) == pytest.approx(accuracy_score(y_true, y_pred))
    assert uf1(y_true, y_pred, k) == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true"
        bacc = balanced_accuracy_score(y_true, y_pred)
    assert uar(y_true, y_pred, k) == pytest.approx(bacc)
    assert uar(y_true, y_pred, k) == pytest.approx(
        recall_score(y_true, y_pred, labels=np.unique(y_true), average="macro")
    )
    np.testing.assert_allclose(
        per_class_f1(y_true, y_pred, k),
        f1_score(y_true, y_pred, labels=labels, average=None, zero_division=np.nan),
    )
    np.testing.assert_allclose(
        per_class_recall(y_true, y_pred, k),
        recall_score(y_true, y_pred, labels=labels, average=None, zero_division=np.nan),
    )


# Hand-worked example: K = 4 classes, two LOSO folds.
#   fold A: true 0 0 1 1   pred 0 1 1 1      (class 2 absent from this fold)
#   fold B: true 0 2 2 1   pred 0 0 1 1
# class 2 is never predicted; class 3 never occurs and is never predicted.
# Pooled confusion (rows true, cols pred):
#   0: [2 1 0 0]   1: [0 3 0 0]   2: [1 1 0 0]   3: [0 0 0 0]
# TP = (2, 3, 0, 0)  FP = (1, 2, 0, 0)  FN = (1, 0, 2, 0)
# F1 = (4/6, 6/8, 0/2, 0/0 -> nan)   UF1 = (2/3 + 3/4 + 0) / 3 = 17/36
# Acc_k = (2/3, 3/3, 0/2, n_k = 0 -> nan)   UAR = (2/3 + 1 + 0) / 3 = 5/9
# Acc = 5/8
FOLD_A = (np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]))
FOLD_B = (np.array([0, 2, 2, 1]), np.array([0, 0, 1, 1]))


def _pooled() -> tuple[np.ndarray, np.ndarray]:
    return (np.concatenate([FOLD_A[0], FOLD_B[0]]), np.concatenate([FOLD_A[1], FOLD_B[1]]))


def test_hand_worked_example() -> None:
    t, p = _pooled()
    s = score(t, p, 4)
    np.testing.assert_array_equal(
        s.confusion, [[2, 1, 0, 0], [0, 3, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]]
    )
    np.testing.assert_allclose(s.f1, [4 / 6, 6 / 8, 0.0, np.nan])
    np.testing.assert_allclose(s.recall, [2 / 3, 1.0, 0.0, np.nan])
    np.testing.assert_array_equal(s.support, [3, 3, 2, 0])
    assert s.uf1 == pytest.approx(17 / 36)
    assert s.uar == pytest.approx(5 / 9)
    assert s.acc == pytest.approx(5 / 8)
    assert s.n == 8


def test_pooled_is_not_the_mean_over_folds() -> None:
    t, p = _pooled()
    fold_mean = np.mean([uf1(*FOLD_A, 4), uf1(*FOLD_B, 4)])
    assert uf1(t, p, 4) == pytest.approx(17 / 36)
    assert fold_mean != pytest.approx(17 / 36)


def test_to_dict_is_json_ready() -> None:
    d = score(*_pooled(), 4).to_dict()
    assert d["f1"][3] is None and d["recall"][3] is None
    assert d["confusion"][2] == [1, 1, 0, 0]
    assert d["support"] == [3, 3, 2, 0]
    assert d["uf1"] == pytest.approx(17 / 36)


def test_scores_by_dataset_restricts_pooled_predictions() -> None:
    t, p = _pooled()
    ds = np.array(["casme2"] * 4 + ["samm"] * 4)
    out = scores_by_dataset(t, p, ds, 4, order=("samm", "casme2"))
    assert list(out) == [COMPOSITE, "samm", "casme2"]
    assert out[COMPOSITE].uf1 == pytest.approx(17 / 36)
    assert out["casme2"].uf1 == pytest.approx(uf1(*FOLD_A, 4))
    assert out["samm"].uar == pytest.approx(uar(*FOLD_B, 4))


def test_scores_from_confusion_matches_score() -> None:
    t, p = _pooled()
    a, b = score(t, p, 4), scores_from_confusion(confusion_matrix(t, p, 4))
    assert (a.uf1, a.uar, a.acc) == (b.uf1, b.uar, b.acc)


@pytest.mark.parametrize(
    ("y_true", "y_pred", "k", "message"),
    [
        ([0, 1], [0], 2, "y_pred has 1"),
        ([0, 3], [0, 1], 3, r"y_true\[1\] = 3"),
        ([0, 1], [0, -1], 2, r"y_pred\[1\] = -1"),
        ([], [], 2, "empty"),
        ([[0]], [[0]], 2, "one-dimensional"),
        ([0.5, 1], [0, 1], 2, "integer"),
        ([0], [0], 0, "num_classes"),
    ],
)
def test_bad_input_is_named(y_true, y_pred, k, message) -> None:
    with pytest.raises(MetricInputError, match=message):
        score(y_true, y_pred, k)
