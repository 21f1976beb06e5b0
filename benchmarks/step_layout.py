"""Time one training step of a group of models: convolution layout and implementation.

The engine packs G models into grouped convolutions. Which memory layout (channels-last
or NCHW) and which implementation (one grouped ``F.conv2d``, or the unfold + batched
matmul of ``MEFR_GROUP_CONV=matmul``) the device runs fastest for that shape is measured,
not guessed::

    python benchmarks/step_layout.py --device cuda --models 136 --out step_layout_cuda.md
    python benchmarks/step_layout.py --device cpu --models 1

Prints a Markdown table (ms per step, model-steps per second) headed by the hardware,
and the fastest setting on its last line as ``best=<conv>,<layout>``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
from _common import command_line, emit, group_train_step, hardware

from mefr.train.runtime import resolve_device

#: (implementation, channels_last) pairs timed; the matmul path unfolds NCHW columns, so
#: it is timed in that layout only
SETTINGS = (("native", True), ("native", False), ("matmul", False))


def time_steps(model_name: str, g: int, conv: str, channels_last: bool,
               device: torch.device, steps: int, batch: int = 32) -> float:
    """Seconds per fused-Adam training step of ``g`` models (after warm-up)."""
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    os.environ["MEFR_GROUP_CONV"] = conv
    step = group_train_step(model_name, g, device, batch, channels_last=channels_last)

    for _ in range(3):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--model", default="fr")
    ap.add_argument("--models", type=int, default=1)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    dev = resolve_device(args.device)
    lines = [f"# One training step of {args.models} x {args.model} (batch 32, fused Adam)", "",
             f"- hardware: {hardware(dev)}", f"- command: `{command_line()}`", "",
             "| group convolution | layout | G | ms / step | model-steps / s |",
             "|---|---|---:|---:|---:|"]
    results = {}
    for conv, cl in SETTINGS:
        s = time_steps(args.model, args.models, conv, cl, dev, args.steps)
        layout = "channels-last" if cl else "NCHW"
        results[(conv, layout)] = s
        lines.append(f"| {conv} | {layout} | {args.models} | {1000 * s:.2f} | "
                     f"{args.models / s:.1f} |")
    conv, layout = min(results, key=results.get)
    lines += ["", f"best={conv},{layout}"]
    emit("\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
