"""Training throughput: model-epochs per second, naive loop vs mefr's engine.

A model-epoch is one pass of one model over its training fold. Both paths train FR
(or ``--model``) on the CDE composite (the real flow set when present, else random
inputs of the same shape: 442 clips, 68 subjects), batch 32, Adam, in the same run on
the same machine.

* naive: the conventional loop of peer code - a plainly written PyTorch network
  (``nn.Conv2d`` / ``nn.Linear``, NCHW), ``torch.optim.Adam`` with its defaults, one
  model after another in one process.
* engine: :func:`mefr.train.engine.train_group` with its defaults for the device
  (CPU: channels-last, fused Adam, one process per core; CUDA: all models of the
  protocol stacked into groups, TF32, fused Adam).

Usage::

    python benchmarks/train_throughput.py                    # CPU
    python benchmarks/train_throughput.py --device cuda --seeds 10 \\
        --peak-tflops 495 --peak-tbps 4.8               # H200: TF32 dense, HBM3e

Prints a Markdown table with the hardware; ``--out FILE`` also writes it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from _common import emit, group_train_step, hardware
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from mefr.models.layers import GROUP_CONV_IMPLS
from mefr.models.registry import count_parameters, create_model
from mefr.train.config import TrainConfig
from mefr.train.engine import train_group
from mefr.train.jobs import Job
from mefr.train.losses import fr_loss
from mefr.train.runtime import resolve_device

#: Bytes of fp32 weight traffic per parameter and training step with Adam, the least a
#: step can move when the weights do not stay in cache: the forward and the backward
#: pass each read the weight (4 + 4), the backward writes its gradient (4), Adam reads
#: gradient, weight and both moments (16) and writes weight and moments (12).
WEIGHT_BYTES_PER_PARAM_STEP = 40

FLOWSET_CANDIDATES = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "megc2019-cde-flow",
    Path(__file__).resolve().parents[1] / ".devdata" / "megc2019-cde-flow",
)


# --------------------------------------------------------------------- naive path
class _PlainInception(nn.Module):
    def __init__(self, cin: int, w: int) -> None:
        super().__init__()
        self.b1 = nn.Conv2d(cin, w, 1)
        self.b3 = nn.Sequential(nn.Conv2d(cin, w, 1), nn.ReLU(), nn.Conv2d(w, w, 3, padding=1))
        self.b5 = nn.Sequential(nn.Conv2d(cin, w, 1), nn.ReLU(), nn.Conv2d(w, w, 5, padding=2))
        self.bp = nn.Conv2d(cin, w, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.max_pool2d(x, 3, 1, 1)
        return torch.cat([F.relu(self.b1(x)), F.relu(self.b3(x)), F.relu(self.b5(x)),
                          F.relu(self.bp(pooled))], 1)


class PlainFR(nn.Module):
    """FR written as peer code writes networks (for the naive baseline only)."""

    def __init__(self, k: int = 3) -> None:
        super().__init__()
        self.streams = nn.ModuleList(
            nn.Sequential(_PlainInception(1, 6), nn.MaxPool2d(2), _PlainInception(24, 16),
                          nn.MaxPool2d(2), nn.Flatten()) for _ in range(2))
        self.shared = nn.Linear(6272, 1024)
        self.att = nn.ModuleList(nn.Linear(1024, 1024) for _ in range(k))
        self.det = nn.ModuleList(nn.Sequential(nn.Linear(1024, 128), nn.ReLU(), nn.Linear(128, 1))
                                 for _ in range(k))
        self.cls = nn.Sequential(nn.Linear(1024, 256), nn.ReLU(), nn.Dropout(0.5),
                                 nn.Linear(256, k))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = torch.cat([s(x[:, i:i + 1]) for i, s in enumerate(self.streams)], 1)
        z = F.relu(self.shared(feats))
        zk = [torch.softmax(a(z), -1) * z for a in self.att]
        det = torch.cat([d(f) for d, f in zip(self.det, zk, strict=True)], 1)
        return self.cls(sum(zk)), det


def naive_model_epochs_per_second(x: torch.Tensor, y: torch.Tensor, jobs: list[Job],
                                  epochs: int, device: torch.device) -> float:
    """Train each job alone with the plain network and default Adam; model-epochs/s."""
    t0 = time.perf_counter()
    for job in jobs:
        torch.manual_seed(job.seed)
        model = PlainFR().to(device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        train = torch.as_tensor(job.train_idx, device=device)
        for _ in range(epochs):
            perm = train[torch.randperm(len(train), device=device)]
            for s in range(0, len(perm), 32):
                b = perm[s:s + 32]
                logits, det = model(x[b])
                target = F.one_hot(y[b], 3).float()
                loss = F.cross_entropy(logits, y[b]) + 0.85 * F.binary_cross_entropy_with_logits(
                    det, target)
                opt.zero_grad()
                loss.backward()
                opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
    return len(jobs) * epochs / (time.perf_counter() - t0)


# --------------------------------------------------------------------- helpers
def load_composite() -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    found = [p for p in FLOWSET_CANDIDATES if p.is_dir()]
    if found:
        from mefr.data.flowset import load_flowset
        from mefr.data.table import group_key

        fs = load_flowset(found[0])
        return (fs.select_channels(("u", "v")), fs.table["label"].to_numpy(),
                group_key(fs.table).to_numpy(), "real MEGC 2019 composite flows")
    rng = np.random.default_rng(0)
    groups = np.repeat([f"s{i}" for i in range(68)], 7)[:442]
    return (rng.random((442, 2, 28, 28), dtype=np.float32), rng.integers(0, 3, 442), groups,
            "random inputs of the composite's shape")


def loso_jobs(groups: np.ndarray, seeds: int, folds: int | None) -> list[Job]:
    subjects = sorted(set(groups))[: folds or None]
    idx = np.arange(len(groups))
    return [Job(f"seed{s}/{g}", s, idx[groups != g], idx[groups == g])
            for s in range(seeds) for g in subjects]


def flops_per_model_epoch(model_name: str, n_train: int, batch: int = 32) -> float:
    """fwd + bwd FLOPs of one model over one training fold (torch's FLOP counter)."""
    m = create_model(model_name, 3)
    m.init_models([0])
    x = torch.rand(1, batch, 2, 28, 28)
    y = torch.randint(0, 3, (1, batch))
    w = torch.ones(1, batch)
    with FlopCounterMode(display=False) as fc:
        fr_loss(m(x, w), y, w).sum().backward()
    return fc.get_total_flops() * n_train / batch


def profile_steps(model_name: str, g: int, device: torch.device, steps: int = 3) -> str:
    """torch.profiler table of a few training steps of a group of ``g`` models."""
    from torch.profiler import ProfilerActivity, profile

    step = group_train_step(model_name, g, device)

    for _ in range(2):
        step()
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        for _ in range(steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=15)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", default="fr")
    ap.add_argument("--seeds", type=int, default=1, help="engine: seeds x 68 folds")
    ap.add_argument("--folds", type=int, default=None, help="engine: first N folds only")
    ap.add_argument("--epochs", type=int, default=2, help="engine epochs (2 runs: E and 3E)")
    ap.add_argument("--naive-jobs", type=int, default=2)
    ap.add_argument("--naive-epochs", type=int, default=1)
    ap.add_argument("--peak-tflops", type=float, default=None,
                    help="the card's dense TF32 peak, for the fraction reached")
    ap.add_argument("--peak-tbps", type=float, default=None,
                    help="the card's memory bandwidth in TB/s, for the bandwidth bound")
    ap.add_argument("--profile", type=int, default=0, metavar="G",
                    help="also print a profile of 3 steps of a group of G models")
    ap.add_argument("--conv", choices=GROUP_CONV_IMPLS, default="native",
                    help="engine: how the group convolutions compute (MEFR_GROUP_CONV; "
                         "matmul: unfold + one batched matrix product)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    os.environ["MEFR_GROUP_CONV"] = args.conv  # the engine's worker processes inherit it

    dev = resolve_device(args.device)
    x_np, y_np, groups, data_desc = load_composite()
    jobs = loso_jobs(groups, args.seeds, args.folds)
    x = torch.from_numpy(x_np).to(dev)
    y = torch.from_numpy(y_np).to(dev)

    naive = naive_model_epochs_per_second(x, y, jobs[: args.naive_jobs], args.naive_epochs, dev)
    cfg = TrainConfig(model=args.model, epochs=args.epochs)
    # A warm-up call (process spawn, cuDNN autotuning, allocator) is discarded; then two
    # engine runs of E and 3E epochs: their difference is the steady-state rate (start-up
    # and evaluation cancel out).
    train_group(x_np, y_np, jobs, TrainConfig(model=args.model, epochs=1), 3, groups=groups,
                device=str(dev), progress=False)
    times = []
    for e in (args.epochs, 3 * args.epochs):
        cfg = TrainConfig(model=args.model, epochs=e)
        t0 = time.perf_counter()
        train_group(x_np, y_np, jobs, cfg, 3, groups=groups, device=str(dev), progress=False)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    steady = len(jobs) * 2 * args.epochs / d if (d := times[1] - times[0]) > 0 else math.nan
    overall = len(jobs) * 3 * args.epochs / times[1]

    n_train = int(np.mean([len(j.train_idx) for j in jobs]))
    fl = flops_per_model_epoch(args.model, n_train) if args.model == "fr" else float("nan")
    with torch.device("meta"):
        params = count_parameters(create_model(args.model, 3))
    plain = sum(p.numel() for p in PlainFR().parameters())
    rows = [
        ("naive loop (plain PyTorch FR, default Adam, 1 model at a time)",
         f"{naive:.2f}", f"{args.naive_jobs} jobs x {args.naive_epochs} epochs"),
        ("engine, steady state", f"{steady:.2f}",
         f"{len(jobs)} jobs, {args.epochs}->{3 * args.epochs} epochs"),
        ("engine, whole call incl. start-up and evaluation", f"{overall:.2f}",
         f"{len(jobs)} jobs x {3 * args.epochs} epochs in {times[1]:.1f} s"),
    ]
    lines = [
        f"# Training throughput ({dt.date.today().isoformat()})",
        "",
        f"- hardware: {hardware(dev)}",
        f"- device: {dev.type}; data: {data_desc}; model: {args.model} ({params:,} parameters;"
        f" plain re-implementation: {plain:,}); engine's group convolutions: {args.conv}",
        f"- command: `python benchmarks/train_throughput.py {' '.join(argv or sys.argv[1:])}`",
        "",
        "| path | model-epochs / s | measured on |",
        "|---|---:|---|",
        *[f"| {a} | {b} | {c} |" for a, b, c in rows],
        "",
        f"Speed-up of the engine (steady state) over the naive loop: **{steady / naive:.2f}x**.",
    ]
    if fl == fl:  # not NaN
        achieved = steady * fl / 1e12
        lines.append(f"Arithmetic: {fl / 1e9:.1f} GFLOP per model-epoch (fwd+bwd), i.e. "
                     f"{achieved:.1f} TFLOP/s at the engine's steady rate"
                     + (f", {100 * achieved / args.peak_tflops:.1f}% of the card's "
                        f"{args.peak_tflops:.0f} TFLOP/s" if args.peak_tflops else "") + ".")
    steps = math.ceil(n_train / 32)
    weight_bytes = WEIGHT_BYTES_PER_PARAM_STEP * params * steps
    lines.append(f"Weights read/written per model-epoch ({steps} steps of batch 32; fwd + bwd + "
                 f"Adam, {WEIGHT_BYTES_PER_PARAM_STEP} B/param/step): {weight_bytes / 1e9:.2f} GB.")
    if args.peak_tbps:
        bound = args.peak_tbps * 1e12 / weight_bytes
        lines.append(f"Bandwidth bound: at most {bound:.0f} model-epochs/s at "
                     f"{args.peak_tbps} TB/s while every step moves those bytes; the "
                     f"engine reached {100 * steady / bound:.1f}% of it.")
    if args.profile:
        lines += ["", f"Profile of 3 training steps, {args.profile} models in one group:", "",
                  "```", profile_steps(args.model, args.profile, dev), "```"]
    emit("\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
