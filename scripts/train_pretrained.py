"""Train every model mefr ships and rewrite its weights, sha256, reference and card.

Each shipped model (:data:`SHIPPED`) is one network trained on all 442 clips of the MEGC
2019 composite flow set with one recipe (a preset of :mod:`mefr.train.config` and a
seed). For each, this script

1. trains it with :func:`mefr.predict.train_model` (the fp32 result is kept in
   ``--work``, so that ``--reuse`` rewrites the cards without training again);
2. stores the weights in half precision when the fp16 weights give the fp32 weights'
   class on every training clip and probabilities within ``--tolerance``, else in fp32;
3. measures the stored weights' accuracy on the training clips, reads the honest CDE
   figures of the same network and recipe from the committed run directory
   ``results/cde/<network>`` (refusing one trained with another recipe), and writes
   ``src/mefr/pretrained/<name>.safetensors`` (the card's facts in its header),
   ``<name>.md``, ``<name>.fp32.json`` and ``index.json`` (with the sha256).

Usage (2-core CPU: a few minutes per model; the flow set is read-only)::

    nice -n 5 python3 scripts/train_pretrained.py --flowset ../shared/data/megc2019-cde-flow
    python3 scripts/train_pretrained.py --reuse        # cards only, from --work

When a better recipe wins (its ten-seed CDE run committed under results/cde/), change
``preset`` in :data:`SHIPPED` and the run directory it is compared with, and rerun.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from mefr.data.flowset import select_channels
from mefr.data.table import features_fingerprint, sample_key
from mefr.evaluate.metrics import accuracy, uar, uf1
from mefr.modelfile import save_model_file
from mefr.models.registry import display_name
from mefr.predict import Predictor, load_training_data, train_model
from mefr.predict.pretrained import (
    CARD_KEY,
    PRETRAINED_DIR,
    PretrainedModel,
    file_sha256,
    read_index,
    render_card,
    write_index,
)
from mefr.train.config import PRESETS, resolve_config

REPO = Path(__file__).resolve().parent.parent
DEFAULT_FLOWSET = "../shared/data/megc2019-cde-flow"


@dataclass(frozen=True)
class Shipped:
    """One shipped model: its name, network, recipe (preset, seed), the committed run
    directory whose ten-seed figures are its honest expected accuracy, and its title."""

    name: str
    network: str
    preset: str
    seed: int
    run: str
    title: str


SHIPPED: tuple[Shipped, ...] = (
    Shipped("fr-megc2019", "fr", "cde", 0, "results/cde/fr",
            "Feature Refinement (FR), MEGC 2019 composite, 3 classes"),
    Shipped("off_apexnet-megc2019", "off_apexnet", "cde", 0, "results/cde/off_apexnet",
            "OFF-ApexNet, MEGC 2019 composite, 3 classes"),
)

DATA_DESCRIPTION = (
    "The optical-flow images of the 442 micro-expression clips of the MEGC 2019 composite "
    "database (SMIC-HS, CASME II and SAMM regrouped into negative / positive / surprise), "
    "as published alongside the STSTNet and HTNet papers: one 28x28 8-bit image per clip, "
    "R = horizontal flow u, G = vertical flow v, B = optical strain, each channel min-max "
    "scaled per image; TV-L1 flow from the onset to the apex frame of the cropped face, "
    "computed by the publishers' tool, not by mefr."
)
#: The flow set README's terms of use, quoted (only the terms).
LICENCE_TERMS = (
    "The raw videos themselves are licence-restricted and are not available here; these "
    "derived images are.",
    "Read-only. [...] Never copy these files into the project repository.",
)
LICENCE_NOTE = (
    "The README states no other licence. The weights are derived from images of SMIC-HS, "
    "CASME II and SAMM, whose owners release those databases under their own agreements; "
    "check them before any use beyond research. No flow image is shipped with mefr."
)
def not_for(honest_acc: float) -> list[str]:
    """What a shipped model is not for (``honest_acc``: its honest composite accuracy)."""
    return [
        "Clinical, diagnostic, forensic, security or lie-detection use, or any decision "
        "about a person: a micro-expression class is not a measure of truthfulness or of a "
        f"mental state, and even on its own benchmark the model is wrong on {1 - honest_acc:.0%} "
        "of the clips of subjects it has not seen.",
        "Other populations: it has seen the 68 subjects of three laboratory databases (SMIC "
        "from Finland, CASME II from China, SAMM from the UK), filmed with high-speed cameras "
        "under controlled light; on other ages, ethnic groups, cameras, lighting or settings "
        "its accuracy is unmeasured.",
        "Macro-expressions, ordinary or posed facial expressions, and clips that hold no "
        "expression: the model always answers one of its three classes.",
        "Spotting: it classifies a clip whose onset is its first frame (and whose apex is "
        "given or spotted by mefr); it does not find micro-expressions in a long video.",
    ]


def contract(predictor: Predictor) -> list[str]:
    """The input contract of a model, read from its preprocessing settings."""
    s = predictor.settings
    crop = ("the face box found by libfacedetection (yuface) on the onset frame"
            f" (score >= {s.face_conf}, margin {s.margin}, square {s.square}), every frame "
            "cropped with that one box"
            + (f" and resized to {s.face_size}x{s.face_size}" if s.face_size else
               " at native resolution"))
    return [
        f"A float32 array of shape (N, {len(predictor.channels)}, {s.size}, {s.size}): "
        f"channels {', '.join(predictor.channels)} in that order (u horizontal, v vertical "
        "flow; the flow set's third channel, strain, is not read).",
        f"Each channel min-max scaled to 0..1 per image (`{s.normalisation}`): the flow "
        "set's 0..255 values divided by 255; for a new clip, mefr scales its own flow.",
        "The flow: TV-L1 (OpenCV defaults) from the onset frame to the apex frame, "
        f"resized to {s.size}x{s.size} with INTER_AREA, then scaled.",
        f"The face crop for a new clip: {crop}.",
        "The apex for a new clip: an onset/apex pair uses the second image; a video or a "
        "frame folder is one clip from its first frame (onset) to its last, and its apex "
        "is spotted by the inter-frame difference of Eq. (1) (apex policy "
        f"`{s.apex_policy}`, which falls back to Eq. (1) when no apex is annotated).",
        "mefr's crop and flow are its closest match to the flow set's own tool, not that "
        "tool: the publishers' face alignment is not known, so accuracy on raw clips "
        "through mefr's pipeline may be lower than the figures below (it is unmeasured: "
        "the raw videos are licence-restricted).",
    ]


def honest_figures(spec: Shipped, config: dict[str, Any], inputs_sha256: str
                   ) -> dict[str, Any]:
    """The committed run's ten-seed CDE figures, after checking that it used the same
    recipe and the same network inputs (``inputs_sha256``)."""
    run = REPO / spec.run
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    if cfg["data"]["sha256"] != inputs_sha256:
        raise SystemExit(f"{run}: its inputs (sha256 {cfg['data']['sha256']}) are not the "
                         f"shipped model's ({inputs_sha256}); its figures are not this model's")
    for key, value in config.items():
        if key in ("augment_flip", "augment_shift", "label_smoothing") and key not in cfg["train"]:
            continue  # settings added later; their defaults (off) were used
        if cfg["train"].get(key) != value:
            raise SystemExit(f"{run}: trained with {key}={cfg['train'].get(key)!r}, the "
                             f"shipped recipe has {value!r}; its figures are not this model's")
    metrics = json.loads((run / "metrics.json").read_text())

    def stat(db: str, m: str) -> dict[str, float | None]:
        std = metrics["std"][db][m] if metrics.get("std") else None
        return {"mean": metrics["mean"][db][m], "std": std}

    selection = str(metrics.get("selection", "")).rstrip(".")
    return {
        "run": spec.run,
        "protocol": metrics["protocol"],
        "protocol_text": "CDE: leave one subject out over the 68 subjects of the composite, "
                         "each test subject's clips predicted by a model trained without them",
        "seeds": metrics["seeds"],
        "selection": selection[:1].upper() + selection[1:],
        "composite": {m: stat("composite", m) for m in ("uf1", "uar", "acc")},
        "databases": {db: {m: stat(db, m) for m in ("uf1", "uar")}
                      for db in metrics["databases"] if db != "composite"},
    }


def probabilities(predictor: Predictor, x: np.ndarray) -> np.ndarray:
    return predictor.forward(x, batch_size=128)[0]


def load_quiet(path: Path) -> Predictor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the flow-set note: expected here
        return Predictor.from_file(path)


def train_or_reuse(spec: Shipped, data: Any, work: Path, reuse: bool) -> Predictor:
    cached = work / f"{spec.name}.fp32.safetensors"
    if reuse and cached.is_file():
        print(f"{spec.name}: reusing {cached}")
        return load_quiet(cached)
    config = resolve_config(spec.preset, None, {"model": spec.network})
    t0 = time.time()
    predictor = train_model(data, config, seed=spec.seed, device="cpu", progress=True)
    predictor.header["train"]["seconds"] = round(time.time() - t0, 1)
    predictor.header["train"]["torch_threads"] = torch.get_num_threads()
    predictor.save(cached)
    print(f"{spec.name}: trained in {time.time() - t0:.0f} s -> {cached}")
    return load_quiet(cached)


def build(spec: Shipped, data: Any, work: Path, out: Path, reuse: bool, tol: float,
          flowset: str) -> PretrainedModel:
    fp32 = train_or_reuse(spec, data, work, reuse)
    fs = data.features
    x = select_channels(fs.x, fs.channels, fp32.channels)
    y = np.asarray(fs.table["label"], np.int64)
    p32 = probabilities(fp32, x)
    state = fp32.model.state_dict()
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}
    with tempfile.TemporaryDirectory() as tmp:
        trial = save_model_file(Path(tmp) / "half.safetensors", half, fp32.header)
        p16 = probabilities(load_quiet(trial), x)
    same = int((p16.argmax(1) == p32.argmax(1)).sum())
    diff = float(np.abs(p16 - p32).max())
    use_half = same == len(y) and diff <= tol
    stored, dtype = (half, "float16") if use_half else (state, "float32")
    decision = ("stored in float16" if use_half else "float16 disagreed: stored in float32")
    print(f"{spec.name}: fp16 vs fp32 same class {same}/{len(y)}, max |dp| {diff:.2e}; {decision}")

    train = fp32.header["train"]
    settings = {k: train[k] for k in ("optimizer", "lr", "batch_size", "epochs", "lam",
                                      "dropout", "class_weighting", "select_epoch_by")}
    recipe_config = resolve_config(spec.preset, None, {"model": spec.network}).to_dict()
    honest = honest_figures(spec, {k: v for k, v in recipe_config.items() if k != "betas"},
                            features_fingerprint(x, fs.table, y))
    with tempfile.TemporaryDirectory() as tmp:
        shipped = load_quiet(save_model_file(Path(tmp) / "s.safetensors", stored, fp32.header))
        ps = probabilities(shipped, x)
    pred = ps.argmax(1)
    top2 = np.sort(ps, axis=1)[:, -2:]
    k = len(fp32.class_names)
    facts: dict[str, Any] = {
        "name": spec.name,
        "title": spec.title,
        "summary": (f"{display_name(spec.network)} trained on every clip of the MEGC 2019 "
                    "composite flow set (442 clips, 68 subjects), to classify a new "
                    "micro-expression clip as negative, positive or surprise."),
        "network": spec.network,
        "display": display_name(spec.network),
        "parameters": int(sum(p.numel() for p in fp32.model.parameters())),
        "classes": list(fp32.class_names),
        "weights_dtype": dtype,
        "training_data": {
            "description": DATA_DESCRIPTION, "source": f"flowset:{flowset}",
            "clips": fs.table.shape[0], "subjects": data.data["subjects"],
            "datasets": data.data["datasets"], "class_counts": data.data["class_counts"],
            "sha256": data.data["sha256"], "licence_terms": list(LICENCE_TERMS),
            "licence_note": LICENCE_NOTE},
        "recipe": {
            "preset": spec.preset, "preset_settings": PRESETS[spec.preset],
            "settings": settings, "seed": spec.seed,
            "evaluated_epoch": train["evaluated_epoch"],
            "final_train_loss": train["final_train_loss"], "device": train["device"],
            "torch_threads": train.get("torch_threads"), "seconds": train.get("seconds"),
            "torch": fp32.header.get("environment", {}).get("torch", torch.__version__),
            "retrain": "nice -n 5 python3 scripts/train_pretrained.py --flowset "
                       f"{DEFAULT_FLOWSET}"},
        "input": {"channels": list(fp32.channels),
                  "shape": [len(fp32.channels), fp32.settings.size, fp32.settings.size],
                  "dtype": "float32", "range": [0.0, 1.0],
                  "settings": fp32.settings.to_dict(), "contract": contract(fp32)},
        "training_set": {
            "clips": int(len(y)), "correct": int((pred == y).sum()),
            "accuracy": accuracy(y, pred, k), "uf1": uf1(y, pred, k), "uar": uar(y, pred, k),
            "min_top2_margin": float((top2[:, 1] - top2[:, 0]).min())},
        "precision_check": {
            "stored": dtype, "reference_dtype": "float32", "clips": int(len(y)),
            "same_class": same, "max_abs_diff": diff, "tolerance": tol,
            "decision": decision},
        "honest": honest,
        "not_for": not_for(honest["composite"]["acc"]["mean"]),
    }
    path = out / f"{spec.name}.safetensors"
    save_model_file(path, stored, {**fp32.header, CARD_KEY: facts})
    card = out / f"{spec.name}.md"
    card.write_text(render_card(facts, path.stat().st_size), encoding="utf-8")
    ref = out / f"{spec.name}.fp32.json"
    ref.write_text(json.dumps({
        "name": spec.name, "dtype": "float32", "classes": list(fp32.class_names),
        "clips": list(sample_key(fs.table)), "labels": y.tolist(),
        "probabilities": np.round(p32.astype(np.float64), 6).tolist()}) + "\n")
    print(f"{spec.name}: training-set Acc {facts['training_set']['accuracy']:.4f}; honest "
          f"composite UF1 {honest['composite']['uf1']['mean']:.4f}; {path} "
          f"({path.stat().st_size:,} bytes)")
    return PretrainedModel(spec.name, path, file_sha256(path), path.stat().st_size, card, ref,
                           spec.network, dtype, facts["summary"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--flowset", default=DEFAULT_FLOWSET, help="the MEGC 2019 flow set folder")
    ap.add_argument("--work", type=Path, default=REPO / "runs" / "pretrained",
                    help="where the fp32 training results are kept (not committed)")
    ap.add_argument("--out", type=Path, default=PRETRAINED_DIR, help="the package folder")
    ap.add_argument("--reuse", action="store_true", help="reuse fp32 results in --work")
    ap.add_argument("--tolerance", type=float, default=1e-2,
                    help="largest fp16-vs-fp32 probability difference for fp16 storage")
    ap.add_argument("--only", default="", help="comma-separated subset of the names")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: on a shared 2-core CPU, two threads were 4x slower)")
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    data = load_training_data([f"flowset:{args.flowset}"], "cde", progress=False)
    chosen = [s for s in SHIPPED if not args.only or s.name in args.only.split(",")]
    built = {s.name: build(s, data, args.work, args.out, args.reuse, args.tolerance,
                           args.flowset) for s in chosen}
    kept = read_index(args.out)  # the models not rebuilt now stay as the index has them
    models = [built.get(s.name) or kept[s.name] for s in SHIPPED
              if s.name in built or s.name in kept]
    print(f"index: {write_index(models, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
