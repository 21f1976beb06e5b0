"""A sample table -> network inputs: face crop, apex, TV-L1 flow, resize (the paper's
Sections 3.1 and 4.2), over all clips in parallel, through the feature cache.

For each clip (one row of a sample table, :mod:`mefr.data.table`):

1. the frames from the onset to the offset are taken (:func:`mefr.preprocess.apex.clip_span`);
2. the face is detected on the onset frame (libfacedetection) and the box grown by the
   settings' margin (:mod:`mefr.preprocess.face`); every frame is cropped with that box
   (with ``register="similarity"`` or ``"affine"``, after each frame has been registered
   to the onset frame, :mod:`mefr.preprocess.register`: head-motion compensation);
3. the apex frame is chosen by the settings' policy (:mod:`mefr.preprocess.apex`: the
   annotated apex, Eq. (1), or the middle frame);
4. TV-L1 flow between the onset and apex crops, optional strain, resized and normalised
   (:mod:`mefr.preprocess.flow`) - or, with ``descriptor="lbptop"``, the LBP-TOP
   histograms of all the crops (:mod:`mefr.preprocess.lbptop`) for the hand-crafted
   baseline.

:func:`build_features` does this for a whole table on all cores and returns a
:class:`FeatureSet` (same shape as :class:`mefr.data.flowset.FlowSet`). A clip that
fails (no face, a missing or undecodable frame, a clip too short) is reported with its
sample key, the file and the reason, left out of the result, and the others go on.
Features are cached per clip (:mod:`mefr.preprocess.store`), so a rerun, an interrupted
run or another protocol reuses everything already computed.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field, fields
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mefr.data.flowset import FlowSet
from mefr.preprocess.apex import (
    ApexFallbackWarning,
    ClipError,
    check_policy,
    clip_span,
    spot_apex,
)
from mefr.preprocess.face import (
    DETECT_MAX_SIDE,
    Box,
    ImageLike,
    PreprocessError,
    as_bgr,
    as_grey,
    crop,
    face_box,
)
from mefr.preprocess.flow import FLOW_CHANNELS, STRAIN_CHANNELS, check_normalisation, compute_flow
from mefr.preprocess.lbptop import lbp_top, lbp_top_dim
from mefr.preprocess.register import HeadMotion, Registrar, check_registration
from mefr.preprocess.store import FeatureStore, cache_key

#: Face modes: ``detect`` (libfacedetection on the onset) or ``none`` (use whole frames,
#: e.g. for databases' pre-cropped releases).
FACE_MODES: tuple[str, ...] = ("detect", "none")
#: What a clip becomes: ``flow`` (network input) or ``lbptop`` (hand-crafted baseline).
DESCRIPTORS: tuple[str, ...] = ("flow", "lbptop")
#: The channel name of LBP-TOP features.
LBPTOP_CHANNELS: tuple[str, ...] = ("lbptop",)
#: Table columns added with registration -> the :meth:`HeadMotion.to_dict` key they hold:
#: the apex's displacement (pixels of the frame), rotation (degrees) and scale change.
HEAD_COLUMNS: dict[str, str] = {
    "head_dx": "dx", "head_dy": "dy", "head_rotation": "rotation_deg", "head_scale": "scale",
}


def _head_value(meta: Mapping, key: str) -> float | None:
    motion = meta.get("head_motion")
    return float(motion[key]) if isinstance(motion, Mapping) and key in motion else None


@dataclass(frozen=True)
class PreprocessSettings:
    """Everything that decides the features of a clip (all of it enters the cache key).

    Attributes
    ----------
    apex_policy : ``annotated`` (the table's apex; Eq. (1) where it is missing), ``diff``
        (Eq. (1) everywhere) or ``middle`` (the middle frame, the Dual-Inception ablation).
    face : ``detect`` (crop the face found on the onset frame) or ``none`` (whole frames).
    margin : added on each side of the face box, as a fraction of its width / height.
    square : make the face box square (grow its shorter side) before the margin.
    face_conf : libfacedetection's score threshold in [0, 1].
    face_size : resize the face crops to ``face_size x face_size`` before apex spotting
        and flow (``None``: native resolution, as the paper).
    size : side of the network input (28 in the paper).
    strain : add the optical strain channel (STSTNet's third input).
    normalisation : see :data:`mefr.preprocess.flow.NORMALISATIONS`.
    scale : the divisor of the ``global_scale`` normalisation.
    descriptor : ``flow`` (the onset->apex TV-L1 flow, the networks' input) or ``lbptop``
        (the LBP-TOP histograms of the face crops from onset to offset, for the
        hand-crafted baseline; :mod:`mefr.preprocess.lbptop`; channel ``lbptop``, ``x`` of
        shape ``(1, 1, D)``; ``size``, ``strain`` and the normalisation do not apply).
    lbp_grid, lbp_radius : LBP-TOP's ``grid x grid`` spatial blocks and its radius.
    register : head-motion compensation (:mod:`mefr.preprocess.register`): ``none`` (the
        paper: no registration), ``similarity`` (rotation, scale and translation) or
        ``affine``: every frame after the onset is registered to the onset frame before it
        is cropped; the motion found for the apex goes to ``ClipFeatures.head_motion`` and
        the table's ``head_*`` columns.
    """

    apex_policy: str = "annotated"
    face: str = "detect"
    margin: float = 0.0
    square: bool = False
    face_conf: float = 0.5
    face_size: int | None = None
    size: int = 28
    strain: bool = False
    normalisation: str = "minmax_per_image"
    scale: float = 1.0
    descriptor: str = "flow"
    lbp_grid: int = 5
    lbp_radius: int = 1
    register: str = "none"

    def __post_init__(self) -> None:
        check_registration(self.register)
        if self.descriptor not in DESCRIPTORS:
            raise ValueError(f"unknown descriptor {self.descriptor!r} (expected one of "
                             f"{DESCRIPTORS})")
        if self.lbp_grid < 1 or self.lbp_radius < 1:
            raise ValueError(f"lbp_grid and lbp_radius must be positive, got {self.lbp_grid} "
                             f"and {self.lbp_radius}")
        check_policy(self.apex_policy)
        check_normalisation(self.normalisation)
        if self.face not in FACE_MODES:
            raise ValueError(f"unknown face mode {self.face!r} (expected one of {FACE_MODES})")
        if not -0.5 < self.margin:
            raise ValueError(f"margin must be > -0.5, got {self.margin}")
        if not 0.0 <= self.face_conf <= 1.0:
            raise ValueError(f"face_conf must lie in [0, 1], got {self.face_conf}")
        if self.size < 1:
            raise ValueError(f"size must be >= 1, got {self.size}")
        if self.face_size is not None and self.face_size < 8:
            raise ValueError(f"face_size must be >= 8 (or None), got {self.face_size}")
        if self.scale <= 0:
            raise ValueError(f"scale must be positive, got {self.scale}")

    @property
    def channels(self) -> tuple[str, ...]:
        """Channel names of the features: ``("u", "v")``, ``("u", "v", "strain")`` or
        ``("lbptop",)``."""
        if self.descriptor == "lbptop":
            return LBPTOP_CHANNELS
        return STRAIN_CHANNELS if self.strain else FLOW_CHANNELS

    def to_dict(self) -> dict:
        """All settings; the LBP-TOP ones only with ``descriptor="lbptop"`` and
        ``register`` only when it is not ``none`` (so features made without them keep the
        cache keys and model-file headers they had before these settings existed)."""
        d = asdict(self)
        if self.descriptor == "flow":
            for name in ("descriptor", "lbp_grid", "lbp_radius"):
                del d[name]
        if self.register == "none":
            del d["register"]
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> PreprocessSettings:
        """Settings from a mapping (e.g. a YAML section); unknown keys are an error."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown preprocessing settings {unknown} (known: {sorted(names)})")
        return cls(**dict(d))


@dataclass(frozen=True)
class ClipFeatures:
    """The network input of one clip and how it was made.

    ``x`` float32 ``(C, size, size)`` (LBP-TOP: ``(1, 1, D)``); ``apex_index`` the
    position of the apex frame in the frames given (0 = onset); ``box`` the face box on
    the onset frame (the whole frame when ``face="none"``); ``notes`` warnings (e.g. an
    apex fallback); ``head_motion`` the motion from the onset to the apex frame that the
    registration removed (``None`` without registration).
    """

    x: np.ndarray
    channels: tuple[str, ...]
    apex_index: int
    box: Box
    notes: tuple[str, ...] = ()
    head_motion: HeadMotion | None = None


@dataclass(frozen=True)
class ClipFailure:
    """A clip left out of a :class:`FeatureSet`: its sample key, the annotation row, the
    file at fault (or ``""``) and the reason."""

    sample: str
    where: str
    file: str
    reason: str

    def __str__(self) -> str:
        file = f" [{self.file}]" if self.file else ""
        return f"{self.sample} ({self.where}){file}: {self.reason}"


@dataclass(frozen=True)
class FeatureSet(FlowSet):
    """A :class:`~mefr.data.flowset.FlowSet` made from raw clips.

    Besides ``table``, ``x``, ``channels`` and ``class_names`` (``()`` when the table has no
    ``label`` column): ``failures`` (clips left out), ``cached`` / ``computed`` (how many
    clips came from the cache / were computed now). The table gains the columns
    ``apex_used`` (absolute frame number of the apex used), ``face_box`` (``(x, y, w, h)``
    on the onset frame) and ``preprocess_notes`` (warnings, ``"; "``-joined); with
    registration also :data:`HEAD_COLUMNS` (``head_dx``, ``head_dy`` in pixels,
    ``head_rotation`` in degrees, ``head_scale``: the head motion from onset to apex).
    """

    failures: tuple[ClipFailure, ...] = ()
    cached: int = 0
    computed: int = 0


# --------------------------------------------------------------------------- one clip
class _GreyCrops(Sequence):
    """Frames (paths or arrays) read lazily as grey face crops (one box, optional resize),
    each frame after the first registered to the first by ``registrar`` when one is given
    (the motion found for frame i is kept in ``motions[i]``)."""

    def __init__(
        self, frames: Sequence[ImageLike], box: Box, shape: tuple[int, int], face_size: int | None,
        registrar: Registrar | None = None,
    ) -> None:
        self.frames, self.box, self.shape, self.face_size = frames, box, shape, face_size
        self.registrar = registrar
        self.motions: dict[int, HeadMotion] = {}

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        frame = self.frames[i]
        src = str(frame) if isinstance(frame, str | Path) else f"<frame {i}>"
        grey = as_grey(frame, src)
        if grey.shape != self.shape:
            raise ClipError(
                f"{src}: frame size {grey.shape} differs from the onset's {self.shape}", file=src
            )
        if self.registrar is not None and i != 0:
            grey, self.motions[i] = self.registrar.register(grey, src)
        face = crop(grey, self.box)
        if self.face_size is not None:
            face = cv2.resize(face, (self.face_size, self.face_size), interpolation=cv2.INTER_AREA)
        return face

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[i] for i in range(len(self)))


def _face_of(onset: ImageLike, settings: PreprocessSettings, source: str) -> tuple[Box, tuple]:
    """The crop box on the onset frame and the frame's (H, W)."""
    bgr = as_bgr(onset, source)
    if settings.face == "none":
        return Box(0, 0, bgr.shape[1], bgr.shape[0]), bgr.shape[:2]
    box = face_box(
        bgr,
        margin=settings.margin,
        square=settings.square,
        conf=settings.face_conf,
        max_side=DETECT_MAX_SIDE,
        source=source,
    )
    return box, bgr.shape[:2]


def _source_of(image: ImageLike, fallback: str) -> str:
    return str(image) if isinstance(image, str | Path) else fallback


def _features(
    frames: Sequence[ImageLike],
    settings: PreprocessSettings,
    policy: str,
    annotated: int | None,
    source: str,
) -> ClipFeatures:
    """Face box on ``frames[0]``, apex by ``policy`` and flow (the core of every entry point)."""
    if len(frames) < 2:
        raise ClipError(f"{source}: a clip needs at least 2 frames, has {len(frames)}")
    onset_src = _source_of(frames[0], f"{source} <onset>")
    box, shape = _face_of(frames[0], settings, onset_src)
    registrar = None
    if settings.register != "none":
        whole = settings.face == "none"
        registrar = Registrar(as_grey(frames[0], onset_src), None if whole else box,
                              settings.register, source=onset_src)
    crops = _GreyCrops(frames, box, shape, settings.face_size, registrar)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ApexFallbackWarning)
        index = spot_apex(crops, policy, annotated=annotated, source=source)
    notes = tuple(str(w.message) for w in caught if issubclass(w.category, ApexFallbackWarning))
    if settings.descriptor == "lbptop":
        volume = np.stack(list(crops))
        x = lbp_top(volume, grid=settings.lbp_grid, radius=settings.lbp_radius)[None, None]
        return ClipFeatures(x=x, channels=settings.channels, apex_index=index, box=box,
                            notes=notes, head_motion=crops.motions.get(index))
    x = compute_flow(
        crops[0],
        crops[index],
        size=settings.size,
        strain=settings.strain,
        normalisation=settings.normalisation,
        scale=settings.scale,
    )
    return ClipFeatures(x=x, channels=settings.channels, apex_index=index, box=box, notes=notes,
                        head_motion=crops.motions.get(index))


