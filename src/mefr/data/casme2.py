"""Reader of CASME II as licensees hold it (Yan et al. 2014; Tables 9, 11, 12, 13).

Layout (the bad-input rules are in :mod:`mefr.data.rules`)::

    ROOT/CASME2-coding-20140508.xlsx          (or -20190701; header row found by content)
    ROOT/CASME2_RAW_selected/sub01/EP02_01f/img46.jpg ...   (raw release)
    ROOT/Cropped/sub01/EP02_01f/reg_img46.jpg ...           (cropped release)

The number in a frame's name is its absolute frame number, so the onset frame is
``img{OnsetFrame}.jpg``. Subjects are written ``sub01`` .. ``sub26`` (the folder names).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from mefr.data.coded import CodedDatabase, read_coded_database

DATASET = "casme2"
#: Annotation file names searched for when none is given (latest name wins).
ANNOTATION_PATTERNS: tuple[str, ...] = ("CASME2-coding*.xlsx", "CASME2-coding*.csv")
#: Frame folders searched for under the root, in order of preference.
FRAME_DIRS: tuple[str, ...] = ("CASME2_RAW_selected", "Cropped")
#: Field -> column of the coding file.
HEADER: dict[str, str] = {
    "subject": "Subject",
    "filename": "Filename",
    "onset": "OnsetFrame",
    "apex": "ApexFrame",
    "offset": "OffsetFrame",
    "action_units": "Action Units",
    "emotion": "Estimated Emotion",
}


def casme2_subject(value: object) -> str | None:
    """``sub{NN}`` from a Subject cell (``1``, ``1.0``, ``'01'``, ``'sub1'``), else None."""
    text = str(value).strip() if value is not None else ""
    m = re.fullmatch(r"(?i)(?:sub)?0*(\d+)(?:\.0+)?", text)
    return f"sub{int(m.group(1)):02d}" if m else None


SPEC = CodedDatabase(
    dataset=DATASET,
    annotation_patterns=ANNOTATION_PATTERNS,
    frame_dirs=FRAME_DIRS,
    frames_label="CASME II frame folder",
    header=HEADER,
    subject_of=casme2_subject,
)


def read_casme2(
    root: str | Path,
    annotation: str | Path | None = None,
    frames_dir: str | Path | None = None,
    min_kept: float = 0.5,
) -> pd.DataFrame:
    """Read CASME II into a sample table (see :mod:`mefr.data.table`).

    Parameters
    ----------
    root : the folder holding the frame folder (and usually the coding spreadsheet).
    annotation : the coding .xlsx (or a .csv export; absolute or relative to ``root``);
        found under ``root`` when None. With both the 2014 and the 2019 coding there,
        the 2019 one is read and a warning says so: the 2019 coding moves three clips
        from sadness to surprise.
    frames_dir : the frame folder, relative to ``root`` or absolute; the first of
        :data:`FRAME_DIRS` that exists when None.
    min_kept : the fraction of annotated rows a read must keep (see
        :func:`~mefr.data.coded.read_coded_database`).

    Rows are in spreadsheet order; ``frames`` runs from onset to offset. Faulty rows are
    skipped or repaired under :data:`mefr.data.rules.BAD_INPUT_RULES` with a
    :class:`~mefr.data.rules.ReaderWarning` each (also in ``attrs["issues"]``).
    """
    return read_coded_database(SPEC, root, annotation, frames_dir, min_kept)
