"""Is model A better than model B on the same clips? A paired comparison of two runs.

Two sources of noise stand between a LOSO score and the claim "A beats B":

* **training noise** - another seed gives other weights. The runner's ``metrics.json``
  gives each model's spread over seeds; the report's "A minus B (paired by seed)" rows
  the spread of the per-seed difference.
* **sampling noise** - the databases are small samples of people (68 subjects in the
  composite); other subjects would give other scores, and a seed's difference can be
  the luck of a few of them.

This module measures the second with a paired bootstrap over subjects: subjects are
drawn with replacement (the subject, not the clip, is the unit that was sampled, and
its clips are not independent), every drawn subject brings all of its clips, the
pooled metric (Eqs. 9-11) is computed for A and for B on the same draw, and their
difference is averaged over the seeds both runs have. The percentile interval of that
difference over many draws, and the share of draws in which A wins, say how firmly the
data support the sign of the difference. Pooled confusion matrices add up over
subjects, so a draw is a weighted sum of per-subject confusion matrices: thousands of
draws take milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mefr.evaluate.metrics import COMPOSITE, metric_from_confusions
from mefr.evaluate.partial import partial_error
from mefr.evaluate.rundir import RunDir
from mefr.evaluate.summary import DATASET_ORDER

#: Columns that identify a test clip in ``predictions.csv``.
CLIP_COLUMNS: tuple[str, ...] = ("dataset", "subject", "clip")


@dataclass(frozen=True)
class PairedDifference:
    """A minus B on one metric and one database, with its subject-bootstrap interval.

    Attributes
    ----------
    a, b : each run's metric, averaged over ``seeds``.
    difference : ``a - b`` (the mean over seeds of the per-seed differences).
    low, high : the ``confidence`` percentile interval of the difference over draws.
    share_a_better : the share of draws in which the difference is above zero.
    """

    metric: str
    database: str
    seeds: tuple[int, ...]
    subjects: int
    clips: int
    a: float
    b: float
    difference: float
    low: float
    high: float
    share_a_better: float
    replicates: int
    confidence: float


def subject_confusions(y_true: np.ndarray, y_pred: np.ndarray, subject: np.ndarray,
                       num_subjects: int, num_classes: int) -> np.ndarray:
    """Confusion matrices per subject, ``(S, K, K)``, from integer subject codes."""
    cms = np.zeros((num_subjects, num_classes, num_classes), dtype=np.int64)
    np.add.at(cms, (subject, y_true, y_pred), 1)
    return cms


def draw_subject_counts(num_subjects: int, replicates: int, seed: int) -> np.ndarray:
    """How often each subject is drawn in each bootstrap replicate, ``(B, S)``."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(num_subjects, np.full(num_subjects, 1.0 / num_subjects),
                           size=replicates)


def differences_for_counts(cms_a: np.ndarray, cms_b: np.ndarray, counts: np.ndarray,
                           metric: str) -> np.ndarray:
    """``metric(A) - metric(B)`` of each draw, averaged over seeds, ``(B,)``.

    ``cms_a``, ``cms_b``: per-seed, per-subject confusion matrices ``(R, S, K, K)``;
    ``counts``: ``(B, S)`` draws of subjects (:func:`draw_subject_counts`).
    """
    pooled_a = np.einsum("bs,rskl->brkl", counts, cms_a)
    pooled_b = np.einsum("bs,rskl->brkl", counts, cms_b)
    diff = metric_from_confusions(pooled_a, metric) - metric_from_confusions(pooled_b, metric)
    return diff.mean(axis=1)


