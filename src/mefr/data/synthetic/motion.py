"""Synthetic expressions: class-specific facial motion, its time course, the rendering.

An expression is a brief, low-amplitude displacement field made of Gaussian bumps around
brow, eye, nose and mouth landmarks (:data:`PATTERNS`, named after the FACS action units
they imitate), applied with :func:`cv2.remap`. Its intensity rises smoothly (sin^2) from
0 at the onset frame to the apex frame and falls (cos^2) back to 0 at the offset frame
(:func:`intensity_profile`); the apex amplitude is a few pixels. :func:`render_clip`
adds sub-pixel head jitter and Gaussian sensor noise to every frame and, on request, a
rigid head motion (translation and rotation per frame, :func:`head_ramp`), whose true
value is known for testing registration.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from mefr.data.labels import normalize_emotion
from mefr.data.synthetic.faces import Face

#: One bump of a motion pattern: landmark, displacement direction at apex (x, y; a
#: length-1 vector moves the landmark by the clip's amplitude) and the bump's width as
#: a fraction of the face width.
Bump = tuple[str, tuple[float, float], float]

#: Motion patterns (canonical emotion -> bumps), after the FACS action units of each.
PATTERNS: dict[str, tuple[Bump, ...]] = {
    # AU1+2: inner and outer brows raised.
    "surprise": (
        ("brow_left", (0.0, -1.0), 0.09),
        ("brow_right", (0.0, -1.0), 0.09),
        ("brow_left_in", (0.0, -0.7), 0.06),
        ("brow_right_in", (0.0, -0.7), 0.06),
    ),
    # AU6+12: lip corners pulled up and out, cheeks raised.
    "happiness": (
        ("mouth_left", (-0.7, -0.7), 0.07),
        ("mouth_right", (0.7, -0.7), 0.07),
        ("cheek_left", (0.0, -0.4), 0.08),
        ("cheek_right", (0.0, -0.4), 0.08),
    ),
    # AU4+9+10: brows lowered and drawn together, nose wrinkled, upper lip raised.
    "disgust": (
        ("brow_left_in", (0.5, 0.8), 0.07),
        ("brow_right_in", (-0.5, 0.8), 0.07),
        ("nose_left", (0.0, -0.6), 0.05),
        ("nose_right", (0.0, -0.6), 0.05),
        ("lip_upper", (0.0, -0.5), 0.06),
    ),
    # AU15+17: lip corners down, chin raised (lips pressed).
    "repression": (
        ("mouth_left", (0.3, 0.8), 0.07),
        ("mouth_right", (-0.3, 0.8), 0.07),
        ("chin", (0.0, -0.6), 0.08),
    ),
    # AU4+23: brows lowered and drawn together strongly, lips tightened.
    "anger": (
        ("brow_left_in", (0.7, 0.7), 0.07),
        ("brow_right_in", (-0.7, 0.7), 0.07),
        ("brow_left", (0.0, 0.6), 0.08),
        ("brow_right", (0.0, 0.6), 0.08),
        ("mouth_left", (0.4, 0.0), 0.05),
        ("mouth_right", (-0.4, 0.0), 0.05),
    ),
    # AU1+15: inner brows raised, lip corners down.
    "sadness": (
        ("brow_left_in", (0.0, -0.7), 0.06),
        ("brow_right_in", (0.0, -0.7), 0.06),
        ("mouth_left", (0.0, 0.9), 0.07),
        ("mouth_right", (0.0, 0.9), 0.07),
    ),
    # AU4+20: brows drawn together and lowered, lips stretched sideways.
    "fear": (
        ("brow_left_in", (0.6, 0.4), 0.06),
        ("brow_right_in", (-0.6, 0.4), 0.06),
        ("mouth_left", (-0.9, 0.2), 0.07),
        ("mouth_right", (0.9, 0.2), 0.07),
    ),
    # R14 (+ slight R15): one lip corner pulled back and down, one brow lowered a little.
    "contempt": (
        ("mouth_right", (0.8, 0.4), 0.07),
        ("brow_right", (0.0, 0.4), 0.08),
    ),
    # L2+L7: one outer brow raised, one lower lid tightened (a non-emotional movement).
    "others": (
        ("brow_left_out", (0.0, -1.0), 0.07),
        ("lid_left", (0.0, -0.5), 0.05),
    ),
}

#: FACS strings written into the spreadsheets for each pattern.
ACTION_UNITS: dict[str, str] = {
    "surprise": "1+2",
    "happiness": "6+12",
    "disgust": "4+9+10",
    "repression": "15+17",
    "anger": "4+23",
    "sadness": "1+15",
    "fear": "4+20",
    "contempt": "R14",
    "others": "L2+L7",
}

#: The three CDE classes (Table 9) of each pattern, for the truth file.
CDE_CLASS: dict[str, str] = {
    "surprise": "surprise",
    "happiness": "positive",
    "disgust": "negative",
    "repression": "negative",
    "anger": "negative",
    "sadness": "negative",
    "fear": "negative",
    "contempt": "negative",
    "others": "",
}

#: Patterns a grouped label (SMIC's folders) draws from, one per clip.
GROUPED_PATTERNS: dict[str, tuple[str, ...]] = {
    "negative": ("disgust", "anger", "sadness"),
    "positive": ("happiness",),
    "surprise": ("surprise",),
}


def pattern_for(emotion: str, rng: np.random.Generator) -> str:
    """The motion pattern of an annotated emotion (any spelling :mod:`mefr.data.labels`
    knows); a grouped label draws one of :data:`GROUPED_PATTERNS` from ``rng``."""
    key = normalize_emotion(emotion) or emotion.strip().lower()
    if key in GROUPED_PATTERNS:
        options = GROUPED_PATTERNS[key]
        return options[int(rng.integers(len(options)))]
    if key not in PATTERNS:
        raise ValueError(
            f"no synthetic motion pattern for emotion {emotion!r}; known: {sorted(PATTERNS)}"
        )
    return key


def motion_field(
    face: Face, pattern: str, amplitude: float, rng: np.random.Generator
) -> np.ndarray:
    """The apex displacement field (H, W, 2) of ``pattern`` on ``face`` (pixels).

    A sum of Gaussian bumps (:data:`PATTERNS`) whose centres are jittered by up to 2% of
    the face width; a bump of direction (dx, dy) moves its landmark by about
    ``amplitude * (dx, dy)`` pixels.
    """
    h, w = face.image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    field = np.zeros((h, w, 2), np.float32)
    for name, (dx, dy), width in PATTERNS[pattern]:
        cx, cy = face.landmarks[name]
        cx += rng.uniform(-0.02, 0.02) * face.face_width
        cy += rng.uniform(-0.02, 0.02) * face.face_width
        sigma = width * face.face_width
        g = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
        field[..., 0] += amplitude * dx * g
        field[..., 1] += amplitude * dy * g
    return field


def intensity_profile(n_frames: int, apex_index: int) -> np.ndarray:
    """Expression intensity per frame: 0 at onset, sin^2 rise to 1 at apex, cos^2 fall to 0."""
    i = np.arange(n_frames, dtype=np.float64)
    rise = np.sin(0.5 * math.pi * i / max(apex_index, 1)) ** 2
    fall_len = max(n_frames - 1 - apex_index, 1)
    fall = np.cos(0.5 * math.pi * (i - apex_index) / fall_len) ** 2
    return np.where(i <= apex_index, rise, fall)


def render_clip(
    face: Face,
    field: np.ndarray,
    n_frames: int,
    apex_index: int,
    rng: np.random.Generator,
    jitter_px: float = 0.05,
    noise_sigma: float = 1.0,
    head: np.ndarray | None = None,
    head_centre: tuple[float, float] | None = None,
) -> list[np.ndarray]:
    """The frames (uint8 BGR) of one clip: motion warp + head jitter + sensor noise.

    Frame i shows ``face`` warped by ``profile[i] * field`` (content moves along the
    field) and shifted by a smooth sub-pixel translation of about ``jitter_px``.
    ``head`` (optional, float ``(n_frames, 3)``: ``dx, dy`` in pixels and a rotation in
    degrees, counter-clockwise on screen as ``cv2.getRotationMatrix2D``) moves the whole
    expressive face rigidly in frame i: a point ``p`` goes to ``R (p - c) + c + (dx, dy)``
    with ``c = head_centre`` (default: the canvas centre); see :func:`head_matrix`.
    """
    h, w = face.image.shape[:2]
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    if head is not None and np.shape(head) != (n_frames, 3):
        raise ValueError(f"head must have shape ({n_frames}, 3), got {np.shape(head)}")
    centre = head_centre if head_centre is not None else ((w - 1) / 2.0, (h - 1) / 2.0)
    prof = intensity_profile(n_frames, apex_index)
    t = np.arange(n_frames) / max(n_frames - 1, 1)
    freq, phase = rng.uniform(0.5, 2.0, size=2), rng.uniform(0, 2 * math.pi, size=2)
    jx = jitter_px * np.sin(2 * math.pi * freq[0] * t + phase[0])
    jy = jitter_px * np.sin(2 * math.pi * freq[1] * t + phase[1])
    # Sensor noise: each frame takes a window of one larger noise image at a random
    # offset (independent samples per frame, drawn once per clip for speed).
    pad = 64
    noise = rng.standard_normal((h + pad, w + pad) + face.image.shape[2:], dtype=np.float32)
    noise *= np.float32(noise_sigma)
    offsets = rng.integers(0, pad, size=(n_frames, 2))
    frames = []
    for i in range(n_frames):
        s = np.float32(prof[i])
        px, py, fx, fy = gx, gy, field[..., 0], field[..., 1]
        if head is not None:  # output(q) = expressive face at p = A^-1 q
            inv = cv2.invertAffineTransform(head_matrix(*head[i], centre=centre))
            px = np.float32(inv[0, 0]) * gx + np.float32(inv[0, 1]) * gy + np.float32(inv[0, 2])
            py = np.float32(inv[1, 0]) * gx + np.float32(inv[1, 1]) * gy + np.float32(inv[1, 2])
            fx = cv2.remap(field[..., 0], px, py, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            fy = cv2.remap(field[..., 1], px, py, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        mx = px - s * fx - np.float32(jx[i])
        my = py - s * fy - np.float32(jy[i])
        img = cv2.remap(face.image, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        oy, ox = offsets[i]
        img += noise[oy : oy + h, ox : ox + w]
        frames.append(np.clip(np.rint(img), 0, 255).astype(np.uint8))
    return frames


def head_matrix(dx: float, dy: float, angle_deg: float,
                centre: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """The 2x3 matrix of a rigid head motion: rotation by ``angle_deg`` (counter-clockwise
    on screen, ``cv2.getRotationMatrix2D``) about ``centre``, then a shift by ``(dx, dy)``
    pixels. It maps a point of the onset frame to where it is in the moved frame."""
    m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), float(angle_deg), 1.0)
    m[:, 2] += (dx, dy)
    return m


def head_ramp(n_frames: int, dx: float, dy: float, angle_deg: float) -> np.ndarray:
    """Head poses ``(n_frames, 3)`` for :func:`render_clip`: a drift growing linearly from
    none at the onset (frame 0) to ``(dx, dy, angle_deg)`` at the last frame."""
    t = np.arange(n_frames, dtype=np.float64) / max(n_frames - 1, 1)
    return t[:, None] * np.array([dx, dy, angle_deg], dtype=np.float64)[None, :]
