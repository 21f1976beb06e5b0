"""One clip -> network input: face crop, optional registration, apex, flow or LBP-TOP.

The core of every entry point of :mod:`mefr.preprocess.pipeline` (which runs it over a
sample table) and of :mod:`mefr.predict` (new clips): the face box is found on the onset
frame, every frame is cropped with it (after registration to the onset when
``settings.register`` asks for it, :mod:`mefr.preprocess.register`), the apex is chosen
by the settings' policy and the onset->apex TV-L1 flow (or the LBP-TOP histograms of all
crops) is computed.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mefr.preprocess.apex import ApexFallbackWarning, ClipError, spot_apex
from mefr.preprocess.face import (
    DETECT_MAX_SIDE,
    Box,
    ImageLike,
    as_bgr,
    as_grey,
    crop,
    face_box,
)
from mefr.preprocess.flow import compute_flow
from mefr.preprocess.lbptop import lbp_top
from mefr.preprocess.register import HeadMotion, Registrar
from mefr.preprocess.settings import PreprocessSettings


@dataclass(frozen=True)
class ClipFeatures:
    """The network input of one clip and how it was made.

    ``x`` float32 ``(C, size, size)`` (LBP-TOP: ``(1, 1, D)``); ``apex_index`` the
    position of the apex frame in the frames given (0 = onset); ``box`` the face box on
    the onset frame (the whole frame when ``face="none"``); ``notes`` warnings (e.g. an
    apex fallback); ``head_motion`` the motion from the onset to the apex frame that the
    registration removed (``None`` without registration).
    """

    x: np.ndarray
    channels: tuple[str, ...]
    apex_index: int
    box: Box
    notes: tuple[str, ...] = ()
    head_motion: HeadMotion | None = None




class _GreyCrops(Sequence):
    """Frames (paths or arrays) read lazily as grey face crops (one box, optional resize),
    each frame after the first registered to the first by ``registrar`` when one is given
    (the motion found for frame i is kept in ``motions[i]``)."""

    def __init__(
        self, frames: Sequence[ImageLike], box: Box, shape: tuple[int, int], face_size: int | None,
        registrar: Registrar | None = None,
    ) -> None:
        self.frames, self.box, self.shape, self.face_size = frames, box, shape, face_size
        self.registrar = registrar
        self.motions: dict[int, HeadMotion] = {}

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        frame = self.frames[i]
        src = str(frame) if isinstance(frame, str | Path) else f"<frame {i}>"
        grey = as_grey(frame, src)
        if grey.shape != self.shape:
            raise ClipError(
                f"{src}: frame size {grey.shape} differs from the onset's {self.shape}", file=src
            )
        if self.registrar is not None and i != 0:
            if i in self.motions:  # read again (the apex after Eq. (1)): same motion
                grey = self.registrar.warp(grey, self.motions[i])
            else:
                grey, self.motions[i] = self.registrar.register(grey, src)
        face = crop(grey, self.box)
        if self.face_size is not None:
            face = cv2.resize(face, (self.face_size, self.face_size), interpolation=cv2.INTER_AREA)
        return face

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[i] for i in range(len(self)))


def _face_of(onset: ImageLike, settings: PreprocessSettings, source: str) -> tuple[Box, tuple]:
    """The crop box on the onset frame and the frame's (H, W)."""
    bgr = as_bgr(onset, source)
    if settings.face == "none":
        return Box(0, 0, bgr.shape[1], bgr.shape[0]), bgr.shape[:2]
    box = face_box(
        bgr,
        margin=settings.margin,
        square=settings.square,
        conf=settings.face_conf,
        max_side=DETECT_MAX_SIDE,
        source=source,
    )
    return box, bgr.shape[:2]


def _source_of(image: ImageLike, fallback: str) -> str:
    return str(image) if isinstance(image, str | Path) else fallback


def _features(
    frames: Sequence[ImageLike],
    settings: PreprocessSettings,
    policy: str,
    annotated: int | None,
    source: str,
) -> ClipFeatures:
    """Face box on ``frames[0]``, apex by ``policy`` and flow (the core of every entry point)."""
    if len(frames) < 2:
        raise ClipError(f"{source}: a clip needs at least 2 frames, has {len(frames)}")
    onset_src = _source_of(frames[0], f"{source} <onset>")
    box, shape = _face_of(frames[0], settings, onset_src)
    registrar = None
    if settings.register != "none":
        whole = settings.face == "none"
        registrar = Registrar(as_grey(frames[0], onset_src), None if whole else box,
                              settings.register, source=onset_src)
    crops = _GreyCrops(frames, box, shape, settings.face_size, registrar)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ApexFallbackWarning)
        index = spot_apex(crops, policy, annotated=annotated, source=source)
    notes = tuple(str(w.message) for w in caught if issubclass(w.category, ApexFallbackWarning))
    if settings.descriptor == "lbptop":
        volume = np.stack(list(crops))
        x = lbp_top(volume, grid=settings.lbp_grid, radius=settings.lbp_radius)[None, None]
        return ClipFeatures(x=x, channels=settings.channels, apex_index=index, box=box,
                            notes=notes, head_motion=crops.motions.get(index))
    x = compute_flow(
        crops[0],
        crops[index],
        size=settings.size,
        strain=settings.strain,
        normalisation=settings.normalisation,
        scale=settings.scale,
    )
    return ClipFeatures(x=x, channels=settings.channels, apex_index=index, box=box, notes=notes,
                        head_motion=crops.motions.get(index))


def clip_features(
    onset: ImageLike, apex: ImageLike, settings: PreprocessSettings | None = None
) -> ClipFeatures:
    """The features of one onset/apex pair (paths or ``uint8`` grey/BGR arrays): the face
    found on ``onset`` crops both, then TV-L1 flow (``apex_index`` is 1)."""
    s = settings or PreprocessSettings()
    return _features([onset, apex], s, "annotated", 1, _source_of(onset, "<onset>"))


def frames_features(
    frames: Sequence[ImageLike],
    settings: PreprocessSettings | None = None,
    apex: int | None = None,
    source: str = "",
) -> ClipFeatures:
    """The features of a clip given as its frames from onset (``frames[0]``) to offset.

    ``apex`` is the index of the apex frame in ``frames``; when ``None`` it is spotted, by
    the middle frame if ``settings.apex_policy == "middle"``, else by Eq. (1), and the
    frame chosen is ``ClipFeatures.apex_index``.
    """
    s = settings or PreprocessSettings()
    src = source or (_source_of(frames[0], "<frames>") if len(frames) else "<frames>")
    if apex is not None:
        return _features(frames, s, "annotated", apex, src)
    policy = "middle" if s.apex_policy == "middle" else "diff"
    return _features(frames, s, policy, None, src)
