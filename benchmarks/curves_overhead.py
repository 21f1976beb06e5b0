"""What recording learning curves costs: model-epochs per second with and without.

Trains the same jobs (CDE-sized: about 435 training and 7 test clips of 2 x 28 x 28 each)
through the engine with ``curves=False`` and ``curves=True``, alternating the two to even
out a shared machine's load, and prints a Markdown table with the hardware.

    python benchmarks/curves_overhead.py --model fr --jobs 2 --epochs 5 --repeats 3
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from _common import command_line, emit, hardware

from mefr.train.config import TrainConfig
from mefr.train.engine import train_group
from mefr.train.jobs import Job
from mefr.train.runtime import resolve_device


def _jobs(n_jobs: int, n_train: int, n_test: int) -> list[Job]:
    idx = np.arange(n_train + n_test)
    return [Job(f"seed0/fold{i}", 0, idx[:n_train], idx[n_train:]) for i in range(n_jobs)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="fr")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--select", default="none", choices=("none", "inner_val"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n_train, n_test = 435, 7
    x = rng.uniform(0, 1, (n_train + n_test, 2, 28, 28)).astype(np.float32)
    y = rng.integers(0, 3, n_train + n_test)
    groups = np.array([f"s{i % 68}" for i in range(n_train + n_test)], dtype=object)
    jobs = _jobs(args.jobs, n_train, n_test)
    cfg = TrainConfig(model=args.model, epochs=args.epochs, select_epoch_by=args.select)
    dev = resolve_device(args.device)
    rates: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.repeats):
        for curves in (False, True):
            t0 = time.perf_counter()
            train_group(x, y, jobs, cfg, 3, groups=groups, device=args.device,
                        progress=False, curves=curves)
            rates[curves].append(args.jobs * args.epochs / (time.perf_counter() - t0))
    off, on = np.median(rates[False]), np.median(rates[True])
    lines = [
        f"# Learning-curve overhead ({args.model}, {args.jobs} jobs x {args.epochs} epochs, "
        f"select_epoch_by={args.select}, {args.repeats} alternating repeats)",
        "",
        f"Hardware: {hardware(dev)}. Torch threads: {torch.get_num_threads()}.",
        f"Command: `{command_line()}`",
        "",
        "| curves | model-epochs/s (median) | all repeats |",
        "|---|---:|---|",
        f"| off | {off:.3f} | {', '.join(f'{r:.3f}' for r in rates[False])} |",
        f"| on | {on:.3f} | {', '.join(f'{r:.3f}' for r in rates[True])} |",
        "",
        f"Overhead: {100 * (off - on) / off:+.1f}% of the throughput without curves "
        "(negative: curves ran faster, i.e. within the machine's noise).",
    ]
    emit("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
