"""``mefr reproduce NAME``: a table or figure of the paper beside ours."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

from mefr.cli.common import Command, error


def _add_reproduce(p: argparse.ArgumentParser) -> None:
    from mefr.report.options import DEFAULT_FLOWSET, ReproduceOptions, SyntheticSpec
    from mefr.report.targets import DEFAULT_PRESET, TARGETS

    o, s = ReproduceOptions(), SyntheticSpec()
    p.add_argument("name", choices=(*TARGETS, "all"))
    p.add_argument("--data", choices=("real", "synthetic"), default=o.data,
                   help="real: the composite flow set where it serves, synthetic databases "
                   "elsewhere (marked); synthetic: synthetic databases everywhere")
    p.add_argument("--seeds", default=None,
                   help="e.g. 0-9 (default: the seeds a run already has, else 0)")
    p.add_argument("--epochs", type=int, default=None, help="override the preset's epochs")
    p.add_argument("--preset", default=None,
                   help=f"training preset for every run (default: {DEFAULT_PRESET}, the "
                   "recipe results/README.md reports; paper_single is the paper's for CDMER "
                   "and single databases)")
    p.add_argument("--device", default=o.device, help="auto | cpu | cuda[:N]")
    p.add_argument("--results", default=str(o.results), help="root of the run directories")
    p.add_argument("--out", default=None,
                   help="where NAME.md/.csv/.tex/.png go (default: RESULTS/report, or "
                   "RESULTS/synthetic/report with --data synthetic; report-PRESET "
                   "under another --preset, -eN under another --epochs)")
    p.add_argument("--flowset", default=None,
                   help=f"the MEGC 2019 composite flow set (default: $MEFR_FLOWSET or "
                   f"{DEFAULT_FLOWSET})")
    p.add_argument("--work", default=str(o.work),
                   help="synthetic databases and feature cache")
    p.add_argument("--synthetic-dir", default=None,
                   help="use the synthetic databases written there by `mefr synth`")
    p.add_argument("--synthetic-subjects", type=int, default=s.subjects,
                   help="subjects per database")
    p.add_argument("--synthetic-clips", type=int, default=s.clips, help="clips per subject")
    p.add_argument("--workers", type=int, default=None, help="preprocessing processes")
    p.add_argument("--chunk", type=int, default=None, help="jobs per engine call")
    p.add_argument("--no-train", action="store_true",
                   help="train nothing: render from finished runs (an error when one is "
                   "missing, unless --allow-missing)")
    p.add_argument("--allow-missing", action="store_true",
                   help="with --no-train: render what is finished, 'not yet run' elsewhere")
    p.add_argument("--no-progress", action="store_true")


def _run_reproduce(args: argparse.Namespace) -> int:
    from mefr.evaluate.rundir import RunDirError
    from mefr.report.options import ReproduceError, ReproduceOptions, SyntheticSpec
    from mefr.report.reproduce import Reproducer, target_names

    try:
        spec = SyntheticSpec(subjects=args.synthetic_subjects, clips=args.synthetic_clips,
                             root=Path(args.synthetic_dir) if args.synthetic_dir else None)
        options = ReproduceOptions(
            data=args.data, seeds=args.seeds, epochs=args.epochs, preset=args.preset,
            device=args.device, results=Path(args.results),
            out=Path(args.out) if args.out else None,
            flowset=Path(args.flowset) if args.flowset else None, work=Path(args.work),
            synthetic=spec, workers=args.workers, chunk=args.chunk, train=not args.no_train,
            progress=not args.no_progress, allow_missing=args.allow_missing)
    except ValueError as e:
        return error(e)
    print(f"results      {Path(options.results).resolve()} (run directories)")
    print(f"report       {options.out_dir.resolve()}")
    rep, failed = Reproducer(options), 0
    with _shown(logging.getLogger("mefr.report.features")):
        for name in target_names(args.name):
            try:
                for line, _ in rep.status_lines(name):
                    print(line)
                paths = rep.reproduce(name)
            except (ReproduceError, RunDirError, ValueError) as e:
                error(e)
                failed += 1
                continue
            print(f"{name}: " + ", ".join(str(p) for p in paths.values()))
    return 2 if failed else 0


@contextlib.contextmanager
def _shown(logger: logging.Logger) -> Iterator[None]:
    """Print ``logger``'s INFO messages (what the reports write) while the command runs."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _reproduce_interrupted(args: argparse.Namespace) -> str:
    return (f"finished folds are kept in the run directories under {Path(args.results)}; "
            "rerun the same command to resume")


COMMANDS: tuple[Command, ...] = (
    Command("reproduce", "reproduce a table or figure of the paper: run what it needs "
            "(finished runs are reused) and write it beside the paper's numbers",
            _add_reproduce, _run_reproduce, _reproduce_interrupted),
)
