"""TV-L1 flow, optical strain, resize and normalisation (mefr.preprocess.flow)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

from mefr.preprocess.flow import (
    compute_flow,
    minmax,
    normalise,
    optical_strain,
    resize_channels,
)

COMPOSITE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "megc2019-cde-flow"


def face_grey(side: int = 128) -> np.ndarray:
    """The astronaut's face as a side x side grey image (a textured, face-like target)."""
    img = np.ascontiguousarray(skimage.data.astronaut()[10:240, 120:340])
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (side, side), interpolation=cv2.INTER_AREA)


def known_field(side: int) -> tuple[np.ndarray, np.ndarray]:
    """A smooth displacement field (pixels) with independent u and v patterns."""
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    u = 1.5 * np.sin(2 * np.pi * xx / side) * np.cos(np.pi * yy / side)
    v = 1.2 * np.exp(-((xx - side / 2) ** 2 + (yy - side / 3) ** 2) / (2 * (side / 5) ** 2))
    return u.astype(np.float32), v.astype(np.float32)


def warp(img: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The image whose pixel x shows ``img`` at x - (u, v): each onset point moves by (u, v)."""
    yy, xx = np.mgrid[0 : img.shape[0], 0 : img.shape[1]].astype(np.float32)
    return cv2.remap(img, xx - u, yy - v, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_tvl1_recovers_a_known_field_before_and_after_resize():
    onset = face_grey(128)
    u, v = known_field(128)
    apex = warp(onset, u, v)
    raw = compute_flow(onset, apex, size=None, normalisation="none")
    assert raw.shape == (2, 128, 128) and raw.dtype == np.float32
    assert corr(raw[0], u) >= 0.8 and corr(raw[1], v) >= 0.8
    small = compute_flow(onset, apex, size=28, normalisation="none")
    ref = resize_channels(np.stack([u, v]), 28)
    assert small.shape == (2, 28, 28)
    assert corr(small[0], ref[0]) >= 0.8 and corr(small[1], ref[1]) >= 0.8
    # same sign and scale as the truth (pixels of the crop), not just correlated
    assert np.median(np.abs(small - ref)) < 0.3


def test_uniform_translation_sign_convention():
    onset = face_grey(96)
    apex = warp(onset, np.full((96, 96), 2.0, np.float32), np.full((96, 96), -1.0, np.float32))
    x = compute_flow(onset, apex, size=None, normalisation="none")
    assert abs(np.median(x[0]) - 2.0) < 0.3 and abs(np.median(x[1]) + 1.0) < 0.3


def test_strain_of_known_fields():
    side = 32
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float64)
    # stretch u = a x, v = b y: e_xx = a, e_yy = b, e_xy = 0
    s = optical_strain(0.1 * xx, -0.05 * yy)
    assert np.allclose(s, np.hypot(0.1, 0.05), atol=1e-6)
    # shear u = c y: e_xy = c / 2, strain = sqrt(2 (c/2)^2) = |c| / sqrt(2)
    s = optical_strain(0.2 * yy, np.zeros_like(yy))
    assert np.allclose(s, 0.2 / np.sqrt(2), atol=1e-6)
    # a rotation has no strain: u = -w y, v = w x
    assert np.allclose(optical_strain(-0.1 * yy, 0.1 * xx), 0.0, atol=1e-6)


def test_strain_channel_and_minmax():
    onset = face_grey(96)
    u, v = known_field(96)
    apex = warp(onset, u, v)
    raw = compute_flow(onset, apex, size=28, strain=True, normalisation="none")
    x = compute_flow(onset, apex, size=28, strain=True)
    assert x.shape == (3, 28, 28) and x.dtype == np.float32
    assert (raw[2] >= 0).all()
    for c in range(3):
        lo, hi = raw[c].min(), raw[c].max()
        assert np.allclose(x[c], (raw[c] - lo) / (hi - lo), atol=1e-5)
        assert x[c].min() == pytest.approx(0.0) and x[c].max() == pytest.approx(1.0)


def test_minmax_constant_channel_is_zero():
    x = np.stack([np.full((4, 4), 3.0), np.arange(16.0).reshape(4, 4)]).astype(np.float32)
    out = minmax(x)
    assert (out[0] == 0).all()
    assert np.allclose(out[1], np.arange(16.0).reshape(4, 4) / 15.0)


def test_global_scale_uses_output_pixels():
    x = np.ones((2, 28, 28), np.float32)
    out = normalise(x, "global_scale", crop_shape=(140, 56), scale=2.0)
    assert np.allclose(out[0], 28 / 56 / 2.0) and np.allclose(out[1], 28 / 140 / 2.0)
    with pytest.raises(ValueError, match="unknown normalisation"):
        normalise(x, "zscore")


def test_cli_flow_writes_cropped_face_uv(tmp_path, capsys):
    from mefr.cli import main

    bgr = cv2.resize(
        np.ascontiguousarray(skimage.data.astronaut()[10:240, 120:340, ::-1]),
        (128, 128),
        interpolation=cv2.INTER_AREA,
    )
    u, v = known_field(128)
    onset, apex = tmp_path / "on.png", tmp_path / "ap.png"
    cv2.imwrite(str(onset), bgr)
    cv2.imwrite(str(apex), warp(bgr, u, v))
    out = tmp_path / "flow.npy"
    assert main(["flow", str(onset), str(apex), "--out", str(out), "--size", "16"]) == 0
    x = np.load(out)
    assert x.shape == (2, 16, 16) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert "face box" in capsys.readouterr().out


@pytest.mark.real_data
@pytest.mark.skipif(not COMPOSITE.is_dir(), reason="../shared/data/megc2019-cde-flow absent")
def test_minmax_per_image_is_the_composite_sets_convention():
    """Every channel of every image of the shared MEGC 2019 flow set spans exactly 0..1,
    so ``minmax_per_image`` leaves them unchanged: features computed from raw clips use
    the convention of the published set."""
    from mefr.data.flowset import load_flowset

    fs = load_flowset(COMPOSITE)
    assert len(fs.x) == 442
    again = np.stack([minmax(x) for x in fs.x])
    assert np.allclose(again, fs.x, atol=1e-6)
