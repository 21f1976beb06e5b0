"""What the engine is asked to train and what it gives back: jobs, seeds, splits, groups.

A :class:`Job` is one model to train (a key such as ``seed0/casme2/sub01``, a seed, its
training and test rows); :class:`GroupResult` holds the test probabilities, optional
models and per-job info of a call of :func:`mefr.train.engine.train_group`. Both the
networks' engine and the hand-crafted baselines (:mod:`mefr.train.handcrafted`) speak
these types, so the runner treats them alike.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mefr.models.base import GroupNet

#: ``on_result(key, probs, info)``: a job's test probabilities and what the engine
#: reports about it (seed, seconds, evaluated epoch, ...), as soon as it is trained.
#: With ``curves=True``, ``info["curves"]`` holds the job's :data:`CURVE_ARRAYS`.
OnResult = Callable[[str, np.ndarray, dict[str, Any]], None]

#: The arrays of a job's learning curves (``info["curves"]``), E = epochs:
#: ``test`` ``(E, T, K)`` float16 test probabilities after each epoch; ``inner_val``
#: ``(E, V, K)`` float16 inner-validation probabilities (V = 0 without inner
#: validation); ``inner_val_index`` ``(V,)`` their rows of ``x``; ``train_loss`` ``(E,)``
#: float32 mean training loss (Eq. 8) of each epoch.
CURVE_ARRAYS: tuple[str, ...] = ("test", "inner_val", "inner_val_index", "train_loss")


@dataclass(frozen=True)
class Job:
    """One model to train: its key, seed, training rows and test rows."""

    key: str
    seed: int
    train_idx: np.ndarray
    test_idx: np.ndarray


@dataclass
class GroupResult:
    """Test-set class probabilities per job key, and optionally the trained models.

    ``info[key]`` is what the engine reports about job ``key``: ``seed`` (the model's,
    :func:`job_seed`), ``group_size``, ``group_seconds``, ``epochs``,
    ``evaluated_epoch``, ``initial_train_loss`` and ``final_train_loss`` (the mean
    training loss, Eq. (8), of the first and of the last epoch; networks only),
    ``train_rows``, ``inner_val_rows``, ``device``, and ``curves`` when asked for.
    """

    probs: dict[str, np.ndarray] = field(default_factory=dict)
    models: dict[str, GroupNet] | None = None
    info: dict[str, dict[str, Any]] = field(default_factory=dict)


def job_seed(job: Job) -> int:
    """The seed of a job's model: a stable hash of ``(seed, key)`` (31 bits)."""
    return zlib.crc32(f"{job.seed}|{job.key}".encode()) & 0x7FFFFFFF


def inner_split(job: Job, groups: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Split a job's training rows into (fit, inner validation) by subject.

    ``round(fraction * subjects)`` training subjects (at least one, and at least one
    left to fit on) are drawn with the job's seed. Test rows are never involved.
    """
    train = np.asarray(job.train_idx)
    subjects = np.unique(groups[train])
    n_val = min(max(1, round(fraction * len(subjects))), len(subjects) - 1)
    if n_val < 1:
        return train, train[:0]
    rng = np.random.default_rng(job_seed(job) ^ 0x5EED)
    val_subjects = rng.choice(subjects, size=n_val, replace=False)
    is_val = np.isin(groups[train], val_subjects)
    return train[~is_val], train[is_val]


def plan_groups(jobs: list[Job], steps: list[int], max_models: int) -> list[list[int]]:
    """Job indices grouped by steps per epoch, each group at most ``max_models`` long."""
    by_steps: dict[int, list[int]] = {}
    for i, s in enumerate(steps):
        by_steps.setdefault(s, []).append(i)
    out: list[list[int]] = []
    for s in sorted(by_steps):
        idx = by_steps[s]
        for start in range(0, len(idx), max_models):
            out.append(idx[start:start + max_models])
    return out
