"""The reader of each dataset name: :data:`READERS` and :func:`read_database`."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from mefr.data.casme2 import read_casme2
from mefr.data.casme3 import read_casme3
from mefr.data.casme_sq import read_casme_sq
from mefr.data.fourdme import read_4dme
from mefr.data.generic import read_generic_csv
from mefr.data.mmew import read_mmew
from mefr.data.samm import read_samm
from mefr.data.smic import read_smic
from mefr.data.smic_e import read_smic_e
from mefr.data.table import DATASETS

#: Dataset name (:data:`mefr.data.table.DATASETS`) -> reader ``f(root, **options)``.
READERS: dict[str, Callable[..., pd.DataFrame]] = {
    "casme2": read_casme2,
    "samm": read_samm,
    "smic_hs": partial(read_smic, variant="HS"),
    "smic_vis": partial(read_smic, variant="VIS"),
    "smic_nir": partial(read_smic, variant="NIR"),
    "casme3": read_casme3,
    "casme_sq": read_casme_sq,
    "mmew": read_mmew,
    "4dme": read_4dme,
    "smic_e_hs": partial(read_smic_e, variant="HS"),
    "smic_e_vis": partial(read_smic_e, variant="VIS"),
    "smic_e_nir": partial(read_smic_e, variant="NIR"),
    "csv": read_generic_csv,
}


def read_database(dataset: str, root: str | Path, **kwargs: Any) -> pd.DataFrame:
    """The sample table of ``dataset`` (one of :data:`~mefr.data.table.DATASETS`) stored
    under ``root``.

    ``kwargs`` go to the reader: ``annotation=``, ``frames_dir=``, ``min_kept=`` (all
    readers of a spreadsheet), ``frames_dir=`` and ``min_kept=`` (SMIC), ``expression=``
    (CAS(ME)^2). See :func:`mefr.data.specs.read_database_spec` for the same as text.
    """
    try:
        reader = READERS[dataset]
    except KeyError:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {DATASETS}") from None
    return reader(root, **kwargs)
