"""Synthetic micro-expression databases written in the real on-disk formats.

:func:`write_synthetic_databases` writes CASME II-, SAMM- and SMIC-shaped databases
(folders, frame names, spreadsheets with the real headers, SAMM's prose rows above the
header, SMIC's label folders) that :func:`~mefr.data.casme2.read_casme2`,
:func:`~mefr.data.samm.read_samm` and :func:`~mefr.data.smic.read_smic` read like the
real ones. They let the whole pipeline run, and be tested, where the licensed databases
are not available.

How a clip is made
------------------
* **Identity.** Every subject is the face of ``skimage.data.astronaut()`` (a public
  photograph shipping with scikit-image), cropped, scaled, possibly mirrored, bent by a
  smooth random warp, with its own skin tone, brightness and contrast, pasted with a
  feathered elliptical mask on a smooth background of its own. SMIC's HS, VIS and NIR
  share subjects (the same people filmed by three cameras), as in the real database.
* **Expression.** A brief, low-amplitude, class-specific facial motion: a displacement
  field made of Gaussian bumps around brow, eye, nose and mouth landmarks
  (:data:`PATTERNS`, named after the FACS action units they imitate), applied with
  :func:`cv2.remap`. Its intensity rises smoothly (sin^2) from 0 at the onset frame to
  the apex frame and falls (cos^2) back to 0 at the offset frame; the apex amplitude is
  a few pixels.
* **Nuisance.** Sub-pixel head jitter (a smooth global translation) and Gaussian sensor
  noise on every frame.

The true apex and class of every clip go to ``synthetic_truth.csv`` at the root of
each database (:data:`TRUTH_COLUMNS`); the readers ignore that file. The output is a
deterministic function of the arguments (each clip draws from its own
``numpy.random.SeedSequence`` child, so adding a database or a subject leaves the other
clips unchanged).
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

#: Databases the generator writes (mefr dataset names).
SYNTHETIC_DATABASES: tuple[str, ...] = ("casme2", "samm", "smic_hs", "smic_vis", "smic_nir")

#: Columns of ``synthetic_truth.csv``.
TRUTH_COLUMNS: tuple[str, ...] = (
    "dataset",
    "subject",
    "clip",
    "emotion",
    "pattern",
    "cde_class",
    "onset",
    "apex",
    "offset",
    "amplitude_px",
    "frames_dir",
)

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

#: Default emotion cycle of each database, spelled as that database spells them.
#: Clip k of subject s gets entry ``(s * clips_per_subject + k) % len(cycle)``.
DEFAULT_EMOTIONS: dict[str, tuple[str, ...]] = {
    "casme2": (
        "happiness",
        "surprise",
        "disgust",
        "others",
        "happiness",
        "surprise",
        "repression",
        "sadness",
        "fear",
    ),
    "samm": (
        "Happiness",
        "Surprise",
        "Anger",
        "Other",
        "Happiness",
        "Surprise",
        "Contempt",
        "Disgust",
        "Fear",
    ),
    "smic_hs": ("negative", "positive", "surprise"),
    "smic_vis": ("negative", "positive", "surprise"),
    "smic_nir": ("negative", "positive", "surprise"),
}

#: Patterns a grouped SMIC label draws from (one per clip).
_GROUPED = {
    "negative": ("disgust", "anger", "sadness"),
    "positive": ("happiness",),
    "surprise": ("surprise",),
}
_ALIASES = {"other": "others", "happy": "happiness", "angry": "anger"}
_SMIC_ABBREV = {"negative": "ne", "positive": "po", "surprise": "sur"}
_SMIC_FOLDER = {"smic_hs": "HS", "smic_vis": "VIS", "smic_nir": "NIR"}
_SAMM_HEADER = (
    "Subject",
    "Filename",
    "Inducement Code",
    "Onset Frame",
    "Apex Frame",
    "Offset Frame",
    "Duration",
    "Type",
    "Action Units",
    "Notes",
    "Estimated Emotion",
    "Objective Classes",
)
_SAMM_PROSE = (
    "SAMM - Spontaneous Actions and Micro-Movements (SYNTHETIC STAND-IN made by mefr)",
    None,
    "FACS coding of the micro-movements of each participant.",
    "Onset, apex and offset are absolute frame numbers of the image sequence.",
    "Duration is offset - onset + 1 frames at 200 fps.",
    None,
    "Inducement Code: the stimulus video that elicited the movement.",
    "Objective Classes: groups of action units (see the SAMM paper).",
    "Estimated Emotion: the emotion estimated by the coders.",
    None,
    "These faces are warped copies of a public photograph; no participant is real.",
    None,
)
_OBJECTIVE_CLASS = {
    "happiness": 1,
    "surprise": 5,
    "disgust": 4,
    "repression": 6,
    "anger": 2,
    "sadness": 6,
    "fear": 5,
    "contempt": 3,
    "others": 7,
}


@dataclass(frozen=True)
class Face:
    """A subject's neutral face on the canvas: float32 BGR image and landmarks (x, y)."""

    image: np.ndarray
    landmarks: dict[str, tuple[float, float]]
    face_width: float


