"""``mefr audit RUN_DIR...``: honest and test-selected (LEAKY) scores of finished runs."""

from __future__ import annotations

import argparse

from mefr.cli.common import Command, error


def _add_audit(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                   help="run directories with learning curves (mefr evaluate writes them)")
    p.add_argument("--out", default="audit",
                   help="folder for audit.md, audit_<run>.json and audit.png")
    p.add_argument("--name", default="audit", help="file name stem of the outputs")
    p.add_argument("--shuffled-draws", type=int, default=20, metavar="N",
                   help="test-label shuffles per seed to measure what the per-subject "
                        "selection adds with no signal (default 20; 0 skips it)")


def _run_audit(args: argparse.Namespace) -> int:
    from mefr.evaluate.audit import AuditError
    from mefr.evaluate.rundir import RunDirError
    from mefr.report.audit_report import write_audit

    try:
        files = write_audit(args.run_dirs, args.out, args.name,
                            shuffled_draws=max(0, args.shuffled_draws))
    except (AuditError, RunDirError, OSError) as e:
        return error(e)
    print(files.tables[0].read_text(), end="")
    print(f"wrote {', '.join(str(p) for p in (*files.tables, files.figure))}")
    return 0


def _add_ensemble(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                   help="finished runs of the same protocol on the same clips")
    p.add_argument("--out", default=None, help="also write the table to this Markdown file")
    p.add_argument("--seeds", default=None, metavar="SPEC",
                   help="only these seeds of every run, e.g. 0-4 (default: every finished "
                        "seed of each run)")
    p.add_argument("--subsets", type=int, default=None, metavar="K",
                   help="also score the ensemble of every choice of K seeds from each run "
                        "(at most 1000, drawn at random beyond that): mean ± std and range "
                        "over the choices, i.e. how much the figure depends on the seeds")


def _run_ensemble(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mefr.evaluate.audit import AuditError
    from mefr.evaluate.ensemble import ensemble_of_runs
    from mefr.evaluate.protocols import parse_seeds
    from mefr.evaluate.rundir import RunDirError

    try:
        seeds = parse_seeds(args.seeds) if args.seeds is not None else None
        result = ensemble_of_runs(args.run_dirs, seeds=seeds, subset_size=args.subsets)
    except (AuditError, RunDirError, OSError, ValueError) as e:
        return error(e)
    text = result.markdown()
    print(text, end="")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    return 0


COMMANDS = (
    Command("audit", "honest vs test-selected (LEAKY) epochs of finished runs", _add_audit,
            _run_audit,
            description="Score the selections a reader meets in the literature on runs "
            "with learning curves: honest (last epoch, inner validation, seed ensemble) "
            "and LEAKY (the test fold chooses the epoch), each labelled in the table."),
    Command("ensemble", "honest ensemble of finished runs: probabilities averaged per clip",
            _add_ensemble, _run_ensemble,
            description="Average the evaluated models' class probabilities per clip over "
            "each run's seeds, then over the runs (one network each), and score the mean."),
)
