"""How much a choice of epoch can move a score: honest and test-selected (LEAKY) readings
of one run directory.

A run directory with learning curves (``folds/seed<k>/<fold>.curves.npz``, written by
the runner) holds each fold's test probabilities after every epoch. From them
:func:`audit_run` scores the selections a reader meets in the literature, each labelled:

* honest - nothing looks at a test fold:
    - ``last epoch``: the model after the last epoch;
    - ``inner validation``: the epoch chosen on held-out *training* subjects (runs with
      ``select_epoch_by=inner_val`` only);
    - ``ensemble of N seeds`` (N > 1): the evaluated models' probabilities averaged per clip;
* LEAKY - the test fold chooses:
    - ``best epoch for the protocol``: the one epoch whose pooled test predictions
      score the best composite UF1 (Eq. 10);
    - ``best epoch per subject, test accuracy``: for each test subject, the epoch with
      its best accuracy (the selection of HTNet's and MMNet's public code);
    - ``best epoch per subject, test loss``: the same by the lowest cross-entropy.

Each selection is scored per seed (composite and per database, Eqs. 9-11, predictions
pooled over folds) and reported as mean and sample standard deviation over seeds.
Ties between epochs go to the earliest. Beside the table the audit reports how well the
recipe fits the training subjects (the training loss after the last epoch) and what the
per-subject selection adds with no signal at all
(:func:`~mefr.evaluate.selection.selection_under_shuffled_labels`). The selections
themselves are computed by :mod:`mefr.evaluate.selection`.

>>> from mefr.evaluate.audit import audit_run
>>> audit = audit_run("runs/fr")                      # doctest: +SKIP
>>> print(audit.markdown())                           # doctest: +SKIP
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mefr.evaluate.metrics import COMPOSITE, scores_by_dataset
from mefr.evaluate.selection import (
    FoldRecord,
    select_per_subject,
    selection_under_shuffled_labels,
    uf1_by_epoch,
)
from mefr.evaluate.summary import DATASET_ORDER as _ORDER
from mefr.evaluate.summary import DISPLAY_NAMES as _NAMES

METRICS: tuple[str, ...] = ("uf1", "uar", "acc")
HONEST, LEAKY = "honest", "LEAKY"


class AuditError(ValueError):
    """A run directory cannot be audited (no curves, mixed epochs, unreadable files)."""


@dataclass
class AuditResult:
    """The audit of one run: a long table of scores and the curves behind the figure.

    ``scores`` has one row per (selection, database, metric) with ``mean``, ``std``,
    ``seeds`` and the ``kind`` (honest / LEAKY); ``uf1_by_epoch`` ``(S, E)`` is the
    composite UF1 of each seed after each epoch; ``train_loss`` ``(S, F, E)`` the
    training loss of each fold; ``epochs`` what each selection chose; ``shuffled``
    ``{"last epoch": {database: (S,)}, "per subject": {...}}`` each seed's mean UF1
    (composite and per database) under shuffled test labels
    (:func:`selection_under_shuffled_labels`), None when not drawn.
    """

    run_dir: Path
    model: str
    protocol: str
    seeds: tuple[int, ...]
    class_names: tuple[str, ...]
    scores: pd.DataFrame
    uf1_by_epoch: np.ndarray
    train_loss: np.ndarray
    epochs: dict[str, str] = field(default_factory=dict)
    reference: dict[str, float] | None = None
    shuffled: dict[str, dict[str, np.ndarray]] | None = None
    shuffled_draws: int = 0

    def final_train_loss(self) -> tuple[float, np.ndarray]:
        """The training loss after the last epoch: median over every fold of every
        seed, and each seed's median ``(S,)``. Near zero: the recipe fits the training
        subjects; far from it: the network is under-fit."""
        last = self.train_loss[:, :, -1]
        return float(np.median(last)), np.median(last, axis=1)

    def cell(self, selection: str, database: str = COMPOSITE, metric: str = "uf1"
             ) -> tuple[float, float | None]:
        """``(mean, std)`` of one selection's metric on one database."""
        row = self.scores[(self.scores["selection"] == selection)
                          & (self.scores["database"] == database)
                          & (self.scores["metric"] == metric)]
        if row.empty:
            raise KeyError(f"no {metric} of {selection!r} on {database!r}")
        std = row["std"].iloc[0]
        return float(row["mean"].iloc[0]), None if pd.isna(std) else float(std)

    def markdown(self, title: str | None = None) -> str:
        """The audit table: one row per selection, honest rows first, LEAKY labelled."""
        return audit_markdown(self, title)


