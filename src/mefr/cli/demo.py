"""``mefr demo`` (also plain ``mefr``): the whole pipeline on small synthetic databases."""

from __future__ import annotations

import argparse
from pathlib import Path

from mefr.cli.common import Command, print_summary


def _add_demo(p: argparse.ArgumentParser) -> None:
    from mefr.demo import DEMO_EPOCHS

    p.add_argument("--out", default="mefr-demo", help="working folder (reused if present)")
    p.add_argument("--model", default="fr", help="network name (see `mefr models`)")
    p.add_argument("--epochs", type=int, default=DEMO_EPOCHS, help="training epochs")
    p.add_argument("--seeds", default="0", help="e.g. 0-2")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--no-progress", action="store_true")


def _megabytes(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def _run_demo(args: argparse.Namespace) -> int:
    from mefr.demo import DEMO_DISK_MB, run_demo

    out = Path(args.out).resolve()
    before = _megabytes(out) if out.is_dir() else 0.0
    if before:
        print(f"mefr demo: reusing {out} ({before:.0f} MB already there)")
    else:
        print(f"mefr demo: writing synthetic databases, a feature cache and a run directory "
              f"to {out} (about {DEMO_DISK_MB} MB)")
    res = run_demo(out, model=args.model, epochs=args.epochs, seeds=args.seeds,
                   device=args.device, progress=not args.no_progress)
    print_summary(res.run)
    print(f"{res.clips} synthetic clips ({res.failures} failed preprocessing); run directory: "
          f"{res.run.run_dir}")
    for stage, sec in res.seconds.items():
        print(f"  {stage:<28} {sec:7.1f} s")
    print(f"{out}: {_megabytes(out):.0f} MB on disk (delete the folder to free it)")
    print("Synthetic motions are far easier than real micro-expressions: these scores show "
          "that the pipeline learns, not how FR compares (see results/ for real data).")
    return 0


def _demo_interrupted(args: argparse.Namespace) -> str:
    return (f"what was finished is kept in {Path(args.out).resolve()}; rerun `mefr demo` "
            "with the same options to resume")


COMMANDS: tuple[Command, ...] = (
    Command("demo", "the whole pipeline on small synthetic databases (the default command)",
            _add_demo, _run_demo, _demo_interrupted),
)
