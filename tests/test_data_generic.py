"""The generic reader (``csv:FILE``): a database mefr does not know, from one CSV."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from mefr.data import AnnotationError, ReaderWarning, read_database, read_database_spec
from mefr.data.generic import read_generic_csv
from mefr.evaluate.protocols import protocol_folds


def _frames(folder: Path, numbers: range, ext: str = ".png") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(numbers))
    for n in numbers:
        img = rng.integers(0, 256, (32, 32), dtype=np.uint8)
        img = cv2.GaussianBlur(img, (0, 0), 2.0)
        cv2.imwrite(str(folder / f"frame_{n:04d}{ext}"), img)


def _csv(path: Path, text: str) -> Path:
    path.write_text(text.lstrip(), encoding="utf-8")
    return path


@pytest.fixture
def database(tmp_path: Path) -> Path:
    """Three clips of two subjects: a frames cell, a blank frames cell ({subject}/{clip})
    and a blank apex."""
    _frames(tmp_path / "videos" / "a1", range(10, 16))
    _frames(tmp_path / "s2" / "c3", range(5, 11))
    _frames(tmp_path / "s1" / "c2", range(1, 7))
    return _csv(tmp_path / "clips.csv", """
Subject,Clip,Frames,Onset,Apex,Offset,Label
s1,c1,videos/a1,10,12,15,happiness
s1,c2,,1,3,6,Surprise
s2,c3,s2/c3,5,,10,disgusted
""")


def test_reads_the_rows_with_their_frames(database: Path) -> None:
    with pytest.warns(ReaderWarning, match=r"clips\.csv, row 4: csv c3: apex cell"):
        table = read_database("csv", database)
    assert list(table["dataset"]) == ["csv"] * 3
    assert list(table["subject"]) == ["s1", "s1", "s2"]
    assert list(table["clip"]) == ["c1", "c2", "c3"]
    assert list(table["emotion"]) == ["happiness", "surprise", "disgusted"]
    assert table["onset"].tolist() == [10, 1, 5] and table["offset"].tolist() == [15, 6, 10]
    assert table["apex"].tolist()[:2] == [12, 3] and pd.isna(table["apex"].iloc[2])
    assert table["frame_numbers"].iloc[0] == tuple(range(10, 16))
    root = database.parent
    assert Path(table["frames"].iloc[0][0]) == root / "videos" / "a1" / "frame_0010.png"
    assert Path(table["frames"].iloc[1][-1]) == root / "s1" / "c2" / "frame_0006.png"
    assert table["row"].tolist() == [2, 3, 4]
    folds = protocol_folds(table, "loso")  # one fold per subject, groups csv/<subject>
    assert [(f.name, len(f.test_idx)) for f in folds] == [("csv/s1", 2), ("csv/s2", 1)]


def test_spec_with_a_frames_folder_and_the_data_source(tmp_path: Path) -> None:
    _frames(tmp_path / "elsewhere" / "x" / "y", range(1, 5))
    (tmp_path / "meta").mkdir()
    csv = _csv(tmp_path / "meta" / "list.csv", "subject,clip,frames,onset,apex,offset,label\n"
               "p1,y,x/y,1,2,4,happiness\np2,z,x/y,1,3,4,surprise\n")
    table = read_database_spec(f"csv:{csv}?frames={tmp_path / 'elsewhere'}")
    assert len(table) == 2 and table["frame_numbers"].iloc[0] == (1, 2, 3, 4)
    from mefr.preprocess.settings import PreprocessSettings
    from mefr.preprocess.sources import load_sources

    fs = load_sources([f"csv:{csv}?frames={tmp_path / 'elsewhere'}"], "cde",
                      PreprocessSettings(face="none"), workers=1, progress=False)
    assert fs.x.shape == (2, 2, 28, 28) and fs.table["label_name"].tolist() == [
        "positive", "surprise"]


@pytest.mark.parametrize(("content", "message"), [
    (None, "CSV file not found"),
    ("subject,frames,onset,apex,offset,label\ns1,a,1,2,3,happiness\n", "no header row"),
    ("subject,clip,onset,apex,label\ns1,a,1,2,happiness\n", r"missing column\(s\) \['offset'\]"),
    ("subject,clip,frames,onset,apex,offset,label\n", "no annotated row below the header"),
    ("", "cannot read the annotation file"),
])
def test_unusable_files_are_errors_naming_the_file(tmp_path: Path, content, message) -> None:
    path = tmp_path / "db.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(AnnotationError, match=message) as info:
        read_generic_csv(path)
    assert str(path) in str(info.value)


def test_utf16_folder_and_other_suffix_are_refused(tmp_path: Path) -> None:
    utf16 = tmp_path / "db.csv"
    utf16.write_text("subject,clip\n", encoding="utf-16")
    with pytest.raises(AnnotationError, match="UTF-16 encoded; save it as UTF-8"):
        read_generic_csv(utf16)
    with pytest.raises(AnnotationError, match="is a folder: csv:FILE needs the CSV file"):
        read_generic_csv(tmp_path)
    xlsx = tmp_path / "db.xlsx"
    xlsx.write_bytes(b"x")
    with pytest.raises(AnnotationError, match=r"expected a \.csv file"):
        read_generic_csv(xlsx)


def test_bad_rows_are_skipped_with_warnings_naming_file_and_row(tmp_path: Path) -> None:
    for clip in ("ok1", "ok2", "ok3", "ok4"):
        _frames(tmp_path / "s1" / clip, range(1, 6))
    path = _csv(tmp_path / "db.csv", """
