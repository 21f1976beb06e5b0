"""Readers -> sample table: raw databases, label protocols, flow sets, synthetic data.

The common entry points are re-exported here; :func:`read_database` picks the reader
of a dataset name. ``mefr.data.synthetic`` (OpenCV, scikit-image) is imported only when
:func:`write_synthetic_databases` is called.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from mefr.data.casme2 import read_casme2
from mefr.data.labels import PROTOCOLS, apply_protocol, protocol_classes, select_clips
from mefr.data.rawio import BAD_INPUT_RULES, AnnotationError, ReaderWarning
from mefr.data.samm import read_samm
from mefr.data.smic import read_smic
from mefr.data.table import DATASETS, group_key, make_table, sample_key, validate_table

__all__ = [
    "BAD_INPUT_RULES",
    "DATASETS",
    "PROTOCOLS",
    "AnnotationError",
    "ReaderWarning",
    "apply_protocol",
    "group_key",
    "make_table",
    "protocol_classes",
    "read_casme2",
    "read_database",
    "read_samm",
    "read_smic",
    "sample_key",
    "select_clips",
    "validate_table",
    "write_synthetic_databases",
]


def read_database(dataset: str, root: str | Path, **kwargs: Any) -> pd.DataFrame:
    """The sample table of ``dataset`` (one of :data:`DATASETS`) stored under ``root``.

    ``kwargs`` go to the reader (``annotation=``, ``frames_dir=``).
    """
    if dataset == "casme2":
        return read_casme2(root, **kwargs)
    if dataset == "samm":
        return read_samm(root, **kwargs)
    if dataset in ("smic_hs", "smic_vis", "smic_nir"):
        return read_smic(root, variant=dataset, **kwargs)
    raise ValueError(f"unknown dataset {dataset!r}; expected one of {DATASETS}")


def write_synthetic_databases(*args: Any, **kwargs: Any) -> dict[str, Path]:
    """See :func:`mefr.data.synthetic.write_synthetic_databases`."""
    from mefr.data.synthetic import write_synthetic_databases as write

    return write(*args, **kwargs)
