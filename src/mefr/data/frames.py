"""Frame folders: which files are frames, their numbers, and the frames of one clip.

A frame is an image file (:data:`IMAGE_SUFFIXES`) whose stem ends in a number, the
frame's absolute number in the recording (``img46.jpg``, ``006_05562.jpg``,
``image000123.bmp``). Other files are ignored. :func:`clip_frames` applies the folder
rules of :data:`mefr.data.rules.BAD_INPUT_RULES`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from mefr.data.rules import AnnotationError, IssueLog

IMAGE_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"})

_NUMBER_AT_END = re.compile(r"(\d+)$")


def frame_number(path: Path) -> int | None:
    """The frame number at the end of an image file's stem, or None (non-frame-file)."""
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return None
    m = _NUMBER_AT_END.search(path.stem)
    return int(m.group(1)) if m else None


def list_frames(folder: Path) -> tuple[dict[int, Path], list[int]]:
    """Frame number -> file of a clip folder, and the numbers carried by several files."""
    frames: dict[int, Path] = {}
    dups: list[int] = []
    for p in sorted(folder.iterdir()):
        n = frame_number(p) if p.is_file() else None
        if n is None:
            continue
        if n in frames:
            dups.append(n)
        frames[n] = p
    return frames, sorted(set(dups))


def clip_frames(
    folder: Path,
    onset: int | None,
    offset: int | None,
    where: tuple[Path, int | None, str],
    log: IssueLog,
) -> tuple[list[int], list[Path]] | None:
    """The frames of a clip folder from onset to offset (all frames when these are None).

    Applies the folder rules (missing, empty, duplicate numbers, missing frames) and
    returns None when the clip must be skipped. ``where`` = (source, row, clip).
    """
    source, row, clip = where
    if not folder.is_dir():
        log.add(
            "missing-frames-folder", source, row, clip, f"no frame folder {folder}; row skipped"
        )
        return None
    frames, dups = list_frames(folder)
    if not frames:
        log.add(
            "empty-frames-folder", source, row, clip, f"{folder} holds no numbered image; skipped"
        )
        return None
    lo = min(frames) if onset is None else onset
    hi = max(frames) if offset is None else offset
    in_clip = [n for n in dups if lo <= n <= hi]
    if in_clip:
        log.add(
            "duplicate-frame-number",
            source,
            row,
            clip,
            f"{folder}: several files for frame(s) {in_clip[:10]}; skipped",
        )
        return None
    missing = [n for n in range(lo, hi + 1) if n not in frames]
    if missing:
        log.add(
            "frames-missing",
            source,
            row,
            clip,
            f"{folder}: {len(missing)} of frames {lo}..{hi} missing "
            f"(first: {missing[:5]}); skipped",
        )
        return None
    numbers = list(range(lo, hi + 1))
    return numbers, [frames[n] for n in numbers]


def find_first(candidates: Iterable[Path], what: str, rule: str) -> Path:
    """The first existing path of ``candidates``; an :class:`AnnotationError` otherwise."""
    cands = list(candidates)
    for c in cands:
        if c.exists():
            return c
    raise AnnotationError(f"{what} not found; looked for {[str(c) for c in cands]} [{rule}]")
