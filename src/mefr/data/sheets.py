"""Annotation spreadsheets (.xlsx) and their CSV exports: finding, parsing, reading cells.

The readers never trust a fixed layout: the header row is found by its content, columns
by their normalised names (:func:`normalize_column`), and every cell goes through
:func:`cell_int` or :func:`cell_text`. Faults are the rules of :mod:`mefr.data.rules`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from mefr.data.rules import AnnotationError


def normalize_column(name: object) -> str:
    """A column name reduced to lower-case letters and digits (`Onset Frame` -> `onsetframe`)."""
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


def is_blank(value: object) -> bool:
    """True for None, NaN and strings of white space only."""
    if value is None:
        return True
    if isinstance(value, float) and pd.isna(value):
        return True
    return isinstance(value, str) and not value.strip()


def read_sheets(path: Path) -> dict[str, pd.DataFrame]:
    """Every sheet of an .xlsx (or the one table of a .csv) as strings/objects, no header.

    Row ``i`` of each frame is spreadsheet row ``i + 1``; blank rows are kept so that the
    numbers stay right.
    """
    try:
        if path.suffix.lower() == ".csv":
            return {
                path.name: pd.read_csv(
                    path,
                    header=None,
                    dtype=object,
                    keep_default_na=False,
                    skip_blank_lines=False,
                ).replace("", None)
            }
        return pd.read_excel(path, header=None, dtype=object, sheet_name=None, engine="openpyxl")
    except Exception as exc:  # any parser failure becomes one clear error
        raise AnnotationError(
            f"{path}: cannot read the annotation file ({exc}) [unreadable-annotation]"
        ) from exc


def locate_header(
    sheets: dict[str, pd.DataFrame], path: Path, must_have: Sequence[str], max_rows: int = 60
) -> tuple[pd.DataFrame, int]:
    """The sheet and 0-based row index of the first row holding all of ``must_have``.

    ``must_have`` are normalised column names (see :func:`normalize_column`).
    """
    want = {normalize_column(m) for m in must_have}
    for sheet in sheets.values():
        for i in range(min(max_rows, len(sheet))):
            cells = {normalize_column(v) for v in sheet.iloc[i].tolist() if not is_blank(v)}
            if want <= cells:
                return sheet, i
    raise AnnotationError(
        f"{path}: no header row with {sorted(must_have)} in the first {max_rows} rows "
        f"of sheet(s) {list(sheets)} [no-header-row]"
    )


def table_below_header(
    sheet: pd.DataFrame,
    header_index: int,
    path: Path,
    required: Mapping[str, str],
    optional: Mapping[str, str],
) -> pd.DataFrame:
    """The rows below the header, one column per field of ``required`` and ``optional``.

    Both map a field name to the column that holds it, compared after
    :func:`normalize_column`; an absent optional column gives a column of None. Adds a
    column ``_row`` with the spreadsheet row number. Raises :class:`AnnotationError`
    listing the missing and the found columns.
    """
    header = sheet.iloc[header_index].tolist()
    found = {normalize_column(h): j for j, h in enumerate(header) if not is_blank(h)}
    missing = [c for c in required.values() if normalize_column(c) not in found]
    if missing:
        shown = [str(h) for h in header if not is_blank(h)]
        raise AnnotationError(
            f"{path}, row {header_index + 1}: missing column(s) {missing}; "
            f"columns found: {shown} [missing-column]"
        )
    body = sheet.iloc[header_index + 1 :]
    out = pd.DataFrame(index=body.index)
    for fieldname, column in (*required.items(), *optional.items()):
        key = normalize_column(column)
        out[fieldname] = body.iloc[:, found[key]] if key in found else None
    out["_row"] = body.index + 1
    return out.reset_index(drop=True)


def cell_int(value: object) -> int | None:
    """A whole frame number from a cell (int, integral float, digit string) or None."""
    if is_blank(value) or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    text = str(value).strip()
    if re.fullmatch(r"\d+", text):
        return int(text)
    if re.fullmatch(r"\d+\.0*", text):
        return int(float(text))
    return None


def cell_text(value: object) -> str:
    """A cell as stripped text ('' for empty); integral floats lose their '.0'."""
    if is_blank(value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def find_annotation(root: Path, patterns: Sequence[str]) -> Path:
    """The annotation file under ``root`` (or one level down) matching ``patterns``.

    When several match, the name that sorts last (the latest dated release) wins.
    Excel lock files (``~$...``) are never taken.
    """
    hits: list[Path] = []
    for pat in patterns:
        hits += sorted(root.glob(pat)) + sorted(root.glob(f"*/{pat}"))
    hits = [h for h in hits if h.is_file() and not h.name.startswith("~$")]
    if not hits:
        raise AnnotationError(
            f"no annotation file matching {list(patterns)} in {root} or its sub-folders; "
            "pass annotation=... [annotation-not-found]"
        )
    return sorted(hits, key=lambda p: p.name)[-1]
