"""The on-disk feature cache (mefr.preprocess.store) and its use by build_features."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

import mefr.preprocess.pipeline as pipeline
import mefr.preprocess.store as store_mod
from mefr.data.table import make_table
from mefr.preprocess.pipeline import build_features
from mefr.preprocess.settings import PreprocessSettings
from mefr.preprocess.store import FeatureStore, cache_key, file_fingerprint


def write_face_clip(folder: Path, n: int = 6, apex: int = 3, seed: int = 0) -> list[str]:
    """Frames img100.jpg... of the astronaut's face moving most at frame ``apex``."""
    face = cv2.resize(
        np.ascontiguousarray(skimage.data.astronaut()[10:240, 120:340, ::-1]),
        (96, 96),
        interpolation=cv2.INTER_AREA,
    )
    yy, xx = np.mgrid[0:96, 0:96].astype(np.float32)
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for t in range(n):
        a = np.float32(1.5 * np.exp(-((t - apex) ** 2) / 2.0) if t else 0.0)
        img = cv2.remap(face, xx - a * np.sin(xx / 15), yy - a, cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REFLECT)
        img = np.clip(img + rng.normal(0, 1.0, img.shape), 0, 255).astype(np.uint8)
        p = folder / f"img{100 + t}.jpg"
        cv2.imwrite(str(p), img)
        paths.append(str(p))
    return paths


def face_table(root: Path, n_clips: int = 3):
    rows = []
    for i in range(n_clips):
        frames = write_face_clip(root / f"c{i}", apex=2 + i % 3, seed=i)
        rows.append(dict(dataset="casme2", subject="sub01", clip=f"c{i}", emotion="happiness",
                         onset=100, apex=102 + i % 3, offset=105, frames=frames,
                         frame_numbers=range(100, 106)))
    return make_table(rows)


def test_key_depends_on_files_settings_and_versions(tmp_path, monkeypatch):
    f = tmp_path / "a.jpg"
    f.write_bytes(b"12345")
    k = cache_key([f], {"size": 28})
    assert k == cache_key([str(f)], {"size": 28})
    assert k != cache_key([f], {"size": 32})
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    k2 = cache_key([f], {"size": 28})
    assert k2 != k
    f.write_bytes(b"123456")
    assert cache_key([f], {"size": 28}) != k2
    k3 = cache_key([f], {"size": 28})
    monkeypatch.setattr(store_mod, "environment_versions", lambda: {"opencv": "9.9"})
    assert cache_key([f], {"size": 28}) != k3
    assert file_fingerprint([tmp_path / "gone.jpg"])[0][1:] == [-1, -1]


def test_save_and_load_round_trip(tmp_path):
    s = FeatureStore(tmp_path)
    x = np.random.default_rng(0).random((2, 4, 4)).astype(np.float32)
    assert s.load("ab" * 32) is None
    s.save("ab" * 32, x, {"apex_index": 3})
    got, meta = s.load("ab" * 32)
    assert np.array_equal(got, x) and got.dtype == np.float32
    assert meta["apex_index"] == 3 and meta["shape"] == [2, 4, 4]
    assert s.keys() == ["ab" * 32] and ("ab" * 32) in s


