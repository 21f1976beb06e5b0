"""A database mefr does not know, described by one CSV file: the ``csv`` reader.

``read_database("csv", FILE)``, ``--data csv:FILE`` or ``mefr prepare FILE --database
csv`` read a CSV with one row per clip and these columns (header names compared ignoring
case, spaces and punctuation; the spellings of :data:`HEADER` and
:data:`SPELLINGS` are accepted)::

    subject,clip,frames,onset,apex,offset,label
    s01,happy_01,s01/happy_01,120,131,145,happiness
    s01,surp_02,s01/surp_02,300,305,322,surprise

``subject``
    the subject id (the leave-one-subject-out group: ``csv/<subject>``).
``clip``
    the clip id, unique within the subject.
``frames``
    the clip's frame folder, relative to the CSV's folder (or to ``frames_dir`` when
    given; in a spec ``csv:FILE?frames=DIR``). Optional: an empty cell, or no such
    column, means ``{subject}/{clip}``. A folder holds one image per frame whose name
    ends in the frame number (``img046.jpg``, ``frame_0120.png``; see
    :mod:`mefr.data.frames`). Absolute paths and ``..`` are refused (rule
    ``unsafe-path``): give ``frames_dir`` instead.
``onset``, ``offset``
    frame numbers of the clip's first and last frames (as the file names number them).
``apex``
    the apex frame number; may be empty (the apex policy, e.g. Eq. (1), finds it).
``label``
    the emotion (``happiness``, ``surprise``, ``disgust``, ``negative``...: the names
    and spellings of :mod:`mefr.data.labels`), which a labelling (``cde``...) maps to a
    class. ``emotion`` is accepted as the column name too.
``action_units``
    optional FACS string.

The rows go through the rules of the spreadsheet readers
(:data:`mefr.data.rules.BAD_INPUT_RULES`, the ``sheets`` ones): a faulty row is skipped
(or its apex left missing) with a :class:`~mefr.data.rules.ReaderWarning` naming the
file, the row and the reason; a file that cannot be read, lacks a column or keeps too
few rows is an :class:`~mefr.data.rules.AnnotationError` naming the file. Rows get the
dataset name :data:`DATASET`.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pandas as pd

from mefr.data.coded import Annotated, CodedDatabase, read_coded_database
from mefr.data.rules import AnnotationError
from mefr.data.sheets import cell_text

#: The dataset name of the rows (the ``SCHEME`` of ``csv:FILE``).
DATASET = "csv"
#: Field -> the column name written in the CSV.
HEADER: dict[str, str] = {
    "subject": "subject",
    "filename": "clip",
    "frames": "frames",
    "onset": "onset",
    "apex": "apex",
    "offset": "offset",
    "action_units": "action_units",
    "emotion": "label",
}
#: More accepted column names (besides :data:`mefr.data.coded.COMMON_SPELLINGS`).
SPELLINGS: dict[str, tuple[str, ...]] = {
    "frames": ("frames folder", "frame folder", "frames_dir", "folder", "path"),
    "emotion": ("emotion", "class"),
}


def clip_folder(ann: Annotated, rec: pd.Series) -> tuple[str, ...]:
    """The ``frames`` cell split into folder names (``\\`` read as ``/``), or
    ``(subject, clip)`` when it is empty."""
    text = cell_text(rec.get("frames"))
    if not text:
        return (ann.subject, ann.filename)
    if text.startswith(("/", "\\")) or (len(text) > 1 and text[1] == ":"):
        return (text,)  # absolute: not a plain name, refused as unsafe-path
    return tuple(p for p in PurePosixPath(text.replace("\\", "/")).parts if p != ".") or (text,)


SPEC = CodedDatabase(
    dataset=DATASET,
    annotation_patterns=("*.csv",),
    frame_dirs=(".",),
    frames_label="frame folder of the CSV",
    header=HEADER,
    spellings=SPELLINGS,
    optional=frozenset({"action_units", "frames", "apex"}),
    clip_path=clip_folder,
)


def read_generic_csv(
    root: str | Path,
    frames_dir: str | Path | None = None,
    min_kept: float = 0.5,
) -> pd.DataFrame:
    """The sample table of a database described by the CSV file ``root`` (see the module
    docstring for its columns).

    ``frames_dir`` is the folder the ``frames`` cells are relative to (relative to the
    CSV's folder, or absolute; default: the CSV's folder). ``min_kept``: the read fails
    (``too-few-clips``) when it keeps fewer than this fraction of the rows.
    """
    path = Path(root).expanduser().absolute()
    if path.is_dir():
        raise AnnotationError(
            f"{path} is a folder: csv:FILE needs the CSV file itself (one row per clip: "
            "subject, clip, frames, onset, apex, offset, label) [annotation-not-found]")
    if not path.is_file():
        raise AnnotationError(f"{path}: CSV file not found [annotation-not-found]")
    if path.suffix.lower() != ".csv":
        raise AnnotationError(f"{path}: expected a .csv file (one row per clip) "
                              "[unreadable-annotation]")
    head = path.read_bytes()[:4]
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise AnnotationError(f"{path}: the CSV is UTF-16 encoded; save it as UTF-8 "
                              "[unreadable-annotation]")
    return read_coded_database(SPEC, path.parent, path, frames_dir, min_kept)
