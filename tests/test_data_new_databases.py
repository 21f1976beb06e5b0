"""CAS(ME)^3, CAS(ME)^2, MMEW, 4DME and SMIC-E: files in each format, their rules.

The module fixture writes each format with the synthetic generator; the tests check
that each reads back as written, each format's own layout and quirks (on copies where a
file is edited), and the CAS(ME)^3 labellings.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import cv2
import pandas as pd
import pytest
from openpyxl import load_workbook

from mefr.data import (
    AnnotationError,
    LabelWarning,
    ReaderWarning,
    apply_labelling,
    labelling_classes,
    read_database,
)
from mefr.data.synthetic import read_truth

NEW = ("casme3", "casme_sq", "mmew", "4dme", "smic_e_hs", "smic_e_vis", "smic_e_nir")


@pytest.fixture(scope="module")
def new_databases(tmp_path_factory) -> dict[str, Path]:
    """Every new format, 2 subjects x 4 clips x 10-14 frames of 120x160."""
    from mefr.data.synthetic import write_synthetic_databases

    return write_synthetic_databases(tmp_path_factory.mktemp("new_formats"), databases=NEW,
                                     subjects=2, clips_per_subject=4, frames=(10, 14),
                                     size=(120, 160), seed=3)


def read_warned(dataset: str, root: Path, **kw) -> tuple[pd.DataFrame, list[str]]:
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        table = read_database(dataset, root, **kw)
    return table, [str(w.message) for w in rec if issubclass(w.category, ReaderWarning)]


def copy_of(paths: dict[str, Path], dataset: str, tmp_path: Path) -> Path:
    dst = tmp_path / paths[dataset].name
    shutil.copytree(paths[dataset], dst)
    return dst


def edit_cell(path: Path, sheet: str | None, row: int, column: int, value: object) -> None:
    wb = load_workbook(path)
    ws = wb[sheet] if sheet else wb.active
    ws.cell(row=row, column=column, value=value)
    wb.save(path)


def sheet_rows(path: Path, sheet: str | None = None) -> list[tuple]:
    wb = load_workbook(path)
    return list((wb[sheet] if sheet else wb.active).iter_rows(values_only=True))


@pytest.mark.parametrize("dataset", NEW)
def test_each_new_format_reads_cleanly_with_its_annotation_named(new_databases, dataset):
    table, msgs = read_warned(dataset, new_databases[dataset])
    assert msgs == [] and len(table) == 8 and table["dataset"].unique().tolist() == [dataset]
    assert Path(table.attrs["annotation"]).is_file()
    assert (table["source"] == table.attrs["annotation"]).all()


@pytest.mark.parametrize("dataset", NEW)
def test_each_new_format_reads_back_as_written(new_databases, dataset):
    table, _ = read_warned(dataset, new_databases[dataset])
    truth = read_truth(new_databases[dataset])
    truth = truth[truth["dataset"] == dataset]
    merged = table.merge(truth, on=["subject", "clip"], suffixes=("", "_true"), validate="1:1")
    assert len(merged) == len(table) == len(truth) == 8
    assert (merged["onset"] == merged["onset_true"]).all()
    assert (merged["offset"] == merged["offset_true"]).all()
    if dataset.startswith("smic_e"):
        assert table["apex"].isna().all()  # SMIC-E has no apex annotation
    else:
        assert (merged["apex"] == merged["apex_true"]).all()
    for _, r in merged.iterrows():
        assert r["frame_numbers"] == tuple(range(r["onset"], r["offset"] + 1))
        assert all(Path(p).is_file() for p in r["frames"])
        assert Path(r["frames"][0]).parent.relative_to(new_databases[dataset]).as_posix() == \
            r["frames_dir"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LabelWarning)
        cde = apply_labelling(table, "cde")
    by_clip = truth.set_index(["subject", "clip"])["cde_class"]
    assert cde["label_name"].tolist() == [by_clip[(s, c)] for s, c in
                                          zip(cde["subject"], cde["clip"], strict=True)]
    assert len(cde) == (truth["cde_class"] != "").sum()


def test_casme3_layout_and_repeated_filenames(new_databases):
    root = new_databases["casme3"]
    rows = sheet_rows(root / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx")
    assert rows[0] == ("Subject", "Filename", "Onset", "Apex", "Offset", "AU",
                       "Objective class", "emotion")
    filenames = [(r[0], r[1]) for r in rows[1:]]
    assert len(set(filenames)) < len(filenames)  # one video, several rows
    assert {r[7] for r in rows[1:]} >= {"happy", "sad", "Others"}  # as part A spells them
    table, _ = read_warned("casme3", root)
    for _, r in table.iterrows():
        folder = Path(r["frames"][0]).parent
        assert folder.name == "color" and folder.parent.parent.name == r["subject"]
        assert r["clip"] == f"{folder.parent.name}_{r['onset']}"  # a repeated Filename
        assert r["frame_numbers"] == tuple(range(r["onset"], r["offset"] + 1))
    assert table["clip"].is_unique
    # two clips of one video: distinct, non-overlapping spans in the same folder
    shared = table.groupby(table["frames"].map(lambda f: str(Path(f[0]).parent)))
    assert any(len(g) == 2 for _, g in shared)


def test_casme3_same_onset_twice_is_a_duplicate(new_databases, tmp_path):
    root = copy_of(new_databases, "casme3", tmp_path)
    book = root / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"
    rows = sheet_rows(book)
    edit_cell(book, None, 3, 3, rows[1][2])  # row 3 gets row 2's onset (same video)
    edit_cell(book, None, 3, 4, rows[1][3])
    edit_cell(book, None, 3, 5, rows[1][4])
    table, msgs = read_warned("casme3", root)
    assert len(table) == 7
    [dup] = [m for m in msgs if m.endswith("[duplicate-clip]")]
    assert ", row 3:" in dup


def test_casme_sq_headerless_sheet_micro_only_and_zero_offset(new_databases, tmp_path):
    root = new_databases["casme_sq"]
    book = root / "CAS(ME)^2code_final(Updated).xlsx"
    rows = sheet_rows(book)
    assert isinstance(rows[0][0], int) and len(rows[0]) == 11  # no header row
    assert {r[7] for r in rows} == {"micro-expression", "macro-expression"}
    assert all("/" in r[10] for r in rows)  # s15/15_0101disgustingteeth
    table, _ = read_warned("casme_sq", root)
    assert len(table) == 8 and table.attrs["left_out"] == 2
    assert set(table["subject"]) == {"s15", "s16"}
    assert set(table["emotion"]) <= {"negative", "positive", "surprise", "others"}
    everything, _ = read_warned("casme_sq", root, expression="all")
    macro, _ = read_warned("casme_sq", root, expression="macro")
    assert len(everything) == 10 and len(macro) == 2
    assert set(everything["clip"]) == set(table["clip"]) | set(macro["clip"])
    with pytest.raises(ValueError, match="expression must be one of"):
        read_database("casme_sq", root, expression="mini")
    copy = copy_of(new_databases, "casme_sq", tmp_path)
    edit_cell(copy / book.name, None, 1, 5, 0)  # an offset of 0: not coded
    table, msgs = read_warned("casme_sq", copy)
    assert len(table) == 7
    [zero] = [m for m in msgs if m.endswith("[zero-offset]")]
    assert ", row 1:" in zero and "offset 0" in zero


def test_mmew_clip_folders_are_grouped_by_emotion(new_databases):
    root = new_databases["mmew"]
    rows = sheet_rows(root / "MMEW_Micro_Exp.xlsx")
    assert rows[0] == ("Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame",
                       "Action Units", "Estimated Emotion", "remarks")
    table, _ = read_warned("mmew", root)
    for _, r in table.iterrows():
        folder = Path(r["frames"][0]).parent
        assert (folder.parent.name, folder.name) == (r["emotion"], r["clip"])
        assert folder.parent.parent.name == "Micro_Expression"


def test_4dme_grey_frames_and_a_multi_emotion_cell(new_databases, tmp_path):
    root = new_databases["4dme"]
    rows = sheet_rows(root / "4DME_Labelling_Micro_release v1.xlsx")
    assert rows[0][:7] == ("sub_ID", "fold_name", "Emotion", "Onset", "Apex", "Offset", "AUs")
    table, _ = read_warned("4dme", root)
    assert cv2.imread(table.iloc[0]["frames"][0], cv2.IMREAD_UNCHANGED).ndim == 2
    copy = copy_of(new_databases, "4dme", tmp_path)
    edit_cell(copy / "4DME_Labelling_Micro_release v1.xlsx", None, 2, 3, "Negative+Surprise")
    table, msgs = read_warned("4dme", copy)
    assert len(table) == 8 and table.iloc[0]["emotion"] == "negative+surprise"
    assert [m for m in msgs if m.endswith("[unknown-emotion]") and ", row 2:" in m]
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        cde = apply_labelling(table, "cde")
    assert "S01_ME_01" not in cde["clip"].tolist()
    assert len(cde) == len(table) - 1 - (table["emotion"] == "others").sum()
    assert any("'negative+surprise'" in str(w.message) and "row 2" in str(w.message)
               for w in rec if issubclass(w.category, LabelWarning))


def test_smic_e_sheets_long_clips_and_absolute_numbers(new_databases):
    root = new_databases["smic_e_hs"]
    assert load_workbook(root / "SMIC-HS-E_annotation.xlsx").sheetnames == ["HS", "VIS"]
    assert load_workbook(root / "SMIC-NIR-E_annotation.xlsx").sheetnames == ["NIR"]
    rows = sheet_rows(root / "SMIC-HS-E_annotation.xlsx", "HS")
    h = rows[0]
    first, last, onset, offset = (h.index(c) for c in ("FirstF", "LastF", "OnsetF", "OffsetF"))
    for r in rows[1:]:
        assert r[first] < r[onset] <= r[offset] < r[last]
    table, _ = read_warned("smic_e_hs", root)
    assert table["apex"].isna().all() and (table["onset"] > 1_000_000).all()
    for _, r in table.iterrows():
        names = sorted(p.name for p in Path(r["frames"][0]).parent.iterdir())
        assert len(names) == len(r["frames"]) + 6  # the long clip: 3 frames either side
        assert Path(r["frames"][0]).name == f"image{r['onset']:08d}.jpg"
    vis, _ = read_warned("smic_e_vis", root)
    nir, _ = read_warned("smic_e_nir", root)
    assert vis["clip"].tolist() == nir["clip"].tolist()  # filmed together
    assert vis["onset"].tolist() == nir["onset"].tolist()


def test_smic_e_nir_falls_back_to_the_vis_sheet(new_databases, tmp_path):
    root = copy_of(new_databases, "smic_e_nir", tmp_path)
    (root / "SMIC-NIR-E_annotation.xlsx").unlink()
    table, msgs = read_warned("smic_e_nir", root)
    assert msgs == [] and len(table) == 8
    assert table.attrs["annotation"].endswith("SMIC-HS-E_annotation.xlsx")


def test_smic_e_rules(new_databases, tmp_path):
    root = copy_of(new_databases, "smic_e_hs", tmp_path)
    book = root / "SMIC-HS-E_annotation.xlsx"
    header = sheet_rows(book, "HS")[0]
    rows = sheet_rows(book, "HS")
    edit_cell(book, "HS", 2, header.index("FirstF") + 1, rows[1][header.index("OnsetF")] + 1)
    label = rows[2][header.index("Emotion")]
    other = "positive" if label != "positive" else "negative"
    edit_cell(book, "HS", 3, header.index("Emotion") + 1, other)
    table, msgs = read_warned("smic_e_hs", root)
    assert len(table) == 7
    [outside] = [m for m in msgs if m.endswith("[outside-video]")]
    assert ", row 2:" in outside
    [mismatch] = [m for m in msgs if m.endswith("[label-name-mismatch]")]
    assert ", row 3:" in mismatch and f"kept as {other!r}" in mismatch
    assert table.set_index("row").loc[3, "emotion"] == other


@pytest.mark.parametrize("name", ["casme3_3class", "casme3_4class", "casme3_7class"])
def test_casme3_labellings_against_an_independent_mapping(new_databases, name):
    """The MEGC settings, written out here independently of mefr.data.labels."""
    spelled = {"happy": "happiness", "sad": "sadness", "others": "others"}
    negative = {"disgust", "fear", "anger", "sadness"}
    expect = {
        "casme3_7class": lambda e: e,
        "casme3_4class": lambda e: ("negative" if e in negative else "positive"
                                    if e == "happiness" else e),
        "casme3_3class": lambda e: (None if e == "others" else "negative" if e in negative
                                    else "positive" if e == "happiness" else e),
    }[name]
    table, _ = read_warned("casme3", new_databases["casme3"])
    canonical = [spelled.get(e, e) for e in table["emotion"]]
    wanted = [expect(e) for e in canonical]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LabelWarning)
        out = apply_labelling(table, name)
    assert out["label_name"].tolist() == [w for w in wanted if w is not None]
    classes = labelling_classes(name)
    assert [classes[i] for i in out["label"]] == out["label_name"].tolist()
    truth = read_truth(new_databases["casme3"]).set_index("clip")
    if name == "casme3_3class":  # the generator's own CDE class agrees
        assert out["label_name"].tolist() == truth.loc[out["clip"], "cde_class"].tolist()


def test_unsafe_cells_in_the_new_layouts(new_databases, tmp_path):
    """A video-folder cell (CAS(ME)^2) or an emotion cell naming a folder (MMEW) that
    climbs out of the frame folder is refused (issue 37, item 9)."""
    sq = copy_of(new_databases, "casme_sq", tmp_path)
    edit_cell(sq / "CAS(ME)^2code_final(Updated).xlsx", None, 1, 11, "s15/../../../x")
    _, msgs = read_warned("casme_sq", sq)
    assert [m for m in msgs if m.endswith("[unsafe-path]") and ", row 1:" in m]
    mm = copy_of(new_databases, "mmew", tmp_path)
    edit_cell(mm / "MMEW_Micro_Exp.xlsx", None, 2, 7, "..")
    _, msgs = read_warned("mmew", mm)
    assert [m for m in msgs if m.endswith("[unsafe-path]") and ", row 2:" in m]


def test_new_formats_fail_clearly_when_the_frames_are_elsewhere(new_databases, tmp_path):
    root = copy_of(new_databases, "casme3", tmp_path)
    shutil.move(root / "part_A", root / "elsewhere")
    with pytest.raises(AnnotationError, match=r"casme3: 0 of 8 .*too-few-clips"):
        read_warned("casme3", root)
    table, _ = read_warned("casme3", root, frames_dir="elsewhere/data/part_A")
    assert len(table) == 8