# ----------------------------------------------------------------------------- reading
def read_audit_records(run_dir: str | Path, with_curves: bool = True
                       ) -> tuple[dict[str, Any], list[FoldRecord]]:
    """The run's config.yaml and every finished (seed, fold) with its curves, if any. A
    PARTIAL run (some folds only, :mod:`mefr.evaluate.partial`) is refused."""
    from mefr.evaluate import rundir as rd
    from mefr.evaluate.partial import partial_error

    run = rd.RunDir(run_dir)
    config = run.config()
    if not config:
        raise AuditError(f"{run.path}: no config.yaml; not a run directory")
    refused = partial_error(run, "an audit or an ensemble")
    if refused:
        raise AuditError(refused)
    class_names = list(config.get("data", {}).get("class_names") or [])
    records: list[FoldRecord] = []
    for seed, fold, frame, info, curves in run.iter_folds(with_curves=with_curves):
        probs_cols = [f"p_{c}" for c in class_names]
        missing = [c for c in probs_cols if c not in frame.columns]
        if missing:
            raise AuditError(f"{run.path}: fold {fold} of seed {seed} lacks columns {missing}")
        epoch = info.get("evaluated_epoch") if info else None
        records.append(FoldRecord(
            seed=seed, fold=fold, index=frame["index"].to_numpy(),
            dataset=frame["dataset"].astype(str).to_numpy(),
            subject=frame["subject"].astype(str).to_numpy(),
            label=frame["label"].to_numpy(dtype=np.int64),
            evaluated=frame[probs_cols].to_numpy(dtype=np.float64),
            evaluated_epoch=None if epoch is None else int(epoch),
            test=None if curves is None else curves["test"].astype(np.float32),
            train_loss=None if curves is None else curves["train_loss"].astype(np.float64),
        ))
    return config, records


def records_by_seed(records: Sequence[FoldRecord]) -> tuple[dict[int, list[FoldRecord]], list[int]]:
    """Each seed's records (ascending seeds), and the seeds with fewer folds than the
    most complete one: still being trained, not seeds yet."""
    by_seed: dict[int, list[FoldRecord]] = {}
    for r in sorted(records, key=lambda r: r.seed):
        by_seed.setdefault(r.seed, []).append(r)
    n_folds = max((len(v) for v in by_seed.values()), default=0)
    return by_seed, [s for s, recs in by_seed.items() if len(recs) < n_folds]


