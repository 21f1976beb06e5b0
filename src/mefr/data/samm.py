"""Reader of SAMM as licensees hold it (Davison et al. 2018; Tables 9 and 12).

Layout (the bad-input rules are in :mod:`mefr.data.rules`)::

    ROOT/SAMM_Micro_FACS_Codes_v2.xlsx        (about 12 prose rows above the header row)
    ROOT/SAMM/006/006_1_2/006_05562.jpg ...   (greyscale frames)

The header row is found by its content (a row holding ``Subject`` and ``Filename``), not
by its index. The number at the end of a frame's name is its absolute frame number.
Subjects are written with three digits (``006``), as the folders are.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from mefr.data.coded import CodedDatabase, read_coded_database

DATASET = "samm"
ANNOTATION_PATTERNS: tuple[str, ...] = ("SAMM_Micro_FACS_Codes*.xlsx", "SAMM_Micro_FACS_Codes*.csv")
FRAME_DIRS: tuple[str, ...] = ("SAMM",)
#: Field -> column of the FACS-codes file.
HEADER: dict[str, str] = {
    "subject": "Subject",
    "filename": "Filename",
    "onset": "Onset Frame",
    "apex": "Apex Frame",
    "offset": "Offset Frame",
    "action_units": "Action Units",
    "emotion": "Estimated Emotion",
}


def samm_subject(value: object) -> str | None:
    """Three-digit subject id from a Subject cell (``6``, ``6.0``, ``'006'``), else None."""
    text = str(value).strip() if value is not None else ""
    m = re.fullmatch(r"0*(\d+)(?:\.0+)?", text)
    return f"{int(m.group(1)):03d}" if m else None


SPEC = CodedDatabase(
    dataset=DATASET,
    annotation_patterns=ANNOTATION_PATTERNS,
    frame_dirs=FRAME_DIRS,
    frames_label="SAMM frame folder",
    header=HEADER,
    subject_of=samm_subject,
)


def read_samm(
    root: str | Path,
    annotation: str | Path | None = None,
    frames_dir: str | Path | None = None,
    min_kept: float = 0.5,
) -> pd.DataFrame:
    """Read SAMM into a sample table (see :mod:`mefr.data.table`).

    Parameters
    ----------
    root : the folder holding the ``SAMM`` frame folder (and usually the spreadsheet).
    annotation : the FACS-codes .xlsx (or a .csv export; absolute or relative to
        ``root``); found under ``root`` when None.
    frames_dir : the frame folder, relative to ``root`` or absolute (default ``SAMM``).
    min_kept : the fraction of annotated rows a read must keep.

    Rows are in spreadsheet order; ``frames`` runs from onset to offset. Faulty rows are
    skipped or repaired under :data:`mefr.data.rules.BAD_INPUT_RULES`.
    """
    return read_coded_database(SPEC, root, annotation, frames_dir, min_kept)
