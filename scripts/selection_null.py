"""How much choosing each test subject's best epoch adds when the labels carry no signal.

For each run directory with learning curves, prints the composite UF1 (Eq. 10) of the
model after the last epoch and of the LEAKY per-subject selection (each test subject
keeps the epoch of its best test accuracy), first with the true labels (as
``mefr audit`` does), then with the test labels shuffled across the pooled clips of a
seed (class counts kept; mean over draws). Against shuffled labels no epoch knows more
than another, so the second gain is what the selection adds by itself.

    python3 scripts/selection_null.py results/cde/fr-paper_adam results/cde/ststnet_curves
"""

from __future__ import annotations

import argparse
import platform
import warnings

import numpy as np

from mefr.evaluate.audit import audit_run, read_audit_records
from mefr.evaluate.selection_null import selection_under_shuffled_labels

LEAKY_ROW = "best epoch per subject, test accuracy"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", help="run directories with learning curves")
    ap.add_argument("--draws", type=int, default=20, help="shuffles per seed (default 20)")
    args = ap.parse_args()

    print(f"CPU: {platform.machine()}, {args.draws} shuffles per seed\n")
    print("| run | seeds | true labels: last epoch | true labels: per subject (LEAKY) | gain "
          "| shuffled: last epoch | shuffled: per subject (LEAKY) | gain |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for run in args.runs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # seeds still being trained are left out
            result = audit_run(run)
        config, records = read_audit_records(run)
        k = len(config["data"]["class_names"])
        last, picked = [], []
        for seed in result.seeds:
            recs = sorted((r for r in records if r.seed == seed), key=lambda r: r.fold)
            null = selection_under_shuffled_labels(recs, k, draws=args.draws, seed=seed)
            last.append(null["last epoch"].mean())
            picked.append(null["per subject"].mean())
        true_last = result.cell("last epoch")[0]
        true_picked = result.cell(LEAKY_ROW)[0]
        null_last, null_picked = float(np.mean(last)), float(np.mean(picked))
        seeds = ",".join(map(str, result.seeds))
        print(f"| `{run}` | {seeds} | {true_last:.4f} | {true_picked:.4f} "
              f"| {true_picked - true_last:+.4f} | {null_last:.4f} | {null_picked:.4f} "
              f"| {null_picked - null_last:+.4f} |")


if __name__ == "__main__":
    main()
