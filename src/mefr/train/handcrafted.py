"""Hand-crafted baselines: fixed features and a scikit-learn classifier per job.

``lbptop_svm`` is the MEGC 2019 baseline of the paper's Table 2: LBP-TOP histograms
(:mod:`mefr.preprocess.lbptop`), standardised with the training fold's statistics and
classified by a linear support vector machine (``sklearn.svm.SVC``, one-vs-one). Class
probabilities are Platt-scaled (``CalibratedClassifierCV``, sigmoid, on stratified folds
of the training rows only: five, or as many as the rarest class has clips; with a class
of a single clip no calibration is possible and the probabilities are the one-hot of the
SVM's prediction, which the job's info records).

It takes the engine's jobs and reports through the same ``on_result(key, probs, info)``,
so the runner, its executors and its run directories treat it as any network. Nothing
is tuned: ``C`` is a setting (``--set model_kwargs.C=...``, default 1), and the predicted
class is the most probable one. The fit is deterministic (no random draw), so every seed
gives the same result. The networks' training settings (optimiser, epochs, batch) do not
apply.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from mefr.models.registry import model_entry
from mefr.train.config import TrainConfig
from mefr.train.jobs import GroupResult, Job, OnResult, job_seed

#: Folds of the probability calibration (fewer when the rarest class has fewer clips).
CALIBRATION_FOLDS = 5


def svm_classifier(config: TrainConfig, calibration_folds: int) -> Any:
    """The classifier of ``lbptop_svm``: standardisation, then a linear SVM, calibrated
    on ``calibration_folds`` stratified folds (below 2: not calibrated)."""
    kw = {**model_entry(config.model).kwargs, **config.model_kwargs}
    unknown = sorted(set(kw) - {"C"})
    if unknown:
        raise ValueError(f"{config.model}: unknown settings {unknown} (known: C)")
    weight = "balanced" if config.class_weighting == "balanced" else None
    svm = SVC(kernel="linear", C=float(kw["C"]), class_weight=weight)
    if calibration_folds >= 2:
        svm = CalibratedClassifierCV(svm, method="sigmoid", cv=calibration_folds,
                                     ensemble=False)
    return make_pipeline(StandardScaler(), svm)


def _probabilities(clf: Any, x: np.ndarray, num_classes: int, calibrated: bool
                   ) -> np.ndarray:
    """``(N, K)`` class probabilities (one-hot predictions when not calibrated); classes
    absent from the training fold get 0."""
    out = np.zeros((len(x), num_classes))
    if len(x) == 0:
        return out
    if calibrated:
        out[:, clf.classes_] = clf.predict_proba(x)
    else:
        out[np.arange(len(x)), clf.predict(x)] = 1.0
    return out


def train_handcrafted(
    x: np.ndarray,
    y: np.ndarray,
    jobs: list[Job],
    config: TrainConfig,
    num_classes: int,
    groups: np.ndarray | None = None,
    device: str = "auto",
    on_result: OnResult | None = None,
    progress: bool = False,
    return_models: bool = False,
    **_engine_options: Any,
) -> GroupResult:
    """Fit one classifier per job on its training rows and predict its test rows
    (the signature of :func:`mefr.train.engine.train_group`; ``device`` and the engine's
    options are ignored: scikit-learn runs on the CPU)."""
    if return_models:
        raise ValueError(f"{config.model} is a hand-crafted baseline: there is no network "
                         "to return or save")
    flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    y = np.asarray(y, dtype=np.int64)
    result = GroupResult()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), desc=f"fitting {len(jobs)} {config.model}", unit="job")
    try:
        for job in jobs:
            train = np.asarray(job.train_idx, dtype=np.int64)
            if len(train) == 0:
                raise ValueError(f"job {job.key!r} has no training rows")
            t0 = time.perf_counter()
            classes, counts = np.unique(y[train], return_counts=True)
            folds = min(CALIBRATION_FOLDS, int(counts.min()))
            if len(classes) == 1:  # an SVM needs two classes: predict the only one
                probs = np.zeros((len(job.test_idx), num_classes))
                probs[:, classes[0]] = 1.0
            else:
                clf = svm_classifier(config, folds).fit(flat[train], y[train])
                probs = _probabilities(clf, flat[np.asarray(job.test_idx, np.int64)],
                                       num_classes, calibrated=folds >= 2)
            info = {"seed": job_seed(job), "group_size": 1,
                    "group_seconds": round(time.perf_counter() - t0, 3), "epochs": 0,
                    "evaluated_epoch": 0, "train_rows": int(len(train)), "inner_val_rows": 0,
                    "device": "cpu (scikit-learn)",
                    "calibration_folds": folds if folds >= 2 and len(classes) > 1 else 0}
            result.probs[job.key] = probs
            result.info[job.key] = info
            if on_result is not None:
                on_result(job.key, probs, info)
            if bar is not None:
                bar.update()
    finally:
        if bar is not None:
            bar.close()
    return result
