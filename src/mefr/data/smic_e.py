"""Reader of SMIC-E, the long SMIC clips (HS, VIS, NIR; Li et al. 2013, 2018).

Layout (the bad-input rules are in :mod:`mefr.data.rules`)::

    ROOT/SMIC-HS-E_annotation.xlsx          (sheets HS and VIS; or one file per camera,
                                              SMIC-NIR-E_annotation.xlsx...)
    ROOT/SMIC-HS-E/HS/s1/s1_ne_01/image17581039.jpg ...   (the whole long clip)

Columns ``Subject, Filename, OnsetF, OffsetF, ..., FirstF, LastF, ..., Emotion``: the
micro-expression runs from ``OnsetF`` to ``OffsetF`` inside the long clip ``FirstF`` ..
``LastF``, all absolute frame numbers (the numbers in the frame names). SMIC-E has no
apex annotation. A camera's rows come from the sheet named after it (NIR, filmed with
VIS, falls back to the ``VIS`` sheet), or from the only sheet of its own file.
Subjects are written as the file writes them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mefr.data.coded import Annotated, CodedDatabase, read_coded_database
from mefr.data.rules import IssueLog
from mefr.data.smic import check_label_in_name, smic_variant

#: SMIC-E cameras: folder name -> mefr dataset name.
VARIANTS: dict[str, str] = {"HS": "smic_e_hs", "VIS": "smic_e_vis", "NIR": "smic_e_nir"}
#: Field -> column of the annotation file.
HEADER: dict[str, str] = {
    "subject": "Subject",
    "filename": "Filename",
    "onset": "OnsetF",
    "offset": "OffsetF",
    "first_frame": "FirstF",
    "last_frame": "LastF",
    "emotion": "Emotion",
}
#: Sheets read for each camera, in order of preference.
SHEETS: dict[str, tuple[str, ...]] = {"HS": ("HS",), "VIS": ("VIS",), "NIR": ("NIR", "VIS")}
#: Annotation files searched for each camera, in order: its own, then the ones whose
#: sheets hold its rows (``SMIC-HS-E_annotation.xlsx`` has sheets HS and VIS).
BOOKS: dict[str, tuple[str, ...]] = {"HS": ("HS",), "VIS": ("VIS", "HS"),
                                     "NIR": ("NIR", "VIS", "HS")}


def _label_matches_name(ann: Annotated, source: Path, log: IssueLog) -> None:
    check_label_in_name(ann.clip, ann.emotion, source, ann.row, log, "its Emotion cell")


def spec_of(camera: str) -> CodedDatabase:
    """The :class:`~mefr.data.coded.CodedDatabase` of one camera (``HS``, ``VIS``, ``NIR``)."""
    return CodedDatabase(
        dataset=VARIANTS[camera],
        annotation_patterns=tuple(f"SMIC-{book}-E_annotation*.{ext}"
                                  for book in BOOKS[camera] for ext in ("xlsx", "csv")),
        frame_dirs=(f"SMIC-{camera}-E/{camera}", f"{camera}_long/SMIC-{camera}-E/{camera}",
                    f"SMIC-{camera}-E", camera, "."),
        frames_label=f"SMIC-E {camera} frame folder",
        header=HEADER,
        sheets=SHEETS[camera],
        row_checks=(_label_matches_name,),
    )


SPECS: dict[str, CodedDatabase] = {camera: spec_of(camera) for camera in VARIANTS}


def read_smic_e(
    root: str | Path,
    variant: str = "HS",
    annotation: str | Path | None = None,
    frames_dir: str | Path | None = None,
    min_kept: float = 0.5,
) -> pd.DataFrame:
    """Read one SMIC-E camera (``HS``, ``VIS`` or ``NIR``) into a sample table.

    Parameters
    ----------
    root : the database folder.
    variant : ``HS``, ``VIS`` or ``NIR`` (``smic_e_hs``... also accepted).
    annotation : the annotation .xlsx (or a .csv export); found under ``root`` when None.
    frames_dir : the folder holding the subject folders, relative to ``root`` or
        absolute (default ``SMIC-{camera}-E/{camera}``).
    min_kept : the fraction of annotated rows a read must keep.

    ``frames`` runs from ``OnsetF`` to ``OffsetF``; ``apex`` is <NA>.
    """
    camera = smic_variant(variant.upper().replace("SMIC_E_", ""))
    return read_coded_database(SPECS[camera], root, annotation, frames_dir, min_kept)
