"""Readers -> sample table: raw databases, labellings, flow sets, synthetic data.

The common entry points are re-exported here; :func:`read_database` picks the reader
of a dataset name from :data:`READERS`. ``mefr.data.synthetic`` (OpenCV, scikit-image)
is imported only when one of its names (:func:`write_synthetic_databases`,
``SYNTHETIC_DATABASES``, ``read_truth``) is first used.

Modules: :mod:`~mefr.data.table` (the sample table), :mod:`~mefr.data.labels`
(labellings), :mod:`~mefr.data.rules` (bad-input rules), :mod:`~mefr.data.sheets`
(annotation files), :mod:`~mefr.data.frames` (frame folders), :mod:`~mefr.data.coded`
(the shared reader of coded spreadsheets), one module per database, and
:mod:`~mefr.data.flowset` (pre-computed flow sets).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from mefr.data.casme2 import read_casme2
from mefr.data.frames import IMAGE_SUFFIXES, list_frames
from mefr.data.labels import (
    LABELLINGS,
    PROTOCOLS,
    LabellingError,
    LabelWarning,
    apply_labelling,
    apply_protocol,
    labelling_classes,
    protocol_classes,
    select_clips,
)
from mefr.data.rules import BAD_INPUT_RULES, AnnotationError, ReaderWarning, rules_markdown
from mefr.data.samm import read_samm
from mefr.data.smic import read_smic
from mefr.data.table import DATASETS, group_key, make_table, sample_key, validate_table

__all__ = [
    "BAD_INPUT_RULES",
    "DATASETS",
    "IMAGE_SUFFIXES",
    "LABELLINGS",
    "PROTOCOLS",
    "READERS",
    "SYNTHETIC_DATABASES",
    "AnnotationError",
    "LabelWarning",
    "LabellingError",
    "ReaderWarning",
    "apply_labelling",
    "apply_protocol",
    "group_key",
    "labelling_classes",
    "list_frames",
    "make_table",
    "protocol_classes",
    "read_casme2",
    "read_database",
    "read_samm",
    "read_smic",
    "read_truth",
    "rules_markdown",
    "sample_key",
    "select_clips",
    "validate_table",
    "write_synthetic_databases",
]


def _smic_reader(variant: str) -> Callable[..., pd.DataFrame]:
    def read(root: str | Path, **kwargs: Any) -> pd.DataFrame:
        return read_smic(root, variant=variant, **kwargs)

    read.__doc__ = f"Read SMIC {variant} (see :func:`mefr.data.smic.read_smic`)."
    return read


#: Dataset name -> reader ``f(root, **options) -> sample table``.
READERS: dict[str, Callable[..., pd.DataFrame]] = {
    "casme2": read_casme2,
    "samm": read_samm,
    "smic_hs": _smic_reader("HS"),
    "smic_vis": _smic_reader("VIS"),
    "smic_nir": _smic_reader("NIR"),
}


def read_database(dataset: str, root: str | Path, **kwargs: Any) -> pd.DataFrame:
    """The sample table of ``dataset`` (one of :data:`DATASETS`) stored under ``root``.

    ``kwargs`` go to the reader (``annotation=``, ``frames_dir=``).
    """
    try:
        reader = READERS[dataset]
    except KeyError:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {DATASETS}") from None
    return reader(root, **kwargs)


_SYNTHETIC_NAMES = ("SYNTHETIC_DATABASES", "read_truth", "write_synthetic_databases")


def __getattr__(name: str) -> Any:
    """The names of :mod:`mefr.data.synthetic`, imported on first use."""
    if name in _SYNTHETIC_NAMES:
        from mefr.data.synthetic import generate

        return getattr(generate, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
