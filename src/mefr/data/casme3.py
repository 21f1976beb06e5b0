"""Reader of CAS(ME)^3 part A as licensees hold it (Li et al. 2022, TPAMI).

Layout (the bad-input rules are in :mod:`mefr.data.rules`)::

    ROOT/cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx    (860 micro-expression rows)
    ROOT/part_A/data/part_A/spNO.1/a/color/0.jpg ...   (one folder per video)

Columns ``Subject, Filename, Onset, Apex, Offset, AU, Objective class, emotion``; the
frame numbers are the numbers of the ``.jpg`` files (``JpgIndex``). ``Filename`` names a
video (``a`` .. ``m``), not a clip: a video holding several micro-expressions has one
row per micro-expression, so within a subject a repeated ``Filename`` gives clips
``{Filename}_{Onset}`` (``a_1190``, ``a_2304``); a filename seen once keeps its name.
Emotions are written in lower case and short forms (``happy``, ``sad``, ``Others``).
Subjects are written as the folders are (``spNO.1``). The 3-, 4- and 7-class settings
of the CAS(ME)^3 paper are the labellings ``casme3_3class``, ``casme3_4class`` and
``casme3_7class`` (:mod:`mefr.data.labels`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mefr.data.coded import Annotated, CodedDatabase, read_coded_database

DATASET = "casme3"
ANNOTATION_PATTERNS: tuple[str, ...] = (
    "cas(me)3_part_A_ME_label*.xlsx", "*part_A*ME_label*.xlsx", "*part_A*ME_label*.csv",
)
FRAME_DIRS: tuple[str, ...] = ("part_A/data/part_A", "data/part_A", "part_A", ".")
#: Field -> column of the label file.
HEADER: dict[str, str] = {
    "subject": "Subject",
    "filename": "Filename",
    "onset": "Onset",
    "apex": "Apex",
    "offset": "Offset",
    "action_units": "AU",
    "emotion": "emotion",
}
#: The camera folder inside each video folder (``depth`` holds the depth maps).
COLOUR_DIR = "color"


def clip_folder(ann: Annotated, rec: pd.Series) -> tuple[str, ...]:
    """``{subject}/{filename}/color``."""
    return (ann.subject, ann.filename, COLOUR_DIR)


SPEC = CodedDatabase(
    dataset=DATASET,
    annotation_patterns=ANNOTATION_PATTERNS,
    frame_dirs=FRAME_DIRS,
    frames_label="CAS(ME)^3 part A frame folder",
    header=HEADER,
    clip_path=clip_folder,
    repeated_filenames=True,
)


def read_casme3(
    root: str | Path,
    annotation: str | Path | None = None,
    frames_dir: str | Path | None = None,
    min_kept: float = 0.5,
) -> pd.DataFrame:
    """Read CAS(ME)^3 part A into a sample table (see :mod:`mefr.data.table`).

    Parameters
    ----------
    root : the database folder.
    annotation : the label .xlsx (or a .csv export); found under ``root`` when None.
    frames_dir : the folder holding the subject folders (``spNO.1``...), relative to
        ``root`` or absolute; the first of :data:`FRAME_DIRS` that exists when None.
    min_kept : the fraction of annotated rows a read must keep.
    """
    return read_coded_database(SPEC, root, annotation, frames_dir, min_kept)
