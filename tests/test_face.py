"""Face detection (libfacedetection via yuface) and cropping: mefr.preprocess.face."""

from __future__ import annotations

import json
import warnings

import cv2
import numpy as np
import pytest
import skimage.data

from mefr.preprocess.clip import clip_features
from mefr.preprocess.face import (
    Box,
    FaceNotFoundError,
    FrameReadError,
    PreprocessError,
    as_bgr,
    crop,
    detect_faces,
    expand_box,
    face_box,
    read_image,
)
from mefr.preprocess.settings import PreprocessSettings

# The astronaut's face in skimage.data.astronaut() (512x512), read off the image by eye:
# the eyes, nose and mouth lie within x 185..265, y 80..170.
FACE_REGION = (185, 80, 265, 170)


def astronaut_bgr() -> np.ndarray:
    return np.ascontiguousarray(skimage.data.astronaut()[:, :, ::-1])


def small_face(side: int = 128) -> np.ndarray:
    """A side x side BGR image with the astronaut's face filling about half of it."""
    img = astronaut_bgr()[10:240, 120:340]
    return cv2.resize(np.ascontiguousarray(img), (side, side), interpolation=cv2.INTER_AREA)


def noise_image(side: int = 128, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)


def test_astronaut_gives_one_face_on_the_face():
    faces = detect_faces(astronaut_bgr())
    assert len(faces) == 1
    b = faces[0]
    cx, cy = b.x + b.w / 2, b.y + b.h / 2
    x0, y0, x1, y1 = FACE_REGION
    assert x0 <= cx <= x1 and y0 <= cy <= y1
    assert 0.5 <= b.score <= 1.0
    assert 60 <= b.w <= 160 and 60 <= b.h <= 160


def test_large_image_is_shrunk_for_detection_and_box_mapped_back():
    img = astronaut_bgr()
    big = cv2.resize(img, (1280, 1280), interpolation=cv2.INTER_LINEAR)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # yuface warns about images above 960 pixels
        (b_big,) = detect_faces(big)
    (b,) = detect_faces(img)
    k = 1280 / 512
    for got, ref in zip(b_big.as_tuple(), b.as_tuple(), strict=True):
        assert abs(got - ref * k) <= 0.1 * b.w * k


def test_grey_and_path_inputs(tmp_path):
    grey = cv2.cvtColor(small_face(), cv2.COLOR_BGR2GRAY)
    assert len(detect_faces(grey)) == 1
    p = tmp_path / "f.bmp"
    cv2.imwrite(str(p), grey)
    assert len(detect_faces(p)) == 1
    assert read_image(p).shape == (128, 128, 3)
    assert read_image(p, grey=True).shape == (128, 128)


def test_no_face_raises_naming_the_source():
    assert detect_faces(noise_image()) == []
    with pytest.raises(FaceNotFoundError, match="clipX/img1.jpg"):
        face_box(noise_image(), source="clipX/img1.jpg")


def test_bad_files_and_arrays(tmp_path):
    with pytest.raises(FrameReadError, match="not found"):
        read_image(tmp_path / "missing.jpg")
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image at all")
    with pytest.raises(FrameReadError, match="junk.jpg"):
        read_image(junk)
    with pytest.raises(PreprocessError, match="uint8"):
        as_bgr(np.zeros((8, 8), np.float32))
    with pytest.raises(PreprocessError, match="shape"):
        as_bgr(np.zeros((8, 8, 2), np.uint8))


def test_expand_box_margin_square_and_clipping():
    shape = (200, 300)
    b = Box(100, 50, 40, 60)
    m = expand_box(b, shape, margin=0.25)
    # 40 * 1.5 = 60 wide, 60 * 1.5 = 90 high, same centre (120, 80)
    assert m.as_tuple() == (90, 35, 60, 90)
    s = expand_box(b, shape, square=True)
    assert (s.w, s.h) == (60, 60) and (s.x + s.w / 2, s.y + s.h / 2) == (120, 80)
    # near the corner: shifted back inside, size kept
    c = expand_box(Box(0, 0, 40, 40), shape, margin=0.5)
    assert c.as_tuple() == (0, 0, 80, 80)
    # larger than the image: clipped to it
    big = expand_box(Box(100, 50, 150, 150), shape, margin=0.5)
    assert (big.y, big.h) == (0, 200) and big.x >= 0 and big.x + big.w <= 300
    with pytest.raises(ValueError):
        expand_box(b, shape, margin=-0.5)


def test_crop_is_the_box():
    img = np.arange(20 * 30, dtype=np.uint8).reshape(20, 30)
    out = crop(img, Box(5, 3, 10, 7))
    assert out.shape == (7, 10)
    assert np.array_equal(out, img[3:10, 5:15])


def test_onset_and_apex_share_the_onset_box():
    """The apex is cropped with the onset's box: a global shift of the apex by +3 px to the
    right shows up as u ~ +3 (a re-detected box would follow the face and hide it)."""
    onset = small_face(160)
    shift = np.float32([[1, 0, 3], [0, 1, 0]])
    apex = cv2.warpAffine(onset, shift, (160, 160), borderMode=cv2.BORDER_REFLECT)
    s = PreprocessSettings(size=28, normalisation="none")
    feats = clip_features(onset, apex, s)
    assert feats.box == face_box(onset)
    u, v = feats.x[0], feats.x[1]
    assert abs(float(np.median(u)) - 3.0) < 0.5
    assert abs(float(np.median(v))) < 0.5
    # a face only on the apex is no use: detection runs on the onset
    with pytest.raises(FaceNotFoundError):
        clip_features(noise_image(160), onset, s)


def test_cli_detect_json(tmp_path, capsys):
    from mefr.cli import main

    face, noise = tmp_path / "face.jpg", tmp_path / "noise.png"
    cv2.imwrite(str(face), small_face())
    cv2.imwrite(str(noise), noise_image())
    assert main(["detect", str(face), str(noise), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [len(r["faces"]) for r in out] == [1, 0]
    assert set(out[0]["faces"][0]) == {"x", "y", "w", "h", "score"}