subject,clip,frames,onset,apex,offset,label
s1,ok1,,1,3,5,happiness
s1,ok2,,1,3,5,surprise
s1,ok3,,1,3,5,disgust
s1,ok4,,1,3,5,sadness
s1,bad_onset,,one,3,5,happiness
s1,escape,../outside,1,3,5,happiness
s1,absolute,/etc,1,3,5,happiness
s1,nofolder,s1/none,1,3,5,happiness
s1,ok1,,1,3,5,happiness
""")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = read_generic_csv(path, min_kept=0)  # 4 of 9 kept: below the default half
    assert list(table["clip"]) == ["ok1", "ok2", "ok3", "ok4"]
    said = [str(w.message) for w in caught if issubclass(w.category, ReaderWarning)]
    expect = {6: "bad-onset-offset", 7: "unsafe-path", 8: "unsafe-path",
              9: "missing-frames-folder", 10: "duplicate-clip"}
    for row, rule in expect.items():
        assert any(m.startswith(f"{path}, row {row}: ") and m.endswith(f"[{rule}]")
                   for m in said), (row, rule, said)
    assert len(said) == len(expect)


def test_too_few_clips_kept_is_an_error(tmp_path: Path) -> None:
    path = _csv(tmp_path / "db.csv", "subject,clip,onset,apex,offset,label\n"
                "s1,a,1,2,3,happiness\ns1,b,1,2,3,surprise\n")
    with pytest.warns(ReaderWarning), pytest.raises(AnnotationError, match="too-few-clips"):
        read_generic_csv(path)


def test_own_data_page_lists_every_preprocessing_setting_with_its_default() -> None:
    from dataclasses import fields

    from mefr.preprocess import PreprocessSettings

    page = (Path(__file__).parents[1] / "docs" / "own_data.md").read_text()
    rows = {line.split("|")[1].strip(): line.split("|")[2].strip()
            for line in page.splitlines() if line.startswith("| `")}
    defaults = PreprocessSettings()
    for f in fields(PreprocessSettings):
        assert f"`{f.name}`" in rows, f.name
        assert rows[f"`{f.name}`"] == f"`{getattr(defaults, f.name)}`", f.name
