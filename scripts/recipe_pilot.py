"""Training-side evidence for choosing an FR recipe, without looking at a test fold.

Trains a few outer CDE folds under each candidate recipe with an inner validation split
(``select_epoch_by=inner_val``: a share of the fold's *training* subjects held out) and
prints, per recipe, what training alone shows: the final training loss and the inner
validation UF1 (at its best epoch and at the last). The test probabilities that the
engine records are never read.

    python3 scripts/recipe_pilot.py --features flowset:PATH --folds 0,23,46 --epochs 100
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from mefr.data.flowset import load_flowset, select_channels
from mefr.data.table import group_key
from mefr.evaluate.metrics import uf1
from mefr.evaluate.protocols import protocol_folds
from mefr.train.config import resolve_config
from mefr.train.engine import train_group
from mefr.train.jobs import Job

RECIPES: dict[str, tuple[str, str, dict]] = {
    # name: (model, preset, overrides)
    "cde (Adam 1e-4)": ("fr", "cde", {"select_epoch_by": "inner_val"}),
    "paper_adam (Adam 1e-3)": ("fr", "paper_adam", {}),
    "paper_adam, branch softmax": ("fr_branch_softmax", "paper_adam", {}),
    "paper_adam + flip + shift 1": ("fr", "paper_adam",
                                    {"augment_flip": True, "augment_shift": 1}),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--features", required=True, help="flowset:PATH")
    ap.add_argument("--folds", default="0,23,46", help="outer CDE fold numbers")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--recipes", default="", help="comma-separated subset of recipe names")
    args = ap.parse_args()
    fs = load_flowset(args.features.partition(":")[2])
    table = fs.table
    y = table["label"].to_numpy()
    groups = group_key(table).to_numpy(dtype=object)
    folds = protocol_folds(table, "cde")
    chosen = [folds[int(i)] for i in args.folds.split(",")]
    names = [n for n in RECIPES if not args.recipes or n in args.recipes.split(",")]
    print(f"# recipe pilot: {len(chosen)} outer CDE folds ({', '.join(f.name for f in chosen)}),"
          f" {args.epochs} epochs; {platform.processor() or platform.machine()}")
    print("| recipe | median final training loss | inner-val UF1, best epoch (epoch) "
          "| inner-val UF1, last epoch | minutes |")
    print("|---|---:|---:|---:|---:|")
    for name in names:
        model, preset, over = RECIPES[name]
        cfg = resolve_config(preset, overrides={"model": model, "epochs": args.epochs, **over})
        x = select_channels(fs.x, fs.channels, cfg.channels)
        jobs = [Job(f"seed0/{f.name}", 0, f.train_idx, f.test_idx) for f in chosen]
        t0 = time.perf_counter()
        r = train_group(x, y, jobs, cfg, len(fs.class_names), groups=groups, progress=False,
                        curves=True)
        minutes = (time.perf_counter() - t0) / 60
        losses, best, last, best_ep = [], [], [], []
        for j in jobs:
            c = r.info[j.key]["curves"]  # only the training-side arrays are read
            losses.append(float(c["train_loss"][-1]))
            truth = y[c["inner_val_index"]]
            scores = [uf1(truth, p.argmax(-1), len(fs.class_names)) for p in c["inner_val"]]
            best.append(max(scores))
            best_ep.append(int(np.argmax(scores)) + 1)
            last.append(scores[-1])
        print(f"| {name} | {np.median(losses):.4f} | {np.mean(best):.3f} "
              f"({', '.join(map(str, best_ep))}) | {np.mean(last):.3f} | {minutes:.1f} |",
              flush=True)


if __name__ == "__main__":
    main()
