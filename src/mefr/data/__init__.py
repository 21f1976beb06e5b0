"""Readers -> sample table: raw databases, labellings, flow sets, synthetic data.

The common entry points are re-exported here. :func:`read_database` picks the reader of
a dataset name from :data:`READERS`; :func:`read_database_spec` reads a database named
as text (``casme2:ROOT?frames=DIR&annotation=FILE``, see :mod:`mefr.data.specs`).
``mefr.data.synthetic`` (OpenCV, scikit-image) is imported only when one of its names
(:func:`write_synthetic_databases`, ``SYNTHETIC_DATABASES``, ``ALL_SYNTHETIC_DATABASES``,
``read_truth``) is first used.

Modules: :mod:`~mefr.data.table` (the sample table), :mod:`~mefr.data.labels`
(labellings), :mod:`~mefr.data.rules` (bad-input rules), :mod:`~mefr.data.sheets`
(annotation files), :mod:`~mefr.data.frames` (frame folders), :mod:`~mefr.data.coded`
(the shared reader of coded spreadsheets), one module per database (``casme2``,
``samm``, ``smic``, ``casme3``, ``casme_sq``, ``mmew``, ``fourdme``, ``smic_e``),
:mod:`~mefr.data.generic` (``csv``: any database described by one CSV file),
:mod:`~mefr.data.readers` and :mod:`~mefr.data.specs` (dataset names and specs), and
:mod:`~mefr.data.flowset` (pre-computed flow sets).
"""

from __future__ import annotations

from typing import Any

from mefr.data.casme2 import read_casme2
from mefr.data.casme3 import read_casme3
from mefr.data.casme_sq import read_casme_sq
from mefr.data.fourdme import read_4dme
from mefr.data.frames import IMAGE_SUFFIXES, list_frames
from mefr.data.generic import read_generic_csv
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
from mefr.data.mmew import read_mmew
from mefr.data.readers import READERS, read_database
from mefr.data.rules import BAD_INPUT_RULES, AnnotationError, ReaderWarning, rules_markdown
from mefr.data.samm import read_samm
from mefr.data.smic import read_smic
from mefr.data.smic_e import read_smic_e
from mefr.data.specs import DatabaseSpecError, parse_database_spec, read_database_spec
from mefr.data.table import DATASETS, group_key, make_table, sample_key, validate_table

__all__ = [
    "ALL_SYNTHETIC_DATABASES",
    "BAD_INPUT_RULES",
    "DATASETS",
    "IMAGE_SUFFIXES",
    "LABELLINGS",
    "PROTOCOLS",
    "READERS",
    "SYNTHETIC_DATABASES",
    "AnnotationError",
    "DatabaseSpecError",
    "LabelWarning",
    "LabellingError",
    "ReaderWarning",
    "apply_labelling",
    "apply_protocol",
    "group_key",
    "labelling_classes",
    "list_frames",
    "make_table",
    "parse_database_spec",
    "protocol_classes",
    "read_4dme",
    "read_casme2",
    "read_casme3",
    "read_casme_sq",
    "read_database",
    "read_database_spec",
    "read_generic_csv",
    "read_mmew",
    "read_samm",
    "read_smic",
    "read_smic_e",
    "read_truth",
    "rules_markdown",
    "sample_key",
    "select_clips",
    "validate_table",
    "write_synthetic_databases",
]

_SYNTHETIC_NAMES = ("ALL_SYNTHETIC_DATABASES", "SYNTHETIC_DATABASES", "read_truth",
                    "write_synthetic_databases")


def __getattr__(name: str) -> Any:
    """The names of :mod:`mefr.data.synthetic`, imported on first use."""
    if name in _SYNTHETIC_NAMES:
        from mefr.data.synthetic import generate

        return getattr(generate, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
