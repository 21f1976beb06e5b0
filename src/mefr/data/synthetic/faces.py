"""Synthetic identities: the astronaut's face, varied per subject and per camera.

Every subject is the face of ``skimage.data.astronaut()`` (a public photograph shipping
with scikit-image), cropped, scaled, possibly mirrored, bent by a smooth random warp,
with its own skin tone, brightness and contrast, pasted with a feathered elliptical mask
on a smooth background of its own (:func:`make_face`). :func:`camera_variant` gives the
same person seen by another camera (SMIC's VIS and NIR).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

#: Face box of ``skimage.data.astronaut()``: top, bottom, left, right (pixels).
FACE_BOX: tuple[int, int, int, int] = (25, 245, 140, 316)

#: Landmarks of ``skimage.data.astronaut()`` (x, y in its pixels), measured once with
#: yuface (eyes, nose, mouth corners) and by eye (brows, lids, chin). "left"/"right"
#: are as seen in the image.
LANDMARKS: dict[str, tuple[float, float]] = {
    "brow_left": (200.0, 92.0),
    "brow_right": (249.0, 92.0),
    "brow_left_in": (211.0, 94.0),
    "brow_right_in": (237.0, 94.0),
    "brow_left_out": (189.0, 94.0),
    "brow_right_out": (261.0, 94.0),
    "lid_left": (200.0, 106.0),
    "lid_right": (247.0, 107.0),
    "nose_left": (212.0, 113.0),
    "nose_right": (229.0, 113.0),
    "cheek_left": (196.0, 124.0),
    "cheek_right": (244.0, 124.0),
    "mouth_left": (198.0, 142.0),
    "mouth_right": (240.0, 142.0),
    "lip_upper": (219.0, 137.0),
    "chin": (219.0, 168.0),
}


@dataclass(frozen=True)
class Face:
    """A subject's neutral face on the canvas: float32 BGR image and landmarks (x, y)."""

    image: np.ndarray
    landmarks: dict[str, tuple[float, float]]
    face_width: float


def _astronaut_face() -> tuple[np.ndarray, dict[str, tuple[float, float]]]:
    """The BGR float32 face crop of the astronaut photo and its landmarks (crop pixels)."""
    from skimage import data as skdata  # imported here: skimage loads slowly

    rgb = skdata.astronaut()
    top, bottom, left, right = FACE_BOX
    crop = np.ascontiguousarray(rgb[top:bottom, left:right, ::-1]).astype(np.float32)
    marks = {k: (x - left, y - top) for k, (x, y) in LANDMARKS.items()}
    return crop, marks


def _mirror_name(name: str) -> str:
    if "left" in name:
        return name.replace("left", "right")
    return name.replace("right", "left")


def _smooth_field(
    rng: np.random.Generator, shape: tuple[int, int], amp: float, grid: int = 4
) -> np.ndarray:
    """A smooth random displacement field (H, W, 2) of about ``amp`` pixels."""
    coarse = rng.normal(0.0, amp, size=(grid, grid, 2)).astype(np.float32)
    return cv2.resize(coarse, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def _background(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A smooth two-colour gradient with low-frequency texture (float32 BGR)."""
    h, w = shape
    c0, c1 = rng.uniform(60, 200, size=3), rng.uniform(60, 200, size=3)
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = np.cos(angle) * xx / w + np.sin(angle) * yy / h
    t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    bg = c0[None, None, :] * (1 - t[..., None]) + c1[None, None, :] * t[..., None]
    tex = cv2.resize(
        rng.normal(0, 12, size=(6, 8)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC
    )
    return (bg + tex[..., None]).astype(np.float32)


def make_face(rng: np.random.Generator, canvas: tuple[int, int]) -> Face:
    """A subject's identity: the astronaut's face varied by ``rng`` on a (H, W) canvas.

    Variation: scale 0.9-1.05, mirror (p = 0.5), a smooth warp of about 3% of the face
    width, skin tone (per-channel gain), brightness and contrast, position, background.
    """
    h, w = canvas
    crop, marks = _astronaut_face()
    scale = rng.uniform(0.9, 1.05)
    fh = int(round(0.83 * h * scale))
    fw = int(round(fh * crop.shape[1] / crop.shape[0]))
    sx, sy = fw / crop.shape[1], fh / crop.shape[0]
    face = cv2.resize(crop, (fw, fh), interpolation=cv2.INTER_AREA)
    pts = {k: (x * sx, y * sy) for k, (x, y) in marks.items()}
    if rng.random() < 0.5:
        face = face[:, ::-1].copy()
        pts = {_mirror_name(k): (fw - 1 - x, y) for k, (x, y) in pts.items()}
    # Smooth identity warp: output(q) = input(q + d(q)), so a landmark p moves to ~p - d(p).
    d = _smooth_field(rng, (fh, fw), 0.03 * fw)
    gy, gx = np.mgrid[0:fh, 0:fw].astype(np.float32)
    face = cv2.remap(
        face, gx + d[..., 0], gy + d[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
    pts = {k: _moved(x, y, d) for k, (x, y) in pts.items()}
    gains = 1.0 + rng.normal(0.0, 0.07, size=3)
    contrast, brightness = rng.uniform(0.8, 1.15), rng.uniform(-20, 20)
    mean = face.mean()
    face = (face * gains[None, None, :] - mean) * contrast + mean + brightness
    # Paste with a feathered ellipse.
    mask = np.zeros((fh, fw), np.float32)
    cv2.ellipse(
        mask, (fw // 2, int(fh * 0.48)), (int(fw * 0.47), int(fh * 0.5)), 0, 0, 360, 1.0, -1
    )
    mask = cv2.GaussianBlur(mask, (0, 0), sigmaX=0.04 * fw)[..., None]
    x0 = int(round((w - fw) / 2 + rng.uniform(-0.06, 0.06) * w))
    y0 = int(round((h - fh) / 2 + rng.uniform(-0.03, 0.03) * h))
    x0, y0 = min(max(x0, 0), w - fw), min(max(y0, 0), h - fh)
    image = _background(rng, (h, w))
    roi = image[y0 : y0 + fh, x0 : x0 + fw]
    image[y0 : y0 + fh, x0 : x0 + fw] = mask * face + (1 - mask) * roi
    pts = {k: (x + x0, y + y0) for k, (x, y) in pts.items()}
    return Face(
        image=np.clip(image, 0, 255).astype(np.float32), landmarks=pts, face_width=float(fw)
    )


def _moved(x: float, y: float, d: np.ndarray) -> tuple[float, float]:
    iy = min(max(int(round(y)), 0), d.shape[0] - 1)
    ix = min(max(int(round(x)), 0), d.shape[1] - 1)
    return (x - float(d[iy, ix, 0]), y - float(d[iy, ix, 1]))


def camera_variant(face: Face, rng: np.random.Generator, near_infrared: bool) -> Face:
    """The same face seen by another camera (SMIC VIS/NIR): gain, offset, NIR greyscale."""
    img = face.image * rng.uniform(0.85, 1.1) + rng.uniform(-15, 15)
    if near_infrared:
        grey = cv2.cvtColor(np.clip(img, 0, 255).astype(np.float32), cv2.COLOR_BGR2GRAY)
        img = np.repeat(grey[..., None], 3, axis=2)
    return Face(np.clip(img, 0, 255).astype(np.float32), face.landmarks, face.face_width)
