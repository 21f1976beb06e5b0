"""A composite LOSO over new databases: subjects are (database, subject) pairs.

``mefr.evaluate.protocols.protocol_folds(table, "loso")`` groups rows by
``group_key = "{dataset}/{subject}"``, so it already runs a composite leave-one-subject-
out over any set of databases; this test shows it on CAS(ME)^3 and MMEW read from their
own formats (the synthetic ones), the demo's path from files to folds.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mefr.data import LabelWarning, apply_labelling, group_key, read_database_spec
from mefr.evaluate.protocols import protocol_folds

NEW = ("casme3", "casme_sq", "mmew", "4dme", "smic_e_hs", "smic_e_vis", "smic_e_nir")


@pytest.fixture(scope="module")
def new_databases(tmp_path_factory) -> dict[str, Path]:
    """Every new format, 2 subjects x 4 clips x 10-14 frames of 120x160."""
    from mefr.data.synthetic import write_synthetic_databases

    return write_synthetic_databases(tmp_path_factory.mktemp("new_formats"), databases=NEW,
                                     subjects=2, clips_per_subject=4, frames=(10, 14),
                                     size=(120, 160), seed=3)


def composite(paths) -> pd.DataFrame:
    tables = [read_database_spec(f"{name}:{paths[name]}") for name in ("casme3", "mmew")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LabelWarning)
        return apply_labelling(pd.concat(tables, ignore_index=True), "cde")


def test_loso_over_two_new_databases(new_databases):
    table = composite(new_databases)
    groups = group_key(table)
    assert set(table["dataset"]) == {"casme3", "mmew"}
    folds = protocol_folds(table, "loso")
    assert sorted(f.name for f in folds) == sorted(groups.unique())
    assert len(folds) == 4  # 2 subjects x 2 databases
    tested = np.concatenate([f.test_idx for f in folds])
    assert sorted(tested.tolist()) == list(range(len(table)))  # every clip tested once
    for f in folds:
        assert set(groups.iloc[f.test_idx]) == {f.name}
        assert f.name not in set(groups.iloc[f.train_idx])
        assert len(f.train_idx) + len(f.test_idx) == len(table)


def test_the_same_subject_id_in_two_databases_is_two_subjects(new_databases):
    table = composite(new_databases)
    table["subject"] = table.groupby("dataset")["subject"].rank(method="dense").map(
        lambda r: f"S{int(r):02d}")  # both databases now call their subjects S01, S02
    folds = protocol_folds(table, "loso")
    assert sorted(f.name for f in folds) == ["casme3/S01", "casme3/S02", "mmew/S01",
                                             "mmew/S02"]
    one = protocol_folds(table, "loso:mmew")
    assert [f.name for f in one] == ["mmew/S01", "mmew/S02"]
    assert all(set(table.iloc[f.train_idx]["dataset"]) == {"mmew"} for f in one)


def test_every_new_format_goes_through_preprocessing(new_databases, tmp_path):
    """Files -> table -> labels -> faces, apex, TV-L1 flow: two clips of each new format
    (greyscale 4DME, long SMIC-E clips without apex, CAS(ME)^3's shared videos...)."""
    from mefr.preprocess.pipeline import build_features
    from mefr.preprocess.settings import PreprocessSettings

    tables = [read_database_spec(f"{n}:{new_databases[n]}").iloc[:2] for n in NEW]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # labels dropped, apex spotted for SMIC-E
        table = apply_labelling(pd.concat(tables, ignore_index=True), "casme3_4class")
        fs = build_features(table, PreprocessSettings(), tmp_path / "cache", workers=1,
                            progress=False)
    assert list(fs.failures) == []
    assert len(fs.table) == len(table) == 14
    assert fs.x.shape[1:] == (len(fs.channels), 28, 28)
    assert np.isfinite(fs.x).all() and set(fs.table["dataset"]) == set(NEW)