# ----------------------------------------------------------------------------- audit
def audit_run(run_dir: str | Path, seeds: Sequence[int] | None = None,
              reference: dict[str, float] | None = None,
              shuffled_draws: int = 20) -> AuditResult:
    """Score the honest and LEAKY selections of a run directory with learning curves.

    Only seeds whose every fold has curves are audited (a seed trained before curves
    existed is left out, with a warning). ``reference`` (e.g. the paper's
    ``{"uf1": 0.7838, "uar": 0.7832}``) is carried into the table and the figure.
    ``shuffled_draws`` label shuffles per seed measure what the per-subject selection
    adds with no signal (:func:`selection_under_shuffled_labels`; 0: not measured).

    Raises :class:`AuditError` when no seed has curves.
    """
    config, records = read_audit_records(run_dir)
    class_names = tuple(config["data"]["class_names"])
    k = len(class_names)
    train = config.get("train", {})
    by_seed, incomplete = records_by_seed(records)
    wanted = sorted(by_seed) if seeds is None else [int(s) for s in seeds]
    usable = [s for s in wanted if s in by_seed and s not in incomplete
              and all(r.test is not None for r in by_seed[s])]
    left_out = [s for s in wanted if s not in usable]
    if left_out:
        warnings.warn(f"{run_dir}: seeds {left_out} are incomplete or have no learning "
                      "curves; the audit leaves them out", stacklevel=2)
    if not usable:
        raise AuditError(f"{run_dir}: no complete seed with learning curves (runs trained "
                         "before mefr recorded curves have none; rerun with mefr >= 0.2)")
    epochs_per_fold = {r.test.shape[0] for s in usable for r in by_seed[s]}  # type: ignore[union-attr]
    if len(epochs_per_fold) != 1:
        raise AuditError(f"{run_dir}: folds recorded different numbers of epochs "
                         f"{sorted(epochs_per_fold)}")
    n_epochs = epochs_per_fold.pop()
    inner = train.get("select_epoch_by") == "inner_val"

    per_seed: dict[str, list[dict[str, Any]]] = {}
    chosen: dict[str, list[int]] = {}
    shuffled: dict[str, dict[str, list[float]]] = {"last epoch": {}, "per subject": {}}
    for s in usable:
        recs = sorted(by_seed[s], key=lambda r: r.fold)
        if shuffled_draws > 0:
            null = selection_under_shuffled_labels(recs, k, draws=shuffled_draws, seed=s)
            for name, by_db in null.items():
                for db, values in by_db.items():
                    shuffled[name].setdefault(db, []).append(float(values.mean()))
        labels = np.concatenate([r.label for r in recs])
        datasets = np.concatenate([r.dataset for r in recs])
        selections: dict[str, tuple[np.ndarray, list[int]]] = {}
        selections["last epoch"] = (
            np.concatenate([r.test[-1].argmax(-1) for r in recs]), [n_epochs])  # type: ignore[index]
        if inner:
            selections["inner validation"] = (
                np.concatenate([r.evaluated.argmax(-1) for r in recs]),
                [r.evaluated_epoch or n_epochs for r in recs])
        curve = uf1_by_epoch(recs, k)
        best = int(np.nanargmax(curve))
        selections["best epoch for the protocol"] = (
            np.concatenate([r.test[best].argmax(-1) for r in recs]), [best + 1])  # type: ignore[index]
        for by, name in (("acc", "best epoch per subject, test accuracy"),
                         ("loss", "best epoch per subject, test loss")):
            pred, eps = select_per_subject(recs, by)
            selections[name] = (pred, [e + 1 for e in eps])
        for name, (pred, eps) in selections.items():
            chosen.setdefault(name, []).extend(eps)
            per_seed.setdefault(name, []).append(
                {db: sc for db, sc in scores_by_dataset(labels, pred, datasets, k,
                                                        order=_ORDER).items()})
    rows = []
    kinds = {"last epoch": HONEST, "inner validation": HONEST,
             "best epoch for the protocol": LEAKY,
             "best epoch per subject, test accuracy": LEAKY,
             "best epoch per subject, test loss": LEAKY}
    for name, seed_scores in per_seed.items():
        rows.extend(_rows(name, kinds[name], seed_scores, len(usable)))
    epochs = {name: _epochs_note(v, n_epochs) for name, v in chosen.items()}
    if len(usable) > 1:  # one seed's "ensemble" is its evaluated model again
        ens_name = f"ensemble of {len(usable)} seeds"
        ens = ensemble_scores([r for s in usable for r in by_seed[s]], k)
        rows.extend(_rows(ens_name, HONEST, [ens], 1))
        epochs[ens_name] = "each seed's evaluated model"
    scores = pd.DataFrame(rows)
    scores["kind"] = pd.Categorical(scores["kind"], [HONEST, LEAKY])
    curves = np.stack([uf1_by_epoch(sorted(by_seed[s], key=lambda r: r.fold), k)
                       for s in usable])
    losses = np.stack([np.stack([r.train_loss for r in sorted(by_seed[s], key=lambda r: r.fold)])
                       for s in usable])
    return AuditResult(
        run_dir=Path(run_dir), model=str(train.get("model", "?")),
        protocol=str(config.get("protocol", "?")), seeds=tuple(usable),
        class_names=class_names, scores=scores, uf1_by_epoch=curves, train_loss=losses,
        epochs=epochs, reference=reference,
        shuffled={n: {db: np.asarray(v) for db, v in d.items()} for n, d in shuffled.items()}
        if shuffled_draws > 0 else None,
        shuffled_draws=max(0, shuffled_draws),
    )


