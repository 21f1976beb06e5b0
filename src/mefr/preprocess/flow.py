"""Optical flow between the onset and apex faces: TV-L1, optical strain, resize, normalisation.

The seed paper computes TV-L1 optical flow (Zach et al. 2007, its ref. [54]) between the
cropped onset and apex frames and feeds the horizontal (u) and vertical (v) components,
resized to 28x28, to FR's two streams (Sections 3.1 and 4.2). STSTNet adds the optical
strain as a third channel.

TV-L1 parameters
    OpenCV's ``cv2.optflow.DualTVL1OpticalFlow_create()`` defaults (tau 0.25, lambda 0.15,
    theta 0.3, 5 scales, 5 warps, epsilon 0.01, 30 inner and 10 outer iterations, scale
    step 0.8, gamma 0, median filter 5). The paper gives no parameters and the published
    flow sets were made with library defaults, so these are used unless a caller passes
    others to :func:`tvl1_flow`. The flow is computed on 8-bit grey images and follows
    OpenCV's convention: ``onset(x, y) ~ apex(x + u, y + v)``, i.e. (u, v) is where the
    onset pixel moved to, in pixels of the crop.

Optical strain
    With the flow's spatial derivatives (central differences, ``numpy.gradient``, in
    pixels of the crop), the infinitesimal strain tensor has ``e_xx = du/dx``,
    ``e_yy = dv/dy`` and ``e_xy = (du/dy + dv/dx) / 2``; the strain channel is its Frobenius
    norm ``sqrt(e_xx^2 + e_yy^2 + 2 e_xy^2)`` (dimensionless, >= 0).

Resize
    ``cv2.INTER_AREA`` to ``size x size``: each output pixel is the mean over the crop
    pixels it covers, i.e. anti-aliased down-sampling of the flow field (a face crop is
    ten times larger than 28 on a side).

Normalisations (:data:`NORMALISATIONS`, applied after the resize)
    - ``minmax_per_image``: each channel of each image scaled to [0, 1] by its own min and
      max (a constant channel gives zeros). This is how the shared MEGC 2019 composite
      flow set was made (each channel min-max scaled to 0..255 per image), so features
      from raw clips are comparable to it.
    - ``none``: raw values: u and v in pixels of the face crop (displacement from onset
      to apex), strain dimensionless.
    - ``global_scale``: u and v converted to pixels of the output grid (``u * size /
      crop_width``, ``v * size / crop_height``, so that the same facial motion gives the
      same number whatever the camera resolution), strain as is, then all divided by
      one fixed ``scale``. Unlike ``minmax_per_image``, this keeps the amplitude and the
      sign of the motion comparable across clips.
"""

from __future__ import annotations

import cv2
import numpy as np

from mefr.preprocess.face import ImageLike, PreprocessError, as_grey

#: Normalisations of the flow channels, by name.
NORMALISATIONS: tuple[str, ...] = ("minmax_per_image", "none", "global_scale")
#: Output channels, in order, without and with strain.
FLOW_CHANNELS: tuple[str, ...] = ("u", "v")
STRAIN_CHANNELS: tuple[str, ...] = ("u", "v", "strain")


def check_normalisation(name: str) -> str:
    """``name`` if it names a normalisation, else a ``ValueError`` listing them."""
    if name not in NORMALISATIONS:
        raise ValueError(f"unknown normalisation {name!r} (expected one of {NORMALISATIONS})")
    return name


def tvl1_flow(onset: np.ndarray, apex: np.ndarray, **params: float) -> np.ndarray:
    """TV-L1 optical flow from ``onset`` to ``apex`` (grey ``uint8``, same shape): float32
    ``(H, W, 2)`` with ``[..., 0] = u`` (horizontal) and ``[..., 1] = v`` (vertical).

    ``params`` are keyword arguments of ``cv2.optflow.DualTVL1OpticalFlow_create``
    (``tau``, ``lambda_``, ``theta``, ``nscales``, ``warps``, ...); none means OpenCV's
    defaults.
    """
    if onset.shape != apex.shape:
        raise PreprocessError(f"onset {onset.shape} and apex {apex.shape} differ in shape")
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create(**params)
    return tvl1.calc(onset, apex, None)


