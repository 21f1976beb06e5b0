"""Synthetic databases (mefr.data.synthetic): written in the real formats, read back.

Uses the session fixture ``synthetic_databases`` (tests/conftest.py): 2 subjects x 4
clips x 10-14 frames for each database of ``SYNTHETIC_DATABASES`` (the seed paper's
five and the formats of tests/test_data_new_databases.py).
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yuface
from openpyxl import load_workbook

from mefr.cli import main
from mefr.data import read_database
from mefr.data.labels import LabelWarning, apply_protocol, normalize_emotion
from mefr.data.synthetic import (
    PATTERNS,
    SYNTHETIC_DATABASES,
    intensity_profile,
    make_face,
    motion_field,
    read_truth,
    render_clip,
    write_synthetic_databases,
)

SUBJECTS, CLIPS = 2, 4


def read_back(paths: dict[str, Path], dataset: str) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean synthetic database raises no reader warning
        return read_database(dataset, paths[dataset])


def truth_of(paths: dict[str, Path], dataset: str) -> pd.DataFrame:
    t = read_truth(paths[dataset])
    return t[t["dataset"] == dataset].reset_index(drop=True)


@pytest.mark.parametrize("dataset", SYNTHETIC_DATABASES)
def test_readers_read_what_was_written(synthetic_databases, dataset):
    table = read_back(synthetic_databases, dataset)
    truth = truth_of(synthetic_databases, dataset)
    assert len(table) == SUBJECTS * CLIPS == len(truth)
    assert table["subject"].nunique() == SUBJECTS
    assert table.attrs["issues"] == []
    merged = table.merge(truth, on=["subject", "clip"], suffixes=("", "_true"), validate="1:1")
    assert len(merged) == len(table)
    assert (merged["onset"] == merged["onset_true"]).all()
    assert (merged["offset"] == merged["offset_true"]).all()
    for _, r in merged.iterrows():
        assert 10 <= r["offset"] - r["onset"] + 1 <= 14
        assert len(r["frames"]) == r["offset"] - r["onset"] + 1
        assert r["frame_numbers"] == tuple(range(r["onset"], r["offset"] + 1))
        assert all(Path(p).is_file() for p in r["frames"])
        assert r["onset"] <= r["apex_true"] <= r["offset"]
    if dataset.startswith("smic"):
        assert table["apex"].isna().all()
    else:
        assert (merged["apex"] == merged["apex_true"]).all()
        assert (merged["onset"] <= merged["apex"]).all() and (
            merged["apex"] <= merged["offset"]
        ).all()


@pytest.mark.parametrize("dataset", SYNTHETIC_DATABASES)
def test_emotions_map_under_cde_to_the_true_class(synthetic_databases, dataset):
    table = read_back(synthetic_databases, dataset)
    truth = truth_of(synthetic_databases, dataset).set_index(["subject", "clip"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LabelWarning)
        out = apply_protocol(table, "cde")
    assert len(out) == (truth["cde_class"] != "").sum()
    keys = list(zip(out["subject"], out["clip"], strict=True))
    assert out["label_name"].tolist() == truth.loc[keys, "cde_class"].tolist()
    assert all(normalize_emotion(e) is not None for e in table["emotion"])


def test_spreadsheets_use_the_real_headers_and_spellings(synthetic_databases):
    ws = load_workbook(synthetic_databases["casme2"] / "CASME2-coding-20140508.xlsx").active
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0][:5] == ("Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame")
    assert isinstance(rows[1][0], int)
    assert all(r[-1] == r[-1].lower() for r in rows[1:])  # CASME II writes emotions lower-case
    ws = load_workbook(synthetic_databases["samm"] / "SAMM_Micro_FACS_Codes_v2.xlsx").active
    rows = list(ws.iter_rows(values_only=True))
    header = next(i for i, r in enumerate(rows) if r and r[0] == "Subject")
    assert header >= 10  # prose rows above the header
    emotions = {r[10] for r in rows[header + 1 :]}
    assert emotions and all(e[0].isupper() for e in emotions)  # SAMM capitalises
    smic = synthetic_databases["smic_hs"] / "SMIC" / "HS"
    clip_dirs = sorted(smic.glob("s*/micro/*/*"))
    assert {d.parent.name for d in clip_dirs} <= {"negative", "positive", "surprise"}
    assert all(f.name.startswith("image") and f.suffix == ".bmp" for f in clip_dirs[0].iterdir())


def test_samm_frames_are_greyscale_and_sizes_match(synthetic_databases):
    samm = read_back(synthetic_databases, "samm")
    img = cv2.imread(samm.iloc[0]["frames"][0], cv2.IMREAD_UNCHANGED)
    assert img.ndim == 2 and img.shape == (120, 160)
    casme = read_back(synthetic_databases, "casme2")
    img = cv2.imread(casme.iloc[0]["frames"][0], cv2.IMREAD_UNCHANGED)
    assert img.shape == (120, 160, 3)


@pytest.mark.parametrize("dataset", ["casme2", "samm", "smic_hs"])
def test_inter_frame_difference_peaks_near_the_true_apex(synthetic_databases, dataset):
    """Motion rises to the apex and falls, above jitter and noise: the frame most unlike
    the onset (an Eq. (1)-style spotter) lies in the peak of the true intensity profile."""
    table = read_back(synthetic_databases, dataset)
    truth = truth_of(synthetic_databases, dataset).set_index(["subject", "clip"])
    close = 0
    for _, r in table.iterrows():
        imgs = [cv2.imread(p, cv2.IMREAD_GRAYSCALE).astype(np.float32) for p in r["frames"]]
        diff = [np.abs(im - imgs[0]).mean() for im in imgs]
        spotted = int(np.argmax(diff))
        apex = int(truth.loc[(r["subject"], r["clip"]), "apex"]) - r["onset"]
        assert intensity_profile(len(imgs), apex)[spotted] > 0.6, (r["clip"], diff)
        close += abs(spotted - apex) <= 1
    assert close >= 0.75 * len(table)


def test_subjects_have_distinct_identities(synthetic_databases):
    table = read_back(synthetic_databases, "casme2")
    first = {s: g.iloc[0]["frames"][0] for s, g in table.groupby("subject")}
    second = {s: g.iloc[1]["frames"][0] for s, g in table.groupby("subject")}
    a, b = (cv2.imread(first[s]).astype(np.float32) for s in sorted(first))
    a2 = cv2.imread(second[sorted(second)[0]]).astype(np.float32)
    between = np.abs(a - b).mean()
    within = np.abs(a - a2).mean()  # same subject, another clip, both neutral onsets
    assert between > 5 * within and within < 3.0


def test_face_is_found_by_libfacedetection(synthetic_databases):
    for dataset in ("casme2", "samm", "smic_nir"):
        table = read_back(synthetic_databases, dataset)
        for _, g in table.groupby("subject"):
            img = cv2.imread(g.iloc[0]["frames"][0], cv2.IMREAD_COLOR)
            confs, boxes, _ = yuface.detect(img)
            assert len(confs) == 1, dataset
            x, y, w, h = (int(v) for v in boxes[0])
            assert w > 0.15 * img.shape[1] and h > 0.2 * img.shape[0]
            assert 0 <= x and x + w <= img.shape[1] and 0 <= y and y + h <= img.shape[0]


def test_motion_is_local_to_the_pattern():
    rng = np.random.default_rng(0)
    face = make_face(rng, (240, 320))
    for pattern, bumps in PATTERNS.items():
        field = motion_field(face, pattern, 3.0, np.random.default_rng(1))
        mag = np.hypot(field[..., 0], field[..., 1])
        assert 1.5 < mag.max() < 6.0, pattern  # a few pixels at apex
        # the largest motion lies near one of the pattern's landmarks
        y, x = np.unravel_index(np.argmax(mag), mag.shape)
        near = min(
            np.hypot(x - face.landmarks[n][0], y - face.landmarks[n][1]) for n, _, _ in bumps
        )
        assert near < 0.12 * face.face_width, pattern
        # and far from the face it is nil
        assert mag[:5, :5].max() < 1e-3


def test_intensity_profile_rises_to_apex_and_falls():
    prof = intensity_profile(20, 7)
    assert prof[0] == pytest.approx(0.0) and prof[-1] == pytest.approx(0.0, abs=1e-12)
    assert prof[7] == pytest.approx(1.0) and int(np.argmax(prof)) == 7
    assert (np.diff(prof[:8]) > 0).all() and (np.diff(prof[7:]) < 0).all()


def test_render_without_nuisance_is_exactly_the_warp():
    face = make_face(np.random.default_rng(2), (60, 80))
    field = np.zeros((60, 80, 2), np.float32)
    frames = render_clip(
        face, field, 4, 2, np.random.default_rng(0), jitter_px=0.0, noise_sigma=0.0
    )
    expect = np.clip(np.rint(face.image), 0, 255).astype(np.uint8)
    assert all(np.array_equal(f, expect) for f in frames)


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix != ".xlsx":  # xlsx embeds a timestamp
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_deterministic_given_the_seed(tmp_path):
    kw = dict(
        databases=("casme2", "smic_hs"),
        subjects=1,
        clips_per_subject=2,
        frames=(4, 5),
        size=(60, 80),
    )
    write_synthetic_databases(tmp_path / "a", seed=7, **kw)
    write_synthetic_databases(tmp_path / "b", seed=7, **kw)
    write_synthetic_databases(tmp_path / "c", seed=8, **kw)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")
    a = pd.read_excel(tmp_path / "a" / "casme2" / "CASME2-coding-20140508.xlsx")
    b = pd.read_excel(tmp_path / "b" / "casme2" / "CASME2-coding-20140508.xlsx")
    pd.testing.assert_frame_equal(a, b)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown synthetic database"):
        write_synthetic_databases(tmp_path, databases=("casme1",))
    with pytest.raises(ValueError, match="frames"):
        write_synthetic_databases(tmp_path, databases=("casme2",), frames=(10, 5))
    with pytest.raises(ValueError, match="no synthetic motion pattern"):
        write_synthetic_databases(tmp_path, databases=("casme2",), emotions={"casme2": ["boredom"]})


def test_synth_command(tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(
        [
            "synth",
            str(out),
            "--databases",
            "samm",
            "--subjects",
            "1",
            "--clips",
            "2",
            "--frames",
            "4",
            "5",
            "--size",
            "60",
            "80",
            "--seed",
            "1",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "samm" in printed and "2 clips, 1 subjects" in printed
    assert (out / "samm" / "synthetic_truth.csv").is_file()
    with pytest.raises(SystemExit):
        main(["synth", str(out), "--databases", "casme1"])


def test_rewriting_replaces_an_earlier_run_and_keeps_other_cameras(tmp_path):
    kw = dict(subjects=1, frames=(4, 5), size=(60, 80))
    write_synthetic_databases(
        tmp_path, databases=("smic_hs", "smic_vis"), clips_per_subject=3, **kw
    )
    paths = write_synthetic_databases(tmp_path, databases=("smic_hs",), clips_per_subject=2, **kw)
    assert len(read_database("smic_hs", paths["smic_hs"])) == 2  # no clip of the first run left
    truth = read_truth(paths["smic_hs"])
    assert truth.groupby("dataset").size().to_dict() == {"smic_hs": 2, "smic_vis": 3}
    (tmp_path / "samm" / "SAMM").mkdir(parents=True)  # someone's real data, not ours
    with pytest.raises(FileExistsError, match="refusing"):
        write_synthetic_databases(tmp_path, databases=("samm",), **kw)
