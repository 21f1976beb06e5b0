"""Recognition metrics of the paper (Section 6.2, Eqs. 9-13) on pooled predictions.

Every function takes ``(y_true, y_pred, num_classes)``: integer class indices in
``0..num_classes-1``. Under LOSO the predictions of all folds are **pooled** first and
each metric is computed once on the pooled vectors (the sums over folds ``m`` in the
paper's equations), never averaged over folds. Per-database figures of the composite
come from the same pooled predictions restricted to that database
(:func:`scores_by_dataset`).

Undefined per-class values
--------------------------
* ``F1_k`` (Eq. 12) is ``2 TP / (2 TP + FP + FN)``. It is 0 for a class that occurs in
  the ground truth but is never predicted, or is predicted but never occurs. For a class
  with **no true and no predicted sample** it is 0/0: it is reported as ``nan`` and left
  out of UF1, so UF1 (Eq. 10) is the mean over the classes present in ``y_true`` or
  ``y_pred``. This is exactly scikit-learn's ``f1_score(y_true, y_pred, average="macro")``
  (whose default labels are the classes present in either vector).
* ``Acc_k`` (Eq. 13, the recall of class k) divides by ``n_k``, the number of true
  samples of class k; for ``n_k = 0`` it is ``nan`` and UAR (Eq. 11) is the mean over
  the classes present in the ground truth, i.e. scikit-learn's
  ``balanced_accuracy_score``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix as _sk_confusion_matrix

#: The name under which :func:`scores_by_dataset` reports the pooled (all-database) scores.
COMPOSITE = "composite"


class MetricInputError(ValueError):
    """Labels or predictions that the metrics cannot use."""


def check_labels(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> tuple[
    np.ndarray, np.ndarray
]:
    """Validate and convert ``y_true`` / ``y_pred`` to int64 vectors of equal length.

    Raises :class:`MetricInputError` when the vectors are empty, not one-dimensional,
    of different lengths, not integers, or hold a value outside ``0..num_classes-1``.
    """
    if int(num_classes) < 1:
        raise MetricInputError(f"num_classes must be at least 1, got {num_classes!r}")
    out = []
    for name, v in (("y_true", y_true), ("y_pred", y_pred)):
        a = np.asarray(v)
        if a.ndim != 1:
            raise MetricInputError(f"{name} must be one-dimensional, got shape {a.shape}")
        if a.size and not np.issubdtype(a.dtype, np.integer):
            if not (np.issubdtype(a.dtype, np.floating) and np.all(a == np.round(a))):
                raise MetricInputError(f"{name} must hold integer class indices, got {a.dtype}")
        a = a.astype(np.int64)
        bad = np.flatnonzero((a < 0) | (a >= num_classes))
        if bad.size:
            i = int(bad[0])
            raise MetricInputError(
                f"{name}[{i}] = {a[i]} is not a class index 0..{num_classes - 1}"
            )
        out.append(a)
    if out[0].size != out[1].size:
        raise MetricInputError(
            f"y_true has {out[0].size} entries but y_pred has {out[1].size}"
        )
    if out[0].size == 0:
        raise MetricInputError("no predictions to score (empty y_true / y_pred)")
    return out[0], out[1]


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> np.ndarray:
    """The ``(K, K)`` count matrix, rows = true class, columns = predicted class."""
    t, p = check_labels(y_true, y_pred, num_classes)
    return _sk_confusion_matrix(t, p, labels=np.arange(num_classes)).astype(np.int64)


def _f1_from_confusion(cm: np.ndarray) -> np.ndarray:
    """``F1_k`` of a ``(..., K, K)`` stack of confusion matrices -> ``(..., K)``."""
    tp = np.diagonal(cm, axis1=-2, axis2=-1).astype(np.float64)
    fp = cm.sum(axis=-2) - tp
    fn = cm.sum(axis=-1) - tp
    denom = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), np.nan)


def _recall_from_confusion(cm: np.ndarray) -> np.ndarray:
    """``Acc_k`` of a ``(..., K, K)`` stack of confusion matrices -> ``(..., K)``."""
    tp = np.diagonal(cm, axis1=-2, axis2=-1).astype(np.float64)
    n_k = cm.sum(axis=-1).astype(np.float64)
    return np.where(n_k > 0, tp / np.where(n_k > 0, n_k, 1), np.nan)


def metric_from_confusions(cms: np.ndarray, metric: str) -> np.ndarray:
    """``acc``, ``uf1`` or ``uar`` of each matrix of a ``(..., K, K)`` stack -> ``(...)``.

    The same definitions as :func:`accuracy`, :func:`uf1` and :func:`uar` (undefined
    per-class values left out), for many confusion matrices at once.
    """
    cms = np.asarray(cms)
    if metric == "acc":
        total = cms.sum(axis=(-2, -1))
        correct = np.trace(cms, axis1=-2, axis2=-1)
        return np.where(total > 0, correct / np.maximum(total, 1), np.nan)
    per_class = {"uf1": _f1_from_confusion, "uar": _recall_from_confusion}.get(metric)
    if per_class is None:
        raise ValueError(f"unknown metric {metric!r}; known: acc, uf1, uar")
    values = per_class(cms)
    defined = ~np.isnan(values)
    n = defined.sum(-1)
    mean = np.where(defined, values, 0.0).sum(-1) / np.maximum(n, 1)
    return np.where(n > 0, mean, np.nan)  # an empty matrix has no defined class


def _with_classes(y_true: Sequence[Any], y_pred: Sequence[Any], num_classes: int | None
                  ) -> tuple[np.ndarray, np.ndarray, int]:
    """``(y_true, y_pred, K)`` as class indices. Without ``num_classes`` the classes are
    the sorted distinct labels of ``y_true`` and ``y_pred`` together (any labels, e.g.
    strings), as scikit-learn's ``unique_labels`` takes them for ``f1_score``."""
    if num_classes is not None:
        t, p = check_labels(y_true, y_pred, num_classes)
        return t, p, int(num_classes)
    t, p = np.asarray(y_true), np.asarray(y_pred)
    for name, a in (("y_true", t), ("y_pred", p)):
        if a.ndim != 1:
            raise MetricInputError(f"{name} must be one-dimensional, got shape {a.shape}")
    if t.size != p.size:
        raise MetricInputError(f"y_true has {t.size} entries but y_pred has {p.size}")
    if t.size == 0:
        raise MetricInputError("no predictions to score (empty y_true / y_pred)")
    try:
        labels = np.unique(np.concatenate([t, p]))
    except TypeError as e:
        raise MetricInputError(f"labels of mixed types cannot be ordered ({e})") from None
    return np.searchsorted(labels, t), np.searchsorted(labels, p), len(labels)