def optical_strain(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The optical strain magnitude ``sqrt(e_xx^2 + e_yy^2 + 2 e_xy^2)`` of a flow field
    (see the module docstring), float32 of the shape of ``u``.
    """
    du_dy, du_dx = np.gradient(u.astype(np.float64))
    dv_dy, dv_dx = np.gradient(v.astype(np.float64))
    exy = 0.5 * (du_dy + dv_dx)
    return np.sqrt(du_dx**2 + dv_dy**2 + 2.0 * exy**2).astype(np.float32)


def resize_channels(x: np.ndarray, size: int) -> np.ndarray:
    """Resize each channel of ``x`` ``(C, H, W)`` to ``(C, size, size)`` with ``cv2.INTER_AREA``."""
    return np.stack(
        [cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA) for c in x]
    ).astype(np.float32)


def minmax(x: np.ndarray) -> np.ndarray:
    """Each channel of ``x`` ``(C, H, W)`` scaled to [0, 1] by its own min and max (a constant
    channel becomes 0)."""
    lo = x.min(axis=(1, 2), keepdims=True)
    span = x.max(axis=(1, 2), keepdims=True) - lo
    safe = np.where(span > 0, span, 1.0)
    return np.where(span > 0, (x - lo) / safe, 0.0).astype(np.float32)


def normalise(
    x: np.ndarray,
    method: str,
    crop_shape: tuple[int, int] | None = None,
    scale: float = 1.0,
) -> np.ndarray:
    """Apply a normalisation of :data:`NORMALISATIONS` to flow channels ``x`` ``(C, H, W)``
    whose first two channels are u and v.

    ``crop_shape`` ``(height, width)`` is the face crop the flow was computed on (needed by
    ``global_scale``; defaults to the shape of ``x``, i.e. no change of units).
    """
    check_normalisation(method)
    if method == "none":
        return x.astype(np.float32)
    if method == "minmax_per_image":
        return minmax(x)
    if scale <= 0:
        raise ValueError(f"global_scale needs a positive scale, got {scale}")
    crop_h, crop_w = crop_shape if crop_shape is not None else x.shape[1:]
    out = x.astype(np.float32).copy()
    out[0] *= x.shape[2] / crop_w
    out[1] *= x.shape[1] / crop_h
    return out / np.float32(scale)


def compute_flow(
    onset: ImageLike,
    apex: ImageLike,
    size: int | None = 28,
    strain: bool = False,
    normalisation: str = "minmax_per_image",
    scale: float = 1.0,
) -> np.ndarray:
    """Network input from a cropped onset face and the apex face cropped with the same box.

    TV-L1 flow (u, v) from onset to apex, optionally the optical strain, each resized to
    ``size x size`` (``None``: kept at the crop's resolution) and normalised (see the module
    docstring). Inputs are paths or ``uint8`` arrays (grey or BGR) of one shape. Returns
    float32 ``(C, size, size)`` with channels ``("u", "v")`` or ``("u", "v", "strain")``.
    """
    check_normalisation(normalisation)
    a = as_grey(onset, str(onset) if not isinstance(onset, np.ndarray) else "<onset>")
    b = as_grey(apex, str(apex) if not isinstance(apex, np.ndarray) else "<apex>")
    flow = tvl1_flow(a, b)
    u, v = flow[..., 0], flow[..., 1]
    channels = [u, v] + ([optical_strain(u, v)] if strain else [])
    x = np.stack(channels).astype(np.float32)
    if size is not None:
        x = resize_channels(x, size)
    return normalise(x, normalisation, crop_shape=a.shape[:2], scale=scale)
