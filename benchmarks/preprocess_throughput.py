"""Preprocessing throughput: clips per second from raw frames to 28x28 network inputs.

Each clip goes through the whole of :func:`mefr.preprocess.build_features`: frame
reading, face detection on the onset (libfacedetection), apex choice, TV-L1 flow between
the cropped onset and apex, resize and normalisation. The clips come from
:func:`mefr.data.write_synthetic_databases` (CASME II layout, 640x480 frames by default,
as CASME II's camera); no cache is used, so every clip is computed. The worker start-up
(spawned processes) is part of the measured time, as it is for a user.

Usage::

    python benchmarks/preprocess_throughput.py [--subjects 2] [--clips-per-subject 6]
        [--workers 1 2] [--policies annotated diff] [--out FILE.md]

Prints a Markdown table (and writes it to ``--out`` when given) with the hardware.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from _common import command_line, cpu_model, emit

from mefr.data import read_database, write_synthetic_databases
from mefr.preprocess.pipeline import available_cores, build_features
from mefr.preprocess.settings import PreprocessSettings


def time_build(table, settings: PreprocessSettings, workers: int) -> float:
    """Seconds to build the features of ``table`` without a cache."""
    t0 = time.perf_counter()
    fs = build_features(table, settings, cache_dir=None, workers=workers, progress=False)
    elapsed = time.perf_counter() - t0
    if fs.failures:
        raise RuntimeError(f"{len(fs.failures)} clips failed: {fs.failures[0]}")
    return elapsed


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--subjects", type=int, default=2)
    p.add_argument("--clips-per-subject", type=int, default=6)
    p.add_argument("--frames", type=int, nargs=2, default=(30, 60), metavar=("MIN", "MAX"))
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--policies", nargs="+", default=["annotated", "diff"])
    p.add_argument("--out", type=Path, default=None, help="also write the table here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    with tempfile.TemporaryDirectory() as tmp:
        roots = write_synthetic_databases(
            tmp,
            databases=("casme2",),
            subjects=args.subjects,
            clips_per_subject=args.clips_per_subject,
            frames=tuple(args.frames),
            size=(args.height, args.width),
            seed=0,
        )
        table = read_database("casme2", roots["casme2"])
        n_frames = [len(f) for f in table["frames"]]
        rows = []
        for policy in args.policies:
            settings = PreprocessSettings(apex_policy=policy)
            for w in args.workers:
                sec = time_build(table, settings, w)
                rows.append((policy, w, len(table), sec, len(table) / sec))
    command = command_line()
    lines = [
        "# Preprocessing throughput (CPU)",
        "",
        f"- date: {dt.date.today().isoformat()}",
        f"- command: `{command}`",
        f"- CPU: {cpu_model()}, {available_cores()} cores available",
        f"- load average (1 min) before the run: {load_before:.2f} (other work on the machine "
        "slows the numbers down)",
        f"- OpenCV {cv2.__version__}, numpy {np.__version__}, Python {platform.python_version()}",
        f"- clips: {len(table)} synthetic CASME II-layout clips, {args.width}x{args.height} "
        f"frames, {min(n_frames)}-{max(n_frames)} frames per clip (onset..offset); "
        "face detection + apex + TV-L1 (OpenCV defaults) + resize to 28x28, no cache",
        f"- workers=1 runs in the calling process, where OpenCV uses its own threads "
        f"({cv2.getNumThreads()} here); with workers=N, N spawned processes run one clip each "
        "with one OpenCV thread (their start-up is in the time)",
        "",
        "| apex policy | workers | clips | seconds | clips/s |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {p} | {w} | {n} | {s:.1f} | {r:.2f} |" for p, w, n, s, r in rows]
    emit("\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