def paired_bootstrap(
    y_true: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    subjects: Sequence[object],
    num_classes: int,
    metric: str = "uf1",
    replicates: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
    seeds: Sequence[int] = (0,),
    database: str = COMPOSITE,
) -> PairedDifference:
    """Paired subject bootstrap of ``metric(A) - metric(B)``.

    Parameters
    ----------
    y_true : ``(N,)`` labels of the clips.
    pred_a, pred_b : predictions ``(N,)``, or ``(R, N)`` for R seeds (row r of A is paired
        with row r of B).
    subjects : ``(N,)`` the subject of each clip (any hashable; a (database, subject) pair
        should be one value).
    replicates, seed : the number of draws and the seed of the generator that draws them.
    seeds, database : recorded in the result only.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if replicates < 1:
        raise ValueError(f"replicates must be at least 1, got {replicates}")
    y = np.asarray(y_true, dtype=np.int64)
    pa = np.atleast_2d(np.asarray(pred_a, dtype=np.int64))
    pb = np.atleast_2d(np.asarray(pred_b, dtype=np.int64))
    if pa.shape != pb.shape or pa.shape[1] != len(y) or len(subjects) != len(y):
        raise ValueError(f"shapes differ: y {y.shape}, A {pa.shape}, B {pb.shape}, "
                         f"subjects {len(subjects)}")
    if len(y) == 0:
        raise ValueError("no clips to compare")
    codes, _ = pd.factorize(pd.Series(list(subjects), dtype=object))
    s = int(codes.max()) + 1
    cms_a = np.stack([subject_confusions(y, p, codes, s, num_classes) for p in pa])
    cms_b = np.stack([subject_confusions(y, p, codes, s, num_classes) for p in pb])
    whole = np.ones((1, s), dtype=np.int64)
    a = float(metric_from_confusions(np.einsum("bs,rskl->brkl", whole, cms_a), metric).mean())
    b = float(metric_from_confusions(np.einsum("bs,rskl->brkl", whole, cms_b), metric).mean())
    draws = differences_for_counts(cms_a, cms_b, draw_subject_counts(s, replicates, seed),
                                   metric)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(draws, [tail, 100 - tail])
    return PairedDifference(
        metric=metric, database=database, seeds=tuple(int(v) for v in seeds), subjects=s,
        clips=len(y), a=a, b=b, difference=a - b, low=float(low), high=float(high),
        share_a_better=float(np.mean(draws > 0)), replicates=replicates,
        confidence=confidence,
    )


def _read(run_dir: Path) -> pd.DataFrame:
    run = RunDir(run_dir)
    refused = partial_error(run, "comparing runs")
    if refused:
        raise ValueError(refused)
    df = run.predictions()
    missing = {"seed", "label", "pred", *CLIP_COLUMNS} - set(df.columns)
    if missing:
        raise ValueError(f"{run.predictions_path}: columns {sorted(missing)} missing")
    return df


def compare_runs(
    run_a: str | Path,
    run_b: str | Path,
    metrics: Sequence[str] = ("uf1", "uar"),
    databases: Sequence[str] | None = None,
    replicates: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> list[PairedDifference]:
    """Compare two run directories on the seeds and clips they share.

    Both runs must have predicted the same clips with the same labels for each shared
    seed (the same protocol on the same data). ``databases``: ``composite`` (all clips)
    and/or database names; default: the composite and every database present. A PARTIAL
    run (some folds only, :mod:`mefr.evaluate.partial`) is refused with a ValueError.
    """
    da, db = _read(Path(run_a)), _read(Path(run_b))
    seeds = sorted(set(da["seed"]) & set(db["seed"]))
    if not seeds:
        raise ValueError(f"{run_a} (seeds {sorted(set(da['seed']))}) and {run_b} (seeds "
                         f"{sorted(set(db['seed']))}) have no seed in common")
    keys = ["seed", *CLIP_COLUMNS]
    merged = da[da["seed"].isin(seeds)].merge(
        db[db["seed"].isin(seeds)], on=keys, how="outer", suffixes=("_a", "_b"),
        indicator=True)
    unpaired = merged[merged["_merge"] != "both"]
    if len(unpaired):
        row = unpaired.iloc[0]
        side = run_a if row["_merge"] == "left_only" else run_b
        raise ValueError(f"{len(unpaired)} predictions are in one run only, e.g. seed "
                         f"{row['seed']} clip {row['dataset']}/{row['subject']}/{row['clip']} "
                         f"only in {side}: the runs did not score the same clips")
    bad = merged[merged["label_a"] != merged["label_b"]]
    if len(bad):
        row = bad.iloc[0]
        raise ValueError(f"{len(bad)} clips have different labels in the two runs, e.g. "
                         f"{row['dataset']}/{row['subject']}/{row['clip']}: "
                         f"{row['label_a']} in {run_a}, {row['label_b']} in {run_b}")
    per_seed = merged.groupby("seed")[list(CLIP_COLUMNS)].apply(
        lambda g: frozenset(map(tuple, g.to_numpy())))
    if per_seed.nunique() != 1:
        raise ValueError(f"the seeds {seeds} of {run_a} and {run_b} did not all score the "
                         "same clips")
    # classes: the probability columns p_<name> of predictions.csv, or the labels seen
    k = sum(c.startswith("p_") for c in da.columns) or int(
        merged[["label_a", "pred_a", "pred_b"]].to_numpy().max()) + 1
    present = sorted(set(merged["dataset"]), key=lambda d: (
        DATASET_ORDER.index(d) if d in DATASET_ORDER else len(DATASET_ORDER), d))
    if databases:
        wanted = list(databases)
    else:
        wanted = [COMPOSITE, *present] if len(present) > 1 else present
    out = []
    for name in wanted:
        part = merged if name == COMPOSITE else merged[merged["dataset"] == name]
        if part.empty:
            raise ValueError(f"database {name!r} is not in the runs; present: {present}")
        part = part.sort_values(keys, kind="stable")
        by_seed = [part[part["seed"] == s] for s in seeds]
        y = by_seed[0]["label_a"].to_numpy()
        subj = list(zip(by_seed[0]["dataset"], by_seed[0]["subject"], strict=True))
        pa = np.stack([d["pred_a"].to_numpy() for d in by_seed])
        pb = np.stack([d["pred_b"].to_numpy() for d in by_seed])
        for metric in metrics:
            out.append(paired_bootstrap(y, pa, pb, subj, k, metric, replicates, seed,
                                        confidence, seeds, name))
    return out


def differences_table(results: Sequence[PairedDifference], name_a: str, name_b: str) -> str:
    """A Markdown table of :func:`compare_runs`' results."""
    if not results:
        return ""
    r0 = results[0]
    pct = f"{100 * r0.confidence:g}%"
    lines = [
        f"| database | metric | {name_a} | {name_b} | difference | {pct} interval "
        "(subject bootstrap) | draws with A ahead | seeds |",
        "|---|---|---:|---:|---:|---|---:|---|",
    ]
    for r in results:
        seeds = ",".join(str(s) for s in r.seeds)
        lines.append(f"| {r.database} | {r.metric} | {r.a:.4f} | {r.b:.4f} | "
                     f"{r.difference:+.4f} | [{r.low:+.4f}, {r.high:+.4f}] | "
                     f"{100 * r.share_a_better:.1f}% | {seeds} |")
    lines += ["", f"Paired bootstrap over subjects ({r0.replicates} draws); each draw "
              "pools the clips of the drawn subjects, scores A and B on the same clips and "
              "averages A minus B over the seeds both runs have. It measures how much the "
              "difference depends on which subjects were recorded, not the training noise "
              "of other seeds."]
    return "\n".join(lines)
