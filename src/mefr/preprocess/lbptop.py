"""LBP-TOP: local binary patterns on three orthogonal planes (Zhao & Pietikainen, 2007).

The hand-crafted baseline of MEGC 2019 and of the paper's Table 2 ("LBP-TOP"). A clip is
its grey face crops from onset to offset, a volume ``V[t, y, x]``. Every interior voxel
gets three local binary pattern codes, one in each plane through it:

* XY - the frame ``V[t]`` (appearance);
* XT - the row ``V[:, y, :]`` over time (horizontal motion);
* YT - the column ``V[:, :, x]`` over time (vertical motion).

Each code compares ``points`` neighbours on a circle of ``radius`` pixels (frames, in
time) with the centre; the non-rotation-invariant uniform mapping (scikit-image's
``local_binary_pattern(..., method="nri_uniform")``) gives ``P (P - 1) + 3`` codes, 59 for
8 points. The face is cut into a ``grid x grid`` array of spatial blocks; each block and
plane gives a histogram of its codes normalised to sum 1, and the feature is their
concatenation: ``grid * grid * 3 * 59`` values, whatever the clip's length or size.
This is LBP-TOP with equal radii and points in the three planes (LBP-TOP_{8,8,8,1,1,1}
by default).
"""

from __future__ import annotations

import numpy as np
from skimage.feature import local_binary_pattern

#: The three planes, in the order of the feature vector.
PLANES: tuple[str, ...] = ("xy", "xt", "yt")


def uniform_bins(points: int) -> int:
    """Number of non-rotation-invariant uniform LBP codes of ``points`` neighbours."""
    return points * (points - 1) + 3


def lbp_top_dim(grid: int, points: int = 8) -> int:
    """Length of the LBP-TOP feature: ``grid * grid`` blocks x 3 planes x bins."""
    return grid * grid * len(PLANES) * uniform_bins(points)


def plane_codes(volume: np.ndarray, radius: int = 1, points: int = 8
                ) -> dict[str, np.ndarray]:
    """The uniform LBP code of every voxel in each plane, ``{plane: (T, H, W) int}``.

    Codes within ``radius`` of a plane's border use scikit-image's border handling; they
    are left out of the histograms (:func:`lbp_top`).
    """
    v = np.asarray(volume)
    if v.ndim != 3:
        raise ValueError(f"LBP-TOP needs a (frames, height, width) volume, got {v.shape}")
    if v.dtype != np.uint8:
        raise ValueError(f"LBP-TOP needs 8-bit grey frames, got {v.dtype}")

    def lbp(image: np.ndarray) -> np.ndarray:
        return local_binary_pattern(image, points, radius, method="nri_uniform")

    t, h, w = v.shape
    xy = np.stack([lbp(v[i]) for i in range(t)])
    xt = np.stack([lbp(v[:, y, :]) for y in range(h)], axis=1)
    yt = np.stack([lbp(v[:, :, x]) for x in range(w)], axis=2)
    return {name: c.astype(np.int64) for name, c in zip(PLANES, (xy, xt, yt), strict=True)}


def lbp_top(volume: np.ndarray, grid: int = 5, radius: int = 1, points: int = 8) -> np.ndarray:
    """The LBP-TOP feature of a ``(T, H, W)`` uint8 face volume, ``float32`` of
    :func:`lbp_top_dim` values: per block (row-major), the XY, XT and YT histograms.

    Only voxels at least ``radius`` away from every border (in space and time) are
    counted, so each needs ``T``, ``H`` and ``W`` of at least ``2 * radius + 1``, and the
    interior at least ``grid`` pixels high and wide.
    """
    v = np.asarray(volume)
    if v.ndim != 3:
        raise ValueError(f"LBP-TOP needs a (frames, height, width) volume, got {v.shape}")
    t, h, w = v.shape
    if grid < 1 or radius < 1 or points < 1:
        raise ValueError(f"grid, radius and points must be positive: {grid}, {radius}, {points}")
    if t < 2 * radius + 1 or min(h, w) - 2 * radius < grid:
        raise ValueError(f"a {t}x{h}x{w} volume is too small for LBP-TOP with radius {radius} "
                         f"and a {grid}x{grid} grid (at least {2 * radius + 1} frames and "
                         f"{grid + 2 * radius} pixels a side)")
    codes = plane_codes(v, radius, points)
    bins = uniform_bins(points)
    inner = slice(radius, t - radius)
    rows = np.array_split(np.arange(radius, h - radius), grid)
    cols = np.array_split(np.arange(radius, w - radius), grid)
    out = []
    for r in rows:
        for c in cols:
            for name in PLANES:
                block = codes[name][inner, r[0]:r[-1] + 1, c[0]:c[-1] + 1]
                hist = np.bincount(block.ravel(), minlength=bins).astype(np.float64)
                out.append(hist / hist.sum())
    return np.concatenate(out).astype(np.float32)
