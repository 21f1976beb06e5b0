"""Model commands: ``mefr models``, ``train`` and ``predict``."""

from __future__ import annotations

import argparse
import json

from mefr.cli.common import (
    Command,
    add_preprocess_options,
    add_training_options,
    error,
    settings_from_args,
    training_epilog,
    training_overrides,
    warn,
)


# --------------------------------------------------------------------------- models
def _add_models(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true",
                   help="print the networks' JSON (name, K, channels, exact parameter count)")
    p.add_argument("--pretrained", action="store_true",
                   help="list the trained models shipped with mefr (`mefr predict --model NAME`)")
    p.add_argument("--card", metavar="NAME", default=None,
                   help="print the model card of a shipped model, or describe a model file "
                   "(its classes, preprocessing and members)")


def _run_models(args: argparse.Namespace) -> int:
    from mefr.models.catalog import HANDCRAFTED
    from mefr.models.registry import model_specs

    if args.pretrained or args.card:
        from mefr.modelfile import ModelFileError, read_header
        from mefr.predict.ensemble import model_summary
        from mefr.predict.pretrained import is_shipped_name, listing, model_card

        try:
            if args.card and not is_shipped_name(args.card):
                print(model_summary(read_header(args.card), args.card))
            else:
                print(model_card(args.card) if args.card else listing(as_json=args.json))
        except ModelFileError as e:
            return error(e)
        return 0
    specs = model_specs()
    if args.json:
        print(json.dumps(specs, indent=2))
        return 0
    print(f"{'name':<20} {'K':>2} {'detector':>8} {'parameters':>12}")
    for s in specs:
        det = str(s.get("detector_units", "-"))
        print(f"{s['name']:<20} {s['num_classes']:>2} {det:>8} {s['parameters']:>12,}")
    for name, entry in HANDCRAFTED.items():
        print(f"{name:<20} {'-':>2} {'-':>8} {'-':>12}  hand-crafted, no network: "
              f"{entry.description}")
    return 0


