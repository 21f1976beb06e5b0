"""Batches of a group of jobs: epoch shuffles with padding, class weights, evaluation.

Every model of a group sees the batches it would see alone: its rows are shuffled by its
own generator and the last batch of an epoch is padded, the padding weighted 0
(:func:`epoch_batches`). Evaluation runs in eval mode, without gradients, in slices of
rows (:func:`eval_logits`).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from mefr.models.base import GroupNet


def epoch_batches(rngs: list[np.random.Generator], fits: list[np.ndarray], steps: int,
                  batch: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled row indices ``(G, steps*batch)`` and their 0/1 weights (padding = 0)."""
    g = len(fits)
    idx = np.zeros((g, steps * batch), dtype=np.int64)
    w = np.zeros((g, steps * batch), dtype=np.float32)
    for i, (rng, f) in enumerate(zip(rngs, fits, strict=True)):
        idx[i, : len(f)] = rng.permutation(f)
        w[i, : len(f)] = 1.0
    return idx, w


def class_weights(y: np.ndarray, fits: list[np.ndarray], k: int, mode: str,
                  dev: torch.device) -> torch.Tensor | None:
    """``(G, K)`` weights of the classification loss (Eq. 7) per job, or None (``none``).

    ``balanced``: ``n / (K * n_k)`` from each job's fit rows, as scikit-learn's
    ``compute_class_weight("balanced")``; 0 for a class the job's rows lack.
    """
    if mode == "none":
        return None
    rows = []
    for f in fits:
        counts = np.bincount(y[f], minlength=k).astype(np.float64)
        wts = np.where(counts > 0, len(f) / (k * np.maximum(counts, 1)), 0.0)
        rows.append(wts)
    return torch.tensor(np.stack(rows), dtype=torch.float32, device=dev)


def padded(index_lists: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Row lists of unequal length as ``(G, T)`` indices (0-padded) and 0/1 weights."""
    t = max(1, max(len(i) for i in index_lists))
    idx = np.zeros((len(index_lists), t), dtype=np.int64)
    w = np.zeros((len(index_lists), t), dtype=np.float32)
    for g, i in enumerate(index_lists):
        idx[g, : len(i)] = i
        w[g, : len(i)] = 1.0
    return idx, w


def _iter_slices(n: int, size: int) -> Iterator[slice]:
    for s in range(0, n, size):
        yield slice(s, min(n, s + size))


@torch.no_grad()
def eval_logits(model: GroupNet, x_dev: torch.Tensor, idx: np.ndarray, batch: int = 256
                ) -> torch.Tensor:
    """Eval-mode logits ``(G, T, K)`` of rows ``idx`` ``(G, T)``, in slices of T."""
    model.eval()
    idx_t = torch.from_numpy(idx).to(x_dev.device)
    outs = [model(x_dev[idx_t[:, sl]]).logits for sl in _iter_slices(idx.shape[1], batch)]
    return torch.cat(outs, dim=1)


def predict_tests(model: GroupNet, x_dev: torch.Tensor, tests: list[np.ndarray]
                  ) -> list[np.ndarray]:
    """Class probabilities ``(T_g, K)`` of each model g on its own test rows."""
    idx, _ = padded([np.asarray(t, dtype=np.int64) for t in tests])
    probs = torch.softmax(eval_logits(model, x_dev, idx).float(), dim=-1).cpu().numpy()
    return [probs[g, : len(t)] for g, t in enumerate(tests)]


def probs16(logits: torch.Tensor) -> np.ndarray:
    """Class probabilities ``(G, T, K)`` of logits, as float16 on the host."""
    return torch.softmax(logits.float(), dim=-1).cpu().numpy().astype(np.float16)
