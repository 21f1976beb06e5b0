"""The sample table: one row per micro-expression clip, the common currency of mefr.

Every reader (one per raw database, a pre-computed flow set, the synthetic generator)
returns a :class:`pandas.DataFrame` with the columns of :data:`COLUMNS`. Protocols,
preprocessing and the runner only ever see this table.

Columns
-------
dataset : str
    One of :data:`DATASETS`: ``casme2``, ``samm``, ``smic_hs``, ``smic_vis``, ``smic_nir``
    (the seed paper's), ``casme3`` (CAS(ME)^3 part A), ``casme_sq`` (CAS(ME)^2),
    ``mmew``, ``4dme``, ``smic_e_hs``, ``smic_e_vis``, ``smic_e_nir`` (SMIC-E), and
    ``csv`` (a database mefr does not know, read from a CSV: :mod:`mefr.data.generic`).
subject : str
    The subject id as the database writes it (``sub01``, ``006``, ``s3``, ``spNO.1``).
clip : str
    The clip id as the database writes it (``EP02_01f``, ``006_1_2``, ``s3_po_11``);
    ``{filename}_{onset}`` where one video holds several clips (CAS(ME)^3, CAS(ME)^2).
emotion : str
    The annotated emotion, lower-cased and stripped (``happiness``, ``negative``...).
onset, apex, offset : Int64 (nullable)
    Absolute frame numbers. ``apex`` is missing (``<NA>``) where the database has none
    (SMIC) or the cell was unusable; an apex policy fills it later.
action_units : str
    The FACS string as annotated ('' when unknown).
frames : object
    A tuple of frame paths sorted by frame number ('()' for pre-computed flow sets).
frame_numbers : object
    A tuple of ints, the absolute frame number of each entry of ``frames``.
source : str
    The annotation file (or folder) the row came from, for error messages.
row : Int64
    The row of that file (1-based, as a spreadsheet shows it) or <NA>.

Derived keys
------------
:func:`group_key` gives the LOSO group of each row, ``"{dataset}/{subject}"``, so that
subject ids never collide across databases. :func:`sample_key` gives
``"{dataset}/{subject}/{clip}"``, the unique id of a clip.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

DATASETS: tuple[str, ...] = (
    "casme2", "samm", "smic_hs", "smic_vis", "smic_nir",
    "casme3", "casme_sq", "mmew", "4dme", "smic_e_hs", "smic_e_vis", "smic_e_nir",
    "csv",
)

COLUMNS: tuple[str, ...] = (
    "dataset",
    "subject",
    "clip",
    "emotion",
    "onset",
    "apex",
    "offset",
    "action_units",
    "frames",
    "frame_numbers",
    "source",
    "row",
)

_INT_COLUMNS = ("onset", "apex", "offset", "row")
_STR_COLUMNS = ("dataset", "subject", "clip", "emotion", "action_units", "source")


class SampleTableError(ValueError):
    """A sample table (or the file it came from) breaks the schema."""


def empty_table() -> pd.DataFrame:
    """An empty sample table with the right columns and dtypes."""
    return make_table([])


def make_table(rows: list[dict]) -> pd.DataFrame:
    """Build a sample table from row dicts, filling optional columns and fixing dtypes.

    Required keys: ``dataset``, ``subject``, ``clip``, ``emotion``. The others default
    to missing values.
    """
    records = []
    for r in rows:
        rec = {
            "dataset": r["dataset"],
            "subject": str(r["subject"]),
            "clip": str(r["clip"]),
            "emotion": str(r["emotion"]).strip().lower(),
            "onset": r.get("onset"),
            "apex": r.get("apex"),
            "offset": r.get("offset"),
            "action_units": str(r.get("action_units") or ""),
            "frames": tuple(str(p) for p in r.get("frames", ())),
            "frame_numbers": tuple(int(n) for n in r.get("frame_numbers", ())),
            "source": str(r.get("source", "")),
            "row": r.get("row"),
        }
        records.append(rec)
    df = pd.DataFrame.from_records(records, columns=list(COLUMNS))
    for c in _INT_COLUMNS:
        df[c] = pd.array(df[c].tolist(), dtype="Int64")
    for c in _STR_COLUMNS:
        df[c] = df[c].astype(object)
    return validate_table(df)


def validate_table(df: pd.DataFrame) -> pd.DataFrame:
    """Check the schema and invariants of a sample table; return it unchanged.

    Raises :class:`SampleTableError` naming the offending row (source file and row) and
    the problem: a missing column, an unknown dataset, a duplicate clip, or frame
    numbers that are not ``onset <= apex <= offset``.
    """
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise SampleTableError(f"sample table lacks columns {missing}")
    bad = df.loc[~df["dataset"].isin(DATASETS)]
    if len(bad):
        r = bad.iloc[0]
        raise SampleTableError(
            f"{_where(r)}: unknown dataset {r['dataset']!r} (expected one of {DATASETS})"
        )
    dup = df.duplicated(subset=["dataset", "subject", "clip"], keep="first")
    if dup.any():
        r = df.loc[dup].iloc[0]
        raise SampleTableError(f"{_where(r)}: duplicate clip {sample_key_of(r)!r}")
    for _, r in df.iterrows():
        on, ap, off = r["onset"], r["apex"], r["offset"]
        if pd.notna(on) and pd.notna(off) and on > off:
            raise SampleTableError(f"{_where(r)}: onset {on} is after offset {off}")
        if pd.notna(ap) and (
            (pd.notna(on) and ap < on) or (pd.notna(off) and ap > off)
        ):
            raise SampleTableError(
                f"{_where(r)}: apex {ap} lies outside onset..offset {on}..{off}"
            )
    return df


def group_key(df: pd.DataFrame) -> pd.Series:
    """The LOSO group of each row: ``"{dataset}/{subject}"``."""
    return df["dataset"].astype(str) + "/" + df["subject"].astype(str)


def sample_key(df: pd.DataFrame) -> pd.Series:
    """The unique id of each clip: ``"{dataset}/{subject}/{clip}"``."""
    return group_key(df) + "/" + df["clip"].astype(str)


def features_fingerprint(x: np.ndarray, table: pd.DataFrame,
                         labels: np.ndarray | None = None) -> str:
    """sha256 of the inputs ``x`` (float32), the sample keys and the labels (``labels``,
    else ``table["label"]``, int64): the identity of a data set in run and model files."""
    y = table["label"] if labels is None else labels
    h = hashlib.sha256(np.ascontiguousarray(x, dtype=np.float32).tobytes())
    h.update("\n".join(sample_key(table)).encode())
    h.update(np.ascontiguousarray(y, dtype=np.int64).tobytes())
    return h.hexdigest()


def sample_key_of(row: pd.Series) -> str:
    """:func:`sample_key` of a single row."""
    return f"{row['dataset']}/{row['subject']}/{row['clip']}"


def _where(row: pd.Series) -> str:
    src = row.get("source") or "<table>"
    r = row.get("row")
    return f"{src}, row {r}" if pd.notna(r) else str(src)