def test_interrupted_array_write_leaves_no_entry(tmp_path, monkeypatch):
    s = FeatureStore(tmp_path)

    def half_save(f, arr, allow_pickle=False):
        f.write(b"\x93NUMPY partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(store_mod.np, "save", half_save)
    with pytest.raises(KeyboardInterrupt):
        s.save("cd" * 32, np.zeros((2, 3, 3), np.float32), {})
    assert s.load("cd" * 32) is None
    assert s.keys() == []
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []  # no temp file left


def test_interrupted_metadata_write_leaves_no_entry(tmp_path, monkeypatch):
    s = FeatureStore(tmp_path)
    real_replace, calls = os.replace, []

    def replace_then_die(src, dst):
        calls.append(dst)
        if str(dst).endswith(".json"):
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(store_mod.os, "replace", replace_then_die)
    with pytest.raises(OSError):
        s.save("ef" * 32, np.zeros((2, 3, 3), np.float32), {})
    assert s.load("ef" * 32) is None  # the array alone is not an entry
    assert not list(tmp_path.rglob("*.tmp"))


def test_truncated_array_is_a_miss(tmp_path):
    s = FeatureStore(tmp_path)
    s.save("aa" * 32, np.zeros((2, 3, 3), np.float32), {})
    npy, _ = s.paths("aa" * 32)
    npy.write_bytes(npy.read_bytes()[:-10])
    assert s.load("aa" * 32) is None


@pytest.mark.parametrize("text", ["null", "[1, 2]", '"key"'])
def test_metadata_that_is_not_an_object_is_a_miss(tmp_path, text):
    s = FeatureStore(tmp_path)
    s.save("ba" * 32, np.zeros((2, 3, 3), np.float32), {})
    _, meta = s.paths("ba" * 32)
    meta.write_text(text)
    assert s.load("ba" * 32) is None and ("ba" * 32) not in s
    s.save("ba" * 32, np.ones((2, 3, 3), np.float32), {})  # recomputed, stored again
    assert s.load("ba" * 32)[0].sum() == 18


def test_entries_get_the_permissions_of_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        FeatureStore(tmp_path).save("ca" * 32, np.zeros((1, 2, 2), np.float32), {})
    finally:
        os.umask(old)
    modes = {p.suffix: p.stat().st_mode & 0o777 for p in tmp_path.rglob("*") if p.is_file()}
    assert modes == {".npy": 0o644, ".json": 0o644}


def test_a_write_error_names_the_file(tmp_path, monkeypatch):
    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    s = FeatureStore(tmp_path)
    with pytest.raises(OSError) as e:
        s.save("da" * 32, np.zeros((1, 2, 2), np.float32), {})
    npy, _ = s.paths("da" * 32)
    assert str(e.value) == f"{npy}: cannot write (No space left on device)"
    assert e.value.errno == errno.ENOSPC


def count_clips(monkeypatch) -> list[str]:
    """Count the clips build_features computes (in-process, workers=1)."""
    seen: list[str] = []
    real = pipeline._clip_of_task

    def counting(task):
        seen.append(task.sample)
        return real(task)

    monkeypatch.setattr(pipeline, "_clip_of_task", counting)
    return seen


def test_second_build_hits_the_cache_and_a_changed_setting_misses(tmp_path, monkeypatch):
    table = face_table(tmp_path / "db")
    cache = tmp_path / "cache"
    seen = count_clips(monkeypatch)
    s = PreprocessSettings()
    first = build_features(table, s, cache, workers=1, progress=False)
    assert len(seen) == 3 and (first.cached, first.computed) == (0, 3)
    seen.clear()
    again = build_features(table, s, cache, workers=1, progress=False)
    assert seen == [] and (again.cached, again.computed) == (3, 0)
    assert np.array_equal(again.x, first.x)
    assert list(again.table["apex_used"]) == list(first.table["apex_used"])
    assert list(again.table["face_box"]) == list(first.table["face_box"])
    build_features(table, PreprocessSettings(margin=0.1), cache, workers=1, progress=False)
    assert len(seen) == 3
    # touching one frame file recomputes that clip only
    seen.clear()
    f = Path(table.loc[1, "frames"][0])
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    build_features(table, s, cache, workers=1, progress=False)
    assert seen == ["casme2/sub01/c1"]


def test_interrupted_build_keeps_what_was_computed(tmp_path, monkeypatch):
    table = face_table(tmp_path / "db")
    cache = tmp_path / "cache"
    real = pipeline._clip_of_task

    def dies_on_third(task):
        if task.sample.endswith("c2"):
            raise KeyboardInterrupt
        return real(task)

    monkeypatch.setattr(pipeline, "_clip_of_task", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        build_features(table, PreprocessSettings(), cache, workers=1, progress=False)
    monkeypatch.setattr(pipeline, "_clip_of_task", real)
    seen = count_clips(monkeypatch)
    fs = build_features(table, PreprocessSettings(), cache, workers=1, progress=False)
    assert seen == ["casme2/sub01/c2"] and (fs.cached, fs.computed) == (2, 1)
