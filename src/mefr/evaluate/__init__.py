"""Evaluation: protocol splitters, the paper's metrics (Eqs. 9-13) and the protocol runner.

* :mod:`mefr.evaluate.protocols` - LOSO / CDE / CDMER / holdout splitters (scikit-learn shape) and
  :func:`protocol_folds`.
* :mod:`mefr.evaluate.metrics` - Acc, UF1, UAR, per-class F1 / recall, confusion matrices
  on pooled predictions.
* :mod:`mefr.evaluate.runner` - :func:`run_protocol` behind ``mefr evaluate``: a protocol
  over seeds into a resumable run directory.
* :mod:`mefr.evaluate.rundir` - :class:`RunDir`, the only reader and writer of run
  directories.
* :mod:`mefr.evaluate.partial` - PARTIAL runs of some folds (``run_protocol(folds=...,
  subjects=...)``, ``mefr evaluate --folds``), marked as such and refused by the readers of
  finished runs.
* :mod:`mefr.evaluate.summary` - metrics.json, the Markdown table, the MEGC log and the
  warnings of a run; :func:`scores_frame` (per-seed scores as a DataFrame).
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
    Holdout,
    protocol_folds,
)
from mefr.evaluate.rundir import RunDir, RunDirError
from mefr.evaluate.runner import RunInterrupted, RunResult, run_protocol
from mefr.evaluate.summary import RunWarning, scores_frame

__all__ = [
    "CDMER_EXPERIMENTS",
    "COMPOSITE",
    "LOSO",
    "PROTOCOLS",
    "CdmerExperiment",
    "CrossDatabase",
    "Fold",
    "Holdout",
    "RunDir",
    "RunDirError",
    "RunInterrupted",
    "RunResult",
    "RunWarning",
    "Scores",
    "accuracy",
    "confusion_matrix",
    "per_class_f1",
    "per_class_recall",
    "protocol_folds",
    "run_protocol",
    "scores_by_dataset",
    "scores_frame",
    "score",
    "uar",
    "uf1",
]