def clip_features(
    onset: ImageLike, apex: ImageLike, settings: PreprocessSettings | None = None
) -> ClipFeatures:
    """The features of one onset/apex pair (paths or ``uint8`` grey/BGR arrays): the face
    found on ``onset`` crops both, then TV-L1 flow (``apex_index`` is 1)."""
    s = settings or PreprocessSettings()
    return _features([onset, apex], s, "annotated", 1, _source_of(onset, "<onset>"))


def frames_features(
    frames: Sequence[ImageLike],
    settings: PreprocessSettings | None = None,
    apex: int | None = None,
    source: str = "",
) -> ClipFeatures:
    """The features of a clip given as its frames from onset (``frames[0]``) to offset.

    ``apex`` is the index of the apex frame in ``frames``; when ``None`` it is spotted, by
    the middle frame if ``settings.apex_policy == "middle"``, else by Eq. (1), and the
    frame chosen is ``ClipFeatures.apex_index``.
    """
    s = settings or PreprocessSettings()
    src = source or (_source_of(frames[0], "<frames>") if len(frames) else "<frames>")
    if apex is not None:
        return _features(frames, s, "annotated", apex, src)
    policy = "middle" if s.apex_policy == "middle" else "diff"
    return _features(frames, s, policy, None, src)


# --------------------------------------------------------------------------- a table
@dataclass(frozen=True)
class _Task:
    """One clip's work, picklable for a worker process."""

    index: int
    sample: str
    where: str
    frames: tuple[str, ...]
    frame_numbers: tuple[int, ...]
    onset: int | None
    apex: int | None
    offset: int | None
    settings: PreprocessSettings
    key: str
    cache_dir: str | None = None


