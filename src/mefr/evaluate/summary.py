"""A run's scores: aggregation over seeds, the Markdown table, the MEGC log, warnings.

* :func:`compute_metrics` - the content of ``metrics.json``: Acc / UF1 / UAR (Eqs. 9-13)
  per seed and database on the pooled predictions, then mean and sample std over seeds;
* :func:`scores_frame` - the same per-seed scores as a long :class:`pandas.DataFrame`;
* :func:`markdown_table` - ``table.md``, laid out like the paper's Table 2;
* :func:`megc_log` - the MEGC 2019 log of one seed;
* :func:`run_warnings` - signs that training failed although it finished: a seed whose
  predictions are all one class, folds whose training loss barely moved;
* :data:`DISPLAY_NAMES`, :data:`METRIC_NAMES`, :data:`DATASET_ORDER` - the display names
  of databases and metrics and the paper's column order (the one place they are kept).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mefr.evaluate.metrics import COMPOSITE, Scores, scores_by_dataset
from mefr.evaluate.partial import describe_partial, partial_note
from mefr.evaluate.rundir import RunDirError, metrics_partial
from mefr.models.registry import is_handcrafted
from mefr.train.config import TrainConfig

#: Column order of databases in metrics.json and table.md (the paper's Table 2 order).
DATASET_ORDER: tuple[str, ...] = ("smic_hs", "casme2", "samm", "smic_vis", "smic_nir")
#: Display names of the databases (and of the composite).
DISPLAY_NAMES: dict[str, str] = {
    COMPOSITE: "Composite",
    "smic_hs": "SMIC-HS",
    "casme2": "CASME II",
    "samm": "SAMM",
    "smic_vis": "SMIC-VIS",
    "smic_nir": "SMIC-NIR",
}
#: Display names of the metrics.
METRIC_NAMES: dict[str, str] = {"acc": "Acc", "uf1": "UF1", "uar": "UAR"}
STD_DEFINITION = "sample standard deviation over seeds (ddof=1); null with a single seed"
POOLING = (
    "Acc, UF1 and UAR (Eqs. 9-13) are computed once on the test predictions of all folds "
    "pooled, not averaged over folds; per-database scores are the same pooled predictions "
    "restricted to that database"
)
#: A fold whose final training loss is above this share of its initial one "did not train".
LOSS_STALL_RATIO = 0.95


class RunWarning(UserWarning):
    """A run finished but its results look like a failed training (see :func:`run_warnings`)."""


def selection_note(config: TrainConfig) -> str:
    """How the evaluated model of each fold was chosen (never on the test fold)."""
    if is_handcrafted(config.model):
        return (
            "each fold fits the classifier once on its training rows with fixed settings "
            f"({config.model}); nothing was tuned and no choice looked at the test fold"
        )
    if config.select_epoch_by == "inner_val":
        return (
            "each fold evaluates the epoch with the best UF1 on an inner validation split "
            f"({config.inner_val_fraction:g} of the training subjects); no choice looked at "
            "the test fold"
        )
    return (
        f"each fold evaluates the model after the last epoch ({config.epochs}); no choice "
        "looked at the test fold"
    )


def _seed_scores(pred: pd.DataFrame, k: int) -> dict[str, Scores]:
    return scores_by_dataset(
        pred["label"].to_numpy(), pred["pred"].to_numpy(), pred["dataset"].to_numpy(), k,
        order=DATASET_ORDER,
    )


def _aggregate(values: list[Any]) -> tuple[Any, Any]:
    """Mean and sample std (ddof=1) over seeds, ignoring undefined (None) entries."""
    a = np.array(values, dtype=np.float64)  # None -> nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-nan: an undefined class
        mean = np.nanmean(a, axis=0)
        std = np.nanstd(a, axis=0, ddof=1) if len(values) > 1 else np.full_like(mean, np.nan)

    def out(v: np.ndarray) -> Any:
        if v.ndim == 0:
            return None if np.isnan(v) else float(v)
        return [out(u) for u in v]

    return out(mean), out(std)


def compute_metrics(
    predictions: pd.DataFrame,
    class_names: Sequence[str],
    seeds: Sequence[int],
    protocol: str,
    config: TrainConfig,
    notes: Sequence[str] = (),
    partial: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """metrics.json: scores per seed and database, then mean / std over seeds;
    ``notes`` (:func:`run_warnings`) are recorded under ``warnings`` when there are any.
    A PARTIAL run (``partial``: ``{"folds": [...], "of": N}``, the folds ``predictions``
    come from) adds ``partial: true``, ``folds_run`` and ``folds_total``."""
    k = len(class_names)
    per_seed: dict[str, dict[str, Any]] = {}
    for s in seeds:
        sel = predictions[predictions["seed"] == s]
        if sel.empty:
            raise RunDirError(f"no predictions for seed {s}")
        per_seed[str(s)] = {db: sc.to_dict() for db, sc in _seed_scores(sel, k).items()}
    databases = list(next(iter(per_seed.values())))
    mean: dict[str, Any] = {}
    std: dict[str, Any] = {}
    for db in databases:
        mean[db], std[db] = {}, {}
        for m in ("acc", "uf1", "uar", "f1", "recall", "confusion"):
            mean[db][m], std[db][m] = _aggregate([per_seed[str(s)][db][m] for s in seeds])
        mean[db]["n"] = per_seed[str(seeds[0])][db]["n"]
    out = {
        "protocol": protocol,
        "model": config.model,
        "class_names": list(class_names),
        "seeds": list(seeds),
        **({"partial": True, "folds_run": list(partial["folds"]), "folds_total": partial["of"]}
           if partial else {}),
        "databases": databases,
        "selection": selection_note(config),
        "pooling": POOLING,
        "std_definition": STD_DEFINITION,
        "mean": mean,
        "std": std,
        "per_seed": per_seed,
    }
    if notes:
        out["warnings"] = list(notes)
    return out


def scores_frame(metrics: Mapping[str, Any],
                 metric_names: Sequence[str] = ("acc", "uf1", "uar")) -> pd.DataFrame:
    """The per-seed scores of a metrics.json as a long table: columns ``seed``,
    ``database``, ``metric``, ``value`` (None -> NaN), one row per (seed, database,
    metric), seeds ascending, databases in the run's order."""
    rows = [
        {"seed": int(seed), "database": db, "metric": m,
         "value": math.nan if (v := scores[db].get(m)) is None else float(v)}
        for seed, scores in sorted(metrics["per_seed"].items(), key=lambda kv: int(kv[0]))
        for db in metrics["databases"]
        for m in metric_names
    ]
    frame = pd.DataFrame(rows, columns=["seed", "database", "metric", "value"])
    return frame.astype({"seed": np.int64, "value": np.float64})


