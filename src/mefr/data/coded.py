"""The shared reader of "coded" databases: a coding spreadsheet + one folder per clip.

CASME II and SAMM (and their kin) ship a spreadsheet with one row per clip (subject,
filename, onset, apex and offset frame numbers, action units, emotion) and the frames
under ``FRAMES/<subject>/<filename>/``. What differs between them is data, a
:class:`CodedDatabase` spec; :func:`read_coded_database` reads any of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mefr.data.frames import clip_frames, find_first
from mefr.data.labels import normalize_emotion
from mefr.data.rules import IssueLog, finish_table
from mefr.data.sheets import (
    cell_int,
    cell_text,
    find_annotation,
    locate_header,
    read_sheets,
    table_below_header,
)

#: The fields a coding file's columns are read into, in the order of :class:`Annotated`.
FIELDS: tuple[str, ...] = (
    "subject", "filename", "onset", "apex", "offset", "action_units", "emotion",
)


@dataclass(frozen=True)
class CodedDatabase:
    """What one coded database's reader needs to know.

    Attributes
    ----------
    dataset : the mefr dataset name the rows get.
    annotation_patterns : glob patterns of the coding file, searched under the root.
    frame_dirs : frame folders searched under the root, in order of preference.
    frames_label : what the frame folder is called in error messages.
    header : field (:data:`FIELDS`) -> the column as the database's file names it;
        names are compared after :func:`mefr.data.sheets.normalize_column`.
    subject_of : the subject id (as the folders write it) of a Subject cell, or None.
    optional : the fields whose column may be absent.
    """

    dataset: str
    annotation_patterns: tuple[str, ...]
    frame_dirs: tuple[str, ...]
    frames_label: str
    header: Mapping[str, str]
    subject_of: Callable[[object], str | None]
    optional: frozenset[str] = frozenset({"action_units"})


@dataclass(frozen=True)
class Annotated:
    """The fields of one annotation row after the row-level rules."""

    subject: str
    clip: str
    onset: int
    apex: int | None
    offset: int
    action_units: str
    emotion: str
    row: int


def check_row(
    rec: pd.Series, subject: str | None, source: Path, log: IssueLog, seen: set[tuple[str, str]]
) -> Annotated | None:
    """Apply the row-level rules to one annotation row (normalised column names).

    ``subject`` is the subject id the reader derived, or None when it is unusable.
    Returns None when the row is skipped (or blank).
    """
    row = int(rec["_row"])
    clip = cell_text(rec["filename"])
    raw_subject = cell_text(rec["subject"])
    if not clip and not raw_subject:
        return None  # blank-row
    if not clip or subject is None:
        log.add(
            "missing-id",
            source,
            row,
            clip or "?",
            f"subject {raw_subject!r} / filename {clip!r} unusable; row skipped",
        )
        return None
    if (subject, clip) in seen:
        log.add("duplicate-clip", source, row, clip, f"{subject}/{clip} seen before; row skipped")
        return None
    onset, offset = cell_int(rec["onset"]), cell_int(rec["offset"])
    if onset is None or offset is None:
        log.add(
            "bad-onset-offset",
            source,
            row,
            clip,
            f"onset {rec['onset']!r} / offset {rec['offset']!r} not a whole number; "
            "row skipped",
        )
        return None
    if onset > offset:
        log.add(
            "onset-after-offset", source, row, clip, f"onset {onset} > offset {offset}; row skipped"
        )
        return None
    apex = cell_int(rec["apex"])
    if apex is None:
        log.add(
            "apex-missing",
            source,
            row,
            clip,
            f"apex cell {rec['apex']!r} is not a frame number; apex left missing",
        )
    elif not onset <= apex <= offset:
        log.add(
            "apex-outside",
            source,
            row,
            clip,
            f"apex {apex} outside onset..offset {onset}..{offset}; apex left missing",
        )
        apex = None
    emotion = cell_text(rec["emotion"])
    if normalize_emotion(emotion) is None:
        log.add(
            "unknown-emotion",
            source,
            row,
            clip,
            f"emotion {emotion!r} is not a known emotion; kept as written "
            "(labellings drop it)",
        )
    seen.add((subject, clip))
    return Annotated(
        subject=subject,
        clip=clip,
        onset=onset,
        apex=apex,
        offset=offset,
        action_units=cell_text(rec.get("action_units")),
        emotion=emotion,
        row=row,
    )


def read_coded_database(
    spec: CodedDatabase,
    root: str | Path,
    annotation: str | Path | None = None,
    frames_dir: str | Path | None = None,
) -> pd.DataFrame:
    """A coding spreadsheet + ``FRAMES/<subject>/<clip>/`` folders -> sample table.

    The header row is found by content; each row is checked (:func:`check_row`) and its
    frames onset..offset collected (:func:`~mefr.data.frames.clip_frames`); faulty rows
    are skipped or repaired under :data:`~mefr.data.rules.BAD_INPUT_RULES`, each with a
    :class:`~mefr.data.rules.ReaderWarning`.
    """
    root = Path(root)
    path = (
        Path(annotation)
        if annotation is not None
        else find_annotation(root, spec.annotation_patterns)
    )
    frames_root = find_first(
        [root / frames_dir] if frames_dir is not None else [root / d for d in spec.frame_dirs],
        spec.frames_label,
        "frames-root-not-found",
    )
    h = spec.header
    sheet, header = locate_header(read_sheets(path), path, (h["subject"], h["filename"]))
    required = {f: h[f] for f in FIELDS if f not in spec.optional}
    optional = {f: h[f] for f in FIELDS if f in spec.optional and f in h}
    body = table_below_header(sheet, header, path, required, optional)
    log = IssueLog(spec.dataset)
    seen: set[tuple[str, str]] = set()
    rows = []
    for _, rec in body.iterrows():
        ann = check_row(rec, spec.subject_of(rec["subject"]), path, log, seen)
        if ann is None:
            continue
        got = clip_frames(
            frames_root / ann.subject / ann.clip, ann.onset, ann.offset,
            (path, ann.row, ann.clip), log,
        )
        if got is None:
            continue
        numbers, files = got
        rows.append(
            {
                "dataset": spec.dataset,
                "subject": ann.subject,
                "clip": ann.clip,
                "emotion": ann.emotion,
                "onset": ann.onset,
                "apex": ann.apex,
                "offset": ann.offset,
                "action_units": ann.action_units,
                "frames": files,
                "frame_numbers": numbers,
                "source": path,
                "row": ann.row,
            }
        )
    return finish_table(rows, log)
