"""Apex frame policies: the annotated apex, the inter-frame difference of Eq. (1), the middle frame.

The seed paper uses the annotated apex for CASME II and SAMM and, for SMIC (which has no
apex annotation), the inter-frame difference of its Eq. (1) (Section 3.1)::

    t_apex = argmax_t mean_{x,y} | I(x, y, t) - I(x, y, 0) |

where frame 0 is the onset and the mean runs over the (cropped, greyscale) face. The
Dual-Inception ablation of its Table 1 instead takes the middle frame of the clip.

Frames are indexed from the onset: index 0 is the onset frame, the last index the offset
frame (see :func:`clip_span` for turning a table row's absolute frame numbers into this
range).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import cv2
import numpy as np

from mefr.preprocess.face import PreprocessError

#: The apex policies, by name.
APEX_POLICIES: tuple[str, ...] = ("annotated", "diff", "middle")


class ClipError(PreprocessError):
    """A clip's frames cannot give an onset/apex pair (too short, onset or apex not on disk)."""


class ApexFallbackWarning(UserWarning):
    """The ``annotated`` policy met a clip without an apex and used Eq. (1) instead."""


def check_policy(policy: str) -> str:
    """``policy`` if it names an apex policy, else a ``ValueError`` listing them."""
    if policy not in APEX_POLICIES:
        raise ValueError(f"unknown apex policy {policy!r} (expected one of {APEX_POLICIES})")
    return policy


def frame_differences(frames: Sequence[np.ndarray]) -> np.ndarray:
    """The Eq. (1) score of every frame: ``mean |I_t - I_0|`` over the pixels, float64 ``(T,)``.

    ``frames[0]`` is the onset (its score is 0). Frames are greyscale arrays of one shape
    (the cropped face); they are read one at a time, so ``frames`` may be a lazy sequence.
    """
    if len(frames) == 0:
        return np.zeros(0)
    onset = np.asarray(frames[0])
    scores = np.zeros(len(frames))
    for t in range(1, len(frames)):
        frame = np.asarray(frames[t])
        if frame.shape != onset.shape:
            raise ClipError(f"frame {t} has shape {frame.shape}, the onset {onset.shape}")
        if frame.dtype == np.uint8 and onset.dtype == np.uint8:
            scores[t] = float(np.mean(cv2.absdiff(frame, onset)))
        else:
            scores[t] = float(np.mean(np.abs(frame.astype(np.float64) - onset)))
    return scores


def diff_apex(frames: Sequence[np.ndarray]) -> int:
    """Eq. (1): the index ``t >= 1`` of the frame that differs most from the onset.

    Ties go to the earliest frame. Needs at least two frames.
    """
    if len(frames) < 2:
        raise ClipError(f"a clip needs at least 2 frames (onset and one more), has {len(frames)}")
    scores = frame_differences(frames)
    return 1 + int(np.argmax(scores[1:]))


def middle_apex(num_frames: int) -> int:
    """The middle frame of an onset..offset range of ``num_frames`` frames: ``num_frames // 2``
    (the later of the two middle frames when the count is even, never the onset).
    """
    if num_frames < 2:
        raise ClipError(f"a clip needs at least 2 frames (onset and one more), has {num_frames}")
    return num_frames // 2


def spot_apex(
    frames: Sequence[np.ndarray],
    policy: str = "diff",
    annotated: int | None = None,
    source: str = "",
) -> int:
    """The index (0 = onset) of the apex frame of a clip under ``policy``.

    - ``annotated``: ``annotated`` (an index into ``frames``); when it is ``None``, or 0
      (an apex annotated on the onset frame gives no motion), an
      :class:`ApexFallbackWarning` naming ``source`` is issued and ``diff`` is used.
    - ``diff``: Eq. (1), see :func:`diff_apex` (``frames`` are the cropped grey faces).
    - ``middle``: :func:`middle_apex` (only ``len(frames)`` is used).
    """
    check_policy(policy)
    where = f"{source}: " if source else ""
    if policy == "annotated":
        if annotated is None or annotated == 0:
            why = "no annotated apex" if annotated is None else "apex annotated on the onset"
            warnings.warn(
                f"{where}{why}; spotted with the inter-frame difference, Eq. (1)",
                ApexFallbackWarning,
                stacklevel=2,
            )
            return diff_apex(frames)
        if not 0 < annotated < len(frames):
            raise ClipError(
                f"{where}annotated apex index {annotated} is not after the onset and within "
                f"the clip's {len(frames)} frames"
            )
        return int(annotated)
    if policy == "middle":
        return middle_apex(len(frames))
    return diff_apex(frames)


def clip_span(
    frame_numbers: Sequence[int], onset: int | None, offset: int | None, source: str = ""
) -> tuple[int, int]:
    """The positions ``(first, last)`` in ``frame_numbers`` of a clip's onset and offset frames.

    A missing onset (offset) means the first (last) frame. Raises :class:`ClipError` when
    the onset frame has no file, or fewer than two frames lie in onset..offset. Frames
    after the offset are left out; a missing offset file means the last frame before it.
    """
    where = f"{source}: " if source else ""
    numbers = list(frame_numbers)
    if not numbers:
        raise ClipError(f"{where}the clip has no frame files")
    if onset is None:
        first = 0
    elif onset in numbers:
        first = numbers.index(onset)
    else:
        raise ClipError(
            f"{where}no file for the onset frame {onset} (frames {numbers[0]}..{numbers[-1]})"
        )
    last = len(numbers) - 1
    if offset is not None:
        inside = [i for i, n in enumerate(numbers) if n <= offset]
        last = inside[-1] if inside else -1
    if last - first + 1 < 2:
        raise ClipError(
            f"{where}too short: {max(last - first + 1, 0)} frame(s) from onset {onset} "
            f"to offset {offset}"
        )
    return first, last
