"""Data commands: ``mefr synth``, ``prepare``, ``detect`` and ``flow``."""

from __future__ import annotations

import argparse
import json
import time

from mefr.cli.common import Command, add_preprocess_options, error, settings_from_args


# --------------------------------------------------------------------------- synth
def _add_synth(p: argparse.ArgumentParser) -> None:
    from mefr.data.table import DATASETS

    p.add_argument("out", help="output folder")
    p.add_argument("--databases", nargs="+", default=["casme2", "samm", "smic_hs"],
                   choices=DATASETS)
    p.add_argument("--subjects", type=int, default=4, help="subjects per database")
    p.add_argument("--clips", type=int, default=6, help="clips per subject")
    p.add_argument("--frames", type=int, nargs=2, default=[30, 60], metavar=("MIN", "MAX"),
                   help="frames per clip")
    p.add_argument("--size", type=int, nargs=2, default=[240, 320], metavar=("H", "W"),
                   help="frame size")
    p.add_argument("--seed", type=int, default=0)


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
        return error(e)
    for name, path in paths.items():
        table = read_database(name, path)
        counts = table["emotion"].value_counts().sort_index()
        listing = ", ".join(f"{e} {n}" for e, n in counts.items())
        print(f"{name:<9} {path}: {len(table)} clips, {table['subject'].nunique()} subjects "
              f"({listing}); truth in {path / 'synthetic_truth.csv'}")
    return 0


# --------------------------------------------------------------------------- prepare
def _add_prepare(p: argparse.ArgumentParser) -> None:
    from mefr.data.table import DATASETS

    p.add_argument("root", help="the database folder (as the licensee holds it)")
    p.add_argument("--database", choices=DATASETS, required=True)
    p.add_argument("--cache", required=True, help="feature cache folder")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--no-progress", action="store_true")
    add_preprocess_options(p)


def _run_prepare(args: argparse.Namespace) -> int:
    from mefr.data import read_database
    from mefr.preprocess.pipeline import build_features

    try:
        settings = settings_from_args(args)
        table = read_database(args.database, args.root)
    except ValueError as e:  # bad settings, AnnotationError (a ValueError)
        return error(e)
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
    if settings.register != "none" and len(fs.table):
        t = (fs.table["head_dx"] ** 2 + fs.table["head_dy"] ** 2) ** 0.5
        r = fs.table["head_rotation"].abs()
        print(f"head motion  register {settings.register}: onset->apex translation median "
              f"{t.median():.2f} px (max {t.max():.2f}), rotation median {r.median():.2f} deg "
              f"(max {r.max():.2f}); per clip in the table's head_* columns")
    for f in fs.failures:
        print(f"failed       {f}")
    return 0


def _prepare_interrupted(args: argparse.Namespace) -> str:
    return (f"the clips computed so far are in the cache {args.cache}; rerun the same command "
            "to compute the rest")


# --------------------------------------------------------------------------- detect
def _add_detect(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--conf", type=float, default=0.5, help="score threshold in [0, 1]")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _run_detect(args: argparse.Namespace) -> int:
    from mefr.preprocess.face import PreprocessError, detect_faces

    results, rc = [], 0
    for path in args.images:
        try:
            faces = [b.to_dict() for b in detect_faces(path, conf=args.conf)]
            results.append({"image": path, "faces": faces})
        except (PreprocessError, ValueError) as e:
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


# --------------------------------------------------------------------------- flow
def _add_flow(p: argparse.ArgumentParser) -> None:
    p.add_argument("onset")
    p.add_argument("apex")
    p.add_argument("--out", required=True, help="output .npy: float32 (C, size, size)")
    add_preprocess_options(p)


def _run_flow(args: argparse.Namespace) -> int:
    import numpy as np

    from mefr.preprocess.clip import clip_features
    from mefr.preprocess.face import PreprocessError

    try:
        settings = settings_from_args(args)
        if settings.descriptor != "flow":
            return error(f"--descriptor {settings.descriptor} describes a whole clip (onset "
                         "to offset), not an onset/apex pair: `mefr flow` computes the "
                         "flow descriptor only; use `mefr prepare` on a database for "
                         f"{settings.descriptor}")
        feats = clip_features(args.onset, args.apex, settings)
    except PreprocessError as e:
        return error(e, 1)
    except ValueError as e:
        return error(e)
    np.save(args.out, feats.x)
    b = feats.box
    print(f"{args.out}: {feats.x.dtype} {tuple(feats.x.shape)} ({','.join(feats.channels)}); "
          f"face box x={b.x} y={b.y} w={b.w} h={b.h}")
    return 0


COMMANDS: tuple[Command, ...] = (
    Command("synth", "write synthetic CASME II / SAMM / SMIC databases in the real on-disk "
            "formats", _add_synth, _run_synth),
    Command("prepare", "faces, apex frames and TV-L1 flow of a raw database, computed into a "
            "feature cache", _add_prepare, _run_prepare, _prepare_interrupted),
    Command("detect", "faces found by libfacedetection in images", _add_detect, _run_detect),
    Command("flow", "TV-L1 flow of the face between an onset and an apex image", _add_flow,
            _run_flow),
)
