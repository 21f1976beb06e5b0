"""LBP-TOP features: planes, blocks and histograms against direct scikit-image calls."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.feature import local_binary_pattern

from mefr.preprocess.lbptop import PLANES, lbp_top, lbp_top_dim, plane_codes, uniform_bins


def _volume(seed: int = 0, shape: tuple[int, int, int] = (6, 17, 19)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 100, shape).astype(np.uint8)


def test_sizes() -> None:
    assert uniform_bins(8) == 59 and uniform_bins(4) == 15
    assert lbp_top_dim(5) == 25 * 3 * 59
    f = lbp_top(_volume(), grid=3)
    assert f.shape == (lbp_top_dim(3),) and f.dtype == np.float32
    # every (block, plane) histogram sums to 1
    np.testing.assert_allclose(f.reshape(9 * 3, 59).sum(axis=1), 1.0, rtol=1e-6)


def test_one_voxel_volume_is_three_one_hot_histograms() -> None:
    """A 3x3x3 volume with radius 1 has one interior voxel: each plane's histogram is
    the one-hot of that voxel's code in the slice through it."""
    v = _volume(1, (3, 3, 3))
    f = lbp_top(v, grid=1).reshape(3, 59)
    slices = {"xy": v[1], "xt": v[:, 1, :], "yt": v[:, :, 1]}
    for i, name in enumerate(PLANES):
        code = int(local_binary_pattern(slices[name], 8, 1, method="nri_uniform")[1, 1])
        expected = np.zeros(59)
        expected[code] = 1.0
        np.testing.assert_array_equal(f[i], expected)


def test_planes_are_the_right_slices() -> None:
    v = _volume(2)
    codes = plane_codes(v)
    t, h, w = v.shape
    lbp = lambda im: local_binary_pattern(im, 8, 1, method="nri_uniform")  # noqa: E731
    for i in range(t):
        np.testing.assert_array_equal(codes["xy"][i], lbp(v[i]))
    for y in range(h):
        np.testing.assert_array_equal(codes["xt"][:, y, :], lbp(v[:, y, :]))
    for x in range(w):
        np.testing.assert_array_equal(codes["yt"][:, :, x], lbp(v[:, :, x]))


def test_block_histograms_count_interior_voxels_of_their_block() -> None:
    v = _volume(3, (5, 12, 12))
    codes = plane_codes(v)
    f = lbp_top(v, grid=2).reshape(2, 2, 3, 59)
    # block (1, 0): interior rows 6..10, columns 1..5 (interior 1..10 split in two)
    block = codes["xt"][1:4, 6:11, 1:6]
    expected = np.bincount(block.ravel(), minlength=59) / block.size
    np.testing.assert_allclose(f[1, 0, PLANES.index("xt")], expected, rtol=1e-6)


def test_invariant_to_monotonic_grey_changes() -> None:
    v = _volume(4)
    brighter = (2 * v.astype(np.int64) + 10).astype(np.uint8)  # order kept, no saturation
    np.testing.assert_array_equal(lbp_top(v, grid=2), lbp_top(brighter, grid=2))


def test_motion_shows_in_the_time_planes_only() -> None:
    """A bar moving right changes the XT histograms, not the XY ones, compared with a
    still bar drawn at the same place in each frame."""
    t, h, w = 7, 15, 30
    moving = np.full((t, h, w), 20, np.uint8)
    still = np.full((t, h, w), 20, np.uint8)
    for i in range(t):
        moving[i, :, 8 + 2 * i: 11 + 2 * i] = 200
        still[i, :, 8 + 2 * 3: 11 + 2 * 3] = 200
    fm = lbp_top(moving, grid=1).reshape(3, 59)
    fs = lbp_top(still, grid=1).reshape(3, 59)
    np.testing.assert_allclose(fm[0], fs[0])  # the same bar in every frame: same XY codes
    assert np.abs(fm[1] - fs[1]).sum() > 0.1  # horizontal motion: XT differs


def test_bad_volumes_are_refused() -> None:
    with pytest.raises(ValueError, match="8-bit"):
        lbp_top(_volume().astype(np.float32))
    with pytest.raises(ValueError, match="too small"):
        lbp_top(_volume(shape=(2, 20, 20)))
    with pytest.raises(ValueError, match="too small"):
        lbp_top(_volume(shape=(5, 6, 20)), grid=5)
    with pytest.raises(ValueError, match=r"\(frames, height, width\)"):
        lbp_top(np.zeros((4, 4), np.uint8))