def _table_metrics(protocol: str) -> tuple[str, ...]:
    # Table 2 (CDE) reports UF1 / UAR; Tables 3-4 (CDMER) UF1 / Acc; Table 5 (one database
    # alone) Acc, shown here beside UF1 / UAR.
    if protocol.startswith("cdmer"):
        return ("uf1", "acc")
    if protocol.startswith("loso:"):
        return ("acc", "uf1", "uar")
    return ("uf1", "uar")


def _cell(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "-"
    return f"{mean:.4f}" if std is None else f"{mean:.4f} ± {std:.4f}"


def markdown_table(metrics: Mapping[str, Any], row_name: str | None = None) -> str:
    """A Markdown table laid out like the paper's Table 2 (one row per model).

    Columns: Composite (when the run spans several databases), then each database,
    times UF1 / UAR (UF1 / Acc for CDMER; Acc / UF1 / UAR for one database alone), as
    ``mean ± std`` over seeds. A PARTIAL run's table starts with a line saying so, and
    its row names the folds (``fr (PARTIAL 3/68 folds)``).
    """
    metric_names = _table_metrics(metrics["protocol"])
    dbs = [d for d in metrics["databases"] if d != COMPOSITE]
    cols = ([COMPOSITE] if len(dbs) > 1 else []) + dbs
    head = ["Model"] + [
        f"{DISPLAY_NAMES.get(d, d)} {METRIC_NAMES[m]}" for d in cols for m in metric_names
    ]
    mark = metrics_partial(metrics)
    name = row_name or metrics["model"]
    if mark:
        name = f"{name} (PARTIAL {len(mark['folds'])}/{mark['of']} folds)"
    cells = [name] + [
        _cell(metrics["mean"][d][m], metrics["std"][d][m]) for d in cols for m in metric_names
    ]
    seeds = metrics["seeds"]
    lines = [f"**{partial_note(mark)}**", ""] if mark else []
    lines += [
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|",
        "| " + " | ".join(cells) + " |",
        "",
        f"Protocol `{metrics['protocol']}`, {len(seeds)} seed(s) {seeds}: mean ± "
        f"{metrics['std_definition']}. {metrics['pooling']}. Selection: "
        f"{metrics['selection']}.",
    ]
    return "\n".join(lines) + "\n"


def megc_log(fold_frames: Sequence[pd.DataFrame],
             partial: Mapping[str, Any] | None = None) -> str:
    """The MEGC 2019 log of one seed: per (fold, subject) a ``db subject`` header line,
    then one ``file GT pred`` line per clip (GT and pred are class indices). A PARTIAL
    run's log starts with a ``# PARTIAL: ...`` line (it is not a complete log)."""
    lines = [f"# {describe_partial(partial)}; not a complete MEGC 2019 log"] if partial else []
    for df in fold_frames:
        for (db, subject), part in df.groupby(["dataset", "subject"], sort=False):
            lines.append(f"{db} {subject}")
            rows = part[["clip", "label", "pred"]].itertuples(index=False)
            lines.extend(f"{clip} {gt} {pred}" for clip, gt, pred in rows)
    return "\n".join(lines) + "\n"


def _loss(info: Mapping[str, Any] | None, key: str) -> float | None:
    try:
        v = float((info or {})[key])
    except (KeyError, TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def run_warnings(predictions: pd.DataFrame, class_names: Sequence[str],
                 infos: Mapping[int, Mapping[str, Mapping[str, Any] | None]] | None = None,
                 ) -> list[str]:
    """Signs of a failed training in a finished run, one message per seed and kind:

    * every prediction of the seed is the same class (the model collapsed: its UF1 and
      UAR are those of a constant guess);
    * folds whose final training loss is above :data:`LOSS_STALL_RATIO` times their
      initial one (``final_train_loss`` / ``initial_train_loss`` of the fold's engine
      info, ``infos[seed][fold]``; folds without both are not judged).
    """
    out: list[str] = []
    for seed, part in predictions.groupby("seed", sort=True):
        seen = pd.unique(part["pred"])
        if len(part) > 1 and len(seen) == 1:
            c = int(seen[0])
            name = class_names[c] if 0 <= c < len(class_names) else str(c)
            out.append(f"seed {seed}: all {len(part)} predictions are class {name!r}; the "
                       "models collapsed to one class (its UF1 / UAR are a constant guess's)")
    for seed, by_fold in sorted((infos or {}).items()):
        stalled = []
        for fold, info in by_fold.items():
            first, last = _loss(info, "initial_train_loss"), _loss(info, "final_train_loss")
            if first is not None and last is not None and first > 0 and \
                    last > LOSS_STALL_RATIO * first:
                stalled.append(f"{fold} ({first:.4g} -> {last:.4g})")
        if stalled:
            out.append(f"seed {seed}: the training loss of {len(stalled)} fold(s) ended above "
                       f"{LOSS_STALL_RATIO:g} x its initial value, e.g. "
                       + ", ".join(stalled[:3]) + "; these models barely trained (check lr, "
                       "epochs, the inputs)")
    return out
