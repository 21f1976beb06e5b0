"""Truncated frame files (issue 37 item 2): detected before decoding, their clip failed.

OpenCV (libjpeg) decodes the part of a truncated JPEG that is there and greys the rest
without an error; the check in :func:`mefr.preprocess.face.truncation` walks the file's
structure instead. Pillow, an independent decoder that reports truncation, is the
reference for where a file stops being complete.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

from mefr.data.table import make_table
from mefr.preprocess.face import FrameReadError, read_image, truncation
from mefr.preprocess.pipeline import build_features
from mefr.preprocess.settings import PreprocessSettings

SIDE = 96


def _face() -> np.ndarray:
    img = np.ascontiguousarray(skimage.data.astronaut()[10:240, 120:340, ::-1])
    return cv2.resize(img, (SIDE, SIDE), interpolation=cv2.INTER_AREA)


def _encode(ext: str, params: list[int] | None = None) -> bytes:
    ok, buf = cv2.imencode(ext, _face(), params or [])
    assert ok
    return buf.tobytes()


def _with_thumbnail(jpeg: bytes) -> bytes:
    """``jpeg`` with an APP1 (EXIF) segment holding a whole small JPEG, whose end-of-image
    marker FF D9 then sits near the start of the file."""
    thumb = cv2.imencode(".jpg", cv2.resize(_face(), (16, 16)))[1].tobytes()
    payload = b"Exif\x00\x00" + thumb
    segment = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    return jpeg[:2] + segment + jpeg[2:]


def _pillow_complete(data: bytes) -> bool:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
    except Exception:  # noqa: BLE001 - any failure: Pillow does not see a whole image
        return False
    return True


def _cuts(data: bytes) -> list[int]:
    """About 400 cut points through the file, and each of its last 8 bytes."""
    return [*range(8, len(data), max(1, len(data) // 400)), *range(len(data) - 8, len(data))]


@pytest.mark.parametrize("kind", ["jpeg", "progressive", "restarts", "thumbnail"])
def test_jpeg_truncation_agrees_with_pillow_at_every_cut(kind: str) -> None:
    pytest.importorskip("PIL")
    data = {
        "jpeg": lambda: _encode(".jpg"),
        "progressive": lambda: _encode(".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
        "restarts": lambda: _encode(".jpg", [cv2.IMWRITE_JPEG_RST_INTERVAL, 2]),
        "thumbnail": lambda: _with_thumbnail(_encode(".jpg")),
    }[kind]()
    assert truncation(data) is None and _pillow_complete(data)
    cuts = _cuts(data)
    assert [c for c in cuts if (truncation(data[:c]) is None) != _pillow_complete(data[:c])] == []
    assert all(truncation(data[:c]) is not None for c in cuts)


@pytest.mark.parametrize("ext", [".png", ".bmp"])
def test_png_and_bmp_truncation_flags_only_files_opencv_refuses(ext: str) -> None:
    # OpenCV already refuses these (the check only makes the message say "truncated"):
    # every cut is flagged, and no cut that OpenCV could decode is.
    data = _encode(ext)
    assert truncation(data) is None
    for c in _cuts(data):
        assert truncation(data[:c]) is not None, c
        assert cv2.imdecode(np.frombuffer(data[:c], np.uint8), cv2.IMREAD_COLOR) is None, c


def test_truncated_jpeg_is_refused_with_its_path(tmp_path) -> None:
    whole = tmp_path / "img1.jpg"
    whole.write_bytes(_encode(".jpg"))
    cut = tmp_path / "img2.jpg"
    cut.write_bytes(whole.read_bytes()[: len(whole.read_bytes()) * 6 // 10])
    assert cv2.imread(str(cut)) is not None  # what OpenCV alone does: a half-grey image
    assert read_image(whole).shape == (SIDE, SIDE, 3)
    with pytest.raises(FrameReadError, match=r"cannot decode the frame .*img2\.jpg: truncated"):
        read_image(cut)
    padded = tmp_path / "img3.jpg"  # bytes after the end-of-image marker are ignored
    padded.write_bytes(whole.read_bytes() + b"\x00" * 16 + b"trailer")
    assert np.array_equal(read_image(padded), read_image(whole))
    thumb = tmp_path / "img4.jpg"
    thumb.write_bytes(_with_thumbnail(whole.read_bytes())[:-200])
    with pytest.raises(FrameReadError, match="truncated"):
        read_image(thumb)


@pytest.mark.parametrize("ext", [".png", ".bmp"])
def test_truncated_png_and_bmp_say_truncated(tmp_path, ext: str) -> None:
    p = tmp_path / f"img1{ext}"
    data = _encode(ext)
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(FrameReadError, match=rf"cannot decode the frame .*img1\{ext}: truncated"):
        read_image(p)


def _clip(folder: Path, n: int = 5) -> list[str]:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        p = folder / f"img{100 + i}.jpg"
        frame = np.clip(_face() + rng.normal(0, 1.0, (SIDE, SIDE, 3)), 0, 255).astype(np.uint8)
        cv2.imwrite(str(p), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
        paths.append(str(p))
    return paths


def _cut(path: str, fraction: float = 0.6) -> None:
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: int(len(data) * fraction)])


def test_a_truncated_frame_fails_its_clip_and_keeps_the_others(tmp_path) -> None:
    rows = []
    for i, clip in enumerate(("onset_cut", "apex_cut", "intact")):
        paths = _clip(tmp_path / clip)
        if clip == "onset_cut":
            _cut(paths[0])
        if clip == "apex_cut":
            _cut(paths[2])
        rows.append(dict(dataset="casme2", subject="sub01", clip=clip, emotion="happiness",
                         onset=100, apex=102, offset=104, frames=paths,
                         frame_numbers=range(100, 105), source="coding.xlsx", row=2 + i))
    with pytest.warns(UserWarning, match="2 of 3 clips left out"):
        fs = build_features(make_table(rows), PreprocessSettings(face="none"), workers=1,
                            progress=False)
    assert list(fs.table["clip"]) == ["intact"]
    failed = {f.sample.split("/")[-1]: f for f in fs.failures}
    for clip, frame in (("onset_cut", "img100.jpg"), ("apex_cut", "img102.jpg")):
        f = failed[clip]
        assert f.reason.startswith(f"cannot decode the frame {tmp_path / clip / frame}: truncated")
        assert f.file.endswith(frame)
        assert "no face" not in f.reason
