"""Fig. 4 of the paper: t-SNE of Basic Inception's expression-shared and FR's
expression-refined features of the test samples of a random half/half subject split of
the composite.

Each network is trained through the runner (:func:`mefr.evaluate.runner.run_protocol`)
under the protocol ``holdout:0.5:<seed>`` (:class:`mefr.evaluate.protocols.Holdout`),
keeping its weights, into ``<results>/[synthetic/]fig4/<network>/``; the network is
rebuilt from them (:func:`mefr.train.runtime.load_network`) to compute the features of
the test samples. The split, features and map are kept in ``<results>/[synthetic/]fig4``
(``embedding.csv``, ``info.json``) and reused while their identity matches.

The holdout draw is the one Fig. 4 made before it trained through the runner, so the
split of a seed is unchanged; the models are not: the engine seeds a model's initial
weights and batch order from its job key (:func:`mefr.train.jobs.job_seed`), which is
now the runner's ``seed<k>/holdout`` instead of ``fig4/<network>``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mefr._env import describe_device
from mefr.evaluate.rundir import NOT_RUN
from mefr.models.registry import display_name
from mefr.report import paper as P
from mefr.report.figures import tsne_embedding, tsne_figure
from mefr.report.notes import train_text
from mefr.report.options import ReproduceError
from mefr.report.runs import Runs
from mefr.report.tables import Cell, Column, ReportTable, Row

#: The two panels: (tag, network, what its feature is).
PANELS: tuple[tuple[str, str, str], ...] = (
    ("(a)", "basic_inception", "expression-shared feature"),
    ("(b)", "fr", "expression-refined feature"),
)


#: The share of the subjects Fig. 4 tests (the paper: 34 of the composite's 68).
FRACTION = 0.5


def fig4_protocol(seed: int) -> str:
    """Fig. 4's split as a runner protocol: ``holdout:0.5:<seed>``."""
    return f"holdout:{FRACTION:g}:{int(seed)}"


def fig4_done(run_dir: Path) -> bool:
    """Whether Fig. 4's split, features and map are stored in ``run_dir``."""
    return (run_dir / "embedding.csv").is_file() and (run_dir / "info.json").is_file()


def fig4(runs: Runs) -> tuple[ReportTable, Any]:
    """Fig. 4 as a table (test accuracy and silhouettes) and a figure; trained first
    when the options allow and nothing is stored."""
    run_dir = runs.fig4_dir()
    synthetic = runs.is_synthetic("cde", "fr")
    if fig4_done(run_dir) and runs.options.train:
        _check(runs, run_dir, synthetic)
    if not fig4_done(run_dir):
        if not runs.options.train:
            t = ReportTable("fig4", "Fig. 4 of the paper: t-SNE of the features",
                            (Column("acc", "test Acc"),),
                            (Row("Basic Inception", {"acc": Cell(status=NOT_RUN)}),
                             Row("FR", {"acc": Cell(status=NOT_RUN)})),
                            (f"Not yet run: {run_dir}.",))
            return t, None
        _train(runs, run_dir, synthetic)
    info = json.loads((run_dir / "info.json").read_text())
    emb = pd.read_csv(run_dir / "embedding.csv", dtype={"subject": str, "clip": str})
    classes = tuple(info["class_names"])
    panels, rows = {}, []
    for tag, model, what in PANELS:
        part = emb[emb["model"] == model]
        res = info["models"][model]
        panels[f"{tag} {display_name(model)}: {what}"] = (
            part[["tsne_x", "tsne_y"]].to_numpy(), part["label"].to_numpy())

        def cell(value: float | None) -> Cell:
            return Cell(values=(value,), seeds=(info["seed"],), synthetic=synthetic,
                        run_dir=str(run_dir))

        rows.append(Row(display_name(model), {
            "acc": cell(res["test_acc"]), "sil_tsne": cell(res["silhouette_tsne"]),
            "sil_feat": cell(res["silhouette_features"])}))
    split = info["split"]
    desc = (f"train {split['train_subjects']} subjects / {split['train_samples']} "
            f"samples, test {split['test_subjects']} subjects / "
            f"{split['test_samples']} samples (paper: {P.FIG4_SPLIT['train_subjects']} "
            f"subjects / {P.FIG4_SPLIT['train_samples']} samples train)")
    title = f"Fig. 4 of the paper: t-SNE of test-sample features, CDE composite, {desc}"
    data = "synthetic databases" if synthetic else "MEGC 2019 composite flow set"
    hardware = info["hardware"]
    if isinstance(hardware, str) and hardware.startswith(("cpu", "cuda")):
        hardware = describe_device(hardware)  # the engine's words -> the tables'
    table = ReportTable(
        "fig4", title,
        (Column("acc", "test Acc"), Column("sil_tsne", "silhouette (t-SNE 2-D)"),
         Column("sil_feat", "silhouette (features)")),
        tuple(rows),
        (f"One model per network, seed {info['seed']}, trained on the training subjects "
         f"({info['train']}); features of the test subjects' samples: Basic Inception's "
         "concatenated two-stream feature before its classifier (ModelOutput.shared), "
         "FR's expression-refined feature before its classifier (ModelOutput.refined).",
         "Silhouette: scikit-learn silhouette score of the true classes (higher = better "
         "separated), on the 2-D t-SNE map and on the features themselves.",
         f"t-SNE: scikit-learn TSNE, PCA initialisation, perplexity {info['perplexity']:g}, "
         f"random_state {info['seed']}. Split, features and map: {run_dir}."),
        source=f"[{data}; {hardware}]")
    # the figure's title is the paper's caption; data and hardware go in its caption file
    fig = tsne_figure(panels, classes, title + (" (synthetic data)" if synthetic else ""))
    return table, fig


