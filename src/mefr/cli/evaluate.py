"""Evaluation commands: ``mefr evaluate`` and ``mefr compare``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from mefr.cli.common import (
    Command,
    add_preprocess_options,
    add_training_options,
    error,
    print_summary,
    settings_from_args,
    split_list,
    training_epilog,
    training_overrides,
)


# --------------------------------------------------------------------------- evaluate
def _add_evaluate(p: argparse.ArgumentParser) -> None:
    from mefr.data.labels import LABELLINGS
    from mefr.evaluate.protocols import PROTOCOLS

    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--features", metavar="SCHEME:PATH",
                     help="pre-computed inputs, e.g. flowset:PATH (the composite flow set)")
    src.add_argument("--data", action="append", metavar="SCHEME:PATH",
                     help="raw databases, preprocessed first: casme2:ROOT, samm:ROOT, "
                     "smic_hs:ROOT... (repeatable, pooled) or synthetic:DIR")
    p.add_argument("--protocol", default="cde",
                   help="the split: " + " | ".join(PROTOCOLS))
    p.add_argument("--labels", default=None, choices=sorted(LABELLINGS),
                   help="with --data: the label mapping (default: cdmer for cdmer:<N>, "
                   "else cde)")
    p.add_argument("--cache", default=None, help="with --data: feature cache folder")
    p.add_argument("--workers", type=int, default=None,
                   help="with --data: preprocessing processes")
    add_training_options(p)
    p.add_argument("--seeds", default="0", help="e.g. 0-9 or 0,3,5")
    p.add_argument("--folds", default=None, metavar="SPEC",
                   help="a quick look: only these outer folds, by name as the run directory "
                   "names them or by 0-based index and range, e.g. 0-3,10 or casme2/sub01; "
                   "the run is marked PARTIAL until a run without --folds / --subjects "
                   "trains the rest (default: all folds)")
    p.add_argument("--subjects", default=None, metavar="LIST",
                   help="a quick look: only the folds that test these subjects, e.g. "
                   "casme2/sub01,samm/006 (a bare sub01 matches it in every database); "
                   "marked PARTIAL like --folds (default: all subjects)")
    p.add_argument("--run-dir", required=True, help="run directory (resumed if it exists)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--chunk", type=int, default=None, help="jobs per engine call (default: all)")
    p.add_argument("--deterministic", action="store_true",
                   help="CUDA: full-precision matrix products and deterministic cuDNN kernels "
                   "(slower; recorded in each fold file)")
    p.add_argument("--no-progress", action="store_true")
    g = p.add_argument_group("execution (see mefr.evaluate.executors)")
    g.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="train in this process, or as Ray tasks (pip install 'mefr[ray]')")
    g.add_argument("--address", default=None, metavar="ADDR",
                   help="Ray cluster to join (auto, HOST:PORT, ray://HOST:10001); "
                   "default: a local Ray instance")
    g.add_argument("--max-retries", type=int, default=2, help="Ray: retries of a failed task")
    g.add_argument("--jobs-per-task", type=int, default=None,
                   help="Ray: jobs per task (default: 1 on CPUs, spread over the GPUs)")
    g.add_argument("--cpus-per-task", type=float, default=1, help="Ray: CPU cores per task")
    g.add_argument("--gpus-per-task", type=float, default=None,
                   help="Ray: GPUs per task (default: 1 if the device is a GPU, else 0)")
    add_preprocess_options(p)
    p.epilog = training_epilog()


def _evaluation_features(args: argparse.Namespace, config: Any) -> tuple[Any, str]:
    """``--features`` loaded, or the ``--data`` databases read, labelled and preprocessed;
    with a description of the source (recorded in config.yaml)."""
    from mefr.model_inputs import check_channels, check_flowset_serves, labels_for_protocol
    from mefr.predict import load_training_data
    from mefr.preprocess.sources import load_features, source_scheme

    if args.features:
        if args.labels:
            raise ValueError(f"--labels {args.labels} applies to --data; the labels of "
                             f"--features {args.features} are those it was stored with")
        if source_scheme(args.features) == "flowset":
            check_flowset_serves(config.model, f"--features {args.features}")
        return load_features(args.features), args.features
    labels = args.labels or labels_for_protocol(args.protocol)
    settings = settings_from_args(args, config.model)
    check_channels(config.channels, settings)
    data = load_training_data(args.data, labels, settings, args.cache, args.workers,
                              progress=not args.no_progress)
    for failure in getattr(data.features, "failures", ()):
        print(f"failed       {failure}", file=sys.stderr)
    return data.features, f"{','.join(args.data)} ({labels} labels; {settings})"


def _run_evaluate(args: argparse.Namespace) -> int:
    from mefr.evaluate.executors import ExecutorError, make_executor
    from mefr.evaluate.rundir import RunDirError
    from mefr.evaluate.runner import run_protocol
    from mefr.train.config import resolve_config

    options: dict[str, Any] = {"deterministic": args.deterministic}
    if args.executor != "local":
        options |= {"address": args.address, "max_retries": args.max_retries,
                    "jobs_per_task": args.jobs_per_task, "num_cpus_per_task": args.cpus_per_task,
                    "num_gpus_per_task": args.gpus_per_task}
    try:
        config = resolve_config(args.preset, args.config, training_overrides(args))
        features, source = _evaluation_features(args, config)
        with make_executor(args.executor, **options) as executor:
            result = run_protocol(features, args.protocol, config, args.seeds, args.run_dir,
                                  device=args.device, train_fn=executor, chunk=args.chunk,
                                  progress=not args.no_progress, data_source=source,
                                  folds=args.folds, subjects=args.subjects)
    except (RunDirError, ExecutorError, ValueError, ImportError, ConnectionError,
            OSError) as e:
        return error(e)
    print_summary(result)
    return 0


def _evaluate_interrupted(args: argparse.Namespace) -> str:
    return (f"the finished folds are kept in {args.run_dir}; rerun the same command to train "
            "only the missing ones")


# --------------------------------------------------------------------------- compare
def _add_compare(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_a", help="run directory of model A")
    p.add_argument("run_b", help="run directory of model B")
    p.add_argument("--metrics", default="uf1,uar", help="comma-separated: acc, uf1, uar")
    p.add_argument("--databases", default=None,
                   help="comma-separated: composite and/or database names (default: all)")
    p.add_argument("--replicates", type=int, default=2000, help="bootstrap draws")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap draws")
    p.add_argument("--confidence", type=float, default=0.95, help="interval coverage")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _run_compare(args: argparse.Namespace) -> int:
    from dataclasses import asdict
    from pathlib import Path

    from mefr.evaluate.compare import compare_runs, differences_table

    try:
        results = compare_runs(
            args.run_a, args.run_b, metrics=split_list(args.metrics),
            databases=split_list(args.databases) if args.databases else None,
            replicates=args.replicates, seed=args.seed, confidence=args.confidence)
    except (ValueError, FileNotFoundError) as e:
        return error(e)
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    else:
        print(differences_table(results, f"A: {Path(args.run_a).name}",
                                f"B: {Path(args.run_b).name}"))
    return 0


COMMANDS: tuple[Command, ...] = (
    Command("evaluate", "train and score a model under a protocol over seeds into a "
            "resumable run directory", _add_evaluate, _run_evaluate, _evaluate_interrupted),
    Command("compare", "A minus B of two run directories on the same clips, with a paired "
            "bootstrap interval over subjects", _add_compare, _run_compare),
)