def mean_probabilities(records: Sequence[FoldRecord]
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The evaluated probabilities of ``records`` averaged per clip: clip index, mean
    probabilities, labels, databases and the number of members of each clip, sorted by
    clip index."""
    by_clip: dict[int, list[np.ndarray]] = {}
    meta: dict[int, tuple[int, str]] = {}
    for r in records:
        for i, idx in enumerate(r.index):
            by_clip.setdefault(int(idx), []).append(r.evaluated[i])
            meta[int(idx)] = (int(r.label[i]), str(r.dataset[i]))
    order = np.array(sorted(by_clip), dtype=np.int64)
    probs = np.stack([np.mean(by_clip[i], axis=0) for i in order])
    labels = np.array([meta[i][0] for i in order])
    datasets = np.array([meta[i][1] for i in order], dtype=object)
    members = np.array([len(by_clip[i]) for i in order])
    return order, probs, labels, datasets, members


def ensemble_scores(records: Sequence[FoldRecord], k: int) -> dict[str, Any]:
    """Scores of the seeds' evaluated probabilities averaged per clip (an honest ensemble:
    each member was chosen without the test fold, and so is their mean)."""
    _, probs, labels, datasets, members = mean_probabilities(records)
    if len(set(members.tolist())) != 1:
        raise AuditError(f"the seeds scored different clips ({sorted(set(members.tolist()))} "
                         "members)")
    return scores_by_dataset(labels, probs.argmax(-1), datasets, k, order=_ORDER)


def _rows(name: str, kind: str, seed_scores: list[dict[str, Any]], n: int
          ) -> list[dict[str, Any]]:
    rows = []
    for db in seed_scores[0]:
        for m in METRICS:
            values = np.array([getattr(s[db], m) for s in seed_scores], dtype=np.float64)
            rows.append({
                "selection": name, "kind": kind, "database": db, "metric": m,
                "mean": float(np.nanmean(values)),
                "std": float(np.nanstd(values, ddof=1)) if len(values) > 1 else np.nan,
                "seeds": n,
            })
    return rows


def _epochs_note(epochs: list[int], n_epochs: int) -> str:
    a = np.asarray(epochs)
    if (a == a[0]).all():
        return f"{int(a[0])}"
    return f"median {int(np.median(a))} (range {int(a.min())}-{int(a.max())} of {n_epochs})"


# ----------------------------------------------------------------------------- output


def audit_markdown(result: AuditResult, title: str | None = None) -> str:
    """The audit as a Markdown table with the kind of each selection in its own column."""
    df = result.scores
    dbs = list(dict.fromkeys(df["database"]))
    head = (["Selection", "Kind", "Epoch(s) kept"]
            + [f"{_NAMES.get(COMPOSITE)} {m.upper() if m != 'acc' else 'Acc'}" for m in METRICS]
            + [f"{_NAMES.get(d, d)} {m.upper()}" for d in dbs if d != COMPOSITE
               for m in ("uf1", "uar")])
    lines = []
    if title:
        lines += [f"### {title}", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 3 + ["---:"] *
                                                          (len(head) - 3)) + "|"]
    order = sorted(dict.fromkeys(df["selection"]),
                   key=lambda s: (df[df["selection"] == s]["kind"].iloc[0] == LEAKY,))
    for sel in order:
        kind = str(df[df["selection"] == sel]["kind"].iloc[0])
        cells = [sel, f"**{kind}**" if kind == LEAKY else kind, result.epochs.get(sel, "")]
        cells += [format_mean_std(*result.cell(sel, COMPOSITE, m)) for m in METRICS]
        cells += [format_mean_std(*result.cell(sel, d, m)) for d in dbs if d != COMPOSITE
                  for m in ("uf1", "uar")]
        lines.append("| " + " | ".join(cells) + " |")
    if result.reference:
        ref = result.reference
        cells = ["published figure", "(paper)", ""]
        cells += [f"{ref[m]:.4f}" if m in ref else "" for m in METRICS]
        cells += [f"{ref[f'{d}_{m}']:.4f}" if f"{d}_{m}" in ref else ""
                  for d in dbs if d != COMPOSITE for m in ("uf1", "uar")]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Run `{result.run_dir}` ({result.model}, protocol `{result.protocol}`), "
              f"seeds {list(result.seeds)}: mean ± sample std over seeds (ensemble: one "
              "value). **LEAKY** rows choose the epoch by looking at the test fold and are "
              "shown only to compare with figures so obtained; honest rows look at no test "
              "fold."]
    where = reference_position(result)
    if where:
        lines += ["", where]
    lines += ["", fit_sentence(result)]
    null = shuffled_sentence(result)
    if null:
        lines += ["", null]
    return "\n".join(lines) + "\n"


def fit_sentence(result: AuditResult) -> str:
    """One sentence on how well the recipe fits the training subjects, for instance
    "Training loss after the last epoch (Eq. 8): median 0.045 over the 204 outer folds
    (per seed 0.042, 0.069, 0.033)".
    """
    overall, per_seed = result.final_train_loss()
    n = result.train_loss.shape[0] * result.train_loss.shape[1]
    text = (f"Training loss after the last epoch (Eq. 8): median {format_loss(overall)} "
            f"over the {n} outer folds")
    if len(per_seed) > 1:
        text += " (per seed " + ", ".join(map(format_loss, per_seed)) + ")"
    return text + "."


def shuffled_sentence(result: AuditResult) -> str | None:
    """What the per-subject selection by test accuracy scores when the test labels are
    shuffled, against the last epoch (UF1, mean over seeds of each seed's mean over
    draws), composite and per database; None when not measured."""
    if not result.shuffled:
        return None
    mean = {name: {db: float(np.mean(v)) for db, v in by_db.items()}
            for name, by_db in result.shuffled.items()}
    last, picked = mean["last epoch"], mean["per subject"]
    text = (f"With the test labels shuffled ({result.shuffled_draws} draws per seed, class "
            "counts kept), where no epoch can know more than another, the best epoch per "
            f"subject by test accuracy (**LEAKY**) scores composite UF1 "
            f"{picked[COMPOSITE]:.4f} against {last[COMPOSITE]:.4f} for the last epoch: "
            f"{picked[COMPOSITE] - last[COMPOSITE]:+.4f} is what that choice adds with no "
            "signal at all")
    dbs = [db for db in picked if db != COMPOSITE]
    if dbs:
        text += " (" + "; ".join(f"{_NAMES.get(db, db)} {picked[db]:.4f} against "
                                 f"{last[db]:.4f}, {picked[db] - last[db]:+.4f}"
                                 for db in dbs) + ")"
    return text + "."


def reference_position(result: AuditResult, metric: str = "uf1") -> str | None:
    """One sentence: where the published composite ``metric`` lies against the audit's
    honest and LEAKY readings (their means over seeds), or None without a reference;
    for instance "The published composite UF1 0.7838 lies above every honest reading
    (best 0.7112) and inside the LEAKY range (0.7311 to 0.8593)."
    """
    ref = (result.reference or {}).get(metric)
    if ref is None:
        return None
    df = result.scores
    df = df[(df["database"] == COMPOSITE) & (df["metric"] == metric)]
    honest = df[df["kind"] == HONEST]["mean"].max()
    leaky = df[df["kind"] == LEAKY]["mean"]
    name = {"uf1": "UF1", "uar": "UAR", "acc": "Acc"}[metric]
    text = f"The published composite {name} {ref:.4f} lies "
    if ref <= honest:
        return text + f"within the honest readings' reach (best honest {honest:.4f})."
    text += f"above every honest reading (best {honest:.4f}) and "
    low, high = leaky.min(), leaky.max()
    if ref > high:
        return text + f"above every LEAKY one too (up to {high:.4f})."
    if ref < low:
        return text + f"below every LEAKY one (from {low:.4f})."
    return text + f"inside the LEAKY range ({low:.4f} to {high:.4f})."


def format_loss(value: float) -> str:
    """A training loss to three places, or in scientific notation below 0.01 (a fitted
    network's loss would read 0.000 otherwise): ``0.045``, ``3.2e-04``."""
    return f"{value:.3f}" if abs(value) >= 0.01 or value == 0 else f"{value:.1e}"


def format_mean_std(mean: float, std: float | None) -> str:
    """``mean ± std`` to four places; ``mean`` alone without a std, ``-`` for NaN."""
    if np.isnan(mean):
        return "-"
    return f"{mean:.4f}" if std is None else f"{mean:.4f} ± {std:.4f}"


def audit_json(result: AuditResult) -> str:
    """The audit's scores, epochs and seeds as JSON (beside the Markdown table)."""
    final = result.final_train_loss()
    payload = {
        "run_dir": str(result.run_dir), "model": result.model, "protocol": result.protocol,
        "seeds": list(result.seeds), "epochs": result.epochs, "reference": result.reference,
        "scores": json.loads(result.scores.astype({"kind": str}).to_json(orient="records")),
        "uf1_by_epoch_mean": np.nanmean(result.uf1_by_epoch, axis=0).round(6).tolist(),
        "train_loss_median_by_epoch": np.median(result.train_loss, axis=1).mean(0)
        .round(6).tolist(),
        "final_train_loss_median": round(final[0], 6),
        "final_train_loss_median_by_seed": final[1].round(6).tolist(),
    }
    if result.shuffled:
        payload["shuffled_labels"] = {
            "draws_per_seed": result.shuffled_draws,
            "uf1_by_seed": {n: {db: v.round(6).tolist() for db, v in d.items()}
                            for n, d in result.shuffled.items()},
        }
    return json.dumps(payload, indent=2) + "\n"
