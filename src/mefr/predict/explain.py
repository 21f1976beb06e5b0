"""Explanation figures: the faces, the flow between them and each class's saliency.

FR's attention (Eqs. (2)-(3)) acts on the 1024-d shared feature vector, not on the
image; what can be drawn over the face is the input gradient of each class's
expression-specific branch (:meth:`mefr.predict.Predictor.saliency`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from mefr.predict.inputs import PreparedClip
from mefr.predict.results import Prediction
from mefr.preprocess.face import ImageLike, as_grey, crop
from mefr.preprocess.settings import PreprocessSettings


def face_crops(clip: PreparedClip, settings: PreprocessSettings) -> tuple[np.ndarray, np.ndarray]:
    """The grey onset and apex face crops the flow was computed between (the pipeline's
    crop: the onset's box on both, resized to ``settings.face_size`` when set)."""

    def one(img: ImageLike, what: str) -> np.ndarray:
        face = crop(as_grey(img, f"{clip.name} <{what}>"), clip.box)
        if settings.face_size is not None:
            side = settings.face_size
            face = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
        return face

    return one(clip.onset, "onset"), one(clip.apex, "apex")


def flow_to_rgb(u: np.ndarray, v: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """HSV colour-wheel coding of a flow field, float RGB ``(H, W, 3)`` in [0, 1]: hue =
    direction (image axes: +x right, +y down; 0 = right, red), value = magnitude
    / ``max_magnitude`` (default: the field's maximum), saturation 1."""
    from matplotlib.colors import hsv_to_rgb

    mag = np.hypot(u, v)
    top = float(max_magnitude) if max_magnitude else float(mag.max())
    hue = (np.arctan2(v, u) % (2 * np.pi)) / (2 * np.pi)
    val = np.clip(mag / top, 0.0, 1.0) if top > 0 else np.zeros_like(mag)
    return hsv_to_rgb(np.stack([hue, np.ones_like(hue), val], axis=-1))


def _colour_wheel(size: int = 101) -> np.ndarray:
    """An RGBA colour wheel in the coding of :func:`flow_to_rgb` (transparent outside)."""
    r = (size - 1) / 2
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    u, v = (xx - r) / r, (yy - r) / r
    rgb = flow_to_rgb(u, v, 1.0)
    alpha = (np.hypot(u, v) <= 1.0).astype(np.float64)
    return np.concatenate([rgb, alpha[..., None]], axis=-1)


def write_explanation(
    path: str | os.PathLike,
    clip: PreparedClip,
    prediction: Prediction,
    saliency: np.ndarray,
    settings: PreprocessSettings,
    network: str = "",
    detectors: bool | None = True,
    channels: Sequence[str] = ("u", "v"),
    members: int = 1,
) -> Path:
    """Draw one clip's explanation PNG (matplotlib, Agg).

    Top row: the grey onset and apex face crops, the TV-L1 flow between them at the
    crop's resolution as an HSV colour wheel (direction = hue, magnitude = brightness)
    and as arrows over the apex face coloured by magnitude. Bottom row: per class, the
    saliency ``saliency[k]`` (:meth:`Predictor.saliency`, ``(K, h, w)`` on the network
    grid) upsampled to the crop and overlaid on the onset face, one colour scale shared by
    all classes. ``detectors``: whether the saliency scores are detector logits (True),
    class logits (False) or, in an ensemble that mixes networks, each member's own (None);
    ``members`` > 1: the maps are the mean of an ensemble's members' maps.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import cm
    from matplotlib.colors import Normalize

    from mefr.preprocess.flow import tvl1_flow

    onset, apex = face_crops(clip, settings)
    flow = tvl1_flow(onset, apex)
    u, v = flow[..., 0], flow[..., 1]
    mag = np.hypot(u, v)
    top = max(float(mag.max()), 1e-6)
    k = len(saliency)
    classes = list(prediction.probabilities or {})
    ncols = max(4, k)
    fig, axes = plt.subplots(2, ncols, figsize=(4.2 * ncols, 8.6), squeeze=False)
    h, w = onset.shape

    def face_axes(ax, title: str) -> None:
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("x (px of the face crop)")
        ax.set_ylabel("y (px)")

    for ax, img, what in ((axes[0, 0], onset, "onset"), (axes[0, 1], apex, "apex")):
        im = ax.imshow(img, cmap="gray", vmin=0, vmax=255)
        frame = "frame 0" if what == "onset" else clip.apex_frame
        face_axes(ax, f"{what} face ({Path(frame).name if what == 'apex' else frame})")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="grey level")

    ax = axes[0, 2]
    ax.imshow(flow_to_rgb(u, v, top))
    face_axes(ax, "TV-L1 flow onset -> apex\nhue = direction, brightness = magnitude")
    sm = cm.ScalarMappable(Normalize(0, top), cmap="gray")
    fig.colorbar(sm, ax=ax, fraction=0.046, pad=0.04, label="magnitude (px) = brightness")
    inset = ax.inset_axes((0.60, 0.64, 0.28, 0.28))
    inset.imshow(_colour_wheel())
    inset.axis("off")
    inset.set_title("direction", fontsize=7, pad=1, color="white")
    inset.text(1.0, 0.5, " +x", transform=inset.transAxes, fontsize=7, color="white",
               ha="left", va="center")
    inset.text(0.5, 0.0, "+y", transform=inset.transAxes, fontsize=7, color="white",
               ha="center", va="top")

    ax = axes[0, 3]
    ax.imshow(apex, cmap="gray", vmin=0, vmax=255)
    step = max(1, int(round(max(h, w) / 16)))
    yy, xx = np.mgrid[step // 2:h:step, step // 2:w:step]
    uu, vv, mm = u[yy, xx], v[yy, xx], mag[yy, xx]
    q = ax.quiver(xx, yy, uu, vv, mm, cmap="viridis", norm=Normalize(0, top), angles="xy",
                  scale_units="xy", scale=top / (0.9 * step), width=0.006)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    face_axes(ax, f"flow arrows on the apex face\n(longest arrow = {top:.2f} px)")
    fig.colorbar(q, ax=ax, fraction=0.046, pad=0.04, label="flow magnitude (px)")
    for j in range(4, ncols):
        axes[0, j].axis("off")

    big = [cv2.resize(s, (w, h), interpolation=cv2.INTER_LINEAR) for s in saliency]
    vmax = max(float(max(b.max() for b in big)), 1e-12)
    what = {True: "detector {k} logit", False: "class {k} logit",
            None: "detector or class {k} logit"}[detectors]
    mean = f", mean of {members} members" if members > 1 else ""
    heat = plt.get_cmap("inferno")
    summed = ", ".join(channels)
    for j in range(ncols):
        ax = axes[1, j]
        if j >= k:
            ax.axis("off")
            continue
        name = classes[j] if j < len(classes) else str(j)
        ax.imshow(onset, cmap="gray", vmin=0, vmax=255)
        level = np.clip(big[j] / vmax, 0.0, 1.0)
        rgba = heat(level)
        rgba[..., 3] = 0.15 + 0.7 * level  # weak saliency lets the face show through
        ax.imshow(rgba)
        p = (prediction.probabilities or {}).get(name)
        d = (prediction.detector_scores or {}).get(name)
        scores = f"p={p:.2f}" + (f", detector={d:.2f}" if d is not None else "")
        mark = " (predicted)" if name == prediction.predicted else ""
        face_axes(ax, f"saliency of class '{name}'{mark}\n{scores}")
        fig.colorbar(cm.ScalarMappable(Normalize(0, vmax), heat), ax=ax, fraction=0.046,
                     pad=0.04, label=f"|∂ {what.format(k=j)} / ∂ input|, sum over {summed}{mean}")
    apex_text = clip.apex_frame if clip.apex_frame.startswith("frame ") else (
        f"{Path(clip.apex_frame).name} (frame {clip.apex_index} of {clip.num_frames})")
    fig.suptitle(
        f"{prediction.input}\nmodel {network}: predicted '{prediction.predicted}'; apex "
        f"{apex_text}; saliency = SmoothGrad input gradient on the onset face",
        fontsize=11,
    )
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


