"""Latency of `mefr predict` for one clip on this machine, split into its stages.

One synthetic CASME II-layout clip (640x480 frames by default, as CASME II's camera) is
predicted with an FR model of the paper's size. The stages are timed with the same
functions :meth:`mefr.predict.Predictor.predict` runs, one after the other:

* frame reading: decoding the clip's JPEG frames (onset to offset);
* face detection: libfacedetection (yuface) on the onset frame;
* apex spotting: cropping every frame with the onset's box and Eq. (1);
* flow: TV-L1 (OpenCV defaults) between the onset and apex crops, resize to 28x28,
  normalisation;
* network: one forward pass of FR (batch of one);

then end to end: ``Predictor.predict`` on the frame folder and on the same clip as an
MJPG ``.avi``, and the explanation (SmoothGrad saliency with 16 samples and the PNG).
The staged features are checked to equal the predictor's. Each number is the median
over ``--repeats`` runs (after one warm-up run).

Usage::

    python benchmarks/predict_latency.py [--repeats 10] [--frames 40 40] [--out FILE.md]

Prints a Markdown table with the hardware (and writes it to ``--out`` when given).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from _common import command_line, cpu_model, emit

from mefr.data import read_database, write_synthetic_databases
from mefr.predict import Predictor, folder_frames, load_training_data, train_model
from mefr.preprocess.apex import spot_apex
from mefr.preprocess.face import DETECT_MAX_SIDE, as_grey, crop, face_box, read_image
from mefr.preprocess.flow import compute_flow
from mefr.preprocess.pipeline import available_cores
from mefr.preprocess.settings import PreprocessSettings
from mefr.train.config import resolve_config


def timed(fn: Callable[[], Any], repeats: int) -> tuple[list[float], Any]:
    """Seconds of ``repeats`` calls of ``fn`` after one warm-up call, and its last result."""
    result = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return times, result


def make_model(root: Path) -> tuple[Predictor, Path]:
    """An FR of the paper's size, trained for one epoch on a small synthetic CASME II (the
    weights do not change the latency), and the frame folder of one of its clips."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = load_training_data([f"casme2:{root}"], "cde", PreprocessSettings(), workers=1,
                                  progress=False)
        config = resolve_config("fast", None, {"epochs": 1})
        predictor = train_model(data, config, device="cpu", progress=False)
    folder = Path(data.features.table["frames"].iloc[0][0]).parent
    return predictor, folder


def write_video(folder: Path, out: Path) -> Path:
    frames = [read_image(p) for p in folder_frames(folder)]
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), 200, (w, h))
    for f in frames:
        writer.write(f)
    writer.release()
    return out


def stage_times(predictor: Predictor, folder: Path, repeats: int, tmp: Path) -> list[tuple]:
    """``(stage, median seconds, min, max)`` rows."""
    s = predictor.settings
    paths = folder_frames(folder)
    rows = []

    def add(name: str, fn: Callable[[], Any]) -> Any:
        times, result = timed(fn, repeats)
        rows.append((name, statistics.median(times), min(times), max(times)))
        return result

    images = add("frame reading (decode all frames)", lambda: [read_image(p) for p in paths])
    box = add("face detection (onset)", lambda: face_box(
        images[0], margin=s.margin, square=s.square, conf=s.face_conf, max_side=DETECT_MAX_SIDE))

    def spot() -> tuple[list[np.ndarray], int]:
        crops = [crop(as_grey(img), box) for img in images]
        return crops, spot_apex(crops, "diff")

    crops, apex = add("apex spotting (crop all frames + Eq. (1))", spot)
    x = add("flow (TV-L1 + resize + normalise)", lambda: compute_flow(
        crops[0], crops[apex], size=s.size, strain=s.strain, normalisation=s.normalisation,
        scale=s.scale))
    net_in = predictor.network_input(x[None])
    add("network (FR forward, batch 1)", lambda: predictor.forward(net_in))
    staged = sum(r[1] for r in rows)
    rows.append(("sum of the stages", staged, float("nan"), float("nan")))

    (pred,) = add("end to end: Predictor.predict(frame folder)",
                  lambda: predictor.predict([folder]))
    clip = predictor.prepare(folder)
    if not np.array_equal(clip.x, x) or pred.apex_index != apex:
        raise RuntimeError("the staged features differ from the predictor's")
    video = write_video(folder, tmp / "clip.avi")
    add("end to end: Predictor.predict(.avi video)", lambda: predictor.predict([video]))
    add("explanation (SmoothGrad 16 + PNG)", lambda: predictor.predict(
        [folder], explain_dir=tmp / "explain", smoothgrad=16))
    return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--frames", type=int, nargs=2, default=(40, 40), metavar=("MIN", "MAX"))
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--out", type=Path, default=None, help="also write the table here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    with tempfile.TemporaryDirectory() as tmp:
        roots = write_synthetic_databases(
            tmp, databases=("casme2",), subjects=2, clips_per_subject=3,
            frames=tuple(args.frames), size=(args.height, args.width), seed=0,
        )
        predictor, folder = make_model(roots["casme2"])
        n_frames = len(folder_frames(folder))
        rows = stage_times(predictor, folder, args.repeats, Path(tmp))
        read_database("casme2", roots["casme2"])  # the database is still readable (sanity)
    command = command_line()
    lines = [
        "# Predict latency, one clip (CPU)",
        "",
        f"- date: {dt.date.today().isoformat()}",
        f"- command: `{command}`",
        f"- CPU: {cpu_model()}, {available_cores()} cores available; torch threads "
        f"{torch.get_num_threads()}, OpenCV threads {cv2.getNumThreads()}",
        f"- load average (1 min) before the run: {load_before:.2f} (other work on the machine "
        "slows the numbers down)",
        f"- torch {torch.__version__}, OpenCV {cv2.__version__}, numpy {np.__version__}, "
        f"Python {platform.python_version()}",
        f"- clip: one synthetic CASME II-layout clip, {args.width}x{args.height} JPEG frames, "
        f"{n_frames} frames onset..offset, apex spotted by Eq. (1); FR of the paper's size "
        f"({predictor.network}, {sum(p.numel() for p in predictor.model.parameters()):,} "
        "parameters)",
        f"- median (min-max) of {args.repeats} runs after one warm-up run",
        "",
        "| stage | median ms | min ms | max ms |",
        "|---|---:|---:|---:|",
    ]
    for name, med, lo, hi in rows:
        extra = ("| - | - |" if np.isnan(lo) else f"| {1e3 * lo:.1f} | {1e3 * hi:.1f} |")
        lines.append(f"| {name} | {1e3 * med:.1f} {extra}")
    emit("\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
