"""Frames in, face crops out: image reading, face detection (libfacedetection) and cropping.

The seed paper crops "the facial area out of onset and apex frames" with Libfacedetection
(its Section 4.2, ref. [59]). Here the detector is the ``yuface`` package, the Python
binding of libfacedetection. Detection runs on the **onset** frame only and the apex frame
is cropped with the *same* box, so that the optical flow between the two crops measures
facial motion, not a change of the crop.

``yuface.detect(img_bgr, conf)`` takes a C-contiguous ``uint8`` BGR image ``(H, W, 3)`` and
returns ``(scores, boxes, landmarks)``: scores in percent (0..100), boxes as ``x, y, w, h``
in pixels (``int16``; a box may reach outside the image), landmarks as five ``x, y``
pairs. Images larger than 960 pixels on a side degrade it (the package warns), so larger
frames (SAMM is 2040x1088) are shrunk for detection and the boxes mapped back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yuface

#: Side (pixels) above which a frame is shrunk before detection (yuface's own limit).
DETECT_MAX_SIDE = 960


class PreprocessError(ValueError):
    """A clip or image cannot be turned into network input; ``file`` names the culprit."""

    def __init__(self, message: str, file: str = "") -> None:
        super().__init__(message)
        self.file = file


class FrameReadError(PreprocessError):
    """A frame file is missing or does not decode to an image."""


class FaceNotFoundError(PreprocessError):
    """The face detector found no face in an image (the clip's onset frame)."""


@dataclass(frozen=True)
class Box:
    """A face box in pixels: top-left corner ``(x, y)``, width ``w``, height ``h``.

    ``score`` is the detector's confidence in [0, 1] (1.0 for a box not from the detector).
    """

    x: int
    y: int
    w: int
    h: int
    score: float = 1.0

    @property
    def area(self) -> int:
        return self.w * self.h

    def as_tuple(self) -> tuple[int, int, int, int]:
        """``(x, y, w, h)``."""
        return (self.x, self.y, self.w, self.h)

    def to_dict(self) -> dict:
        return {"x": self.x, "y": self.y, "w": self.w, "h": self.h, "score": self.score}


ImageLike = str | Path | np.ndarray


#: After a JPEG scan (entropy-coded data), the next marker: 0xFF followed by neither a
#: stuffed 0x00, a restart marker (0xD0-0xD7) nor a fill byte 0xFF.
_JPEG_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
#: A marker at a segment boundary: fill bytes 0xFF, then the marker code.
_JPEG_MARKER = re.compile(rb"\xff+([^\x00\xff])")
#: JPEG markers without a length field: TEM, RST0-7, SOI.
_JPEG_NO_LENGTH = frozenset({0x01, *range(0xD0, 0xD9)})
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _jpeg_truncated(data: bytes) -> bool:
    """Whether JPEG ``data`` ends before its end-of-image marker (FF D9).

    Walks the segments from the start-of-image marker (skipping each by its length, so the
    end-of-image marker of an EXIF thumbnail does not count) and each scan's entropy-coded
    data to the next marker. Bytes after the end-of-image marker are ignored, as decoders do.
    """
    pos, n = 2, len(data)
    while True:
        m = _JPEG_MARKER.search(data, pos)
        if m is None:
            return True
        code, pos = m.group(1)[0], m.end()
        if code == 0xD9:
            return False
        if code in _JPEG_NO_LENGTH:
            continue
        if pos + 2 > n:
            return True
        pos += int.from_bytes(data[pos : pos + 2], "big")
        if pos > n:
            return True
        if code == 0xDA:  # start of scan: entropy-coded data up to the next marker
            nxt = _JPEG_NEXT_MARKER.search(data, pos)
            if nxt is None:
                return True
            pos = nxt.start()


def _png_truncated(data: bytes) -> bool:
    """Whether PNG ``data`` ends before its IEND chunk (walking the chunks by length)."""
    pos, n = len(_PNG_SIGNATURE), len(data)
    while pos + 8 <= n:
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        pos += 12 + length  # length, type, data, CRC
        if pos > n:
            return True
        if kind == b"IEND":
            return False
    return True


def _bmp_truncated(data: bytes) -> bool:
    """Whether BMP ``data`` is shorter than its header says (the file size field, or for
    uncompressed pixels the pixel offset plus rows x stride)."""
    if len(data) < 30:
        return True
    declared = int.from_bytes(data[2:6], "little")
    need = declared
    if len(data) >= 34 and int.from_bytes(data[14:18], "little") >= 40:
        width = int.from_bytes(data[18:22], "little", signed=True)
        height = int.from_bytes(data[22:26], "little", signed=True)
        bpp = int.from_bytes(data[28:30], "little")
        compression = int.from_bytes(data[30:34], "little")
        if compression in (0, 3) and width > 0 and bpp > 0:  # BI_RGB, BI_BITFIELDS
            offset = int.from_bytes(data[10:14], "little")
            need = max(need, offset + (width * bpp + 31) // 32 * 4 * abs(height))
    return len(data) < need


def truncation(data: bytes) -> str | None:
    """Why the bytes of an image file look cut short, or None (complete, or a format not
    checked: only JPEG, PNG and BMP are).

    A truncated JPEG is the case that matters: libjpeg decodes the part that is there and
    greys the rest without an error, so without this check the frame would be used.
    OpenCV refuses truncated PNG and BMP files itself; checking them too gives the same
    message.
    """
    if data[:2] == b"\xff\xd8":
        if _jpeg_truncated(data):
            return "truncated (the JPEG data ends before its end-of-image marker FF D9)"
    elif data[:8] == _PNG_SIGNATURE:
        if _png_truncated(data):
            return "truncated (the PNG data ends before its IEND chunk)"
    elif data[:2] == b"BM" and _bmp_truncated(data):
        return "truncated (the BMP file is shorter than its header says)"
    return None


def read_image(path: str | Path, grey: bool = False) -> np.ndarray:
    """Read a frame file as a ``uint8`` BGR image (greyscale files get three equal channels),
    or as a ``uint8`` grey image with ``grey=True``.

    Grey images are made with ``cv2.cvtColor(..., COLOR_BGR2GRAY)`` from the decoded colour
    image (not the decoder's own grey mode, which rounds differently), so a frame gives the
    same grey pixels whether it arrives as a file or as an array.
    Raises :class:`FrameReadError` naming the file when it is missing, truncated (see
    :func:`truncation`: "cannot decode the frame PATH: truncated ...") or undecodable.
    """
    p = Path(path)
    if not p.is_file():
        raise FrameReadError(f"{p}: frame file not found", file=str(p))
    try:
        data = p.read_bytes()
    except OSError as e:
        raise FrameReadError(f"cannot read the frame {p}: {e.strerror or e}", file=str(p)) from None
    why = truncation(data)
    if why is not None:
        raise FrameReadError(f"cannot decode the frame {p}: {why}", file=str(p))
    img = cv2.imread(str(p), cv2.IMREAD_COLOR)  # the file, as before: same decoder, same pixels
    if img is None or img.size == 0:
        raise FrameReadError(f"{p}: cannot decode the frame (corrupt or not an image)", file=str(p))
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if grey else img


def as_bgr(image: ImageLike, source: str = "<array>") -> np.ndarray:
    """An image (a path, or an array ``(H, W)`` grey / ``(H, W, 3)`` BGR / ``(H, W, 4)`` BGRA,
    ``uint8``) as a C-contiguous ``uint8`` BGR array.
    """
    if isinstance(image, str | Path):
        return read_image(image)
    a = np.asarray(image)
    if a.dtype != np.uint8:
        raise PreprocessError(f"{source}: expected a uint8 image, got dtype {a.dtype}", file=source)
    if a.ndim == 2:
        return cv2.cvtColor(a, cv2.COLOR_GRAY2BGR)
    if a.ndim == 3 and a.shape[2] == 3:
        return np.ascontiguousarray(a)
    if a.ndim == 3 and a.shape[2] == 4:
        return cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_BGRA2BGR)
    if a.ndim == 3 and a.shape[2] == 1:
        return cv2.cvtColor(np.ascontiguousarray(a[:, :, 0]), cv2.COLOR_GRAY2BGR)
    raise PreprocessError(
        f"{source}: expected an image (H, W), (H, W, 3) or (H, W, 4), got shape {a.shape}",
        file=source,
    )


def as_grey(image: ImageLike, source: str = "<array>") -> np.ndarray:
    """An image (path or array, see :func:`as_bgr`) as a ``uint8`` greyscale array."""
    if isinstance(image, str | Path):
        return read_image(image, grey=True)
    a = np.asarray(image)
    if a.ndim == 2 and a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    return cv2.cvtColor(as_bgr(a, source), cv2.COLOR_BGR2GRAY)


def clip_box(box: Box, shape: tuple[int, ...]) -> Box:
    """The part of ``box`` inside an image of shape ``(H, W, ...)`` (may be empty)."""
    height, width = shape[0], shape[1]
    x0, y0 = max(box.x, 0), max(box.y, 0)
    x1, y1 = min(box.x + box.w, width), min(box.y + box.h, height)
    return Box(x0, y0, max(x1 - x0, 0), max(y1 - y0, 0), box.score)


def expand_box(
    box: Box, shape: tuple[int, ...], margin: float = 0.0, square: bool = False
) -> Box:
    """Grow a face box and fit it in an image of shape ``(H, W, ...)``.

    In this order: ``square`` grows the shorter side to the longer one about the box
    centre; ``margin`` adds ``margin * w`` on the left and on the right and
    ``margin * h`` above and below (0.1 makes the box 20 % wider and taller; negative
    values shrink it); then the box is shifted back inside the image where it fits, and
    clipped to the image where it does not (so a square box stays square unless the
    image is too small).
    """
    if margin <= -0.5:
        raise ValueError(f"margin {margin} would leave an empty box (must be > -0.5)")
    cx, cy = box.x + box.w / 2.0, box.y + box.h / 2.0
    w, h = float(box.w), float(box.h)
    if square:
        w = h = max(w, h)
    w, h = w * (1 + 2 * margin), h * (1 + 2 * margin)
    nw, nh = max(int(round(w)), 1), max(int(round(h)), 1)
    x, y = int(round(cx - nw / 2.0)), int(round(cy - nh / 2.0))
    height, width = shape[0], shape[1]
    if nw <= width:
        x = min(max(x, 0), width - nw)
    if nh <= height:
        y = min(max(y, 0), height - nh)
    return clip_box(Box(x, y, nw, nh, box.score), shape)


def detect_faces(
    image: ImageLike, conf: float = 0.5, max_side: int = DETECT_MAX_SIDE
) -> list[Box]:
    """All faces that libfacedetection finds in ``image``, best score first.

    ``conf`` is the score threshold in [0, 1]. Images with a side above ``max_side`` are
    shrunk (``cv2.INTER_AREA``) for detection; boxes are mapped back to the original
    pixels and clipped to the image.
    """
    bgr = as_bgr(image, str(image) if isinstance(image, str | Path) else "<array>")
    scale = min(1.0, max_side / max(bgr.shape[:2]))
    small = bgr
    if scale < 1.0:
        size = (max(int(round(bgr.shape[1] * scale)), 1), max(int(round(bgr.shape[0] * scale)), 1))
        small = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
    scores, boxes, _ = yuface.detect(np.ascontiguousarray(small), conf=conf)
    found = []
    for s, (bx, by, bw, bh) in zip(scores.tolist(), boxes.tolist(), strict=True):
        b = Box(
            int(round(bx / scale)),
            int(round(by / scale)),
            int(round(bw / scale)),
            int(round(bh / scale)),
            float(s) / 100.0,
        )
        b = clip_box(b, bgr.shape)
        if b.area > 0:
            found.append(b)
    found.sort(key=lambda b: (-b.score, -b.area))
    return found


def face_box(
    image: ImageLike,
    margin: float = 0.0,
    square: bool = False,
    conf: float = 0.5,
    max_side: int = DETECT_MAX_SIDE,
    source: str = "",
) -> Box:
    """The crop box of the face in ``image``: the best-scoring detection (ties: the
    larger), grown by :func:`expand_box`.

    Raises :class:`FaceNotFoundError` naming ``source`` (or the file) when no face scores
    at least ``conf``.
    """
    src = source or (str(image) if isinstance(image, str | Path) else "<array>")
    bgr = as_bgr(image, src)
    faces = detect_faces(bgr, conf=conf, max_side=max_side)
    if not faces:
        raise FaceNotFoundError(
            f"{src}: no face found (libfacedetection, score threshold {conf})", file=src
        )
    return expand_box(faces[0], bgr.shape, margin=margin, square=square)


def crop(image: np.ndarray, box: Box) -> np.ndarray:
    """The pixels of ``image`` inside ``box`` (clipped to the image); a copy."""
    b = clip_box(box, image.shape)
    if b.area == 0:
        raise PreprocessError(f"box {box.as_tuple()} lies outside the image {image.shape[:2]}")
    return image[b.y : b.y + b.h, b.x : b.x + b.w].copy()
