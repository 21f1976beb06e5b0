"""The reader defects of issue 35 (1, 3, 4, 5) and issue 37 (9), on hand-built files.

Each test fails on the readers as they were before the fix: an empty read that
succeeded, a second annotation file taken silently, export spellings refused, a
mislabelled SMIC clip taken silently, a ``../`` filename read outside the database, a
header-only sheet read as an empty table. The frame files are empty: the readers never
open images.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import Workbook

from mefr.data import AnnotationError, ReaderWarning, read_casme2, read_database, read_smic

HEADER = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units",
          "Estimated Emotion"]


def touch(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        (folder / n).write_bytes(b"")


def write_xlsx(path: Path, rows: list[list]) -> Path:
    wb = Workbook()
    for r in rows:
        wb.active.append(r)
    wb.save(path)
    return path


def read_warned(fn, *args, **kwargs) -> tuple[pd.DataFrame, list[str]]:
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        table = fn(*args, **kwargs)
    return table, [str(w.message) for w in rec if issubclass(w.category, ReaderWarning)]


def casme2_root(root: Path, frames: str = "CASME2_RAW_selected", n: int = 3) -> Path:
    """A CASME II root of ``n`` clips (sub01/EP01_01 .. EP0n_01, frames 10..12)."""
    write_xlsx(root / "CASME2-coding-20140508.xlsx", [HEADER] + [
        [1, f"EP0{i}_01", 10, 11, 12, "12", "happiness"] for i in range(1, n + 1)])
    for i in range(1, n + 1):
        touch(root / frames / "sub01" / f"EP0{i}_01", [f"img{k}.jpg" for k in (10, 11, 12)])
    return root


# ------------------------------------------------------------ issue 35, defect 1
def test_frames_one_level_deeper_fail_with_where_and_a_hint(tmp_path):
    casme2_root(tmp_path, frames="CASME2_RAW_selected/CASME2_RAW_selected")
    with pytest.raises(AnnotationError) as err:
        read_warned(read_casme2, tmp_path)
    text = str(err.value)
    assert "0 of 3 annotated clip(s) kept" in text and "[too-few-clips]" in text
    assert "missing-frames-folder x3" in text
    assert f"frames looked for under {tmp_path / 'CASME2_RAW_selected'}" in text
    assert "Found CASME2_RAW_selected/ inside CASME2_RAW_selected/" in text
    assert "frames_dir=CASME2_RAW_selected/CASME2_RAW_selected" in text
    # and the hint works
    table, msgs = read_warned(read_casme2, tmp_path,
                              frames_dir="CASME2_RAW_selected/CASME2_RAW_selected")
    assert len(table) == 3 and msgs == []


def test_a_clip_folder_elsewhere_is_pointed_at(tmp_path):
    casme2_root(tmp_path, frames="copy/frames")
    (tmp_path / "CASME2_RAW_selected").mkdir()
    with pytest.raises(AnnotationError, match=r"Clip folder sub01/EP01_01 found under .*copy"
                       r"/frames: pass frames_dir=copy/frames"):
        read_warned(read_casme2, tmp_path)


def test_losing_most_rows_fails_unless_a_partial_copy_is_accepted(tmp_path):
    casme2_root(tmp_path, n=3)
    for i in (2, 3):
        for f in (tmp_path / "CASME2_RAW_selected" / "sub01" / f"EP0{i}_01").iterdir():
            f.unlink()
        (tmp_path / "CASME2_RAW_selected" / "sub01" / f"EP0{i}_01").rmdir()
    with pytest.raises(AnnotationError, match=r"1 of 3 annotated clip\(s\) kept.*min_kept=0"):
        read_warned(read_casme2, tmp_path)
    table, msgs = read_warned(read_casme2, tmp_path, min_kept=0)
    assert table["clip"].tolist() == ["EP01_01"] and len(msgs) == 2
    # half kept is enough by default
    table, _ = read_warned(read_casme2, tmp_path, min_kept=1 / 3)
    assert len(table) == 1


def test_prepare_exits_nonzero_on_an_empty_read(tmp_path, capsys):
    from mefr.cli import main

    (tmp_path / "db").mkdir()
    casme2_root(tmp_path / "db", frames="CASME2_RAW_selected/CASME2_RAW_selected")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ReaderWarning)
        rc = main(["prepare", str(tmp_path / "db"), "--database", "casme2", "--cache",
                   str(tmp_path / "cache"), "--workers", "1", "--no-progress"])
    assert rc != 0
    assert "too-few-clips" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.npz"))


def test_an_empty_smic_folder_fails(tmp_path):
    (tmp_path / "SMIC" / "HS" / "s1" / "micro" / "positive").mkdir(parents=True)
    with pytest.raises(AnnotationError, match=r"smic_hs: 0 of 0 annotated.*holds 1 entries"):
        read_smic(tmp_path, "HS")


# ------------------------------------------------------------ issue 35, defect 3
def test_two_annotation_versions_are_named_and_can_be_chosen(tmp_path):
    casme2_root(tmp_path)
    write_xlsx(tmp_path / "CASME2-coding-20190701.xlsx", [HEADER] + [
        [1, f"EP0{i}_01", 10, 11, 12, "1+2", "surprise"] for i in (1, 2, 3)])
    (tmp_path / "~$CASME2-coding-20190701.xlsx").write_bytes(b"lock")  # never taken
    table, msgs = read_warned(read_casme2, tmp_path)
    assert table.attrs["annotation"].endswith("CASME2-coding-20190701.xlsx")
    assert set(table["emotion"]) == {"surprise"}
    [msg] = msgs
    assert msg.endswith("[several-annotations]") and "using CASME2-coding-20190701.xlsx" in msg
    assert "CASME2-coding-20140508.xlsx" in msg and "~$" not in msg
    table, msgs = read_warned(read_casme2, tmp_path, annotation="CASME2-coding-20140508.xlsx")
    assert msgs == [] and set(table["emotion"]) == {"happiness"}
    assert table.attrs["annotation"] == str(tmp_path / "CASME2-coding-20140508.xlsx")
    with pytest.raises(AnnotationError, match=r"'nope.xlsx' not found.*annotation-not-found"):
        read_casme2(tmp_path, annotation="nope.xlsx")


# ------------------------------------------------------------ issue 35, defect 4
@pytest.mark.parametrize("names", [
    ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Label"],
    ["subject", "filename", "OnsetF", "ApexF", "OffsetF", "AUs", "emotion"],
    ["Sub", "Clip", "Onset Frame", "Apex Frame", "Offset Frame", "Action Unit", "Emotion"],
])
def test_export_spellings_of_the_columns_are_accepted(tmp_path, names):
    csv = tmp_path / "export.csv"
    csv.write_text(",".join(names) + "\n1,EP01_01,10,11,12,4,disgust\n")
    touch(tmp_path / "CASME2_RAW_selected" / "sub01" / "EP01_01", ["img10.jpg", "img11.jpg",
                                                                 "img12.jpg"])
    table, msgs = read_warned(read_casme2, tmp_path, annotation=csv)
    assert msgs == []
    row = table.iloc[0]
    assert (row["subject"], row["clip"], row["emotion"]) == ("sub01", "EP01_01", "disgust")
    assert (row["onset"], row["apex"], row["offset"], row["action_units"]) == (10, 11, 12, "4")


def test_a_missing_column_lists_the_accepted_spellings(tmp_path):
    csv = tmp_path / "export.csv"
    csv.write_text("Subject,Filename,Onset,Offset,Label\n1,EP01_01,10,12,disgust\n")
    (tmp_path / "CASME2_RAW_selected").mkdir()
    with pytest.raises(AnnotationError) as err:
        read_casme2(tmp_path, annotation=csv)
    text = str(err.value)
    assert "missing column(s) ['ApexFrame']" in text
    assert "ApexFrame / Apex / ApexF / ApexF1 / Apex Frame" in text
    assert "columns found: ['Subject', 'Filename', 'Onset', 'Offset', 'Label']" in text


# ------------------------------------------------------------ issue 35, defect 5
def test_smic_clip_named_for_another_label_is_reported(tmp_path):
    hs = tmp_path / "SMIC" / "HS" / "s2" / "micro"
    touch(hs / "negative" / "s2_sur_03", [f"image{n:06d}.bmp" for n in (1, 2, 3)])
    touch(hs / "negative" / "s2_ne_01", [f"image{n:06d}.bmp" for n in (5, 6)])
    touch(hs / "positive" / "s2_po_02", [f"image{n:06d}.bmp" for n in (8, 9)])
    table, msgs = read_warned(read_smic, tmp_path, "HS")
    assert table.set_index("clip")["emotion"].to_dict() == {
        "s2_ne_01": "negative", "s2_sur_03": "negative", "s2_po_02": "positive"}
    [msg] = msgs
    assert msg.endswith("[label-name-mismatch]") and "s2_sur_03" in msg
    assert "'surprise'" in msg and "negative/" in msg


# ------------------------------------------------------------ issue 37, item 9
def test_a_filename_climbing_out_of_the_database_is_not_read(tmp_path):
    casme2_root(tmp_path, n=2)
    outside = tmp_path.parent / f"{tmp_path.name}_outside"
    touch(outside, ["img10.jpg", "img11.jpg", "img12.jpg"])
    write_xlsx(tmp_path / "CASME2-coding-20140508.xlsx", [
        HEADER,
        [1, "EP01_01", 10, 11, 12, "", "happiness"],
        [1, "EP02_01", 10, 11, 12, "", "happiness"],
        [1, f"../../../{outside.name}", 10, 11, 12, "", "happiness"],
        [1, "..", 10, 11, 12, "", "happiness"],
    ])
    table, msgs = read_warned(read_casme2, tmp_path)
    assert table["clip"].tolist() == ["EP01_01", "EP02_01"]
    unsafe = [m for m in msgs if m.endswith("[unsafe-path]")]
    assert len(unsafe) == 2 and ", row 4:" in unsafe[0] and ", row 5:" in unsafe[1]
    root = tmp_path.resolve()
    assert all(Path(p).resolve().is_relative_to(root) for fs in table["frames"] for p in fs)


@pytest.mark.parametrize("rows", [[HEADER], [HEADER, [None] * 7, [None] * 7]])
def test_a_header_only_sheet_is_an_error(tmp_path, rows):
    write_xlsx(tmp_path / "CASME2-coding-20140508.xlsx", rows)
    (tmp_path / "CASME2_RAW_selected").mkdir()
    with pytest.raises(AnnotationError, match=r"CASME2-coding-20140508.xlsx: no annotated row "
                       r"below the header \[no-annotation-rows\]"):
        read_database("casme2", tmp_path)
