"""The shipped models: the wheel's size with them, and their predict latency per clip.

For each model of ``mefr models --pretrained``: its weights file, the time to load it by
name (``Predictor.from_pretrained``: sha256 check, header, weights), one forward pass of
the network (batch of one) and ``Predictor.predict`` end to end on one synthetic
CASME II-layout clip (face detection, Eq. (1) apex spotting, TV-L1 flow, network), given
as a frame folder and as an MJPG ``.avi``. Each time is the median of ``--repeats`` runs
after one warm-up run. The wheel is built with ``pip wheel . --no-deps`` (or read from
``--wheel``).

Usage::

    python benchmarks/pretrained.py [--repeats 5] [--wheel mefr-*.whl] [--out FILE.md]

Prints a Markdown table with the hardware (and writes it to ``--out`` when given).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import subprocess
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

from mefr.data import write_synthetic_databases
from mefr.predict import Predictor, folder_frames
from mefr.predict.pretrained import read_index
from mefr.preprocess.face import read_image
from mefr.preprocess.pipeline import available_cores

REPO = Path(__file__).resolve().parent.parent


def median_ms(fn: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """Median wall-clock and CPU milliseconds (this process, all threads) of ``repeats``
    calls of ``fn`` after one warm-up call. On a shared machine the CPU time is the
    steadier number; the wall time is what a user waits."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return 1e3 * statistics.median(wall), 1e3 * statistics.median(cpu)


def build_wheel(out: Path) -> tuple[Path, float]:
    """The wheel of this checkout (``pip wheel . --no-deps``) and the seconds it took."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-q",
                    "-w", str(out)], check=True)
    return next(out.glob("mefr-*.whl")), time.perf_counter() - t0


def write_video(folder: Path, out: Path) -> Path:
    frames = [read_image(p) for p in folder_frames(folder)]
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), 200, (w, h))
    for f in frames:
        writer.write(f)
    writer.release()
    return out


def load(name: str) -> Predictor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the flow-set note of every shipped model
        return Predictor.from_pretrained(name)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--frames", type=int, default=40, help="frames of the synthetic clip")
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--wheel", type=Path, default=None, help="a built wheel (default: build one)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: torch's own; 1 is faster on a busy machine)")
    p.add_argument("--out", type=Path, default=None, help="also write the table here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    index = read_index()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        wheel, wheel_s = (args.wheel, float("nan")) if args.wheel else build_wheel(Path(tmp))
        wheel_bytes = wheel.stat().st_size
        roots = write_synthetic_databases(
            Path(tmp) / "db", databases=("casme2",), subjects=1, clips_per_subject=1,
            frames=(args.frames, args.frames), size=(args.height, args.width), seed=0)
        folder = sorted((roots["casme2"] / "CASME2_RAW_selected").glob("*/*"))[0]
        video = write_video(folder, Path(tmp) / "clip.avi")
        for name, entry in index.items():
            predictor = load(name)
            x = predictor.network_input(predictor.prepare(folder).x[None])
            (pred,) = predictor.predict([folder])
            if not pred.ok:
                raise RuntimeError(f"{name}: {pred.error}")
            rows.append((
                name, sum(p.numel() for p in predictor.model.parameters()), entry.dtype,
                entry.bytes, median_ms(lambda n=name: load(n), args.repeats),
                median_ms(lambda p=predictor, x=x: p.forward(x), args.repeats),
                median_ms(lambda p=predictor: p.predict([folder]), args.repeats),
                median_ms(lambda p=predictor: p.predict([video]), args.repeats)))
    built = ("given" if args.wheel else f"built by `pip wheel . --no-deps` in {wheel_s:.0f} s")
    lines = [
        "# Shipped models: wheel size and predict latency per clip (CPU)",
        "",
        f"- date: {dt.date.today().isoformat()}",
        f"- command: `{command_line()}`",
        f"- CPU: {cpu_model()}, {available_cores()} cores available; torch threads "
        f"{torch.get_num_threads()}, OpenCV threads {cv2.getNumThreads()}",
        f"- load average (1 min) before the run: {load_before:.2f} (other work on the machine "
        "slows the numbers down)",
        f"- torch {torch.__version__}, OpenCV {cv2.__version__}, numpy {np.__version__}, "
        f"Python {platform.python_version()}",
        f"- wheel: `{wheel.name}`, {wheel_bytes:,} bytes ({wheel_bytes / 2**20:.1f} MiB), "
        f"{built}",
        f"- clip: one synthetic CASME II-layout clip, {args.width}x{args.height} JPEG frames, "
        f"{args.frames} frames, apex spotted by Eq. (1); median of {args.repeats} runs after "
        "one warm-up run",
        "",
        "Each cell: median wall-clock ms (median CPU ms of this process).",
        "",
        "| model | parameters | weights | load by name | network (batch 1) "
        "| predict, frame folder | predict, .avi |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for name, params, dtype, size, *times in rows:
        cells = " | ".join(f"{w:.0f} ({c:.0f})" if w >= 10 else f"{w:.1f} ({c:.1f})"
                           for w, c in times)
        lines.append(f"| {name} | {params:,} | {dtype}, {size / 2**20:.1f} MiB | {cells} |")
    emit("\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
