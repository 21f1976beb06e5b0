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

Steps 2-4 are :mod:`mefr.preprocess.clip` (one clip, also used for new clips by
:mod:`mefr.predict`); the settings are :class:`~mefr.preprocess.settings.PreprocessSettings`.
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
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mefr.data.flowset import FlowSet
from mefr.preprocess.apex import ApexFallbackWarning, ClipError, clip_span
from mefr.preprocess.clip import _features
from mefr.preprocess.face import PreprocessError
from mefr.preprocess.lbptop import lbp_top_dim
from mefr.preprocess.settings import HEAD_COLUMNS, PreprocessSettings
from mefr.preprocess.store import FeatureStore, cache_key


def _head_value(meta: Mapping, key: str) -> float | None:
    motion = meta.get("head_motion")
    return float(motion[key]) if isinstance(motion, Mapping) and key in motion else None


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
