"""Databases named as text: ``NAME:ROOT?frames=DIR&annotation=FILE``.

A database spec names a dataset (:data:`~mefr.data.table.DATASETS`), the folder it is
stored in and, after ``?``, reader options as ``KEY=VALUE`` pairs joined by ``&``:

``frames=DIR``
    the frame folder, relative to ROOT or absolute (the reader's ``frames_dir``).
``annotation=FILE``
    the annotation file, relative to ROOT or absolute (spreadsheet readers only).
``min_kept=F``
    the fraction (0..1) of annotated clips a read must keep; 0 accepts a partial copy.
``expression=micro|macro|all``
    CAS(ME)^2 only: which expression types to read.

Examples: ``casme2:/data/CASME2``,
``casme2:/data/CASME2?frames=CASME2_RAW_selected/CASME2_RAW_selected``,
``casme2:/data/CASME2?annotation=CASME2-coding-20140508.xlsx``,
``casme_sq:/data/CASME_sq?expression=all&min_kept=0``. Values are taken as written (no
percent-decoding), so they cannot contain ``&``; the root cannot contain ``?``.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pandas as pd

from mefr.data.readers import READERS, read_database
from mefr.data.table import DATASETS

#: Option key of a spec -> the reader's keyword argument.
OPTION_KEYWORDS: dict[str, str] = {
    "frames": "frames_dir",
    "annotation": "annotation",
    "min_kept": "min_kept",
    "expression": "expression",
}


class DatabaseSpecError(ValueError):
    """A database spec that cannot be parsed, or options its reader does not take."""


def _accepted(dataset: str) -> list[str]:
    params = inspect.signature(READERS[dataset]).parameters
    return [key for key, kw in OPTION_KEYWORDS.items() if kw in params]


def _value(text: str, key: str, value: str) -> Any:
    if key != "min_kept":
        return value
    try:
        fraction = float(value)
    except ValueError:
        fraction = -1.0
    if not 0.0 <= fraction <= 1.0:
        raise DatabaseSpecError(f"database spec {text!r}: min_kept={value!r} is not a number "
                                "in 0..1")
    return fraction


def parse_database_spec(text: str) -> tuple[str, Path, dict[str, Any]]:
    """``"casme2:/d/CASME2?frames=raw"`` -> ``("casme2", Path("/d/CASME2"),
    {"frames_dir": "raw"})``: the dataset, its root and the reader's keyword arguments.

    Raises :class:`DatabaseSpecError` (a ``ValueError``) naming the spec and the problem:
    an unknown dataset, no root, an option that is not ``KEY=VALUE``, given twice, or
    not taken by that dataset's reader (the message lists the ones it takes).
    """
    name, sep, rest = text.partition(":")
    if not sep or name not in READERS:
        raise DatabaseSpecError(
            f"database spec {text!r}: expected NAME:ROOT[?KEY=VALUE&...] with NAME one of "
            f"{DATASETS}")
    root, _, query = rest.partition("?")
    if not root.strip():
        raise DatabaseSpecError(f"database spec {text!r}: no ROOT after {name}:")
    accepted = _accepted(name)
    options: dict[str, Any] = {}
    for item in query.split("&") if query else []:
        key, eq, value = item.partition("=")
        if not eq or not key or not value:
            raise DatabaseSpecError(f"database spec {text!r}: option {item!r} is not KEY=VALUE")
        if key not in accepted:
            raise DatabaseSpecError(
                f"database spec {text!r}: {name} takes no option {key!r}; it takes {accepted}")
        keyword = OPTION_KEYWORDS[key]
        if keyword in options:
            raise DatabaseSpecError(f"database spec {text!r}: option {key!r} given twice")
        options[keyword] = _value(text, key, value)
    return name, Path(root).expanduser(), options


def read_database_spec(text: str) -> pd.DataFrame:
    """The sample table of the database named by ``text`` (see :func:`parse_database_spec`)."""
    name, root, options = parse_database_spec(text)
    return read_database(name, root, **options)
