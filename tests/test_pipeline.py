"""A sample table -> FeatureSet (mefr.preprocess.pipeline): failures, apex policies, parallel."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

from mefr.data.flowset import FlowSet
from mefr.data.table import make_table
from mefr.preprocess.apex import ApexFallbackWarning, diff_apex
from mefr.preprocess.clip import clip_features, frames_features
from mefr.preprocess.face import as_grey, crop, face_box
from mefr.preprocess.pipeline import FeatureSet, build_features
from mefr.preprocess.settings import PreprocessSettings

SIDE = 96


def face_bgr() -> np.ndarray:
    img = np.ascontiguousarray(skimage.data.astronaut()[10:240, 120:340, ::-1])
    return cv2.resize(img, (SIDE, SIDE), interpolation=cv2.INTER_AREA)


def moving_frames(n: int, apex: int, seed: int = 0) -> list[np.ndarray]:
    """BGR frames of the face whose motion peaks at frame ``apex`` (index from the onset)."""
    face = face_bgr()
    yy, xx = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32)
    rng = np.random.default_rng(seed)
    out = []
    for t in range(n):
        a = np.float32(1.5 * np.exp(-((t - apex) ** 2) / 2.0) if t else 0.0)
        img = cv2.remap(face, xx - a * np.sin(xx / 15), yy - a * np.cos(yy / 20),
                        cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        out.append(np.clip(img + rng.normal(0, 1.0, img.shape), 0, 255).astype(np.uint8))
    return out


def write_clip(folder: Path, frames: list[np.ndarray], first: int = 100) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for t, img in enumerate(frames):
        p = folder / f"img{first + t}.png"
        cv2.imwrite(str(p), img)
        paths.append(str(p))
    return paths


def row(clip: str, frames: list[str], onset=100, apex=None, offset=None, **kw) -> dict:
    offset = offset if offset is not None else 100 + len(frames) - 1
    return dict(dataset="casme2", subject=kw.pop("subject", "sub01"), clip=clip,
                emotion="happiness", onset=onset, apex=apex, offset=offset, frames=frames,
                frame_numbers=range(100, 100 + len(frames)), source="coding.xlsx",
                row=kw.pop("row", 2), **kw)


@pytest.fixture
def mixed_table(tmp_path):
    """Three good clips and four bad ones (no face, missing file, undecodable, too short)."""
    rows = []
    for i, apex in enumerate((2, 3, 5)):
        paths = write_clip(tmp_path / f"good{i}", moving_frames(8, apex, seed=i))
        rows.append(row(f"good{i}", paths, apex=100 + apex, row=2 + i))
    noise = np.random.default_rng(0).integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
    rows.append(row("noface", write_clip(tmp_path / "noface", [noise] * 4), apex=102, row=10))
    missing = write_clip(tmp_path / "missing", moving_frames(6, 3))
    Path(missing[3]).unlink()
    rows.append(row("missing", missing, apex=103, row=11))
    broken = write_clip(tmp_path / "broken", moving_frames(6, 3))
    Path(broken[2]).write_bytes(b"\x89PNG garbage")
    rows.append(row("broken", broken, apex=102, row=12))
    short = write_clip(tmp_path / "short", moving_frames(4, 2))
    rows.append(row("short", short, onset=103, apex=103, offset=103, row=13))
    return make_table(rows)


def test_failed_clips_are_reported_and_the_others_kept(mixed_table, tmp_path):
    with pytest.warns(UserWarning, match="4 of 7 clips left out"):
        fs = build_features(mixed_table, PreprocessSettings(), tmp_path / "cache", workers=2,
                            progress=False)
    assert list(fs.table["clip"]) == ["good0", "good1", "good2"]
    assert fs.x.shape == (3, 2, 28, 28) and fs.x.dtype == np.float32
    assert list(fs.table["apex_used"]) == [102, 103, 105]
    reasons = {f.sample.split("/")[-1]: f for f in fs.failures}
    assert set(reasons) == {"noface", "missing", "broken", "short"}
    assert "no face" in reasons["noface"].reason and reasons["noface"].file.endswith("img100.png")
    assert "not found" in reasons["missing"].reason
    assert reasons["missing"].file.endswith("img103.png")
    assert "cannot decode" in reasons["broken"].reason
    assert reasons["broken"].file.endswith("img102.png")
    assert "too short" in reasons["short"].reason
    assert reasons["short"].where == "coding.xlsx, row 13"
    # row i of the table is x[i]: recompute each kept clip alone, in this process
    for i, r in fs.table.iterrows():
        alone = clip_features(r["frames"][0], r["frames"][r["apex_used"] - 100])
        assert np.allclose(fs.x[i], alone.x, atol=1e-5)
        assert r["face_box"] == alone.box.as_tuple()


def test_missing_apex_falls_back_to_eq1_with_a_note(tmp_path):
    frames = moving_frames(9, 4)
    paths = write_clip(tmp_path / "c", frames)
    table = make_table([row("c", paths, apex=None)])
    with pytest.warns(ApexFallbackWarning, match="1 clips had no usable annotated apex"):
        fs = build_features(table, PreprocessSettings(), None, workers=1, progress=False)
    box = face_box(frames[0])
    expected = diff_apex([crop(as_grey(f), box) for f in frames])
    assert expected == 4
    assert fs.table.loc[0, "apex_used"] == 100 + expected
    assert "Eq. (1)" in fs.table.loc[0, "preprocess_notes"]
    assert fs.table.loc[0, "preprocess_notes"].startswith("casme2/sub01/c")


def test_middle_and_diff_policies_ignore_the_annotation(tmp_path):
    paths = write_clip(tmp_path / "c", moving_frames(9, 6))
    table = make_table([row("c", paths, apex=102, offset=107)])  # frame 108 is after the offset
    mid = build_features(table, PreprocessSettings(apex_policy="middle"), None, workers=1,
                         progress=False)
    assert mid.table.loc[0, "apex_used"] == 100 + 8 // 2
    diff = build_features(table, PreprocessSettings(apex_policy="diff"), None, workers=1,
                          progress=False)
    assert diff.table.loc[0, "apex_used"] == 106


def test_featureset_shape_labels_and_channels(tmp_path):
    rows = []
    for i in range(2):
        paths = write_clip(tmp_path / f"c{i}", moving_frames(5, 2, seed=i))
        rows.append(row(f"c{i}", paths, apex=102, subject=f"sub0{i}"))
    table = make_table(rows)
    table["label"] = [0, 2]
    table["label_name"] = ["negative", "surprise"]
    fs = build_features(table, PreprocessSettings(strain=True, size=16), None, workers=1,
                        progress=False, class_names=("negative", "positive", "surprise"))
    assert isinstance(fs, FeatureSet) and isinstance(fs, FlowSet)
    assert fs.x.shape == (2, 3, 16, 16) and fs.channels == ("u", "v", "strain")
    assert fs.class_names == ("negative", "positive", "surprise")
    assert np.array_equal(fs.select_channels(("u", "v")), fs.x[:, :2])
    assert list(fs.table["label"]) == [0, 2]
    inferred = build_features(table, PreprocessSettings(), None, workers=1, progress=False)
    assert inferred.class_names == ("negative", "1", "surprise")
    no_labels = build_features(make_table(rows), PreprocessSettings(), None, workers=1,
                               progress=False)
    assert no_labels.class_names == ()
    empty = build_features(make_table([]), PreprocessSettings(), None, workers=1, progress=False)
    assert empty.x.shape == (0, 2, 28, 28) and len(empty.table) == 0


def test_frames_features_spots_and_reports_the_apex(tmp_path):
    frames = moving_frames(10, 6)
    got = frames_features(frames)
    assert got.apex_index == 6 and got.x.shape == (2, 28, 28)
    mid = frames_features(frames, PreprocessSettings(apex_policy="middle"))
    assert mid.apex_index == 5
    given = frames_features(write_clip(tmp_path / "c", frames), apex=3)
    assert given.apex_index == 3
    assert np.allclose(given.x, clip_features(frames[0], frames[3]).x, atol=1e-5)


def test_face_none_uses_whole_frames():
    noise = np.random.default_rng(0).integers(0, 256, (40, 50), dtype=np.uint8)
    shifted = np.roll(noise, 1, axis=1)
    f = clip_features(noise, shifted, PreprocessSettings(face="none", normalisation="none"))
    assert f.box.as_tuple() == (0, 0, 50, 40)
    # the whole frame moved 1 px right: u ~ 1 px, v ~ 0 (flow values are not rescaled)
    assert f.x.shape == (2, 28, 28)
    assert abs(float(np.median(f.x[0])) - 1.0) < 0.05
    assert abs(float(np.median(f.x[1]))) < 0.05


def test_settings_validation():
    with pytest.raises(ValueError, match="apex policy"):
        PreprocessSettings(apex_policy="peak")
    with pytest.raises(ValueError, match="normalisation"):
        PreprocessSettings(normalisation="zscore")
    with pytest.raises(ValueError, match="face mode"):
        PreprocessSettings(face="mtcnn")
    with pytest.raises(ValueError, match="unknown preprocessing settings"):
        PreprocessSettings.from_dict({"sizee": 28})
    with pytest.raises(ValueError, match="size must be >= 1, got 0"):
        PreprocessSettings(size=0)
    with pytest.raises(ValueError, match=r"face_size must be >= 8 \(or None\), got 4"):
        PreprocessSettings(face_size=4)
    s = PreprocessSettings.from_dict({"size": 32, "strain": True})
    assert s.size == 32 and s.channels == ("u", "v", "strain")
    assert PreprocessSettings.from_dict(s.to_dict()) == s


def test_prepare_cli_on_a_synthetic_smic(tmp_path, capsys):
    """`mefr prepare` on a synthetic SMIC-HS (no apex annotation): features cached, the
    apex spotted by Eq. (1) near the generator's true apex, a rerun all from the cache."""
    from mefr.cli import main
    from mefr.data import read_database, write_synthetic_databases
    from mefr.data.synthetic import read_truth

    roots = write_synthetic_databases(tmp_path / "db", databases=("smic_hs",), subjects=2,
                                      clips_per_subject=3, frames=(10, 16), size=(120, 160))
    root, cache = str(roots["smic_hs"]), str(tmp_path / "cache")
    args = ["prepare", root, "--database", "smic_hs", "--cache", cache, "--workers", "1",
            "--no-progress"]
    with pytest.warns(ApexFallbackWarning):
        assert main(args) == 0
    assert "0 from the cache, 6 computed, 0 failed" in capsys.readouterr().out
    with pytest.warns(ApexFallbackWarning):
        fs = build_features(read_database("smic_hs", root), PreprocessSettings(), cache,
                            workers=1, progress=False)
    assert (fs.cached, fs.computed, len(fs.failures)) == (6, 0, 0)
    truth = read_truth(root)
    merged = fs.table.merge(truth, on=["subject", "clip"], suffixes=("", "_true"))
    assert len(merged) == 6
    assert ((merged["apex_used"] - merged["apex_true"]).abs() <= 2).mean() >= 0.9