@dataclass(frozen=True)
class _Done:
    index: int
    x: np.ndarray | None = None
    meta: dict = field(default_factory=dict)
    failure: ClipFailure | None = None


def _opt_int(v) -> int | None:
    return None if v is None or pd.isna(v) else int(v)


def _where(row: Mapping) -> str:
    src = row.get("source") or "<table>"
    r = row.get("row")
    return f"{src}, row {r}" if r is not None and pd.notna(r) else str(src)


def _task_of(
    index: int, row: Mapping, settings: PreprocessSettings, cache_dir: str | None
) -> _Task:
    frames = tuple(str(p) for p in row["frames"])
    numbers = tuple(int(n) for n in row["frame_numbers"])
    onset, apex, offset = (_opt_int(row[c]) for c in ("onset", "apex", "offset"))
    params = {
        "settings": settings.to_dict(),
        "frame_numbers": list(numbers),
        "onset": onset,
        "apex": apex,
        "offset": offset,
    }
    return _Task(
        index=index,
        sample=f"{row['dataset']}/{row['subject']}/{row['clip']}",
        where=_where(row),
        frames=frames,
        frame_numbers=numbers,
        onset=onset,
        apex=apex,
        offset=offset,
        settings=settings,
        key=cache_key(frames, params),
        cache_dir=cache_dir,
    )


