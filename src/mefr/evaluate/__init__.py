"""Evaluation: protocol splitters, the paper's metrics (Eqs. 9-13) and the protocol runner.

* :mod:`mefr.evaluate.protocols` - LOSO / CDE / CDMER splitters (scikit-learn shape) and
  :func:`protocol_folds`.
* :mod:`mefr.evaluate.metrics` - Acc, UF1, UAR, per-class F1 / recall, confusion matrices
  on pooled predictions.
* :mod:`mefr.evaluate.runner` - :func:`run_protocol`, the resumable run directory behind
  ``mefr evaluate``.
* :mod:`mefr.evaluate.compare` - A minus B of two run directories on the same clips, with
  a paired bootstrap over subjects (``mefr compare``).
"""

from mefr.evaluate.metrics import (
    COMPOSITE,
    Scores,
    accuracy,
    confusion_matrix,
    per_class_f1,
    per_class_recall,
    score,
    scores_by_dataset,
    uar,
    uf1,
)
from mefr.evaluate.protocols import (
    CDMER_EXPERIMENTS,
    LOSO,
    PROTOCOLS,
    CdmerExperiment,
    CrossDatabase,
    Fold,
    protocol_folds,
)
from mefr.evaluate.runner import RunDirError, RunResult, load_features, run_protocol

__all__ = [
    "CDMER_EXPERIMENTS",
    "COMPOSITE",
    "LOSO",
    "PROTOCOLS",
    "CdmerExperiment",
    "CrossDatabase",
    "Fold",
    "RunDirError",
    "RunResult",
    "Scores",
    "accuracy",
    "confusion_matrix",
    "load_features",
    "per_class_f1",
    "per_class_recall",
    "protocol_folds",
    "run_protocol",
    "scores_by_dataset",
    "score",
    "uar",
    "uf1",
]
