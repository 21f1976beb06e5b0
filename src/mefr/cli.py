"""The ``mefr`` command: a thin shell over the Python API.

Each sub-command is one ``_add_<name>`` function that declares its arguments and points
at one ``_run_<name>`` function, which calls the API and prints. No computation lives
here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence

Adder = Callable[[argparse._SubParsersAction], None]
_ADDERS: list[Adder] = []


def command(adder: Adder) -> Adder:
    """Register a sub-command declaration (kept in the order of this file)."""
    _ADDERS.append(adder)
    return adder


# --------------------------------------------------------------------------- models
@command
def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the networks and their parameter counts")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_run_models)


def _run_models(args: argparse.Namespace) -> int:
    from mefr.models.registry import model_specs

    specs = model_specs()
    if args.json:
        print(json.dumps(specs, indent=2))
    else:
        print(f"{'name':<20} {'K':>2} {'detector':>8} {'parameters':>12}")
        for s in specs:
            det = str(s.get("detector_units", "-"))
            print(f"{s['name']:<20} {s['num_classes']:>2} {det:>8} {s['parameters']:>12,}")
    return 0


# --------------------------------------------------------------------------- preprocessing
# Choices as in mefr.preprocess (APEX_POLICIES, FACE_MODES, NORMALISATIONS; a test keeps
# them equal), written out so that building the parser imports nothing heavy.
_APEX_POLICIES = ("annotated", "diff", "middle")
_FACE_MODES = ("detect", "none")
_NORMALISATIONS = ("minmax_per_image", "none", "global_scale")
_DESCRIPTORS = ("flow", "lbptop")
_DATASETS = ("casme2", "samm", "smic_hs", "smic_vis", "smic_nir")


def _add_preprocess_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("preprocessing (see mefr.preprocess.PreprocessSettings)")
    g.add_argument("--apex-policy", choices=_APEX_POLICIES, default=None,
                   help="default: the network's own (middle frame for dual_inception, else "
                   "annotated)")
    g.add_argument("--face", choices=_FACE_MODES, default="detect",
                   help="detect the face on the onset frame, or use whole frames")
    g.add_argument("--margin", type=float, default=0.0, help="face box margin (fraction)")
    g.add_argument("--square", action="store_true", help="square face box")
    g.add_argument("--face-size", type=int, default=None,
                   help="resize face crops to this side before the flow (default: native)")
    g.add_argument("--size", type=int, default=28, help="side of the network input")
    g.add_argument("--strain", action="store_true", help="add the optical strain channel")
    g.add_argument("--normalisation", choices=_NORMALISATIONS, default="minmax_per_image")
    g.add_argument("--descriptor", choices=_DESCRIPTORS, default=None,
                   help="flow (networks) or lbptop (hand-crafted baseline); default: what "
                   "the model reads, else flow")
    g.add_argument("--lbp-grid", type=int, default=5, help="LBP-TOP: grid x grid face blocks")
    g.add_argument("--lbp-radius", type=int, default=1, help="LBP-TOP: radius (pixels, frames)")


def _settings_from_args(args: argparse.Namespace, model: str | None = None
                        ):  # -> PreprocessSettings
    """Preprocessing settings of the command line; without ``--apex-policy`` or
    ``--descriptor``, those of ``model`` (Dual-Inception: the middle frame; lbptop_svm:
    LBP-TOP), else ``annotated`` and ``flow``."""
    from mefr.models.registry import model_entry
    from mefr.preprocess.pipeline import PreprocessSettings

    entry = model_entry(model) if model else None
    return PreprocessSettings(
        apex_policy=args.apex_policy or (entry.apex_policy if entry else "annotated"),
        face=args.face, margin=args.margin, square=args.square,
        face_size=args.face_size, size=args.size, strain=args.strain,
        normalisation=args.normalisation,
        descriptor=args.descriptor or (entry.descriptor if entry else "flow"),
        lbp_grid=args.lbp_grid, lbp_radius=args.lbp_radius,
    )


@command
def _add_prepare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prepare", help="faces, apex frames and TV-L1 flow of a raw database, "
                       "computed into a feature cache")
    p.add_argument("root", help="the database folder (as the licensee holds it)")
    p.add_argument("--database", choices=_DATASETS, required=True)
    p.add_argument("--cache", required=True, help="feature cache folder")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--no-progress", action="store_true")
    _add_preprocess_options(p)
    p.set_defaults(func=_run_prepare)


def _run_prepare(args: argparse.Namespace) -> int:
    import time

    from mefr.data import read_database
    from mefr.preprocess.pipeline import build_features

    try:
        settings = _settings_from_args(args)
        table = read_database(args.database, args.root)
    except ValueError as e:  # bad settings, AnnotationError (a ValueError)
        print(f"error: {e}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    fs = build_features(table, settings, args.cache, workers=args.workers,
                        progress=not args.no_progress)
    noted = int((fs.table["preprocess_notes"] != "").sum())
    print(f"database     {args.database} ({args.root}): {len(table)} clips read")
    print(f"features     {tuple(fs.x.shape)} channels {','.join(fs.channels)} -> {args.cache}")
    print(f"clips        {fs.cached} from the cache, {fs.computed} computed, "
          f"{len(fs.failures)} failed, in {time.perf_counter() - t0:.1f} s")
    print(f"apex         policy {settings.apex_policy}; {noted} clips with a note "
          "(no usable annotated apex: spotted with Eq. (1))")
    for f in fs.failures:
        print(f"failed       {f}")
    return 0


@command
def _add_detect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("detect", help="faces found by libfacedetection in images")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--conf", type=float, default=0.5, help="score threshold in [0, 1]")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_run_detect)


def _run_detect(args: argparse.Namespace) -> int:
    from mefr.preprocess.face import PreprocessError, detect_faces

    results, rc = [], 0
    for path in args.images:
        try:
            faces = [b.to_dict() for b in detect_faces(path, conf=args.conf)]
            results.append({"image": path, "faces": faces})
        except PreprocessError as e:
            results.append({"image": path, "faces": [], "error": str(e)})
            rc = 1
    if args.json:
        print(json.dumps(results, indent=2))
        return rc
    for r in results:
        if "error" in r:
            print(f"{r['image']}: error: {r['error']}")
        for b in r["faces"] or ([] if "error" in r else [None]):
            box = "no face" if b is None else (
                f"x={b['x']} y={b['y']} w={b['w']} h={b['h']} score={b['score']:.2f}")
            print(f"{r['image']}: {box}")
    return rc


@command
def _add_flow(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("flow", help="TV-L1 flow of the face between an onset and an apex image")
    p.add_argument("onset")
    p.add_argument("apex")
    p.add_argument("--out", required=True, help="output .npy: float32 (C, size, size)")
    _add_preprocess_options(p)
    p.set_defaults(func=_run_flow)


def _run_flow(args: argparse.Namespace) -> int:
    import numpy as np

    from mefr.preprocess.face import PreprocessError
    from mefr.preprocess.pipeline import clip_features

    try:
        feats = clip_features(args.onset, args.apex, _settings_from_args(args))
    except PreprocessError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    np.save(args.out, feats.x)
    b = feats.box
    print(f"{args.out}: {feats.x.dtype} {tuple(feats.x.shape)} ({','.join(feats.channels)}); "
          f"face box x={b.x} y={b.y} w={b.w} h={b.h}")
    return 0


# --------------------------------------------------------------------------- evaluate
@command
def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="train and score a model under a protocol over seeds "
                       "into a resumable run directory")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--features", metavar="SCHEME:PATH",
                     help="pre-computed inputs, e.g. flowset:PATH (the composite flow set)")
    src.add_argument("--data", action="append", metavar="SCHEME:PATH",
                     help="raw databases, preprocessed first: casme2:ROOT, samm:ROOT, "
                     "smic_hs:ROOT... (repeatable, pooled) or synthetic:DIR")
    p.add_argument("--protocol", default="cde",
                   help="cde | loso | loso:<dataset> | cdmer:<1..12> (default: cde)")
    p.add_argument("--labels", default=None,
                   help="with --data: label protocol, cde | cdmer | casme2_5class | four_class "
                   "(default: cdmer for cdmer:<N>, else cde)")
    p.add_argument("--cache", default=None, help="with --data: feature cache folder")
    p.add_argument("--workers", type=int, default=None,
                   help="with --data: preprocessing processes")
    p.add_argument("--model", default=None, help="network name (overrides preset and file)")
    p.add_argument("--preset", default="cde", help="training preset (default: cde)")
    p.add_argument("--config", default=None, metavar="FILE", help="YAML training settings")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one training setting (repeatable)")
    p.add_argument("--seeds", default="0", help="e.g. 0-9 or 0,3,5 (default: 0)")
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
    _add_preprocess_options(p)
    p.set_defaults(func=_run_evaluate)


def _check_flowset_model(args: argparse.Namespace, model: str) -> None:
    """A flow set holds onset->apex flow with its own labels: refuse a network that needs
    other inputs (Dual-Inception's middle frame, LBP-TOP's frames) or ``--labels``."""
    from mefr.models.registry import model_entry

    if args.labels:
        raise ValueError(f"--labels {args.labels} applies to --data; the labels of "
                         f"--features {args.features} are those it was stored with")
    entry = model_entry(model)
    if args.features.startswith("flowset:") and (
            entry.apex_policy != "annotated" or entry.descriptor != "flow"):
        raise ValueError(
            f"--model {model} needs {entry.descriptor} inputs with the {entry.apex_policy!r} "
            f"apex; --features {args.features} holds onset->annotated-apex flow. Use "
            "--data with the raw databases instead")


def _evaluation_features(args: argparse.Namespace, model: str):  # -> (features, source)
    """``--features`` loaded, or the ``--data`` databases read, labelled and preprocessed."""
    from mefr.evaluate.runner import load_features
    from mefr.predict import load_training_data

    if args.features:
        _check_flowset_model(args, model)
        return load_features(args.features), args.features
    labels = args.labels or ("cdmer" if args.protocol.startswith("cdmer") else "cde")
    settings = _settings_from_args(args, model)
    data = load_training_data(args.data, labels, settings, args.cache, args.workers,
                              progress=not args.no_progress)
    for failure in getattr(data.features, "failures", ()):
        print(f"failed       {failure}", file=sys.stderr)
    return data.features, f"{','.join(args.data)} ({labels} labels; {settings})"


def _run_evaluate(args: argparse.Namespace) -> int:
    from mefr.evaluate.executors import ExecutorError, make_executor
    from mefr.evaluate.runner import RunDirError, run_protocol
    from mefr.train.config import resolve_config

    overrides = ([f"model={args.model}"] if args.model else []) + list(args.overrides)
    options = {"deterministic": args.deterministic}
    options |= {} if args.executor == "local" else {
        "address": args.address, "max_retries": args.max_retries,
        "jobs_per_task": args.jobs_per_task, "num_cpus_per_task": args.cpus_per_task,
        "num_gpus_per_task": args.gpus_per_task}
    try:
        config = resolve_config(args.preset, args.config, overrides)
        features, source = _evaluation_features(args, config.model)
        with make_executor(args.executor, **options) as executor:
            run_protocol(features, args.protocol, config, args.seeds, args.run_dir,
                         device=args.device, train_fn=executor, chunk=args.chunk,
                         progress=not args.no_progress, data_source=source)
    except (RunDirError, ExecutorError, ValueError, ImportError, ConnectionError,
            OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


# --------------------------------------------------------------------------- compare
@command
def _add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="A minus B of two run directories on the same clips, "
                       "with a paired bootstrap interval over subjects")
    p.add_argument("run_a", help="run directory of model A")
    p.add_argument("run_b", help="run directory of model B")
    p.add_argument("--metrics", default="uf1,uar", help="comma-separated: acc, uf1, uar")
    p.add_argument("--databases", default=None,
                   help="comma-separated: composite and/or database names (default: all)")
    p.add_argument("--replicates", type=int, default=2000, help="bootstrap draws")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap draws")
    p.add_argument("--confidence", type=float, default=0.95)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_run_compare)


def _run_compare(args: argparse.Namespace) -> int:
    from dataclasses import asdict
    from pathlib import Path

    from mefr.evaluate.compare import compare_runs, differences_table

    try:
        results = compare_runs(
            args.run_a, args.run_b, metrics=_split_list(args.metrics),
            databases=_split_list(args.databases) if args.databases else None,
            replicates=args.replicates, seed=args.seed, confidence=args.confidence)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    else:
        print(differences_table(results, f"A: {Path(args.run_a).name}",
                                f"B: {Path(args.run_b).name}"))
    return 0


def _split_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


# --------------------------------------------------------------------------- train / predict
@command
def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="fit one model on whole databases and write a model file "
                       "(safetensors weights + JSON header)")
    p.add_argument("--data", action="append", required=True, metavar="SCHEME:PATH",
                   help="casme2:ROOT, samm:ROOT, smic_hs:ROOT... (repeatable, pooled), "
                   "synthetic:DIR (written by `mefr synth DIR`) or flowset:PATH")
    p.add_argument("--out", required=True, metavar="MODEL.safetensors", help="model file")
    p.add_argument("--protocol", default="cde",
                   help="label protocol: cde | cdmer | casme2_5class | four_class (default: cde)")
    p.add_argument("--model", default=None, help="network name (overrides preset and file)")
    p.add_argument("--preset", default="cde", help="training preset (default: cde)")
    p.add_argument("--config", default=None, metavar="FILE", help="YAML training settings")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one training setting (repeatable)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", default=None, help="feature cache folder (default: none)")
    p.add_argument("--workers", type=int, default=None, help="preprocessing processes")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--no-progress", action="store_true")
    _add_preprocess_options(p)
    p.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from mefr.predict import load_training_data, train_model
    from mefr.train.config import resolve_config

    overrides = ([f"model={args.model}"] if args.model else []) + list(args.overrides)
    try:
        config = resolve_config(args.preset, args.config, overrides)
        data = load_training_data(args.data, args.protocol,
                                  _settings_from_args(args, config.model),
                                  args.cache, args.workers, progress=not args.no_progress)
        predictor = train_model(data, config, seed=args.seed, device=args.device,
                                progress=not args.no_progress)
        path = predictor.save(args.out)
    except (ValueError, OSError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    d, t = predictor.header["data"], predictor.header["train"]
    counts = ", ".join(f"{c} {n}" for c, n in d["class_counts"].items())
    sets = ", ".join(f"{k} {n}" for k, n in d["datasets"].items())
    print(f"model file   {path}")
    print(f"network      {predictor.network} ({', '.join(predictor.channels)} input), "
          f"classes {', '.join(predictor.class_names)}")
    print(f"data         {d['clips']} clips, {d['subjects']} subjects ({sets}); {counts}; "
          f"{d['failures']} clip(s) failed preprocessing")
    print(f"training     {t['optimizer']} lr {t['lr']}, epoch {t['evaluated_epoch']} of "
          f"{t['epochs']}, final training loss {t['final_train_loss']:.4f}, seed {t['seed']}")
    return 0


@command
def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="predict new clips (videos, frame folders, onset/apex "
                       "pairs) with a model file; optionally explain")
    p.add_argument("model", help="model file written by `mefr train`")
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="video files (.mp4, .avi...) or folders of numbered frames")
    p.add_argument("--onset-apex", nargs=2, action="append", default=[],
                   metavar=("ONSET", "APEX"),
                   help="an onset and an apex image (repeatable; listed after the INPUTs)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--explain", metavar="DIR", default=None,
                   help="write one explanation PNG per input (faces, flow, saliency) to DIR")
    p.add_argument("--smoothgrad", type=int, default=16,
                   help="noisy samples of the SmoothGrad saliency (1: plain gradient)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--allow-version-mismatch", action="store_true",
                   help="use a model made with another OpenCV / mefr major version (warns)")
    p.set_defaults(func=_run_predict)


def _run_predict(args: argparse.Namespace) -> int:
    from mefr.modelfile import ModelFileError
    from mefr.predict import Predictor, format_table

    inputs = list(args.inputs) + [tuple(pair) for pair in args.onset_apex]
    if not inputs:
        print("error: nothing to predict: give INPUT(s) or --onset-apex ONSET APEX",
              file=sys.stderr)
        return 2
    try:
        predictor = Predictor.from_file(args.model, strict=not args.allow_version_mismatch)
    except ModelFileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    preds = predictor.predict(inputs, batch_size=args.batch_size, explain_dir=args.explain,
                              smoothgrad=args.smoothgrad)
    if args.json:
        print(json.dumps([p.to_dict() for p in preds], indent=2))
    else:
        print(format_table(preds, predictor.class_names))
        for p in preds:
            if p.explanation:
                print(f"explanation  {p.explanation}")
    return 0 if all(p.ok for p in preds) else 1


# --------------------------------------------------------------------------- synth
@command
def _add_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="write synthetic CASME II / SAMM / SMIC databases in the "
                       "real on-disk formats")
    p.add_argument("out", help="output folder")
    p.add_argument("--databases", nargs="+", default=["casme2", "samm", "smic_hs"],
                   choices=["casme2", "samm", "smic_hs", "smic_vis", "smic_nir"])
    p.add_argument("--subjects", type=int, default=4, help="subjects per database")
    p.add_argument("--clips", type=int, default=6, help="clips per subject")
    p.add_argument("--frames", type=int, nargs=2, default=[30, 60], metavar=("MIN", "MAX"),
                   help="frames per clip")
    p.add_argument("--size", type=int, nargs=2, default=[240, 320], metavar=("H", "W"),
                   help="frame size")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_run_synth)


def _run_synth(args: argparse.Namespace) -> int:
    from mefr.data import read_database
    from mefr.data.synthetic import write_synthetic_databases

    try:
        paths = write_synthetic_databases(
            args.out, databases=args.databases, subjects=args.subjects,
            clips_per_subject=args.clips, frames=tuple(args.frames), size=tuple(args.size),
            seed=args.seed,
        )
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for name, path in paths.items():
        table = read_database(name, path)
        counts = table["emotion"].value_counts().sort_index()
        listing = ", ".join(f"{e} {n}" for e, n in counts.items())
        print(f"{name:<9} {path}: {len(table)} clips, {table['subject'].nunique()} subjects "
              f"({listing}); truth in {path / 'synthetic_truth.csv'}")
    return 0


# --------------------------------------------------------------------------- demo
@command
def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the whole pipeline on small synthetic databases "
                                    "(the default command)")
    p.add_argument("--out", default="mefr-demo", help="working folder (reused if present)")
    p.add_argument("--model", default="fr")
    p.add_argument("--epochs", type=int, default=None, help="default: 30")
    p.add_argument("--seeds", default="0")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from mefr.demo import DEMO_EPOCHS, run_demo

    res = run_demo(args.out, model=args.model, epochs=args.epochs or DEMO_EPOCHS,
                   seeds=args.seeds, device=args.device, progress=not args.no_progress)
    print(f"{res.clips} synthetic clips ({res.failures} failed preprocessing); run directory: "
          f"{res.run.run_dir}")
    for stage, sec in res.seconds.items():
        print(f"  {stage:<28} {sec:7.1f} s")
    print("Synthetic motions are far easier than real micro-expressions: these scores show "
          "that the pipeline learns, not how FR compares (see results/ for real data).")
    return 0


# --------------------------------------------------------------------------- reproduce
# Written out so that building the parser imports nothing heavy (a test keeps it equal
# to mefr.report.targets.TARGETS).
_REPRODUCE_TARGETS = ("table1", "table2", "table3", "table4", "table5", "table6", "table7",
                      "table8", "fig3", "fig4")


@command
def _add_reproduce(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reproduce", help="reproduce a table or figure of the paper: run what "
                       "it needs (finished runs are reused) and write it beside the paper's "
                       "numbers")
    p.add_argument("name", choices=(*_REPRODUCE_TARGETS, "all"))
    p.add_argument("--data", choices=("real", "synthetic"), default="real",
                   help="real: the composite flow set where it serves, synthetic databases "
                   "elsewhere (marked); synthetic: synthetic databases everywhere")
    p.add_argument("--seeds", default=None,
                   help="e.g. 0-9 (default: the seeds a run already has, else 0)")
    p.add_argument("--epochs", type=int, default=None, help="override the preset's epochs")
    p.add_argument("--preset", default=None,
                   help="training preset for every run (default: cde for CDE, paper_single "
                   "for CDMER and single databases)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--results", default="results", help="root of the run directories")
    p.add_argument("--out", default=None,
                   help="where NAME.md/.csv/.tex/.png go (default: RESULTS/report, or "
                   "RESULTS/synthetic/report with --data synthetic)")
    p.add_argument("--flowset", default=None,
                   help="the MEGC 2019 composite flow set (default: $MEFR_FLOWSET or "
                   "../shared/data/megc2019-cde-flow)")
    p.add_argument("--work", default="runs/reproduce",
                   help="synthetic databases and feature cache (default: runs/reproduce)")
    p.add_argument("--synthetic-dir", default=None,
                   help="use the synthetic databases written there by `mefr synth`")
    p.add_argument("--synthetic-subjects", type=int, default=8, help="subjects per database")
    p.add_argument("--synthetic-clips", type=int, default=9, help="clips per subject")
    p.add_argument("--workers", type=int, default=None, help="preprocessing processes")
    p.add_argument("--chunk", type=int, default=None, help="jobs per engine call")
    p.add_argument("--no-train", action="store_true",
                   help="train nothing: render from finished runs ('not yet run' elsewhere)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_run_reproduce)


def _run_reproduce(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mefr.evaluate.runner import RunDirError
    from mefr.report.reproduce import (
        ReproduceError,
        ReproduceOptions,
        SyntheticSpec,
        reproduce,
    )

    try:
        spec = SyntheticSpec(subjects=args.synthetic_subjects, clips=args.synthetic_clips,
                             root=Path(args.synthetic_dir) if args.synthetic_dir else None)
        options = ReproduceOptions(
            data=args.data, seeds=args.seeds, epochs=args.epochs, preset=args.preset,
            device=args.device, results=Path(args.results),
            out=Path(args.out) if args.out else None,
            flowset=Path(args.flowset) if args.flowset else None, work=Path(args.work),
            synthetic=spec, workers=args.workers, chunk=args.chunk, train=not args.no_train,
            progress=not args.no_progress)
        written = reproduce(args.name, options)
    except (ReproduceError, RunDirError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for name, paths in written.items():
        print(f"{name}: " + ", ".join(str(p) for p in paths.values()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mefr",
        description="Micro-expression recognition with Feature Refinement (FR).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for adder in _ADDERS:
        adder(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # plain `mefr` runs the demo on the embedded default
        args = parser.parse_args(["demo"])
    try:
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # inside the try: a closed pipe fails here, not at shutdown
    except BrokenPipeError:
        # The reader went away (`mefr compare A B | head`): stop quietly with the
        # status of a process ended by SIGPIPE; files already written stay on disk.
        _discard_stdout()
        return 128 + 13
    return status


def _discard_stdout() -> None:
    """Point stdout at the null device, so the interpreter's final flush cannot fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is not a real file (tests)
        pass


if __name__ == "__main__":
    sys.exit(main())
