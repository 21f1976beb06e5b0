"""New clips as network input: videos, frame folders, onset/apex pairs, frame lists.

:func:`prepare_input` reads one clip and computes its input with the same
:mod:`mefr.preprocess.pipeline` code and settings as the training clips.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mefr.data.frames import IMAGE_SUFFIXES, list_frames
from mefr.preprocess.clip import clip_features, frames_features
from mefr.preprocess.face import Box, ImageLike, PreprocessError
from mefr.preprocess.settings import PreprocessSettings


@dataclass(frozen=True)
class FramesInput:
    """A clip given as its frames from onset to offset (paths or ``uint8`` arrays).

    ``apex`` is the index of the apex frame (``None``: spotted); ``name`` labels the
    clip in predictions and explanation file names.
    """

    frames: Sequence[ImageLike]
    apex: int | None = None
    name: str = ""


#: What :meth:`Predictor.predict` accepts per clip.
PredictInput = str | os.PathLike | tuple[ImageLike, ImageLike] | FramesInput


@dataclass(frozen=True)
class PreparedClip:
    """A clip turned into network input.

    ``x`` float32 ``(C, size, size)`` with the preprocessing's channels;
    ``apex_index`` the apex position (0 = onset) among ``num_frames`` frames;
    ``apex_frame`` a readable name of it (file name, or ``frame i`` of a video);
    ``onset`` / ``apex`` the two images the flow was computed between (path or array);
    ``box`` the face box on the onset frame.
    """

    name: str
    kind: str
    x: np.ndarray
    apex_index: int
    apex_frame: str
    num_frames: int
    box: Box
    onset: ImageLike
    apex: ImageLike
    notes: tuple[str, ...] = ()


def describe_input(item: Any, i: int) -> tuple[str, str]:
    """``(name, kind)`` of an input before it is read (``kind``: video, frames, pair)."""
    if isinstance(item, FramesInput):
        return item.name or f"<frames #{i}>", "frames"
    if isinstance(item, tuple | list) and len(item) == 2:
        names = [str(p) if isinstance(p, str | os.PathLike) else f"<array #{i}>" for p in item]
        return f"{names[0]} + {names[1]}", "pair"
    if isinstance(item, str | os.PathLike):
        p = Path(item)
        return str(p), ("frames" if p.is_dir() else "video")
    return f"<input #{i}>", "unknown"


def read_video(path: str | os.PathLike) -> list[np.ndarray]:
    """All frames of a video file: the first as ``uint8`` BGR (for face detection), the
    others as ``uint8`` grey (all the flow needs; a third of the memory).

    Grey frames are ``cv2.cvtColor(BGR2GRAY)`` of the decoded frames, as the pipeline's own
    conversion, so a video gives the same features as a folder of its frames in a lossless
    format. Raises :class:`~mefr.preprocess.PreprocessError` naming the file when it is
    missing, cannot be opened or has no decodable frame.
    """
    p = Path(path)
    if not p.is_file():
        raise PreprocessError(f"{p}: video file not found", file=str(p))
    cap = cv2.VideoCapture(str(p))
    try:
        if not cap.isOpened():
            raise PreprocessError(
                f"{p}: cannot open the video (not a video, corrupt, or a codec OpenCV lacks)",
                file=str(p),
            )
        frames: list[np.ndarray] = []
        while True:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            frames.append(frame if not frames else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
    finally:
        cap.release()
    if not frames:
        raise PreprocessError(f"{p}: the video has no decodable frame", file=str(p))
    return frames


def folder_frames(folder: str | os.PathLike) -> list[Path]:
    """The frame files of a clip folder sorted by the number at the end of their names.

    Raises :class:`~mefr.preprocess.PreprocessError` when the folder is missing, holds no
    numbered image file, or two files carry the same number.
    """
    p = Path(folder)
    if not p.is_dir():
        raise PreprocessError(f"{p}: frame folder not found", file=str(p))
    frames, dups = list_frames(p)
    if dups:
        raise PreprocessError(
            f"{p}: several files carry frame number(s) {dups[:5]}; cannot order the frames",
            file=str(p),
        )
    if not frames:
        raise PreprocessError(
            f"{p}: no frame files (images {', '.join(sorted(IMAGE_SUFFIXES))} whose names "
            "end in the frame number)",
            file=str(p),
        )
    return [frames[n] for n in sorted(frames)]


def prepare_input(item: PredictInput, settings: PreprocessSettings, name: str = "") -> PreparedClip:
    """Read one input (see the module docstring) and compute its network input with
    ``settings``, as in training. Raises :class:`~mefr.preprocess.PreprocessError`."""
    label, kind = describe_input(item, 0)
    name = name or label
    if isinstance(item, FramesInput):
        frames: Sequence[ImageLike] = list(item.frames)
        feats = frames_features(frames, settings, apex=item.apex, source=name)
        apex_frame = _frame_label(frames, feats.apex_index)
    elif kind == "pair":
        onset, apex = item  # type: ignore[misc]
        feats = clip_features(onset, apex, settings)
        frames = [onset, apex]
        apex_frame = _frame_label(frames, 1)
    elif kind == "frames":
        frames = folder_frames(item)  # type: ignore[arg-type]
        feats = frames_features(frames, settings, source=name)
        apex_frame = frames[feats.apex_index].name  # type: ignore[union-attr]
    else:
        p = Path(item)  # type: ignore[arg-type]
        if not p.exists():
            raise PreprocessError(f"{p}: not found (no such video file or frame folder)",
                                  file=str(p))
        if p.suffix.lower() in IMAGE_SUFFIXES:
            raise PreprocessError(
                f"{p}: a single image is not a clip; give a video, a folder of frames or an "
                "onset/apex pair (--onset-apex ONSET APEX)",
                file=str(p),
            )
        frames = read_video(p)
        feats = frames_features(frames, settings, source=name)
        apex_frame = f"frame {feats.apex_index} of {len(frames)}"
    return PreparedClip(
        name=name, kind=kind, x=feats.x, apex_index=feats.apex_index, apex_frame=apex_frame,
        num_frames=len(frames), box=feats.box, onset=frames[0], apex=frames[feats.apex_index],
        notes=feats.notes + ((f"onset->apex {feats.head_motion.describe()}",)
                             if feats.head_motion is not None else ()),
    )


def _frame_label(frames: Sequence[ImageLike], i: int) -> str:
    f = frames[i]
    return str(f) if isinstance(f, str | os.PathLike) else f"frame {i} of {len(frames)}"