def _clip_of_task(task: _Task) -> tuple[np.ndarray, dict]:
    """Compute one clip's features and metadata (raises :class:`PreprocessError`)."""
    first, last = clip_span(task.frame_numbers, task.onset, task.offset, source=task.sample)
    frames = task.frames[first : last + 1]
    numbers = task.frame_numbers[first : last + 1]
    annotated = None
    if task.apex is not None and task.settings.apex_policy == "annotated":
        if task.apex not in numbers:
            raise ClipError(
                f"{task.sample}: no file for the annotated apex frame {task.apex} "
                f"(frames {numbers[0]}..{numbers[-1]})"
            )
        annotated = numbers.index(task.apex)
    feats = _features(frames, task.settings, task.settings.apex_policy, annotated, task.sample)
    meta = {
        "sample": task.sample,
        "onset_frame": numbers[0],
        "onset_file": frames[0],
        "apex_index": feats.apex_index,
        "apex_frame": numbers[feats.apex_index],
        "apex_file": frames[feats.apex_index],
        "face_box": feats.box.to_dict(),
        "channels": list(feats.channels),
        "notes": list(feats.notes),
        "apex_fallback": bool(feats.notes),
        "head_motion": feats.head_motion.to_dict() if feats.head_motion is not None else None,
        "settings": task.settings.to_dict(),
    }
    return feats.x, meta