@dataclass(frozen=True)
class ClipSpec:
    """One synthetic clip: who, what, and where its frames lie in absolute numbers."""

    dataset: str
    subject: str
    clip: str
    emotion: str
    pattern: str
    onset: int
    apex: int
    offset: int
    amplitude: float


# ------------------------------------------------------------------ identities
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


# ------------------------------------------------------------------ motion
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
) -> list[np.ndarray]:
    """The frames (uint8 BGR) of one clip: motion warp + head jitter + sensor noise.

    Frame i shows ``face`` warped by ``profile[i] * field`` (content moves along the
    field) and shifted by a smooth sub-pixel translation of about ``jitter_px``.
    """
    h, w = face.image.shape[:2]
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
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
        mx = gx - s * field[..., 0] - np.float32(jx[i])
        my = gy - s * field[..., 1] - np.float32(jy[i])
        img = cv2.remap(face.image, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        oy, ox = offsets[i]
        img += noise[oy : oy + h, ox : ox + w]
        frames.append(np.clip(np.rint(img), 0, 255).astype(np.uint8))
    return frames


# ------------------------------------------------------------------ planning
def _pattern_of(emotion: str, rng: np.random.Generator) -> str:
    key = emotion.strip().lower()
    key = _ALIASES.get(key, key)
    if key in _GROUPED:
        options = _GROUPED[key]
        return options[int(rng.integers(len(options)))]
    if key not in PATTERNS:
        raise ValueError(
            f"no synthetic motion pattern for emotion {emotion!r}; known: {sorted(PATTERNS)}"
        )
    return key


def _subject_id(dataset: str, s: int) -> str:
    if dataset == "casme2":
        return f"sub{s + 1:02d}"
    if dataset == "samm":
        return f"{s + 6:03d}"
    return f"s{s + 1}"


def _clip_id(dataset: str, subject: str, k: int, emotion: str, rng: np.random.Generator) -> str:
    if dataset == "casme2":
        return f"EP{k + 1:02d}_{int(rng.integers(1, 20)):02d}" + ("f" if rng.random() < 0.4 else "")
    if dataset == "samm":
        return f"{subject}_{k // 3 + 1}_{k % 3 + 1}"
    return f"{subject}_{_SMIC_ABBREV[emotion]}_{k + 1:02d}"


def _seed_for(seed: int, *keys: str | int) -> np.random.SeedSequence:
    """A SeedSequence fixed by ``seed`` and string/int keys (order-independent of others)."""
    words = [seed]
    for k in keys:
        if isinstance(k, str):
            words.extend(k.encode())
        else:
            words.append(int(k))
        words.append(0xFFFF)
    return np.random.SeedSequence(words)


def plan_clips(
    dataset: str,
    subjects: int,
    clips_per_subject: int,
    frames: tuple[int, int],
    seed: int,
    emotions: Sequence[str] | None = None,
) -> list[ClipSpec]:
    """The clips of one synthetic database (ids, emotion, onset/apex/offset, amplitude)."""
    cycle = tuple(emotions) if emotions is not None else DEFAULT_EMOTIONS[dataset]
    lo, hi = frames
    if not 3 <= lo <= hi:
        raise ValueError(f"frames must be (min, max) with 3 <= min <= max, got {frames}")
    specs = []
    for s in range(subjects):
        subject = _subject_id(dataset, s)
        used: set[str] = set()
        for k in range(clips_per_subject):
            rng = np.random.default_rng(_seed_for(seed, dataset, "plan", s, k))
            emotion = cycle[(s * clips_per_subject + k) % len(cycle)]
            pattern = _pattern_of(emotion, rng)
            clip = _clip_id(dataset, subject, k, emotion.strip().lower(), rng)
            while clip in used:
                clip = _clip_id(dataset, subject, k, emotion.strip().lower(), rng)
            used.add(clip)
            n = int(rng.integers(lo, hi + 1))
            apex_index = int(round(rng.uniform(0.3, 0.6) * (n - 1)))
            onset = (
                int(rng.integers(1, 300)) if dataset == "casme2" else int(rng.integers(1000, 6000))
            )
            specs.append(
                ClipSpec(
                    dataset=dataset,
                    subject=subject,
                    clip=clip,
                    emotion=emotion,
                    pattern=pattern,
                    onset=onset,
                    apex=onset + apex_index,
                    offset=onset + n - 1,
                    amplitude=float(rng.uniform(2.0, 3.5)),
                )
            )
    return specs


# ------------------------------------------------------------------ writing
def _frame_name(spec: ClipSpec, number: int) -> str:
    if spec.dataset == "casme2":
        return f"img{number}.jpg"
    if spec.dataset == "samm":
        return f"{spec.subject}_{number:05d}.jpg"
    return f"image{number:06d}.bmp"


def _clip_dir(root: Path, spec: ClipSpec) -> Path:
    base = _frames_root(root, spec.dataset) / spec.subject
    if spec.dataset.startswith("smic"):
        return base / "micro" / spec.emotion.strip().lower() / spec.clip
    return base / spec.clip


def _subject_face(dataset: str, s: int, seed: int, canvas: tuple[int, int]) -> Face:
    family = "smic" if dataset.startswith("smic") else dataset
    face = make_face(np.random.default_rng(_seed_for(seed, family, "identity", s)), canvas)
    if dataset in ("smic_vis", "smic_nir"):
        rng = np.random.default_rng(_seed_for(seed, dataset, "camera", s))
        face = camera_variant(face, rng, near_infrared=dataset == "smic_nir")
    return face


def _write_clip(root: Path, spec: ClipSpec, face: Face, seed: int, k: int) -> Path:
    rng = np.random.default_rng(_seed_for(seed, spec.dataset, "render", spec.subject, k))
    field = motion_field(face, spec.pattern, spec.amplitude, rng)
    n = spec.offset - spec.onset + 1
    frames = render_clip(face, field, n, spec.apex - spec.onset, rng)
    folder = _clip_dir(root, spec)
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(frames):
        out = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if spec.dataset == "samm" else img
        path = folder / _frame_name(spec, spec.onset + i)
        params = [cv2.IMWRITE_JPEG_QUALITY, 95] if path.suffix == ".jpg" else []
        if not cv2.imwrite(str(path), out, params):
            raise OSError(f"cannot write {path}")
    return folder


def _write_casme2_sheet(path: Path, specs: Sequence[ClipSpec]) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "Sheet1"
    ws.append(
        [
            "Subject",
            "Filename",
            "OnsetFrame",
            "ApexFrame",
            "OffsetFrame",
            "Action Units",
            "Estimated Emotion",
        ]
    )
    for sp in specs:
        ws.append(
            [
                int(sp.subject[3:]),
                sp.clip,
                sp.onset,
                sp.apex,
                sp.offset,
                ACTION_UNITS[sp.pattern],
                sp.emotion,
            ]
        )
    wb.save(path)


def _write_samm_sheet(path: Path, specs: Sequence[ClipSpec]) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "FACS_Movement_Only"
    for line in _SAMM_PROSE:
        ws.append([line] if line else [])
    ws.append(list(_SAMM_HEADER))
    for sp in specs:
        inducement = int(sp.clip.split("_")[1])
        ws.append(
            [
                sp.subject,
                sp.clip,
                inducement,
                sp.onset,
                sp.apex,
                sp.offset,
                sp.offset - sp.onset + 1,
                "Micro - 1/2",
                ACTION_UNITS[sp.pattern],
                "",
                sp.emotion,
                _OBJECTIVE_CLASS[sp.pattern],
            ]
        )
    wb.save(path)


def _database_root(root: Path, dataset: str) -> Path:
    return root / ("smic" if dataset.startswith("smic") else dataset)


def _frames_root(db_root: Path, dataset: str) -> Path:
    if dataset == "casme2":
        return db_root / "CASME2_RAW_selected"
    if dataset == "samm":
        return db_root / "SAMM"
    return db_root / "SMIC" / _SMIC_FOLDER[dataset]


def _clear_previous(db_root: Path, dataset: str) -> None:
    """Remove the frames of an earlier synthetic run; refuse to touch anything else."""
    frames_root = _frames_root(db_root, dataset)
    if not frames_root.exists():
        return
    if not (db_root / "synthetic_truth.csv").is_file():
        raise FileExistsError(
            f"{frames_root} exists and {db_root} holds no synthetic_truth.csv: "
            "not a synthetic database, refusing to overwrite it"
        )
    shutil.rmtree(frames_root)


def write_synthetic_databases(
    root: str | Path,
    databases: Sequence[str] = ("casme2", "samm", "smic_hs"),
    subjects: int = 4,
    clips_per_subject: int = 6,
    frames: tuple[int, int] = (30, 60),
    size: tuple[int, int] = (240, 320),
    seed: int = 0,
    emotions: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Path]:
    """Write synthetic databases in the real on-disk formats; return each one's root.

    Parameters
    ----------
    root : output folder; databases go to ``root/casme2``, ``root/samm`` and
        ``root/smic`` (HS, VIS and NIR share ``root/smic/SMIC/{HS,VIS,NIR}``).
    databases : any of :data:`SYNTHETIC_DATABASES`.
    subjects : subjects per database (SMIC VIS/NIR reuse the first ones of HS).
    clips_per_subject : clips per subject.
    frames : (min, max) frames per clip, inclusive.
    size : canvas (height, width) in pixels; the face is about 0.83 of the height.
    seed : the output is a deterministic function of all arguments.
    emotions : optional emotion cycle per database (spelled as that database spells
        them) replacing :data:`DEFAULT_EMOTIONS`.

    An earlier synthetic database of the same name under ``root`` is replaced; a folder
    there that is not one (no ``synthetic_truth.csv``) raises :class:`FileExistsError`.

    Returns ``{dataset: path}``, the path to pass to that dataset's reader
    (:func:`mefr.data.read_database`). Each path holds ``synthetic_truth.csv`` with the
    true apex and pattern of its clips (:data:`TRUTH_COLUMNS`; SMIC's lists all three
    cameras, told apart by ``dataset``).
    """
    root = Path(root)
    unknown = [d for d in databases if d not in SYNTHETIC_DATABASES]
    if unknown:
        raise ValueError(
            f"unknown synthetic database(s) {unknown}; choose from {SYNTHETIC_DATABASES}"
        )
    if subjects < 1 or clips_per_subject < 1:
        raise ValueError("subjects and clips_per_subject must be at least 1")
    out: dict[str, Path] = {}
    truth: dict[Path, list[dict]] = {}
    for dataset in databases:
        db_root = _database_root(root, dataset)
        _clear_previous(db_root, dataset)
        db_root.mkdir(parents=True, exist_ok=True)
        cycle = emotions.get(dataset) if emotions else None
        specs = plan_clips(dataset, subjects, clips_per_subject, frames, seed, cycle)
        faces: dict[str, Face] = {}
        for k, spec in enumerate(specs):
            if spec.subject not in faces:
                faces[spec.subject] = _subject_face(dataset, len(faces), seed, size)
            folder = _write_clip(db_root, spec, faces[spec.subject], seed, k)
            truth.setdefault(db_root, []).append(
                {
                    "dataset": dataset,
                    "subject": spec.subject,
                    "clip": spec.clip,
                    "emotion": spec.emotion,
                    "pattern": spec.pattern,
                    "cde_class": CDE_CLASS[spec.pattern],
                    "onset": spec.onset,
                    "apex": spec.apex,
                    "offset": spec.offset,
                    "amplitude_px": round(spec.amplitude, 3),
                    "frames_dir": folder.relative_to(db_root).as_posix(),
                }
            )
        if dataset == "casme2":
            _write_casme2_sheet(db_root / "CASME2-coding-20140508.xlsx", specs)
        elif dataset == "samm":
            _write_samm_sheet(db_root / "SAMM_Micro_FACS_Codes_v2.xlsx", specs)
        out[dataset] = db_root
    for db_root, rows in truth.items():
        new = pd.DataFrame(rows, columns=list(TRUTH_COLUMNS))
        old = db_root / "synthetic_truth.csv"
        if old.is_file():  # keep the truth of SMIC cameras written by an earlier call
            kept = read_truth(old)
            new = pd.concat([kept[~kept["dataset"].isin(databases)], new], ignore_index=True)
        new.to_csv(old, index=False)
    return out


def read_truth(path: str | Path) -> pd.DataFrame:
    """``synthetic_truth.csv`` of a database root (or the file itself), ids as strings."""
    p = Path(path)
    if p.is_dir():
        p = p / "synthetic_truth.csv"
    return pd.read_csv(
        p, dtype={"subject": str, "clip": str, "cde_class": str}, keep_default_na=False
    )
