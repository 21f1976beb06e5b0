"""Choosing an epoch from learning curves, as test-selected (LEAKY) readings do: the
numerics behind :mod:`mefr.evaluate.audit`, on one seed's fold records.

A fold record holds a fold's test probabilities after every epoch. From them:
the composite UF1 after each epoch (:func:`uf1_by_epoch`), the epoch each test subject
would keep by its own accuracy or loss (:func:`best_epoch_per_subject`,
:func:`select_per_subject`), and what that per-subject choice adds when the labels carry
no signal at all (:func:`selection_under_shuffled_labels`). Ties between epochs go to
the earliest.

>>> import numpy as np
>>> probs = np.array([[[0.9, 0.1], [0.2, 0.8]],    # epoch 1: both clips right
...                   [[0.4, 0.6], [0.3, 0.7]]])   # epoch 2: the first one wrong
>>> best_epoch_per_subject(probs, np.array([0, 1]), "acc")
0
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mefr.evaluate.metrics import metric_from_confusions, scores_by_dataset
from mefr.evaluate.summary import DATASET_ORDER


@dataclass(frozen=True)
class FoldRecord:
    """One (seed, fold) of a run: its test clips and what was recorded about them.

    ``test`` ``(E, T, K)`` are the probabilities after each epoch (None without
    curves); ``evaluated`` ``(T, K)`` those of the evaluated model (the fold file).
    """

    seed: int
    fold: str
    index: np.ndarray
    dataset: np.ndarray
    subject: np.ndarray
    label: np.ndarray
    evaluated: np.ndarray
    evaluated_epoch: int | None
    test: np.ndarray | None
    train_loss: np.ndarray | None


def best_epoch_per_subject(probs: np.ndarray, labels: np.ndarray, by: str) -> int:
    """The 0-based epoch that a test-selected reading would keep for one subject.

    ``probs`` ``(E, T, K)`` are the subject's test probabilities after each epoch;
    ``by="acc"`` keeps the epoch of highest accuracy, ``by="loss"`` the lowest mean
    cross-entropy. Ties go to the earliest epoch. This looks at the test labels: it is
    the LEAKY selection that the audit measures, never one mefr uses.
    """
    if by == "acc":
        return int(np.argmax((probs.argmax(-1) == labels).mean(-1)))
    if by == "loss":
        p = np.take_along_axis(probs.astype(np.float64), labels[None, :, None], axis=-1)[..., 0]
        return int(np.argmin(-np.log(np.clip(p, 1e-7, 1.0)).mean(-1)))
    raise ValueError(f"by must be 'acc' or 'loss', got {by!r}")


def confusions_by_epoch(preds: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Confusion matrices ``(E, K, K)`` of predictions ``(E, N)`` against ``labels``."""
    e = preds.shape[0]
    flat = labels[None, :] * k + preds
    cms = np.zeros((e, k * k), dtype=np.int64)
    for i in range(e):
        cms[i] = np.bincount(flat[i], minlength=k * k)
    return cms.reshape(e, k, k)


def uf1_by_epoch(records: Sequence[FoldRecord], k: int) -> np.ndarray:
    """Composite UF1 (Eq. 10) of one seed's pooled test predictions after each epoch."""
    probs = np.concatenate([r.test for r in records], axis=1)  # (E, N, K)
    labels = np.concatenate([r.label for r in records])
    return metric_from_confusions(confusions_by_epoch(probs.argmax(-1), labels, k), "uf1")


def select_per_subject(records: Sequence[FoldRecord], by: str,
                       labels: Sequence[np.ndarray] | None = None
                       ) -> tuple[np.ndarray, list[int]]:
    """Pooled predictions when each test subject keeps its own best epoch (LEAKY).

    ``records`` are one seed's folds with curves; ``labels`` (one array per record,
    default each record's own) are the labels the selection looks at. Returns the
    predictions in the order of the records' clips and the 0-based epoch of each
    subject (:func:`best_epoch_per_subject`).
    """
    preds, epochs = [], []
    for i, r in enumerate(records):
        if r.test is None:
            raise ValueError(f"fold {r.fold} of seed {r.seed} has no learning curves")
        lab = r.label if labels is None else np.asarray(labels[i])
        for subject in dict.fromkeys(zip(r.dataset, r.subject, strict=True)):
            m = (r.dataset == subject[0]) & (r.subject == subject[1])
            e = best_epoch_per_subject(r.test[:, m], lab[m], by)
            epochs.append(e)
            preds.append((np.flatnonzero(m), r.test[e][m].argmax(-1).astype(np.int64), r))
    return _reassemble(records, preds), epochs


def selection_under_shuffled_labels(records: Sequence[FoldRecord], k: int, draws: int = 20,
                                    seed: int = 0, by: str = "acc"
                                    ) -> dict[str, dict[str, np.ndarray]]:
    """How much the per-subject LEAKY selection adds when the labels carry no signal.

    The test labels of one seed's pooled clips are shuffled (a permutation, so the class
    counts stay), ``draws`` times with ``numpy.random.default_rng(seed)``; each time UF1
    (Eq. 10), composite and per database, is computed of the model after the last epoch
    and of each subject's best epoch for the shuffled labels (:func:`select_per_subject`).
    Against shuffled labels no epoch knows more than another, so what the selection adds
    is what choosing among epochs on a few test clips adds by itself. Returns
    ``{"last epoch": {database: (draws,)}, "per subject": {...}}``, the database
    ``composite`` first.

    >>> rng = np.random.default_rng(0)
    >>> rec = FoldRecord(seed=0, fold="f", index=np.arange(6), dataset=np.array(["d"] * 6),
    ...                  subject=np.array(["s1"] * 3 + ["s2"] * 3), label=np.arange(6) % 3,
    ...                  evaluated=np.zeros((6, 3)), evaluated_epoch=None,
    ...                  test=rng.dirichlet(np.ones(3), size=(50, 6)), train_loss=None)
    >>> out = selection_under_shuffled_labels([rec], 3, draws=5)
    >>> bool(out["per subject"]["composite"].mean() > out["last epoch"]["composite"].mean())
    True
    """
    rng = np.random.default_rng(seed)
    labels = np.concatenate([r.label for r in records])
    datasets = np.concatenate([r.dataset for r in records])
    splits = np.cumsum([len(r.label) for r in records])[:-1]
    last = np.concatenate([r.test[-1].argmax(-1) for r in records])  # type: ignore[index]
    out: dict[str, dict[str, list[float]]] = {"last epoch": {}, "per subject": {}}
    for _ in range(draws):
        shuffled = rng.permutation(labels)
        picked, _epochs = select_per_subject(records, by, np.split(shuffled, splits))
        for name, pred in (("last epoch", last), ("per subject", picked)):
            for db, sc in scores_by_dataset(shuffled, pred, datasets, k,
                                            order=DATASET_ORDER).items():
                out[name].setdefault(db, []).append(float(sc.uf1))
    return {name: {db: np.asarray(v) for db, v in by_db.items()} for name, by_db in out.items()}


def _reassemble(recs: Sequence[FoldRecord], parts: list[tuple[np.ndarray, np.ndarray, Any]]
                ) -> np.ndarray:
    """Per-subject predictions put back in the order of the folds' clips."""
    out = {id(r): np.full(len(r.label), -1, dtype=np.int64) for r in recs}
    for rows, pred, r in parts:
        out[id(r)][rows] = pred
    return np.concatenate([out[id(r)] for r in recs])
