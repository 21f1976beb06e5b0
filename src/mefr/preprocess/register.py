"""Head-motion compensation: register a frame to the onset face before the flow.

The seed paper computes the flow between the onset and apex crops without any
registration (its Section 4.2), so a head that moves between the two frames adds its own
motion to the flow: a face that only translates gives a flow field of the translation,
which a network reads as an expression. With ``PreprocessSettings(register=...)`` set to
``similarity`` or ``affine`` (:data:`REGISTRATIONS`; default ``none``, the paper's
pipeline), every frame after the onset is first mapped onto the onset frame by the
dominant (rigid) motion of the face, and the crops, the apex spotting and the flow see
the registered frames.

How the motion is estimated
    1. corners of the grey onset frame inside the face box grown by
       :data:`MASK_MARGIN` on each side (``cv2.goodFeaturesToTrack``, at most
       :data:`MAX_POINTS`; the grown box takes in the face outline and the hair, which move
       with the head and not with an expression);
    2. each corner is tracked into the frame with pyramidal Lucas-Kanade
       (``cv2.calcOpticalFlowPyrLK``) and back; tracks that do not return within
       :data:`FB_TOLERANCE` pixels of their start are dropped;
    3. a transform is fitted to the tracks with RANSAC (inlier threshold
       :data:`RANSAC_PX` pixels): ``cv2.estimateAffinePartial2D`` for ``similarity``
       (rotation, one scale, translation: 4 degrees of freedom),
       ``cv2.estimateAffine2D`` for ``affine`` (6). A micro-expression moves a few small
       regions by a few pixels, so its tracks are outliers of the head's motion;
    4. the frame is warped onto the onset with that transform and steps 2-3 repeated
       once on the warped frame; the two transforms are composed. The second pass removes
       the bias of tracking a large motion (a tenth of a degree and of a pixel on the
       synthetic clips).

The frame is then resampled in the onset's coordinates (``cv2.warpAffine``, bilinear,
borders replicated) and cropped with the onset's face box.

What is reported (:class:`HeadMotion`)
    the transform (onset -> frame, 2x3), and from it the displacement ``dx, dy`` (pixels of
    the frame) of the face box centre, the rotation (degrees, counter-clockwise on screen,
    as ``cv2.getRotationMatrix2D``; for ``affine`` the rotation of the nearest similarity)
    and the scale (square root of the determinant), with the number of tracks used.

A frame that cannot be registered (fewer than :data:`MIN_POINTS` corners tracked, no
transform found, a scale outside 1/:data:`MAX_SCALE_CHANGE`..:data:`MAX_SCALE_CHANGE`)
raises :class:`RegistrationError`, which leaves that clip out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from mefr.preprocess.apex import ClipError
from mefr.preprocess.face import Box, expand_box

#: Registration modes, by name: ``none`` (the paper), ``similarity``, ``affine``.
REGISTRATIONS: tuple[str, ...] = ("none", "similarity", "affine")
#: The face box is grown by this fraction of its width / height on each side for the
#: corners that are tracked.
MASK_MARGIN = 0.25
#: At most this many corners are tracked.
MAX_POINTS = 500
#: A track whose backward track ends further than this (pixels) from its start is dropped.
FB_TOLERANCE = 0.5
#: RANSAC's inlier threshold (pixels).
RANSAC_PX = 0.5
#: Fewer tracked corners (or RANSAC inliers) than this: the frame cannot be registered.
MIN_POINTS = 8
#: A fitted scale change larger than this factor (either way) is refused.
MAX_SCALE_CHANGE = 1.5
#: Lucas-Kanade window (pixels) and pyramid levels above the base image.
LK_WINDOW = 21
LK_LEVELS = 3


class RegistrationError(ClipError):
    """A frame cannot be registered to the onset (too few trackable corners, no fit)."""


def check_registration(name: str) -> str:
    """``name`` if it names a registration mode, else a ``ValueError`` listing them."""
    if name not in REGISTRATIONS:
        raise ValueError(f"unknown registration {name!r} (expected one of {REGISTRATIONS})")
    return name


@dataclass(frozen=True)
class HeadMotion:
    """The rigid motion of the face from the onset to a frame.

    ``matrix`` (2x3, rows as tuples) maps a point of the onset frame to the same point of
    the face in the other frame; ``centre`` is the onset face box centre ``(x, y)`` at
    which the displacement is measured; ``kind`` the registration mode; ``points`` the
    RANSAC inliers of the last pass.
    """

    matrix: tuple[tuple[float, float, float], tuple[float, float, float]]
    centre: tuple[float, float]
    kind: str
    points: int

    @property
    def array(self) -> np.ndarray:
        """``matrix`` as a float64 ``(2, 3)`` array."""
        return np.asarray(self.matrix, dtype=np.float64)

    @property
    def dx(self) -> float:
        """Horizontal displacement (pixels, right positive) of the face box centre."""
        return float(self.array[0] @ (*self.centre, 1.0) - self.centre[0])

    @property
    def dy(self) -> float:
        """Vertical displacement (pixels, down positive) of the face box centre."""
        return float(self.array[1] @ (*self.centre, 1.0) - self.centre[1])

    @property
    def rotation(self) -> float:
        """Rotation in degrees, counter-clockwise on screen (that of the nearest
        similarity for an affine matrix)."""
        m = self.array
        return math.degrees(math.atan2(m[0, 1] - m[1, 0], m[0, 0] + m[1, 1]))

    @property
    def scale(self) -> float:
        """Scale change: the square root of the determinant of the linear part."""
        m = self.array
        return math.sqrt(abs(m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]))

    @property
    def translation(self) -> float:
        """Length of ``(dx, dy)`` in pixels."""
        return math.hypot(self.dx, self.dy)

    def to_dict(self) -> dict:
        """JSON-able: the derived numbers (rounded) and the matrix."""
        return {
            "kind": self.kind,
            "dx": round(self.dx, 4),
            "dy": round(self.dy, 4),
            "rotation_deg": round(self.rotation, 4),
            "scale": round(self.scale, 6),
            "points": self.points,
            "centre": [round(float(c), 3) for c in self.centre],
            "matrix": [[float(v) for v in row] for row in self.matrix],
        }

    @classmethod
    def from_dict(cls, d: dict) -> HeadMotion:
        """The inverse of :meth:`to_dict`."""
        m = d["matrix"]
        return cls(
            matrix=(tuple(float(v) for v in m[0]), tuple(float(v) for v in m[1])),  # type: ignore[arg-type]
            centre=(float(d["centre"][0]), float(d["centre"][1])),
            kind=str(d["kind"]),
            points=int(d["points"]),
        )

    def describe(self) -> str:
        """One line, e.g. ``"head motion (similarity): dx +3.75 px, dy -2.21 px, rotation
        +2.11 deg, scale 1.000"`` (the caller says which frame it is)."""
        return (f"head motion ({self.kind}): dx {self.dx:+.2f} px, dy {self.dy:+.2f} px, "
                f"rotation {self.rotation:+.2f} deg, scale {self.scale:.3f}")