def _run_task(task: _Task) -> _Done:
    """Worker entry point: one clip, never raising; caches what it computes."""
    try:
        x, meta = _clip_of_task(task)
    except PreprocessError as e:
        return _Done(task.index, failure=ClipFailure(task.sample, task.where, e.file, str(e)))
    except Exception as e:  # noqa: BLE001 - one bad clip must not stop the others
        reason = f"{type(e).__name__}: {e}"
        return _Done(task.index, failure=ClipFailure(task.sample, task.where, "", reason))
    if task.cache_dir is not None:
        try:
            FeatureStore(task.cache_dir).save(task.key, x, meta)
        except OSError as e:
            meta = {**meta, "notes": [*meta["notes"], f"not cached: {e}"]}
    return _Done(task.index, x=x, meta=meta)


def _init_worker() -> None:
    cv2.setNumThreads(1)  # one clip per core; OpenCV's own threads would oversubscribe


def available_cores() -> int:
    """The CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _run_all(tasks: list[_Task], workers: int, bar: tqdm) -> Iterator[_Done]:
    """Run tasks inline (``workers <= 1``) or on a pool of spawned processes."""
    if workers <= 1 or len(tasks) <= 1:
        for t in tasks:
            yield _run_task(t)
            bar.update()
        return
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=get_context("spawn"), initializer=_init_worker
    )
    try:
        futures: list[Future] = [pool.submit(_run_task, t) for t in tasks]
        for fut in as_completed(futures):
            yield fut.result()
            bar.update()
    except BrokenProcessPool as e:
        raise RuntimeError(
            "the preprocessing worker processes died (clips finished so far are cached). "
            "Workers are started with 'spawn': a script that calls build_features must do so "
            "under `if __name__ == '__main__':`; or pass workers=1."
        ) from e
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def infer_class_names(table: pd.DataFrame) -> tuple[str, ...]:
    """Class names in label order from the ``label`` / ``label_name`` columns (``()``
    without ``label``; ``"0"``, ``"1"``... without ``label_name``)."""
    if "label" not in table.columns or len(table) == 0:
        return ()
    labels = table["label"].astype(int)
    k = int(labels.max()) + 1
    if "label_name" not in table.columns:
        return tuple(str(i) for i in range(k))
    names = dict(zip(labels, table["label_name"].astype(str), strict=True))
    return tuple(names.get(i, str(i)) for i in range(k))


def build_features(
    table: pd.DataFrame,
    settings: PreprocessSettings | None = None,
    cache_dir: str | os.PathLike | None = None,
    workers: int | None = None,
    progress: bool = True,
    class_names: tuple[str, ...] | None = None,
) -> FeatureSet:
    """The network inputs of every clip of a sample table.

    Clips whose features are in ``cache_dir`` (a :class:`~mefr.preprocess.store.FeatureStore`
    folder; ``None``: no cache) are loaded, the others computed on ``workers`` processes
    (``None``: all available cores; 1: in this process) and cached as each finishes.
    Failed clips are left out (row i of the returned table is ``x[i]``) and listed in
    ``FeatureSet.failures``; one ``UserWarning`` summarises them, and one
    :class:`~mefr.preprocess.apex.ApexFallbackWarning` the clips whose missing apex was
    spotted by Eq. (1). ``class_names`` defaults to :func:`infer_class_names` of ``table``.
    """
    s = settings or PreprocessSettings()
    cache = str(Path(cache_dir)) if cache_dir is not None else None
    store = FeatureStore(cache) if cache is not None else None
    rows = table.to_dict("records")
    tasks = [_task_of(i, r, s, cache) for i, r in enumerate(rows)]
    done: dict[int, _Done] = {}
    for t in tasks:
        hit = store.load(t.key) if store is not None else None
        if hit is not None:
            done[t.index] = _Done(t.index, x=hit[0], meta=hit[1])
    cached = len(done)
    todo = [t for t in tasks if t.index not in done]
    n_workers = min(workers or available_cores(), max(len(todo), 1))
    with tqdm(
        total=len(tasks), initial=cached, disable=not progress, desc="preprocess", unit="clip"
    ) as bar:
        for d in _run_all(todo, n_workers, bar):
            done[d.index] = d
    ok = [i for i in range(len(tasks)) if done[i].failure is None]
    failures = tuple(done[i].failure for i in range(len(tasks)) if done[i].failure is not None)
    if failures:
        listing = "\n  ".join(str(f) for f in failures)
        warnings.warn(
            f"{len(failures)} of {len(tasks)} clips left out:\n  {listing}", stacklevel=2
        )
    out = table.iloc[ok].reset_index(drop=True).copy()
    metas = [done[i].meta for i in ok]
    noted = [m["sample"] for m in metas if m.get("apex_fallback")]
    if noted:
        warnings.warn(
            f"{len(noted)} clips had no usable annotated apex and were spotted with Eq. (1) "
            f"(see the table's preprocess_notes): {', '.join(noted[:5])}"
            + (", ..." if len(noted) > 5 else ""),
            ApexFallbackWarning,
            stacklevel=2,
        )
    out["apex_used"] = pd.array([m["apex_frame"] for m in metas], dtype="Int64")
    out["face_box"] = [tuple(m["face_box"][k] for k in "xywh") for m in metas]
    out["preprocess_notes"] = ["; ".join(m["notes"]) for m in metas]
    if s.register != "none":
        for column, key in HEAD_COLUMNS.items():
            out[column] = pd.array([_head_value(m, key) for m in metas], dtype="Float64")
    shape = ((0, 1, 1, lbp_top_dim(s.lbp_grid)) if s.descriptor == "lbptop"
             else (0, len(s.channels), s.size, s.size))
    x = np.stack([done[i].x for i in ok]).astype(np.float32) if ok else np.zeros(shape, np.float32)
    return FeatureSet(
        table=out,
        x=x,
        channels=s.channels,
        class_names=class_names if class_names is not None else infer_class_names(table),
        failures=failures,
        cached=cached,
        computed=len(todo),
    )
