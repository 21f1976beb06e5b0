"""Raw-database readers (CASME II, SAMM, SMIC) on hand-built files with each fault.

The readers never open images, so the frame files written here are empty. The faulty
CASME II file loses most of its rows on purpose, so it is read with ``min_kept=0``
(the ``too-few-clips`` rule is tested in tests/test_data_defects.py).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import Workbook

from mefr.data import read_database
from mefr.data.casme2 import read_casme2
from mefr.data.frames import frame_number
from mefr.data.labels import LabelWarning, apply_protocol
from mefr.data.rules import BAD_INPUT_RULES, AnnotationError, ReaderWarning, rules_markdown
from mefr.data.samm import read_samm
from mefr.data.smic import read_smic
from mefr.data.table import COLUMNS

DOCS = Path(__file__).resolve().parents[1] / "docs" / "bad_inputs.md"
CASME2_HEADER = [
    "Subject",
    "Filename",
    "OnsetFrame",
    "ApexFrame",
    "OffsetFrame",
    None,
    "Action Units",
    "Estimated Emotion",
    None,
]


def touch(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        (folder / n).write_bytes(b"")


def write_xlsx(path: Path, rows: list[list]) -> Path:
    wb = Workbook()
    ws = wb.active
    for r in rows:
        ws.append(r)
    wb.save(path)
    return path


def read_warned(fn, *args, **kwargs) -> tuple[pd.DataFrame, list[str]]:
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        table = fn(*args, **kwargs)
    return table, [str(w.message) for w in rec if issubclass(w.category, ReaderWarning)]


def messages_for(msgs: list[str], rule: str) -> list[str]:
    return [m for m in msgs if m.endswith(f"[{rule}]")]


# ------------------------------------------------------------------ CASME II
@pytest.fixture
def casme2_faulty(tmp_path):
    """A CASME II root whose spreadsheet has one row per fault plus good rows."""
    raw = tmp_path / "CASME2_RAW_selected"
    rows = [
        CASME2_HEADER,
        [1, "EP02_01f", 8, 10, 12, None, "12", "happiness", None],  # 2 good
        [1, "EP03_02", 20, "/", 24, None, "4+L10", "disgust", None],  # 3 apex '/'
        [2, "EP01_01", 1, 2, 3, None, "1+2", "boredom", None],  # 4 unknown emotion
        [2, "EP04_04", 1, 2, 3, None, "", "surprise", None],  # 5 no folder
        [3, "EP05_01", 1, 3, 5, None, "", "surprise", None],  # 6 frame 3 missing
        [3, "EP06_01", 30, 25, 20, None, "", "surprise", None],  # 7 onset > offset
        [3, "EP07_01", "abc", 2, 3, None, "", "surprise", None],  # 8 onset not a number
        [1, "EP02_01f", 8, 10, 12, None, "12", "happiness", None],  # 9 duplicate of 2
        [None] * 9,  # 10 blank
        [4, "EP08_01", 1, 2, 3, None, "", "surprise", None],  # 11 empty folder
        [4, "EP09_01", 1, 99, 3, None, "", "surprise", "a stray note"],  # 12 apex outside
        [4, "EP10_01", 1, 2, 5, None, "", "surprise", None],  # 13 two files for frame 5
        [None, "EP11_01", 1, 2, 3, None, "", "surprise", None],  # 14 no subject
        ["5", "EP12_01", 3.0, 4, 5.0, None, "R12", "Other", None],  # 15 text/float cells
    ]
    write_xlsx(tmp_path / "CASME2-coding-20140508.xlsx", rows)
    # frames 6..14 around onset..offset 8..12 (extra frames and non-frame files too)
    touch(
        raw / "sub01" / "EP02_01f", [f"img{n}.jpg" for n in range(6, 15)] + ["Thumbs.db", "a.txt"]
    )
    touch(raw / "sub01" / "EP03_02", [f"img{n}.jpg" for n in range(20, 25)])
    touch(raw / "sub02" / "EP01_01", [f"img{n}.jpg" for n in range(1, 4)])
    touch(raw / "sub03" / "EP05_01", [f"img{n}.jpg" for n in (1, 2, 4, 5)])
    touch(raw / "sub03" / "EP06_01", [f"img{n}.jpg" for n in range(20, 31)])
    touch(raw / "sub03" / "EP07_01", [f"img{n}.jpg" for n in range(1, 4)])
    touch(raw / "sub04" / "EP08_01", ["Thumbs.db"])
    touch(raw / "sub04" / "EP09_01", [f"img{n}.jpg" for n in range(1, 4)])
    touch(raw / "sub04" / "EP10_01", [f"img{n}.jpg" for n in range(1, 6)] + ["img05.jpg"])
    touch(raw / "sub05" / "EP12_01", [f"img{n}.jpg" for n in range(3, 6)])
    return tmp_path


def test_casme2_good_rows_survive_the_bad_ones(casme2_faulty):
    table, msgs = read_warned(read_casme2, casme2_faulty, min_kept=0)
    assert list(table.columns) == list(COLUMNS)
    assert table["clip"].tolist() == ["EP02_01f", "EP03_02", "EP01_01", "EP09_01", "EP12_01"]
    assert table["row"].tolist() == [2, 3, 4, 12, 15]
    first = table.iloc[0]
    assert first["subject"] == "sub01" and first["emotion"] == "happiness"
    assert (first["onset"], first["apex"], first["offset"]) == (8, 10, 12)
    assert first["action_units"] == "12"
    # frames run onset..offset in numeric order (img8, img9, img10 ...), extras left out
    assert first["frame_numbers"] == (8, 9, 10, 11, 12)
    assert [Path(p).name for p in first["frames"]] == [f"img{n}.jpg" for n in range(8, 13)]
    assert all(Path(p).is_file() for p in first["frames"])
    assert first["source"].endswith("CASME2-coding-20140508.xlsx")
    last = table.iloc[-1]
    assert last["subject"] == "sub05" and (last["onset"], last["offset"]) == (3, 5)
    assert last["emotion"] == "other" and last["action_units"] == "R12"
    # every warning names the file and the row
    assert msgs and all("CASME2-coding-20140508.xlsx, row " in m for m in msgs)


@pytest.mark.parametrize(
    ("rule", "row", "kept"),
    [
        ("apex-missing", 3, True),
        ("unknown-emotion", 4, True),
        ("missing-frames-folder", 5, False),
        ("frames-missing", 6, False),
        ("onset-after-offset", 7, False),
        ("bad-onset-offset", 8, False),
        ("duplicate-clip", 9, False),
        ("empty-frames-folder", 11, False),
        ("apex-outside", 12, True),
        ("duplicate-frame-number", 13, False),
        ("missing-id", 14, False),
    ],
)
def test_casme2_each_fault_gets_its_rule(casme2_faulty, rule, row, kept):
    table, msgs = read_warned(read_casme2, casme2_faulty, min_kept=0)
    hits = messages_for(msgs, rule)
    assert len(hits) == 1, (rule, msgs)
    assert f", row {row}:" in hits[0]
    assert (row in table["row"].tolist()) == kept
    issues = [i for i in table.attrs["issues"] if i["rule"] == rule]
    assert [i["row"] for i in issues] == [row]


def test_casme2_repaired_rows(casme2_faulty):
    table, msgs = read_warned(read_casme2, casme2_faulty, min_kept=0)
    by_row = table.set_index("row")
    assert pd.isna(by_row.loc[3, "apex"]) and pd.isna(by_row.loc[12, "apex"])
    assert by_row.loc[4, "emotion"] == "boredom"  # kept as written
    assert "frames 1..5 missing (first: [3])" in messages_for(msgs, "frames-missing")[0]
    # blank row 10 gives no warning; row 15's 'Other' is known, so no unknown-emotion
    assert not any(", row 10:" in m or ", row 15:" in m for m in msgs)
    # a label protocol then drops the unknown emotion instead of guessing
    with pytest.warns(LabelWarning) as rec:
        labelled = apply_protocol(table, "cde")
    assert any("'boredom'" in str(w.message) and "row 4" in str(w.message) for w in rec)
    assert "EP01_01" not in labelled["clip"].tolist()


def test_casme2_missing_column_lists_the_columns_found(tmp_path):
    write_xlsx(
        tmp_path / "CASME2-coding-20140508.xlsx",
        [
            ["Subject", "Filename", "OnsetFrame", "OffsetFrame", "Estimated Emotion"],
            [1, "EP02_01f", 1, 3, "happiness"],
        ],
    )
    (tmp_path / "CASME2_RAW_selected").mkdir()
    with pytest.raises(AnnotationError) as err:
        read_casme2(tmp_path)
    text = str(err.value)
    assert "ApexFrame" in text and "'OnsetFrame'" in text and "columns found" in text
    assert "CASME2-coding-20140508.xlsx" in text and "[missing-column]" in text


def test_casme2_cropped_release_and_csv_annotation(tmp_path):
    touch(tmp_path / "Cropped" / "sub07" / "EP01_1", [f"reg_img{n}.jpg" for n in (99, 100, 101)])
    csv = tmp_path / "coding.csv"
    csv.write_text(
        "Subject,Filename,OnsetFrame,ApexFrame,OffsetFrame,Action Units,"
        "Estimated Emotion\n\n7,EP01_1,99,100,101,4,disgust\n"
    )
    table, msgs = read_warned(read_casme2, tmp_path, annotation=csv)
    assert msgs == []
    assert table["row"].tolist() == [3]  # blank line 2 keeps the numbering right
    assert [Path(p).name for p in table.iloc[0]["frames"]] == [
        "reg_img99.jpg",
        "reg_img100.jpg",
        "reg_img101.jpg",
    ]


def test_casme2_missing_annotation_and_frames_root(tmp_path):
    with pytest.raises(AnnotationError, match=r"annotation-not-found"):
        read_casme2(tmp_path)
    write_xlsx(tmp_path / "CASME2-coding-20140508.xlsx", [CASME2_HEADER])
    with pytest.raises(
        AnnotationError, match=r"CASME2_RAW_selected.*Cropped.*frames-root-not-found"
    ):
        read_casme2(tmp_path)


def test_unreadable_annotation_is_one_clear_error(tmp_path):
    bad = tmp_path / "CASME2-coding-20140508.xlsx"
    bad.write_bytes(b"not a zip file")
    (tmp_path / "CASME2_RAW_selected").mkdir()
    with pytest.raises(
        AnnotationError, match=r"CASME2-coding-20140508.xlsx.*unreadable-annotation"
    ):
        read_casme2(tmp_path)


# ------------------------------------------------------------------ SAMM
SAMM_HEADER = [
    "Subject",
    "Filename",
    "Inducement Code",
    "Onset Frame",
    "Apex Frame",
    "Offset Frame",
    "Duration",
    "Type",
    "Action Units",
    "Notes",
    "Estimated Emotion",
    "Objective Classes",
]


def samm_root(tmp_path: Path, prose_rows: int) -> Path:
    prose = [["SAMM micro-movement codes"], [], ["Onset, apex, offset are frame numbers."]]
    prose += [[f"note {i}"] if i % 3 else [] for i in range(prose_rows - len(prose))]
    rows = prose + [
        SAMM_HEADER,
        [6, "006_1_2", 1, 5562, 5564, 5566, 5, "Micro - 1/2", "4 or 7", "", "Anger", 2],
        ["007", "007_3_1", 3, 100, None, 102, 3, "Micro", "12", "", "Happiness ", 1],
        ["007", "007_3_2", 3, 200, 201, 202, 3, "Micro", "", "", "Other", 7],
    ]
    write_xlsx(tmp_path / "SAMM_Micro_FACS_Codes_v2.xlsx", rows)
    touch(tmp_path / "SAMM" / "006" / "006_1_2", [f"006_{n:05d}.jpg" for n in range(5560, 5569)])
    touch(tmp_path / "SAMM" / "007" / "007_3_1", [f"007_{n:05d}.jpg" for n in range(100, 103)])
    touch(tmp_path / "SAMM" / "007" / "007_3_2", [f"007_{n:05d}.jpg" for n in range(200, 203)])
    return tmp_path


@pytest.mark.parametrize("prose_rows", [12, 5])
def test_samm_header_found_by_content(tmp_path, prose_rows):
    table, msgs = read_warned(read_samm, samm_root(tmp_path, prose_rows))
    header_row = prose_rows + 1
    assert table["row"].tolist() == [header_row + 1, header_row + 2, header_row + 3]
    assert table["subject"].tolist() == ["006", "007", "007"]
    first = table.iloc[0]
    assert first["frame_numbers"] == (5562, 5563, 5564, 5565, 5566)
    assert Path(first["frames"][0]).name == "006_05562.jpg"
    assert first["action_units"] == "4 or 7" and first["emotion"] == "anger"
    assert table.iloc[1]["emotion"] == "happiness" and pd.isna(table.iloc[1]["apex"])
    assert [m for m in msgs if "apex-missing" in m] and all(
        f"row {header_row + 2}" in m for m in msgs
    )
    assert not messages_for(msgs, "unknown-emotion")  # 'Other' and 'Happiness ' are known


def test_samm_without_header_row(tmp_path):
    write_xlsx(tmp_path / "SAMM_Micro_FACS_Codes_v2.xlsx", [["prose"], ["Subject only"], [6, "x"]])
    (tmp_path / "SAMM").mkdir()
    with pytest.raises(AnnotationError, match=r"SAMM_Micro_FACS_Codes_v2.xlsx.*no-header-row"):
        read_samm(tmp_path)


def test_samm_missing_column(tmp_path):
    header = [h for h in SAMM_HEADER if h != "Offset Frame"]
    write_xlsx(tmp_path / "SAMM_Micro_FACS_Codes_v2.xlsx", [["prose"], [], header])
    (tmp_path / "SAMM").mkdir()
    with pytest.raises(AnnotationError, match=r"row 3: missing column\(s\) \['Offset Frame'\]"):
        read_samm(tmp_path)


# ------------------------------------------------------------------ SMIC
@pytest.fixture
def smic_faulty(tmp_path):
    hs = tmp_path / "SMIC" / "HS"
    touch(
        hs / "s1" / "micro" / "negative" / "s1_ne_01",
        [f"image{n:06d}.bmp" for n in range(101, 111)],
    )
    # unpadded numbers: must be sorted numerically (9, 10, 11, 12)
    touch(
        hs / "s1" / "micro" / "positive" / "s1_po_02",
        [f"reg_image{n}.bmp" for n in (12, 9, 11, 10)],
    )
    touch(hs / "s1" / "non_micro" / "x", ["image000001.bmp"])  # not a micro-expression
    touch(hs / "s2" / "micro" / "surprise" / "s2_sur_01", [f"image{n:06d}.bmp" for n in (1, 2, 4)])
    touch(hs / "s2" / "micro" / "surprise" / "s2_sur_02", [])
    touch(hs / "s2" / "micro" / "weird" / "s2_we_01", [f"image{n:06d}.bmp" for n in (5, 6)])
    touch(hs / "s10" / "micro" / "surprise" / "s10_sur_01", ["image000007.bmp", "image000008.bmp"])
    touch(hs / "s3" / "non_micro" / "y", ["image000001.bmp"])
    touch(
        tmp_path / "SMIC" / "VIS" / "s1" / "micro" / "positive" / "s1_po_01",
        [f"image{n:06d}.bmp" for n in range(1, 5)],
    )
    return tmp_path


def test_smic_folders_give_labels_and_no_apex(smic_faulty):
    table, msgs = read_warned(read_smic, smic_faulty, "HS")
    assert table["dataset"].unique().tolist() == ["smic_hs"]
    assert table["clip"].tolist() == ["s1_ne_01", "s1_po_02", "s2_we_01", "s10_sur_01"]
    assert table["emotion"].tolist() == ["negative", "positive", "weird", "surprise"]
    assert table["apex"].isna().all() and table["row"].isna().all()
    po = table.iloc[1]
    assert po["frame_numbers"] == (9, 10, 11, 12) and (po["onset"], po["offset"]) == (9, 12)
    assert [Path(p).name for p in po["frames"]] == [f"reg_image{n}.bmp" for n in (9, 10, 11, 12)]
    ne = table.iloc[0]
    assert (ne["onset"], ne["offset"]) == (101, 110) and len(ne["frames"]) == 10
    assert (
        len(messages_for(msgs, "frames-missing")) == 1
        and "s2_sur_01" in messages_for(msgs, "frames-missing")[0]
    )
    assert len(messages_for(msgs, "empty-frames-folder")) == 1
    assert len(messages_for(msgs, "unknown-emotion")) == 1
    assert (
        len(messages_for(msgs, "smic-no-micro")) == 1
        and "s3" in messages_for(msgs, "smic-no-micro")[0]
    )


def test_smic_other_cameras_and_roots(smic_faulty):
    vis = read_smic(smic_faulty, "smic_vis")
    assert vis["dataset"].tolist() == ["smic_vis"] and vis["clip"].tolist() == ["s1_po_01"]
    direct, _ = read_warned(read_smic, smic_faulty / "SMIC", "hs")
    assert len(direct) == 4
    with pytest.raises(AnnotationError, match="frames-root-not-found"):
        read_smic(smic_faulty, "NIR")
    with pytest.raises(ValueError, match="unknown SMIC variant"):
        read_smic(smic_faulty, "UV")


# ------------------------------------------------------------------ shared
def test_read_database_dispatch(smic_faulty, tmp_path):
    table, _ = read_warned(read_database, "smic_hs", smic_faulty)
    assert len(table) == 4
    with pytest.raises(ValueError, match="unknown dataset"):
        read_database("casme1", tmp_path)


def test_frame_number_parsing():
    assert frame_number(Path("img46.jpg")) == 46
    assert frame_number(Path("reg_img46.JPG")) == 46
    assert frame_number(Path("006_05562.jpg")) == 5562
    assert frame_number(Path("image000123.bmp")) == 123
    assert frame_number(Path("Thumbs.db")) is None
    assert frame_number(Path("cover.jpg")) is None


def test_docs_list_every_rule():
    if not DOCS.is_file():
        pytest.skip("docs/bad_inputs.md not in this checkout")
    text = DOCS.read_text()
    assert rules_markdown() in text
    assert len({r.id for r in BAD_INPUT_RULES}) == len(BAD_INPUT_RULES)


def test_casme2_header_below_a_title_row(tmp_path):
    write_xlsx(
        tmp_path / "CASME2-coding-20190701.xlsx",
        [["CASME II coding"], CASME2_HEADER, [26, "EP18_51", 7, 8, 9, None, "4", "disgust", None]],
    )
    touch(
        tmp_path / "CASME2_RAW_selected" / "sub26" / "EP18_51", ["img7.jpg", "img8.jpg", "img9.jpg"]
    )
    table, msgs = read_warned(read_casme2, tmp_path)
    assert msgs == [] and table["row"].tolist() == [3] and table["subject"].tolist() == ["sub26"]