def _compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The 2x3 matrix of ``x -> a(b(x))``."""
    a3 = np.vstack([a, (0.0, 0.0, 1.0)])
    b3 = np.vstack([b, (0.0, 0.0, 1.0)])
    return (a3 @ b3)[:2]


def _as_grey_u8(image: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim != 2:
        raise ValueError(f"{what}: expected a uint8 grey image (H, W), got {a.dtype} {a.shape}")
    return np.ascontiguousarray(a)


class Registrar:
    """Registers frames to one onset frame (see the module docstring).

    ``onset`` is the grey ``uint8`` onset frame, ``box`` the face box on it (``None``:
    the whole frame), ``kind`` ``similarity`` or ``affine``. The onset's corners are found
    once; :meth:`estimate` and :meth:`register` then take any frame of the same size.
    """

    def __init__(self, onset: np.ndarray, box: Box | None, kind: str = "similarity",
                 source: str = "") -> None:
        if check_registration(kind) == "none":
            raise ValueError("Registrar needs kind 'similarity' or 'affine', not 'none'")
        self.onset = _as_grey_u8(onset, source or "<onset>")
        self.kind = kind
        self.source = source
        h, w = self.onset.shape
        whole = Box(0, 0, w, h)
        self.box = box if box is not None else whole
        grown = expand_box(self.box, self.onset.shape, margin=MASK_MARGIN) if box else whole
        mask = np.zeros_like(self.onset)
        mask[grown.y : grown.y + grown.h, grown.x : grown.x + grown.w] = 255
        spacing = max(3.0, min(self.box.w, self.box.h) / 60.0)
        pts = cv2.goodFeaturesToTrack(self.onset, MAX_POINTS, 0.01, spacing, mask=mask,
                                      blockSize=7)
        self.points = (np.zeros((0, 1, 2), np.float32) if pts is None
                       else pts.astype(np.float32))
        self.centre = (self.box.x + self.box.w / 2.0, self.box.y + self.box.h / 2.0)

    def _fit(self, frame: np.ndarray, where: str) -> tuple[np.ndarray, int]:
        """One pass: track the onset's corners into ``frame`` and fit the transform."""
        win = (LK_WINDOW, LK_WINDOW)
        if len(self.points) < MIN_POINTS:
            raise RegistrationError(
                f"{where}: cannot register to the onset: only {len(self.points)} corner(s) "
                f"found on the onset face (at least {MIN_POINTS} needed)", file=where)
        fwd, st, _ = cv2.calcOpticalFlowPyrLK(self.onset, frame, self.points, None,
                                              winSize=win, maxLevel=LK_LEVELS)
        back, st2, _ = cv2.calcOpticalFlowPyrLK(frame, self.onset, fwd, None,
                                                winSize=win, maxLevel=LK_LEVELS)
        err = np.linalg.norm((back - self.points)[:, 0], axis=1)
        ok = (st[:, 0] == 1) & (st2[:, 0] == 1) & (err < FB_TOLERANCE)
        if int(ok.sum()) < MIN_POINTS:
            raise RegistrationError(
                f"{where}: cannot register to the onset: {int(ok.sum())} of "
                f"{len(self.points)} face corners tracked (at least {MIN_POINTS} needed)",
                file=where)
        fit = cv2.estimateAffinePartial2D if self.kind == "similarity" else cv2.estimateAffine2D
        m, inliers = fit(self.points[ok], fwd[ok], method=cv2.RANSAC,
                         ransacReprojThreshold=RANSAC_PX, maxIters=2000, confidence=0.999,
                         refineIters=10)
        n = int(inliers.sum()) if inliers is not None else 0
        if m is None or n < MIN_POINTS or not np.all(np.isfinite(m)):
            raise RegistrationError(
                f"{where}: cannot register to the onset: no {self.kind} transform fits the "
                f"{int(ok.sum())} tracked face corners ({n} inliers)", file=where)
        return m.astype(np.float64), n

    def estimate(self, frame: np.ndarray, where: str = "") -> HeadMotion:
        """The head motion from the onset to ``frame`` (grey ``uint8``, the onset's size)."""
        where = where or self.source or "<frame>"
        img = _as_grey_u8(frame, where)
        if img.shape != self.onset.shape:
            raise RegistrationError(f"{where}: frame size {img.shape} differs from the "
                                    f"onset's {self.onset.shape}", file=where)
        first, _ = self._fit(img, where)
        residual, n = self._fit(self._warp(img, first), where)
        m = _compose(first, residual)
        motion = HeadMotion(matrix=(tuple(m[0]), tuple(m[1])),  # type: ignore[arg-type]
                            centre=self.centre, kind=self.kind, points=n)
        if not 1 / MAX_SCALE_CHANGE <= motion.scale <= MAX_SCALE_CHANGE:
            raise RegistrationError(
                f"{where}: cannot register to the onset: the fitted scale change "
                f"{motion.scale:.3f} is implausible for one clip", file=where)
        return motion

    def _warp(self, frame: np.ndarray, m: np.ndarray) -> np.ndarray:
        h, w = self.onset.shape
        return cv2.warpAffine(frame, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE)

    def warp(self, frame: np.ndarray, motion: HeadMotion) -> np.ndarray:
        """``frame`` resampled in the onset's coordinates: ``out(p) = frame(M p)``."""
        return self._warp(np.asarray(frame), motion.array)

    def register(self, frame: np.ndarray, where: str = "") -> tuple[np.ndarray, HeadMotion]:
        """``frame`` registered to the onset, and the motion found."""
        motion = self.estimate(frame, where)
        return self.warp(frame, motion), motion


def register_pair(onset: np.ndarray, frame: np.ndarray, box: Box | None = None,
                  kind: str = "similarity") -> tuple[np.ndarray, HeadMotion]:
    """``frame`` (grey ``uint8``) registered to ``onset`` about the face ``box`` (``None``:
    the whole frame), and the head motion found (see :class:`Registrar`)."""
    return Registrar(onset, box, kind).register(frame)
