"""The losses of FR (Section 3), computed per model of a group.

Every function takes tensors with a leading model axis G and per-sample weights
``w`` of shape ``(G, B)`` (1 for a real sample, 0 for padding of a partial batch) and
returns one value per model, so that ``loss.sum().backward()`` trains each model of a
group exactly as it would be trained alone.

The sums over the N samples in Eqs. (4) and (7) are taken as means over the batch, as
Keras (the paper's framework) computes them; this only rescales the gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mefr.models.base import ModelOutput


def _weighted_mean(values: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Mean over the batch axis (dim 1) of ``values`` ``(G, B, ...)`` weighted by ``w``."""
    while w.dim() < values.dim():
        w = w.unsqueeze(-1)
    return (values * w).sum(dim=1) / w.sum(dim=1).clamp(min=1e-12)


def detection_loss(det_logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Eq. (4): binary cross-entropy of each one-vs-rest detector, ``(G, K)``.

    ``det_logits`` ``(G, B, K)`` are the detectors' logits; the target of detector k
    is 1 for samples of class k and 0 otherwise.
    """
    k = det_logits.shape[-1]
    target = F.one_hot(y, k).to(det_logits.dtype)
    bce = F.binary_cross_entropy_with_logits(det_logits, target, reduction="none")
    return _weighted_mean(bce, w)


def proposal_loss(det_logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Eq. (5): the mean of the K detection losses, ``(G,)``."""
    return detection_loss(det_logits, y, w).mean(dim=-1)


def classification_loss(
    logits: torch.Tensor,
    y: torch.Tensor,
    w: torch.Tensor,
    class_weight: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Eq. (7): softmax cross-entropy of the classifier, ``(G,)``.

    ``class_weight`` ``(G, K)`` optionally weights each sample by its class (as Keras'
    ``class_weight``: a weighted sum divided by the number of samples).
    ``label_smoothing`` eps replaces the one-hot target by ``(1 - eps) * onehot + eps / K``
    (off in the paper).
    """
    g, b, k = logits.shape
    ce = F.cross_entropy(logits.reshape(g * b, k), y.reshape(g * b), reduction="none",
                         label_smoothing=label_smoothing).view(g, b)
    if class_weight is not None:
        ce = ce * torch.gather(class_weight, 1, y)
    return _weighted_mean(ce, w)


def fr_loss(
    out: ModelOutput,
    y: torch.Tensor,
    w: torch.Tensor,
    lam: float = 0.85,
    class_weight: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Eq. (8): ``lambda * L_prop + L_cls`` per model, ``(G,)``.

    Networks without detectors (Basic Inception, the baselines) get ``L_cls`` alone.
    ``label_smoothing`` applies to ``L_cls`` only (the detectors keep 0/1 targets).
    """
    loss = classification_loss(out.logits, y, w, class_weight, label_smoothing)
    if out.detector_logits is not None and lam != 0.0:
        loss = loss + lam * proposal_loss(out.detector_logits, y, w)
    return loss