# --------------------------------------------------------------------------- train
class _DeprecatedProtocol(argparse.Action):
    """``mefr train --protocol NAME``: the old name of ``--labels`` (warns)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        warn("`mefr train --protocol` is deprecated: it names the label mapping, so it is "
             f"now --labels (use --labels {values}); `mefr evaluate --protocol` is the split")
        namespace.labels = values


def _add_train(p: argparse.ArgumentParser) -> None:
    from mefr.data.labels import LABELLINGS

    p.add_argument("--data", action="append", required=True, metavar="SCHEME:PATH",
                   help="casme2:ROOT, samm:ROOT, smic_hs:ROOT... (repeatable, pooled), "
                   "synthetic:DIR (written by `mefr synth DIR`) or flowset:PATH")
    p.add_argument("--out", required=True, metavar="MODEL.safetensors", help="model file")
    p.add_argument("--labels", default="cde", choices=sorted(LABELLINGS),
                   help="label mapping (mefr.data.labels)")
    p.add_argument("--protocol", action=_DeprecatedProtocol, default=argparse.SUPPRESS,
                   dest="labels", help=argparse.SUPPRESS)
    add_training_options(p)
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=0)
    seeds.add_argument("--seeds", default=None, metavar="SEEDS",
                       help="train one model per seed (e.g. 0-4 or 0,3,5) and write them as "
                       "one ensemble model file: its prediction is the mean of the members' "
                       "class probabilities")
    p.add_argument("--cache", default=None, help="feature cache folder (default: none)")
    p.add_argument("--workers", type=int, default=None, help="preprocessing processes")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--no-progress", action="store_true")
    add_preprocess_options(p)
    p.epilog = training_epilog()


def _run_train(args: argparse.Namespace) -> int:
    from mefr.evaluate.protocols import parse_seeds
    from mefr.model_inputs import check_channels
    from mefr.predict import load_training_data, train_ensemble
    from mefr.preprocess.sources import is_feature_source
    from mefr.train.config import resolve_config

    try:
        seeds = parse_seeds(args.seeds) if args.seeds is not None else (args.seed,)
        config = resolve_config(args.preset, args.config, training_overrides(args))
        settings = settings_from_args(args, config.model)
        if not any(is_feature_source(s) for s in args.data):
            check_channels(config.channels, settings)
        data = load_training_data(args.data, args.labels, settings, args.cache, args.workers,
                                  progress=not args.no_progress)
        predictor = train_ensemble(data, config, seeds, device=args.device,
                                   progress=not args.no_progress)
        path = predictor.save(args.out)
    except (ValueError, OSError, RuntimeError) as e:
        return error(e)
    d = predictor.member_headers[0]["data"]
    counts = ", ".join(f"{c} {n}" for c, n in d["class_counts"].items())
    sets = ", ".join(f"{k} {n}" for k, n in d["datasets"].items())
    print(f"model file   {path}")
    print(f"network      {predictor.network} ({', '.join(predictor.channels)} input), "
          f"classes {', '.join(predictor.class_names)}")
    print(f"data         {d['clips']} clips, {d['subjects']} subjects ({sets}); {counts}; "
          f"{d['failures']} clip(s) failed preprocessing")
    for h in predictor.member_headers:
        t = h["train"]
        print(f"training     {t['optimizer']} lr {t['lr']}, epoch {t['evaluated_epoch']} of "
              f"{t['epochs']}, final training loss {t['final_train_loss']:.4f}, seed "
              f"{t['seed']}")
    if predictor.is_ensemble:
        print(f"prediction   the mean of the {len(predictor.models)} members' class "
              "probabilities, per clip")
    return 0


def _train_interrupted(args: argparse.Namespace) -> str:
    cache = f"; preprocessed clips are kept in the cache {args.cache}" if args.cache else ""
    return f"no model file was written{cache}; rerun the same command to train again"


# --------------------------------------------------------------------------- predict
def _add_predict(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", default=None, metavar="MODEL_FILE",
                   help="model file written by `mefr train` (omitted with --model)")
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="video files (.mp4, .avi...) or folders of numbered frames")
    p.add_argument("--model", dest="model_name", metavar="NAME", default=None,
                   help="a model shipped with mefr, by name (`mefr models --pretrained`), or "
                   "a model file; then every positional argument is an INPUT")
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
    p.add_argument("--register", choices=("none", "similarity", "affine"), default=None,
                   help="head-motion compensation of the inputs (docs/own_data.md); default: "
                   "the model file's setting")


def _run_predict(args: argparse.Namespace) -> int:
    from mefr.modelfile import ModelFileError
    from mefr.predict import Predictor, format_table

    positional = [a for a in (args.model, *args.inputs) if a is not None]
    source = args.model_name
    if source is None:
        if not positional:
            return error("no model: give a model file, or --model NAME for a shipped model "
                         "(`mefr models --pretrained` lists them)")
        source, positional = positional[0], positional[1:]
    inputs = positional + [tuple(pair) for pair in args.onset_apex]
    if not inputs:
        return error("nothing to predict: give INPUT(s) or --onset-apex ONSET APEX")
    try:
        from mefr.predict.pretrained import is_shipped_name

        shipped = args.model_name is not None and is_shipped_name(source)
        load = Predictor.from_pretrained if shipped else Predictor.from_file
        predictor = load(source, strict=not args.allow_version_mismatch)
    except ModelFileError as e:
        return error(e)
    if args.register is not None and args.register != predictor.settings.register:
        from dataclasses import replace

        warn(f"inputs registered with {args.register!r}, the model was trained with "
             f"register={predictor.settings.register!r}")
        predictor.settings = replace(predictor.settings, register=args.register)
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


# --------------------------------------------------------------------------- ensemble-model
def _add_ensemble_model(p: argparse.ArgumentParser) -> None:
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="model files (single models or ensembles) or shipped model names")
    p.add_argument("--out", required=True, metavar="ENSEMBLE.safetensors",
                   help="the ensemble model file to write")
    p.add_argument("--allow-version-mismatch", action="store_true",
                   help="accept models made with another OpenCV / mefr major version (warns)")


def _run_ensemble_model(args: argparse.Namespace) -> int:
    from mefr.modelfile import ModelFileError, read_header
    from mefr.predict.ensemble import bundle_model_files, model_summary
    from mefr.predict.pretrained import is_shipped_name, pretrained_file

    try:
        paths = [pretrained_file(m) if is_shipped_name(m) else m for m in args.models]
        out = bundle_model_files(paths, args.out, strict=not args.allow_version_mismatch)
        print(model_summary(read_header(out), str(out)))
    except (ModelFileError, OSError) as e:
        return error(e)
    return 0


COMMANDS: tuple[Command, ...] = (
    Command("models", "list the networks and their parameter counts (--pretrained: the "
            "shipped trained models)", _add_models, _run_models),
    Command("train", "fit one model (or one per seed: an ensemble, --seeds) on whole "
            "databases and write a model file (safetensors weights + JSON header)", _add_train,
            _run_train, _train_interrupted),
    Command("predict", "predict new clips (videos, frame folders, onset/apex pairs) with a "
            "model file or a shipped model (--model NAME); optionally explain", _add_predict,
            _run_predict),
    Command("ensemble-model", "bundle model files (same classes and preprocessing) into one "
            "ensemble model file for `mefr predict`", _add_ensemble_model, _run_ensemble_model,
            description="Write one model file holding every member of the given model files. "
            "Its prediction is the mean of the given models' class probabilities per clip "
            "(each file weighs the same, shared among its own members). Models with other "
            "classes or preprocessing than the first are refused."),
)
