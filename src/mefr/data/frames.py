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


def _first_gaps(present: list[int], lo: int, hi: int, limit: int = 5) -> list[int]:
    """The first ``limit`` numbers of lo..hi absent from the sorted list ``present``
    (bounded by ``limit`` and ``len(present)``, never by the span)."""
    gaps: list[int] = []
    expect = lo
    for n in [*present, hi + 1]:
        while expect < n and len(gaps) < limit:
            gaps.append(expect)
            expect += 1
        if len(gaps) >= limit:
            break
        expect = n + 1
    return gaps


def clip_frames(
    folder: Path,
    onset: int | None,
    offset: int | None,
    where: tuple[Path, int | None, str],
    log: IssueLog,
) -> tuple[list[int], list[Path]] | None:
    """The frames of a clip folder from onset to offset (all frames when these are None).

    Applies the folder rules (missing, empty, duplicate numbers, a span longer than the
    folder, missing frames) and returns None when the clip must be skipped. ``where`` =
    (source, row, clip). Time and memory are bounded by the folder's size, whatever the
    frame numbers are.
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
    span = hi - lo + 1
    if span > 2 * len(frames):  # implausible: a mistyped offset, a stray file
        odd = f"; outlying file(s) {_outliers(frames)}" if onset is None or offset is None else ""
        log.add(
            "frame-span-too-long",
            source,
            row,
            clip,
            f"{folder}: frames {lo}..{hi} span {span} frames, more than twice the "
            f"{len(frames)} numbered image(s) the folder holds{odd}; skipped",
        )
        return None
    present = sorted(n for n in frames if lo <= n <= hi)
    if len(present) < span:
        gaps = _first_gaps(present, lo, hi)
        log.add(
            "frames-missing",
            source,
            row,
            clip,
            f"{folder}: {span - len(present)} of frames {lo}..{hi} missing "
            f"(first: {gaps}); skipped",
        )
        return None
    return present, [frames[n] for n in present]


def describe_folder(folder: Path, limit: int = 8) -> str:
    """What ``folder`` holds, for error messages: its first entries and their count."""
    if not folder.is_dir():
        return f"{folder} is not a folder."
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return f"{folder} holds {len(names)} entries: {names[:limit]}{more}."


def locate_clip_folder(root: Path, frames_root: Path, parts: tuple[str, ...]) -> str:
    """A hint for a frame folder at the wrong depth: where ``parts`` (one clip folder,
    relative to the frame folder) exists one or two levels below ``frames_root`` or
    ``root``, as the ``frames_dir`` to pass; '' when nowhere."""
    inner = frames_root / frames_root.name
    if inner.is_dir():
        return (f"Found {frames_root.name}/ inside {frames_root.name}/: pass frames_dir="
                f"{_relative(inner, root)} (in a spec: ?frames=...).")
    rel = "/".join(parts)
    for base in (frames_root, root):
        for pattern in (f"*/{rel}", f"*/*/{rel}"):
            for hit in sorted(base.glob(pattern))[:1]:
                found = hit
                for _ in parts:
                    found = found.parent
                return (f"Clip folder {rel} found under {found}: pass frames_dir="
                        f"{_relative(found, root)} (in a spec: ?frames=...).")
    return ""


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _outliers(frames: dict[int, Path]) -> list[str]:
    """The files on the smaller side of the widest gap in the frame numbers."""
    nums = sorted(frames)
    gaps = [b - a for a, b in zip(nums, nums[1:], strict=False)]
    if not gaps:
        return []
    i = max(range(len(gaps)), key=gaps.__getitem__)
    left, right = nums[: i + 1], nums[i + 1 :]
    side = left if len(left) < len(right) else right
    return [frames[n].name for n in side[:3]]


def is_plain_name(part: str) -> bool:
    """True when ``part`` names one folder inside its parent: not empty, not ``.`` or
    ``..``, and free of ``/``, ``\\``, ``:`` and NUL (so ``../x`` or ``C:x`` are not)."""
    return bool(part) and part not in (".", "..") and not any(c in part for c in "/\\:\0")


def find_first(candidates: Iterable[Path], what: str, rule: str) -> Path:
    """The first existing path of ``candidates``; an :class:`AnnotationError` otherwise."""
    cands = list(candidates)
    for c in cands:
        if c.exists():
            return c
    raise AnnotationError(f"{what} not found; looked for {[str(c) for c in cands]} [{rule}]")
