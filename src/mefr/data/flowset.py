"""Reader for pre-computed optical-flow sets in the STSTNet / HTNet layout.

The widely shared MEGC 2019 composite flow set is a folder of 28x28 8-bit RGB PNGs, one
per clip (R = horizontal flow u, G = vertical flow v, B = optical strain, each channel
min-max scaled to 0..255 per image), plus a label CSV with columns ``dataset``, ``sub``,
``filename_o`` and ``label`` (0 negative, 1 positive, 2 surprise). Image names are
``"{sub}_{filename_o} .png"`` in the published copy (a space before the extension);
copies with ``"{sub}_{filename_o}.png"`` or no extension at all also circulate, and all
three are accepted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from mefr.data.table import make_table

#: Dataset names of the composite CSV -> mefr dataset names.
FLOWSET_DATASETS = {"smic": "smic_hs", "casme2": "casme2", "samm": "samm"}
#: Class index -> class name of the composite (CDE) label CSV.
CDE_CLASS_NAMES: tuple[str, ...] = ("negative", "positive", "surprise")
#: Channel names of the images, in the order :func:`load_flowset` returns them.
FLOWSET_CHANNELS: tuple[str, ...] = ("u", "v", "strain")

DEFAULT_CSV = "combined_3_class2_for_optical_flow.csv"
DEFAULT_IMAGE_DIR = "STSNet_whole_norm_u_v_os"


class FlowSetError(ValueError):
    """A file of a flow set is missing or malformed."""


@dataclass(frozen=True)
class FlowSet:
    """A sample table with its network inputs.

    Attributes
    ----------
    table : the sample table (see :mod:`mefr.data.table`) with an extra integer column
        ``label`` and string column ``label_name``.
    x : float32 array (N, C, H, W), values in [0, 1], channels named by ``channels``.
    channels : the channel names of ``x``.
    class_names : the name of each label index.
    """

    table: pd.DataFrame
    x: np.ndarray
    channels: tuple[str, ...]
    class_names: tuple[str, ...]

    def select_channels(self, names: Sequence[str]) -> np.ndarray:
        """The input array restricted to ``names`` (e.g. ``("u", "v")`` for FR)."""
        return select_channels(self.x, self.channels, names)


def select_channels(x: np.ndarray, channels: Sequence[str], names: Sequence[str]
                    ) -> np.ndarray:
    """``x`` ``(N, C, ...)``, whose channels are ``channels``, restricted to ``names`` in
    that order, as a contiguous float32 array (the networks' input)."""
    missing = [n for n in names if n not in channels]
    if missing:
        raise ValueError(f"channels {missing} are not among the features' {tuple(channels)}")
    idx = [list(channels).index(n) for n in names]
    return np.ascontiguousarray(np.asarray(x)[:, idx], dtype=np.float32)


def _image_path(image_dir: Path, stem: str) -> Path:
    for name in (f"{stem} .png", f"{stem}.png", stem):
        p = image_dir / name
        if p.is_file():
            return p
    raise FileNotFoundError(stem)


def read_label_csv(path: Path) -> pd.DataFrame:
    """The label CSV as strings; a :class:`FlowSetError` naming the file when it is empty,
    not UTF-8 (a UTF-16 export) or not parsable as CSV."""
    head = path.read_bytes()[:4]
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise FlowSetError(f"{path}: the label CSV is UTF-16 encoded; save it as UTF-8")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise FlowSetError(f"{path}: the label CSV is empty (no header row)") from None
    except UnicodeDecodeError as exc:
        raise FlowSetError(f"{path}: the label CSV is not UTF-8 text ({exc.reason} at byte "
                           f"{exc.start}); save it as UTF-8") from None
    except pd.errors.ParserError as exc:
        raise FlowSetError(f"{path}: cannot parse the label CSV ({exc})") from None


def read_flow_image(path: Path, where: str) -> np.ndarray:
    """The 8-bit BGR array of one flow image, read as stored (no channel is copied into
    another): a :class:`FlowSetError` naming the image and ``where`` (the CSV row) when
    it does not decode, is not 8-bit, or does not hold exactly three channels (a grey
    image would otherwise be read as u = v = strain)."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise FlowSetError(f"{path}: does not decode to a 3-channel image ({where})")
    channels = 1 if img.ndim == 2 else img.shape[2]
    if channels != 3:
        raise FlowSetError(f"{path}: does not decode to a 3-channel image: it has {channels} "
                           f"channel(s), where u, v and strain need 3 ({where})")
    if img.dtype != np.uint8:
        raise FlowSetError(f"{path}: {img.dtype} pixels, where the flow set's are 8-bit "
                           f"({where})")
    return img


def load_flowset(
    root: str | Path,
    csv_name: str = DEFAULT_CSV,
    image_dir: str = DEFAULT_IMAGE_DIR,
) -> FlowSet:
    """Read a composite flow set (label CSV + folder of 28x28 u/v/strain PNGs).

    Raises :class:`FlowSetError` naming the file (and the CSV row) when the CSV is empty,
    not UTF-8 or lacks a column, a label is not 0/1/2, a dataset is unknown, or an image
    is missing, is not an 8-bit image of exactly three channels, or differs in size from
    the first.
    """
    root = Path(root)
    csv_path = root / csv_name
    if not csv_path.is_file():
        raise FlowSetError(f"{csv_path}: label CSV not found")
    labels = read_label_csv(csv_path)
    need = {"dataset", "sub", "filename_o", "label"}
    if not need <= set(labels.columns):
        raise FlowSetError(f"{csv_path}: needs columns {sorted(need)}, has {list(labels.columns)}")
    images = root / image_dir
    rows, arrays = [], []
    for i, rec in enumerate(labels.itertuples(index=False), start=2):  # row 1 is the header
        where = f"{csv_path}, row {i}"
        ds = FLOWSET_DATASETS.get(rec.dataset.strip().lower())
        if ds is None:
            raise FlowSetError(f"{where}: unknown dataset {rec.dataset!r}")
        try:
            label = int(rec.label)
        except ValueError:
            raise FlowSetError(f"{where}: label {rec.label!r} is not an integer") from None
        if not 0 <= label < len(CDE_CLASS_NAMES):
            raise FlowSetError(f"{where}: label {label} is not one of 0, 1, 2")
        stem = f"{rec.sub}_{rec.filename_o}"
        try:
            path = _image_path(images, stem)
        except FileNotFoundError:
            raise FlowSetError(
                f"{where}: no image {stem!r} (.png, ' .png' or bare) in {images}"
            ) from None
        bgr = read_flow_image(path, where)
        if arrays and bgr.shape[:2] != arrays[0].shape[1:]:
            raise FlowSetError(
                f"{path}: {bgr.shape[1]}x{bgr.shape[0]} pixels, where the first image is "
                f"{arrays[0].shape[2]}x{arrays[0].shape[1]} ({where})")
        rgb = bgr[:, :, ::-1]  # R = u, G = v, B = strain
        arrays.append(np.ascontiguousarray(rgb.transpose(2, 0, 1)))
        rows.append(
            {
                "dataset": ds,
                "subject": rec.sub,
                "clip": rec.filename_o,
                "emotion": CDE_CLASS_NAMES[label],
                "source": str(csv_path),
                "row": i,
            }
        )
    table = make_table(rows)
    table["label"] = [CDE_CLASS_NAMES.index(e) for e in table["emotion"]]
    table["label_name"] = table["emotion"]
    if not arrays:
        raise FlowSetError(f"{csv_path}: no rows")
    x = np.stack(arrays).astype(np.float32) / 255.0
    return FlowSet(table=table, x=x, channels=FLOWSET_CHANNELS, class_names=CDE_CLASS_NAMES)
