"""Training-side augmentation of flow images: horizontal flips and small shifts.

Off in the paper (``augment_flip`` and ``augment_shift`` of
:class:`~mefr.train.config.TrainConfig`). Draws come from each job's own generator, so
a job is augmented the same way whatever group it trains in.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from mefr.train.config import TrainConfig

#: ``augment(batch, rngs)``: a ``(G, B, C, H, W)`` batch augmented with the G jobs'
#: generators.
Augmenter = Callable[[torch.Tensor, list[np.random.Generator]], torch.Tensor]


def make_augmenter(config: TrainConfig, dev: torch.device) -> Augmenter | None:
    """The training-side augmentation of ``config`` (None when it asks for none).

    A horizontal flip mirrors every channel and negates the horizontal flow u; on flow
    min-max scaled to 0..1 per image (the flow set's and mefr's preprocessing), negating
    u is ``1 - u``.
    """
    flip, shift = config.augment_flip, config.augment_shift
    if not flip and shift == 0:
        return None
    u_channel = config.channels.index("u") if "u" in config.channels else None

    def apply(xb: torch.Tensor, rngs: list[np.random.Generator]) -> torch.Tensor:
        g, n = xb.shape[:2]
        if flip:
            mask = np.stack([rng.random(n) < 0.5 for rng in rngs])
            xb = flip_flow(xb, torch.from_numpy(mask).to(dev), u_channel)
        if shift:
            offsets = np.stack([rng.integers(-shift, shift + 1, size=(n, 2)) for rng in rngs])
            xb = shift_images(xb, torch.from_numpy(offsets).to(dev), shift)
        return xb

    return apply


def flip_flow(x: torch.Tensor, mask: torch.Tensor, u_channel: int | None) -> torch.Tensor:
    """Mirror the images of ``x`` ``(G, B, C, H, W)`` where ``mask`` ``(G, B)`` is true.

    A mirrored face moves the other way horizontally, so the u channel (min-max scaled
    to 0..1) becomes ``1 - u`` after mirroring; v and strain are only mirrored.
    """
    flipped = torch.flip(x, dims=(-1,))
    if u_channel is not None:
        flipped = flipped.clone()
        flipped[:, :, u_channel] = 1.0 - flipped[:, :, u_channel]
    m = mask.view(*mask.shape, 1, 1, 1)
    return torch.where(m, flipped, x)


def shift_images(x: torch.Tensor, offsets: torch.Tensor, pad: int) -> torch.Tensor:
    """Shift each image of ``x`` ``(G, B, C, H, W)`` by ``offsets`` ``(G, B, 2)`` pixels
    (dy, dx, each in ``-pad..pad``), repeating the edge pixels into the gap."""
    g, b, c, h, w = x.shape
    flat = x.reshape(g * b, c, h, w)
    padded = torch.nn.functional.pad(flat, (pad, pad, pad, pad), mode="replicate")
    off = offsets.reshape(g * b, 2).to(torch.int64)
    rows = (pad - off[:, 0:1]) + torch.arange(h, device=x.device)  # (N, H)
    cols = (pad - off[:, 1:2]) + torch.arange(w, device=x.device)  # (N, W)
    n_idx = torch.arange(g * b, device=x.device).view(-1, 1, 1, 1)
    c_idx = torch.arange(c, device=x.device).view(1, -1, 1, 1)
    out = padded[n_idx, c_idx, rows.view(-1, 1, h, 1), cols.view(-1, 1, 1, w)]
    return out.reshape(g, b, c, h, w)
