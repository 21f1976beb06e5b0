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
    sheets: dict[str, pd.DataFrame],
    path: Path,
    must_have: Sequence[Sequence[str]],
    max_rows: int = 60,
) -> tuple[str, int]:
    """The sheet name and 0-based row index of the first row holding, for every entry
    of ``must_have``, one of its spellings (compared after :func:`normalize_column`)."""
    wants = [{normalize_column(m) for m in names} for names in must_have]
    for name, sheet in sheets.items():
        for i in range(min(max_rows, len(sheet))):
            cells = {normalize_column(v) for v in sheet.iloc[i].tolist() if not is_blank(v)}
            if all(want & cells for want in wants):
                return name, i
    shown = " and ".join("/".join(names) for names in must_have)
    raise AnnotationError(
        f"{path}: no header row with {shown} in the first {max_rows} rows "
        f"of sheet(s) {list(sheets)} [no-header-row]"
    )


def prefer_sheets(sheets: dict[str, pd.DataFrame], names: Sequence[str]
                  ) -> dict[str, pd.DataFrame]:
    """The first sheet of ``names`` (case-insensitive) that ``sheets`` has, alone; all
    sheets when it has none of them."""
    by_key = {k.strip().lower(): k for k in sheets}
    for n in names:
        if n.lower() in by_key:
            key = by_key[n.lower()]
            return {key: sheets[key]}
    return sheets


def table_below_header(
    sheet: pd.DataFrame,
    header_index: int,
    path: Path,
    columns: Mapping[str, Sequence[str]],
    required: Sequence[str],
) -> pd.DataFrame:
    """The rows below the header, one column per field of ``columns``.

    ``columns`` maps a field name to the spellings of its column, preferred first
    (compared after :func:`normalize_column`); a field absent from the header gives a
    column of None, or, for a field in ``required``, an :class:`AnnotationError` listing
    the missing columns, the accepted spellings and the columns found. Adds a column
    ``_row`` with the spreadsheet row number.
    """
    header = sheet.iloc[header_index].tolist()
    found: dict[str, int] = {}
    for j, h in enumerate(header):
        if not is_blank(h):
            found.setdefault(normalize_column(h), j)
    where: dict[str, int] = {}
    for fieldname, names in columns.items():
        hit = next((found[k] for k in map(normalize_column, names) if k in found), None)
        if hit is not None:
            where[fieldname] = hit
    missing = [f for f in required if f not in where]
    if missing:
        shown = [str(h) for h in header if not is_blank(h)]
        accepted = "; ".join(f"{columns[f][0]}: {' / '.join(columns[f])}" for f in missing)
        raise AnnotationError(
            f"{path}, row {header_index + 1}: missing column(s) "
            f"{[columns[f][0] for f in missing]} (accepted spellings: {accepted}); "
            f"columns found: {shown} [missing-column]"
        )
    return _fields(sheet, header_index + 1, {f: where.get(f) for f in columns})


def table_by_position(sheet: pd.DataFrame, path: Path, positions: Mapping[str, int],
                      what: str) -> pd.DataFrame:
    """The rows of a header-less sheet, field ``f`` read from column ``positions[f]``
    (0-based). A first row whose ``onset`` cell is text (a header after all) is skipped.
    """
    need = max(positions.values()) + 1
    if sheet.shape[1] < need:
        raise AnnotationError(
            f"{path}: {sheet.shape[1]} column(s), where {what} needs {need} "
            f"({', '.join(positions)}) [missing-column]"
        )
    first = 0
    if len(sheet) and "onset" in positions:
        cell = sheet.iat[0, positions["onset"]]
        first = 1 if not is_blank(cell) and cell_int(cell) is None else 0
    return _fields(sheet, first, dict(positions))


def _fields(sheet: pd.DataFrame, first: int, where: Mapping[str, int | None]) -> pd.DataFrame:
    body = sheet.iloc[first:]
    out = pd.DataFrame(index=body.index)
    for fieldname, j in where.items():
        out[fieldname] = body.iloc[:, j] if j is not None else None
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


def find_annotation(root: Path, patterns: Sequence[str]) -> tuple[Path, list[Path]]:
    """The annotation file under ``root`` (or one level down), and the other candidates.

    ``patterns`` are globs in order of preference; the first one that matches decides.
    When it matches several files, the name that sorts last (the latest dated release)
    is chosen and the others are returned so that the reader can say so. Excel lock
    files (``~$...``) are never taken.
    """
    for pat in patterns:
        hits = sorted(root.glob(pat)) + sorted(root.glob(f"*/{pat}"))
        hits = [h for h in hits if h.is_file() and not h.name.startswith("~$")]
        if hits:
            ordered = sorted(hits, key=lambda p: (p.name, str(p)))
            return ordered[-1], ordered[:-1]
    raise AnnotationError(
        f"no annotation file matching {list(patterns)} in {root} or its sub-folders; "
        "pass annotation=... [annotation-not-found]"
    )


def resolve_annotation(root: Path, annotation: str | Path) -> Path:
    """The annotation file the user named: absolute, relative to ``root``, or relative
    to the working directory (in that order)."""
    given = Path(annotation).expanduser()
    cands = [given] if given.is_absolute() else [root / given, given]
    for c in cands:
        if c.is_file():
            return c
    raise AnnotationError(
        f"annotation file {str(annotation)!r} not found; looked for "
        f"{[str(c) for c in cands]} [annotation-not-found]"
    )
