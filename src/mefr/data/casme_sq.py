"""Reader of CAS(ME)^2 as licensees hold it (Qu et al. 2018, IEEE Trans. Affect. Comput.).

Layout (the bad-input rules are in :mod:`mefr.data.rules`)::

    ROOT/CAS(ME)^2code_final(Updated).xlsx       (no header row)
    ROOT/rawpic/s15/15_0401girlcrashing/img1.jpg ...   (one folder per long video)

The coding sheet has no header row; its columns are, in order: subject number, clip
name, onset, apex, offset, action units, emotion class (``negative``, ``positive``,
``surprise``, ``others``), expression type (``macro-expression`` /
``micro-expression``), estimated emotion, duration, and the video folder
(``s15/15_0401girlcrashing``). A clip's frames are ``rawpic/{video folder}/``; the
subject is the video folder's first part (``s15``), as the folders write it. The
sample table's ``emotion`` is the emotion class. Several clips of one video that share
a clip name become ``{name}_{onset}``. An offset of 0 (not coded) is reported and the
row skipped (``zero-offset``). Only micro-expressions are read unless asked otherwise.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mefr.data.coded import Annotated, CodedDatabase, read_coded_database
from mefr.data.sheets import cell_text

DATASET = "casme_sq"
ANNOTATION_PATTERNS: tuple[str, ...] = (
    "CAS(ME)^2code_final*.xlsx", "CAS(ME)2code_final*.xlsx", "*code_final*.xlsx",
    "*code_final*.csv",
)
FRAME_DIRS: tuple[str, ...] = ("rawpic", "CAS(ME)^2/rawpic", "selectedpic", ".")
#: Field -> 0-based column of the header-less coding sheet.
POSITIONS: dict[str, int] = {
    "subject": 0,
    "filename": 1,
    "onset": 2,
    "apex": 3,
    "offset": 4,
    "action_units": 5,
    "emotion": 6,
    "expression": 7,
    "estimated_emotion": 8,
    "duration": 9,
    "video": 10,
}
#: Field -> what the column holds (for messages; the sheet has no header).
HEADER: dict[str, str] = {
    "subject": "subject number",
    "filename": "clip name",
    "onset": "onset",
    "apex": "apex",
    "offset": "offset",
    "action_units": "action units",
    "emotion": "emotion class",
    "expression": "expression type",
    "video": "video folder",
}
#: Values of ``expression=``: which expression types a read keeps.
EXPRESSIONS: tuple[str, ...] = ("micro", "macro", "all")


def video_parts(value: object) -> tuple[str, ...]:
    """The parts of a video-folder cell (``s15/15_0401girlcrashing``; ``\\`` also splits)."""
    return tuple(p for p in cell_text(value).replace("\\", "/").split("/") if p)


def video_subject(value: object) -> str | None:
    """The subject of a video-folder cell: its first part (``s15``), None when it has
    fewer than two parts."""
    parts = video_parts(value)
    return parts[0] if len(parts) >= 2 else None


def video_folder(ann: Annotated, rec: pd.Series) -> tuple[str, ...]:
    """The clip folder: the row's video folder (``s15/15_0401girlcrashing``)."""
    return video_parts(rec["video"])


SPEC = CodedDatabase(
    dataset=DATASET,
    annotation_patterns=ANNOTATION_PATTERNS,
    frame_dirs=FRAME_DIRS,
    frames_label="CAS(ME)^2 frame folder (rawpic)",
    header=HEADER,
    positions=POSITIONS,
    subject_field="video",
    subject_of=video_subject,
    clip_path=video_folder,
    repeated_filenames=True,
)


def read_casme_sq(
    root: str | Path,
    annotation: str | Path | None = None,
    frames_dir: str | Path | None = None,
    min_kept: float = 0.5,
    expression: str = "micro",
) -> pd.DataFrame:
    """Read CAS(ME)^2 into a sample table (see :mod:`mefr.data.table`).

    Parameters
    ----------
    root : the database folder.
    annotation : the coding .xlsx (or a .csv export); found under ``root`` when None.
    frames_dir : the folder holding the video folders (default ``rawpic``).
    min_kept : the fraction of the selected rows a read must keep.
    expression : ``micro`` (default), ``macro`` or ``all``: the expression types kept;
        rows of other types are left out without a warning (``attrs["left_out"]``
        counts them).
    """
    if expression not in EXPRESSIONS:
        raise ValueError(f"expression must be one of {EXPRESSIONS}, got {expression!r}")

    def select(rec: pd.Series) -> bool:
        kind = cell_text(rec["expression"]).lower()
        return expression == "all" or kind.startswith(expression)

    return read_coded_database(SPEC, root, annotation, frames_dir, min_kept, select)
