"""Reader of 4DME, micro-expressions part (Li et al. 2022, IEEE Trans. Affect. Comput.).

Layout (the bad-input rules are in :mod:`mefr.data.rules`)::

    ROOT/4DME_Labelling_Micro_release v1.xlsx
    ROOT/gray_micro_crop/S01/S01_ME_01/1.jpg ...     (greyscale frames)

Columns ``sub_ID, fold_name, Emotion, Onset, Apex, Offset, AUs``; the clip folder is
``{sub_ID}/{fold_name}``. Emotions are grouped labels (``Positive``, ``Negative``,
``Surprise``, ``Repression``, ``Others``); a cell naming several emotions
(``Negative+Surprise``) is an unknown emotion, kept as written and dropped by every
labelling. The frame folder's name varies between copies: pass ``frames_dir`` when it
is none of :data:`FRAME_DIRS`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mefr.data.coded import CodedDatabase, read_coded_database

DATASET = "4dme"
ANNOTATION_PATTERNS: tuple[str, ...] = ("4DME_Labelling_Micro*.xlsx", "4DME_Labelling_Micro*.csv")
FRAME_DIRS: tuple[str, ...] = ("gray_micro_crop", "gray_micro", "gray", ".")
#: Field -> column of the labelling file.
HEADER: dict[str, str] = {
    "subject": "sub_ID",
    "filename": "fold_name",
    "onset": "Onset",
    "apex": "Apex",
    "offset": "Offset",
    "action_units": "AUs",
    "emotion": "Emotion",
}

SPEC = CodedDatabase(
    dataset=DATASET,
    annotation_patterns=ANNOTATION_PATTERNS,
    frame_dirs=FRAME_DIRS,
    frames_label="4DME frame folder",
    header=HEADER,
)


def read_4dme(
    root: str | Path,
    annotation: str | Path | None = None,
    frames_dir: str | Path | None = None,
    min_kept: float = 0.5,
) -> pd.DataFrame:
    """Read 4DME's micro-expressions into a sample table (see :mod:`mefr.data.table`).

    The parameters are those of :func:`mefr.data.casme2.read_casme2`.
    """
    return read_coded_database(SPEC, root, annotation, frames_dir, min_kept)
