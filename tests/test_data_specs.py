"""Databases named as text (issue 35, defect 2): ``NAME:ROOT?frames=DIR&annotation=FILE``."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pandas as pd
import pytest

from mefr.data import (
    DATASETS,
    READERS,
    DatabaseSpecError,
    ReaderWarning,
    parse_database_spec,
    read_database,
    read_database_spec,
)


def test_every_dataset_has_a_reader():
    assert tuple(READERS) == DATASETS


@pytest.mark.parametrize(("text", "expected"), [
    ("casme2:/d/CASME2", ("casme2", Path("/d/CASME2"), {})),
    ("casme2:/d/CASME2?frames=CASME2_RAW_selected/CASME2_RAW_selected",
     ("casme2", Path("/d/CASME2"), {"frames_dir": "CASME2_RAW_selected/CASME2_RAW_selected"})),
    ("casme2:rel/dir?annotation=CASME2-coding-20140508.xlsx&frames=Cropped",
     ("casme2", Path("rel/dir"), {"annotation": "CASME2-coding-20140508.xlsx",
                                  "frames_dir": "Cropped"})),
    ("casme_sq:/d/sq?expression=all&min_kept=0",
     ("casme_sq", Path("/d/sq"), {"expression": "all", "min_kept": 0.0})),
    ("smic_hs:/d/SMIC?frames=SMIC/HS&min_kept=0.25",
     ("smic_hs", Path("/d/SMIC"), {"frames_dir": "SMIC/HS", "min_kept": 0.25})),
    ("4dme:/d/4DME?frames=a+b c", ("4dme", Path("/d/4DME"), {"frames_dir": "a+b c"})),
])
def test_specs_parse(text, expected):
    assert parse_database_spec(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("casme1:/d", "NAME one of"),
    ("/d/CASME2", "NAME one of"),
    ("casme2:", "no ROOT"),
    ("casme2:?frames=x", "no ROOT"),
    ("casme2:/d?frames", "'frames' is not KEY=VALUE"),
    ("casme2:/d?frames=", "'frames=' is not KEY=VALUE"),
    ("casme2:/d?frames=a&frames=b", "'frames' given twice"),
    ("casme2:/d?expression=all", "casme2 takes no option 'expression'; it takes "
     "\\['frames', 'annotation', 'min_kept'\\]"),
    ("smic_hs:/d?annotation=x.xlsx", "smic_hs takes no option 'annotation'"),
    ("casme2:/d?min_kept=half", "min_kept='half' is not a number in 0..1"),
    ("casme2:/d?min_kept=2", "min_kept='2' is not a number in 0..1"),
])
def test_bad_specs_say_what_is_wrong(text, message):
    with pytest.raises(DatabaseSpecError, match=message) as err:
        parse_database_spec(text)
    assert repr(text) in str(err.value) and isinstance(err.value, ValueError)


def test_a_spec_reads_what_the_api_reads(synthetic_databases, tmp_path):
    root = synthetic_databases["casme2"]
    nested = tmp_path / "CASME2"
    shutil.copytree(root / "CASME2_RAW_selected",
                    nested / "CASME2_RAW_selected" / "CASME2_RAW_selected")
    shutil.copy(root / "CASME2-coding-20140508.xlsx", nested)
    deeper = "CASME2_RAW_selected/CASME2_RAW_selected"
    with warnings.catch_warnings():
        warnings.simplefilter("error", ReaderWarning)
        table = read_database_spec(f"casme2:{nested}?frames={deeper}")
    api = read_database("casme2", nested, frames_dir=deeper)
    pd.testing.assert_frame_equal(table, api)
    assert len(table) == 8