def accuracy(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int | None = None
             ) -> float:
    """Eq. (9): pooled true positives over all predictions (the share of correct ones).

    ``num_classes`` None: the classes are inferred from the labels (see :func:`uf1`).
    """
    cm = confusion_matrix(*_with_classes(y_true, y_pred, num_classes))
    return float(np.trace(cm) / cm.sum())


def per_class_f1(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> np.ndarray:
    """Eq. (12): ``F1_k`` of every class from pooled TP / FP / FN (``nan`` when 0/0)."""
    return _f1_from_confusion(confusion_matrix(y_true, y_pred, num_classes))


def per_class_recall(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> np.ndarray:
    """Eq. (13): ``Acc_k = TP_k / n_k`` of every class (``nan`` when ``n_k = 0``)."""
    return _recall_from_confusion(confusion_matrix(y_true, y_pred, num_classes))


def uf1(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int | None = None
        ) -> float:
    """Eq. (10): unweighted F1, the mean of ``F1_k`` over classes with a defined F1.

    With ``num_classes`` the labels are class indices ``0..num_classes-1``; without it
    the classes are the distinct labels of ``y_true`` and ``y_pred`` (any labels), as
    scikit-learn's ``f1_score(y_true, y_pred, average="macro")`` infers them:

    >>> uf1([0, 0, 1, 2], [0, 1, 1, 2])
    0.7777777777777777
    """
    return float(np.nanmean(per_class_f1(*_with_classes(y_true, y_pred, num_classes))))


def uar(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int | None = None
        ) -> float:
    """Eq. (11): unweighted average recall over the classes present in ``y_true``.

    ``num_classes`` None: the classes are inferred from the labels (see :func:`uf1`).
    """
    return float(np.nanmean(per_class_recall(*_with_classes(y_true, y_pred, num_classes))))


@dataclass(frozen=True)
class Scores:
    """All metrics of one set of pooled predictions.

    Attributes
    ----------
    acc, uf1, uar : Eqs. (9), (10), (11).
    f1 : ``F1_k`` per class, Eq. (12) (``nan`` where undefined, see the module notes).
    recall : ``Acc_k`` per class, Eq. (13) (``nan`` where ``n_k = 0``).
    support : ``n_k``, the number of true samples per class.
    confusion : ``(K, K)`` counts, rows = true class, columns = predicted class.
    """

    acc: float
    uf1: float
    uar: float
    f1: np.ndarray
    recall: np.ndarray
    support: np.ndarray
    confusion: np.ndarray

    @property
    def n(self) -> int:
        """The number of scored samples."""
        return int(self.support.sum())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``nan`` becomes ``None``)."""
        return {
            "n": self.n,
            "acc": _num(self.acc),
            "uf1": _num(self.uf1),
            "uar": _num(self.uar),
            "f1": [_num(v) for v in self.f1],
            "recall": [_num(v) for v in self.recall],
            "support": [int(v) for v in self.support],
            "confusion": self.confusion.astype(int).tolist(),
        }


def _num(v: float) -> float | None:
    v = float(v)
    return None if np.isnan(v) else v


def scores_from_confusion(cm: np.ndarray) -> Scores:
    """:class:`Scores` of a ``(K, K)`` confusion matrix (rows true, columns predicted)."""
    cm = np.asarray(cm, dtype=np.int64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.sum() == 0:
        raise MetricInputError(f"expected a non-empty square confusion matrix, got {cm.shape}")
    f1 = _f1_from_confusion(cm)
    rec = _recall_from_confusion(cm)
    return Scores(
        acc=float(np.trace(cm) / cm.sum()),
        uf1=float(np.nanmean(f1)),
        uar=float(np.nanmean(rec)),
        f1=f1,
        recall=rec,
        support=cm.sum(axis=1),
        confusion=cm,
    )


def score(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> Scores:
    """Every metric of Eqs. (9)-(13) on pooled predictions, as :class:`Scores`."""
    return scores_from_confusion(confusion_matrix(y_true, y_pred, num_classes))


def scores_by_dataset(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    datasets: Sequence[str],
    num_classes: int,
    order: Sequence[str] = (),
) -> dict[str, Scores]:
    """Scores of all pooled predictions (key :data:`COMPOSITE`) and of each database.

    ``datasets[i]`` names the database of sample i; the per-database scores use the same
    pooled predictions restricted to that database (the CDE convention). Databases are
    listed in ``order`` first (those present), then the others sorted by name.
    """
    t, p = check_labels(y_true, y_pred, num_classes)
    ds = np.asarray(datasets, dtype=object)
    if ds.shape != t.shape:
        raise MetricInputError(f"datasets has {ds.size} entries but y_true has {t.size}")
    present = set(ds.tolist())
    names = [d for d in order if d in present] + sorted(present - set(order))
    out = {COMPOSITE: score(t, p, num_classes)}
    for d in names:
        m = ds == d
        out[d] = score(t[m], p[m], num_classes)
    return out
