"""Time one training step of a group of models, channels-last vs NCHW convolutions.

The engine packs G models into grouped convolutions. Which memory layout the device's
convolution kernels prefer for that shape is measured, not guessed::

    python benchmarks/step_layout.py --device cuda --models 340
    python benchmarks/step_layout.py --device cpu --models 1

Prints a Markdown table (ms per step, model-steps per second) and the faster layout on
its last line as ``best_channels_last=<true|false>``.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from _common import group_train_step

from mefr.train.runtime import resolve_device


def time_steps(model_name: str, g: int, channels_last: bool, device: torch.device,
               steps: int, batch: int = 32) -> float:
    """Seconds per fused-Adam training step of ``g`` models (after warm-up)."""
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
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
    args = ap.parse_args(argv)
    dev = resolve_device(args.device)
    print(f"| layout | G | ms / step | model-steps / s |  ({dev}, {args.model})")
    print("|---|---:|---:|---:|")
    results = {}
    for cl in (True, False):
        s = time_steps(args.model, args.models, cl, dev, args.steps)
        results[cl] = s
        name = "channels-last" if cl else "NCHW"
        print(f"| {name} | {args.models} | {1000 * s:.2f} | {args.models / s:.1f} |")
    best = min(results, key=results.get)
    print(f"best_channels_last={'true' if best else 'false'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
