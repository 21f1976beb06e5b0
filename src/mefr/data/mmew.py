"""Reader of MMEW, micro-expressions part (Ben et al. 2021, TPAMI).

Layout (the bad-input rules are in :mod:`mefr.data.rules`)::

    ROOT/MMEW_Micro_Exp.xlsx
    ROOT/Micro_Expression/happiness/S01_01/1.jpg ...   (one folder per emotion)

Columns ``Subject, Filename, OnsetFrame, ApexFrame, OffsetFrame, Action Units,
Estimated Emotion, remarks``. The clip folders are grouped by emotion, so the folder of
a clip is ``{Estimated Emotion}/{Filename}`` as the cells write them. Subjects are
written as the file writes them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mefr.data.coded import Annotated, CodedDatabase, read_coded_database

DATASET = "mmew"
ANNOTATION_PATTERNS: tuple[str, ...] = ("MMEW_Micro_Exp*.xlsx", "MMEW_Micro_Exp*.csv")
FRAME_DIRS: tuple[str, ...] = ("Micro_Expression", "MMEW/Micro_Expression", ".")
#: Field -> column of the annotation file.
HEADER: dict[str, str] = {
    "subject": "Subject",
    "filename": "Filename",
    "onset": "OnsetFrame",
    "apex": "ApexFrame",
    "offset": "OffsetFrame",
    "action_units": "Action Units",
    "emotion": "Estimated Emotion",
}


def clip_folder(ann: Annotated, rec: pd.Series) -> tuple[str, ...]:
    """``{emotion}/{filename}``, the emotion as the cell writes it."""
    return (ann.emotion, ann.filename)


SPEC = CodedDatabase(
    dataset=DATASET,
    annotation_patterns=ANNOTATION_PATTERNS,
    frame_dirs=FRAME_DIRS,
    frames_label="MMEW frame folder",
    header=HEADER,
    clip_path=clip_folder,
)


def read_mmew(
    root: str | Path,
    annotation: str | Path | None = None,
    frames_dir: str | Path | None = None,
    min_kept: float = 0.5,
) -> pd.DataFrame:
    """Read MMEW's micro-expressions into a sample table (see :mod:`mefr.data.table`).

    ``frames_dir`` is the folder holding the emotion folders (default
    ``Micro_Expression``); the other parameters are those of
    :func:`mefr.data.casme2.read_casme2`.
    """
    return read_coded_database(SPEC, root, annotation, frames_dir, min_kept)
