"""What the per-subject LEAKY selection adds by itself: the audit's selection run against
shuffled test labels, where no epoch can know more than another.

>>> import numpy as np
>>> from mefr.evaluate.audit import FoldRecord
>>> rng = np.random.default_rng(0)
>>> rec = FoldRecord(seed=0, fold="f", index=np.arange(6), dataset=np.array(["d"] * 6),
...                  subject=np.array(["s1"] * 3 + ["s2"] * 3), label=np.arange(6) % 3,
...                  evaluated=np.zeros((6, 3)), evaluated_epoch=None,
...                  test=rng.dirichlet(np.ones(3), size=(50, 6)), train_loss=None)
>>> out = selection_under_shuffled_labels([rec], 3, draws=5)
>>> bool(out["per subject"].mean() > out["last epoch"].mean())
True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mefr.evaluate.audit import FoldRecord, confusions_by_epoch, select_per_subject
from mefr.evaluate.metrics import metric_from_confusions


def selection_under_shuffled_labels(records: Sequence[FoldRecord], k: int, draws: int = 20,
                                    seed: int = 0, by: str = "acc") -> dict[str, np.ndarray]:
    """How much the per-subject LEAKY selection adds when the labels carry no signal.

    The test labels of one seed's pooled clips are shuffled (a permutation, so the class
    counts stay), ``draws`` times with ``numpy.random.default_rng(seed)``; each time the
    composite UF1 (Eq. 10) is computed of the model after the last epoch and of each
    subject's best epoch for the shuffled labels (:func:`select_per_subject`). Against
    shuffled labels no epoch knows more than another, so what the selection adds is what
    choosing among epochs on a few test clips adds by itself. Returns ``{"last epoch":
    (draws,), "per subject": (draws,)}``.
    """
    rng = np.random.default_rng(seed)
    labels = np.concatenate([r.label for r in records])
    splits = np.cumsum([len(r.label) for r in records])[:-1]
    last = np.concatenate([r.test[-1].argmax(-1) for r in records])  # type: ignore[index]
    out: dict[str, list[float]] = {"last epoch": [], "per subject": []}
    for _ in range(draws):
        shuffled = rng.permutation(labels)
        picked, _epochs = select_per_subject(records, by, np.split(shuffled, splits))
        for name, pred in (("last epoch", last), ("per subject", picked)):
            cm = confusions_by_epoch(pred[None], shuffled, k)
            out[name].append(float(metric_from_confusions(cm, "uf1")[0]))
    return {name: np.asarray(v) for name, v in out.items()}