def _identity(runs: Runs, synthetic: bool) -> dict[str, Any]:
    """What must match for Fig. 4's stored split, features and map to be reused: the
    data, the seed, the split (its protocol) and the training settings."""
    from mefr.data.table import features_fingerprint

    features, _ = runs.features.get("cde", "fr", synthetic)
    return {
        "sha256": features_fingerprint(np.asarray(features.x), features.table),
        "seed": runs.first_seed(),
        "protocol": fig4_protocol(runs.first_seed()),
        "configs": {m: runs.config_for("cde", m).to_dict() for _, m, _ in PANELS},
    }


def _check(runs: Runs, run_dir: Path, synthetic: bool) -> None:
    stored = json.loads((run_dir / "info.json").read_text()).get("identity")
    now = json.loads(json.dumps(_identity(runs, synthetic)))
    if stored != now:
        raise ReproduceError(
            f"{run_dir} holds a Fig. 4 run with other data, seed, split or training settings; "
            "delete it or use another --results")


def _train(runs: Runs, run_dir: Path, synthetic: bool) -> None:
    import torch
    from sklearn.metrics import silhouette_score

    from mefr.data.flowset import select_channels
    from mefr.data.table import features_fingerprint, group_key
    from mefr.evaluate.protocols import ProtocolError, protocol_folds
    from mefr.evaluate.rundir import RunDir
    from mefr.evaluate.runner import run_protocol
    from mefr.train.runtime import load_network, resolve_device

    opts = runs.options
    features, source = runs.features.get("cde", "fr", synthetic)
    table = features.table
    y = np.asarray(table["label"], dtype=np.int64)
    groups = group_key(table).to_numpy(dtype=object)
    seed = runs.first_seed()
    protocol = fig4_protocol(seed)
    try:
        (fold,) = protocol_folds(table, protocol)
    except ProtocolError as e:
        raise ReproduceError(f"Fig. 4: {e}") from None
    train_idx, test_idx = fold.train_idx, fold.test_idx
    train_subjects = sorted({str(s) for s in groups[train_idx]})
    k = len(features.class_names)
    dev = resolve_device(opts.device)
    rows, results = [], {}
    hardware = ""
    for _, model, _ in PANELS:
        config = runs.config_for("cde", model)
        run = RunDir(run_dir / model)
        # the engine, not options.train_fn (the tests' stand-in gives no networks)
        run_protocol(features, protocol, config, [seed], run.path, device=opts.device,
                     chunk=opts.chunk, progress=opts.progress, data_source=source,
                     curves=False, keep_models=True)
        weights, _ = run.weights(seed, fold.name)
        net = load_network(config, k, weights, dev)
        x = select_channels(features.x, features.channels, config.channels)
        with torch.no_grad():
            out = net(torch.from_numpy(np.ascontiguousarray(x[test_idx])).to(dev))
        feat = (out.refined if out.refined is not None else out.shared).float().cpu().numpy()
        pred = run.read_fold(seed, fold.name, test_idx, y)["pred"].to_numpy()
        xy = tsne_embedding(feat, seed)
        yt = y[test_idx]
        two = len(np.unique(yt)) > 1 and len(yt) > len(np.unique(yt))
        info = run.read_info(seed, fold.name) or {}
        hardware = info.get("device", opts.device)
        results[model] = {
            "test_acc": float(np.mean(pred == yt)),
            "silhouette_tsne": float(silhouette_score(xy, yt)) if two else None,
            "silhouette_features": float(silhouette_score(feat.reshape(len(feat), -1), yt))
            if two else None,
            "feature_dim": int(np.prod(feat.shape[1:])),
            "train_seconds": info.get("group_seconds"),
            "config": config.to_dict(),
        }
        part = table.iloc[test_idx]
        rows.append(pd.DataFrame({
            "model": model, "dataset": part["dataset"].astype(str).to_numpy(),
            "subject": part["subject"].astype(str).to_numpy(),
            "clip": part["clip"].astype(str).to_numpy(), "label": yt,
            "label_name": [features.class_names[v] for v in yt], "pred": pred,
            "tsne_x": xy[:, 0], "tsne_y": xy[:, 1]}))
    n_test = len(test_idx)
    info_all = {
        "identity": _identity(runs, synthetic),
        "data": source,
        "sha256": features_fingerprint(np.asarray(features.x), table),
        "class_names": list(features.class_names),
        "seed": int(seed),
        "protocol": protocol,
        "train": train_text({"train": runs.config_for("cde", "fr").to_dict()}),
        "split": {"train_subjects": len(train_subjects), "train_samples": len(train_idx),
                  "test_subjects": int(len(np.unique(groups[test_idx]))),
                  "test_samples": n_test, "training_subject_ids": train_subjects},
        "perplexity": min(30.0, max(1.0, (n_test - 1) / 3.0)),
        "hardware": hardware,
        "models": results,
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    pd.concat(rows, ignore_index=True).to_csv(run_dir / "embedding.csv", index=False)
    (run_dir / "info.json").write_text(json.dumps(info_all, indent=2) + "\n")
