"""What a synthetic clip is, and the base of every database's on-disk :class:`Layout`.

:class:`ClipSpec` is one planned clip; :class:`Layout` is how one database names and
stores clips (subclassed per database in :mod:`.layouts`); :func:`share_videos` and
:func:`write_rows` are helpers the layouts share.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np


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
    #: the folder the frames go to when it is not the clip's (one video, several clips)
    filename: str = ""
    #: neutral frames written before the onset and after the offset (long videos)
    lead: int = 0
    tail: int = 0

    @property
    def folder_name(self) -> str:
        """The name of the clip's (or its video's) folder."""
        return self.filename or self.clip


def _workbook():  # openpyxl is only needed by the writers of spreadsheets
    from openpyxl import Workbook

    return Workbook()


class Layout:
    """How one database lies on disk. Subclasses override what differs.

    Attributes
    ----------
    dataset : the mefr dataset name.
    folder : the database root, relative to the generator's output folder.
    frames_dir : the frame folder, relative to the database root.
    identity : databases with the same identity share subjects' faces (SMIC's cameras).
    emotions : the default emotion cycle, spelled as the database spells them.
    camera : None for the camera that defines the identity's faces; ``"vis"`` or
        ``"nir"`` for another camera filming the same people (gain, offset; NIR grey).
    plan_as : the dataset whose clip plan (ids, frame numbers, emotions) this one
        reuses: cameras recording in sync (SMIC-E's NIR with VIS); '' for its own.
    onset_range : onset frame numbers are drawn from ``[lo, hi)``.
    grey : frames are written greyscale.
    """

    dataset: str = ""
    folder: str = ""
    frames_dir: str = ""
    identity: str = ""
    emotions: tuple[str, ...] = ()
    camera: str | None = None
    plan_as: str = ""
    onset_range: tuple[int, int] = (1000, 6000)
    grey: bool = False

    def subject_id(self, s: int) -> str:
        """The id of the ``s``-th subject (0-based)."""
        return f"s{s + 1}"

    def clip_id(self, subject: str, k: int, emotion: str, rng: np.random.Generator) -> str:
        """The id of clip ``k`` of ``subject``; may draw from ``rng``."""
        raise NotImplementedError

    def video(self, subject: str, k: int) -> str:
        """The folder of clip ``k`` when it is a video's (shared by clips), else ''."""
        return ""

    def clip_dir(self, db_root: Path, spec: ClipSpec) -> Path:
        """The folder of the clip's frames."""
        return db_root / self.frames_dir / spec.subject / spec.folder_name

    def arrange(self, specs: list[ClipSpec]) -> list[ClipSpec]:
        """The clips of one subject as written (ids, folders, frame numbers); by default
        as planned."""
        return specs

    def frame_name(self, spec: ClipSpec, number: int) -> str:
        """The file name of frame ``number`` of the clip."""
        raise NotImplementedError

    def write_annotation(self, db_root: Path, specs: Sequence[ClipSpec]) -> None:
        """Write the annotation file of ``specs`` under ``db_root`` (none by default)."""


def share_videos(specs: list[ClipSpec], gap: int = 3, rename: bool = True) -> list[ClipSpec]:
    """Clips of one video (same ``filename``) one after another in its frame numbers,
    ``gap`` frames apart. With ``rename``, a video's clips are named
    ``{filename}_{onset}``, as the CAS(ME)^3 reader tells them apart (a video's only
    clip is named ``{filename}``)."""
    per_video: dict[str, int] = {}
    for sp in specs:
        per_video[sp.filename] = per_video.get(sp.filename, 0) + 1
    out: list[ClipSpec] = []
    end: dict[str, int] = {}
    for sp in specs:
        start = end[sp.filename] + 1 + gap if sp.filename in end else sp.onset
        shift = start - sp.onset
        end[sp.filename] = sp.offset + shift
        clip = sp.clip
        if rename:
            clip = f"{sp.filename}_{start}" if per_video[sp.filename] > 1 else sp.filename
        out.append(replace(sp, clip=clip, onset=start, apex=sp.apex + shift,
                           offset=sp.offset + shift))
    return out


def write_rows(path: Path, sheet: str, rows: Sequence[Sequence[object]],
               keep_other_sheets: bool = False) -> None:
    """Write ``rows`` as sheet ``sheet`` of the .xlsx ``path`` (the file's other sheets
    are kept when ``keep_other_sheets`` and it exists)."""
    if keep_other_sheets and path.is_file():
        from openpyxl import load_workbook

        wb = load_workbook(path)
        if sheet in wb.sheetnames:
            del wb[sheet]
        ws = wb.create_sheet(sheet)
    else:
        wb = _workbook()
        ws = wb.active
        ws.title = sheet
    for r in rows:
        ws.append(list(r))
    wb.save(path)
