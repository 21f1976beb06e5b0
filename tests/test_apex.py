"""Apex policies: Eq. (1) inter-frame difference, annotated, middle (mefr.preprocess.apex)."""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest

from mefr.preprocess.apex import (
    ApexFallbackWarning,
    ClipError,
    clip_span,
    diff_apex,
    frame_differences,
    middle_apex,
    spot_apex,
)


def textured(side: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth random texture in 0..255 (float32)."""
    noise = rng.random((side, side)).astype(np.float32)
    tex = cv2.GaussianBlur(noise, (0, 0), 2.0)
    tex = (tex - tex.min()) / (tex.max() - tex.min())
    return tex * 255.0


def synthetic_clip(rng: np.random.Generator, side: int = 48) -> tuple[list[np.ndarray], int]:
    """A clip whose motion grows smoothly to a peak at a known frame then relaxes, with
    pixel noise: frame t is the texture warped by a(t) * field, a(t) a Gaussian bump."""
    n = int(rng.integers(15, 31))
    apex = int(rng.integers(3, n - 3))
    width = float(rng.uniform(2.0, 4.0))
    amp = float(rng.uniform(0.3, 1.5))  # subtle: under 1.5 pixels
    base = textured(side, rng)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi)
    fu = np.sin(2 * np.pi * xx / side + phase).astype(np.float32)
    fv = np.cos(2 * np.pi * yy / side + phase).astype(np.float32)
    frames = []
    for t in range(n):
        bump = np.exp(-(((t - apex) / width) ** 2)) - np.exp(-((apex / width) ** 2))
        a = np.float32(amp * bump)  # 0 at the onset, peak at the apex
        warped = cv2.remap(
            base, xx - a * fu, yy - a * fv, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )
        noisy = warped + rng.normal(0.0, 3.0, warped.shape)
        frames.append(np.clip(noisy, 0, 255).astype(np.uint8))
    return frames, apex


def test_eq1_spots_a_known_apex_within_two_frames():
    rng = np.random.default_rng(2024)
    clips = [synthetic_clip(rng) for _ in range(30)]
    errors = np.array([abs(spot_apex(f, "diff") - apex) for f, apex in clips])
    assert np.mean(errors <= 2) >= 0.9
    # the clips are not trivial: the middle frame misses most true apexes
    middle = np.array([abs(spot_apex(f, "middle") - apex) for f, apex in clips])
    assert np.mean(middle <= 2) < 0.5


def test_frame_differences_is_eq1():
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (9, 7), dtype=np.uint8) for _ in range(5)]
    ref = [np.abs(f.astype(float) - frames[0].astype(float)).mean() for f in frames]
    assert np.allclose(frame_differences(frames), ref)
    assert diff_apex(frames) == 1 + int(np.argmax(ref[1:]))
    floats = [f.astype(np.float32) for f in frames]
    assert np.allclose(frame_differences(floats), ref)


def test_diff_never_returns_the_onset_and_ties_go_first():
    still = [np.zeros((4, 4), np.uint8)] * 4
    assert diff_apex(still) == 1
    five = np.full((4, 4), 5, np.uint8)
    frames = [np.zeros((4, 4), np.uint8), five, five]
    assert diff_apex(frames) == 1


def test_middle_policy():
    assert [middle_apex(n) for n in (2, 3, 4, 5, 10)] == [1, 1, 2, 2, 5]
    frames = [np.zeros((2, 2), np.uint8)] * 7
    assert spot_apex(frames, "middle") == 3


def test_annotated_policy_and_its_fallback():
    rng = np.random.default_rng(1)
    frames, apex = synthetic_clip(rng)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert spot_apex(frames, "annotated", annotated=2) == 2
    with pytest.warns(ApexFallbackWarning, match="clipA"):
        got = spot_apex(frames, "annotated", annotated=None, source="clipA")
    assert got == diff_apex(frames)
    with pytest.warns(ApexFallbackWarning, match="onset"):
        assert spot_apex(frames, "annotated", annotated=0) == diff_apex(frames)
    with pytest.raises(ClipError, match="annotated apex index"):
        spot_apex(frames, "annotated", annotated=len(frames))


def test_bad_inputs():
    with pytest.raises(ValueError, match="unknown apex policy"):
        spot_apex([np.zeros((2, 2), np.uint8)] * 3, "peak")
    with pytest.raises(ClipError, match="at least 2 frames"):
        spot_apex([np.zeros((2, 2), np.uint8)], "diff")
    with pytest.raises(ClipError, match="at least 2 frames"):
        spot_apex([np.zeros((2, 2), np.uint8)], "middle")
    with pytest.raises(ClipError, match="shape"):
        frame_differences([np.zeros((2, 2), np.uint8), np.zeros((3, 2), np.uint8)])


def test_clip_span():
    numbers = [10, 11, 12, 13, 14, 15]
    assert clip_span(numbers, 11, 14) == (1, 4)
    assert clip_span(numbers, None, None) == (0, 5)
    assert clip_span(numbers, 10, 99) == (0, 5)
    with pytest.raises(ClipError, match="onset frame 9"):
        clip_span(numbers, 9, 14, source="db/s/c")
    with pytest.raises(ClipError, match="too short"):
        clip_span(numbers, 15, 15)
    with pytest.raises(ClipError, match="no frame files"):
        clip_span([], None, None)
