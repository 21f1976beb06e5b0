"""Honest ensembles of finished runs: one network's seeds, or several networks.

Each member's evaluated model was chosen without the test fold (the runner's rule), so
the mean of their class probabilities is an honest prediction too. :func:`ensemble_of_runs`
averages per clip over each run's seeds, then over the runs, so each network weighs the
same; ``mefr ensemble RUN_DIR...`` prints its table. With several networks it also scores,
seed by seed, the ensemble of one model of each network (their runs' seed s), and reports
mean ± std over the seeds: what an ensemble of one model per network, such as a bundle of
shipped models, can be expected to score. With ``subset_size=K`` (``--subsets K``) it
scores the ensemble of every choice of K seeds from each run, and reports mean ± std and
range over the choices: how much an ensemble's figure depends on which seeds it holds.

>>> from mefr.evaluate.ensemble import ensemble_of_runs
>>> result = ensemble_of_runs(["results/cde/fr", "results/cde/off_apexnet"])  # doctest: +SKIP
>>> result.scores["composite"].uf1, result.paired["composite"]["uf1"]         # doctest: +SKIP
>>> spread = ensemble_of_runs(["results/cde/fr"], subset_size=5).subsets      # doctest: +SKIP
>>> spread.scores["composite"]["uf1"], spread.ranges["composite"]["uf1"]      # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mefr.evaluate.audit import (
    METRICS,
    AuditError,
    format_mean_std,
    mean_probabilities,
    read_audit_records,
    records_by_seed,
)
from mefr.evaluate.metrics import scores_by_dataset
from mefr.evaluate.summary import DATASET_ORDER as _ORDER
from mefr.evaluate.summary import DISPLAY_NAMES as _NAMES

#: ``subset_size``: at most this many choices of seeds are scored; beyond it they are drawn
#: at random (generator seed 0), each run's K seeds without replacement
MAX_SUBSETS = 1000


@dataclass(frozen=True)
class SubsetSpread:
    """Scores of ensembles of ``size`` seeds from each run, over ``scored`` choices of
    seeds (of ``possible``): ``{db: {metric: (mean, std)}}`` and ``{db: {metric: (min,
    max)}}``."""

    size: int
    scored: int
    possible: int
    scores: dict[str, dict[str, tuple[float, float | None]]]
    ranges: dict[str, dict[str, tuple[float, float]]]


@dataclass(frozen=True)
class EnsembleResult:
    """Scores of an ensemble of runs (:func:`ensemble_of_runs`) and of its members."""

    run_dirs: tuple[Path, ...]
    models: tuple[str, ...]
    seeds: tuple[tuple[int, ...], ...]
    scores: dict[str, Any]
    members: tuple[dict[str, Any], ...]
    #: ``{db: {metric: (mean, std)}}`` over ``paired_seeds`` of each seed's ensemble of
    #: one model per run (None with one run, or no seed that every run has)
    paired: dict[str, dict[str, tuple[float, float | None]]] | None = None
    paired_seeds: tuple[int, ...] = ()
    #: ensembles of K seeds per run over the choices of seeds (``subset_size``), or None
    subsets: SubsetSpread | None = None

    def markdown(self) -> str:
        """One row per member run (mean ± std of its single seeds) and the ensemble."""
        dbs = list(self.scores)
        head = ["Model", "seeds"] + [f"{_NAMES.get(d, d)} {m.upper()}" for d in dbs
                                     for m in ("uf1", "uar")]
        lines = ["| " + " | ".join(head) + " |",
                 "|" + "|".join(["---", "---"] + ["---:"] * (len(head) - 2)) + "|"]
        for run_dir, model, seeds, member in zip(self.run_dirs, self.models, self.seeds,
                                                 self.members, strict=True):
            cells = [f"{model} (single seeds, `{run_dir}`)", _seed_text(seeds)]
            cells += [format_mean_std(*member[d][m]) for d in dbs for m in ("uf1", "uar")]
            lines.append("| " + " | ".join(cells) + " |")
        name = ("ensemble of the seeds" if len(self.run_dirs) == 1
                else f"ensemble of {len(self.run_dirs)} networks")
        cells = [f"**{name}**", "all above"]
        cells += [f"{getattr(self.scores[d], m):.4f}" for d in dbs for m in ("uf1", "uar")]
        lines.append("| " + " | ".join(cells) + " |")
        if self.paired:
            cells = ["one model of each network, paired by seed", _seed_text(self.paired_seeds)]
            cells += [format_mean_std(*self.paired[d][m]) for d in dbs for m in ("uf1", "uar")]
            lines.append("| " + " | ".join(cells) + " |")
        if self.subsets:
            sub = self.subsets
            per = "per network" if len(self.run_dirs) > 1 else "of the run"
            cells = [f"ensembles of {_seeds(sub.size)} {per}, over {sub.scored} choices",
                     f"{sub.size} of {'/'.join(str(len(s)) for s in self.seeds)}"]
            cells += [format_mean_std(*sub.scores[d][m]) for d in dbs for m in ("uf1", "uar")]
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", "The ensemble averages the class probabilities per clip: first over "
                  "each run's seeds, then over the runs (each network weighs the same). Every "
                  "member's evaluated model was chosen without the test fold, and so is their "
                  "mean: an honest figure."]
        if self.paired:
            lines += ["", f"The paired row averages, for each seed s, the {len(self.run_dirs)} "
                      "runs' seed-s models (one per network) and gives mean ± std over the "
                      "seeds: the expected score of an ensemble of one model per network."]
        if self.subsets:
            sub = self.subsets
            each = "each run" if len(self.run_dirs) > 1 else "the run"
            what = f"of {sub.size} of {each}'s seeds above"
            how = (f"every one of the {sub.possible:,} possible choices {what}"
                   if sub.scored == sub.possible else f"{sub.scored:,} choices {what}, drawn "
                   f"at random from the {sub.possible:,} possible")
            lo, hi = sub.ranges["composite"]["uf1"]
            lines += ["", f"The row of ensembles of {_seeds(sub.size)} scores {how}: mean ± "
                      f"std over the choices, composite UF1 from {lo:.4f} to {hi:.4f}. That "
                      "is how much an ensemble's figure depends on which seeds it holds. The "
                      "choices come from one pool of seeds and overlap, so ensembles of fresh "
                      "seeds would likely spread more."]
        return "\n".join(lines) + "\n"


def ensemble_of_runs(run_dirs: Sequence[str | Path],
                     seeds: Sequence[int] | None = None,
                     subset_size: int | None = None) -> EnsembleResult:
    """The honest ensemble of finished runs on the same clips (one network's seeds, or
    several networks): probabilities averaged per clip over each run's seeds, then over
    the runs. ``seeds`` keeps only those seeds of every run (each run must have them
    all finished), so that runs with more seeds than others, or a bundle trained with
    ``mefr train --seeds``, are compared member for member; None keeps every finished
    seed. ``subset_size=K`` also scores the ensemble of every choice of K of each run's
    kept seeds (:class:`SubsetSpread`; at most :data:`MAX_SUBSETS` choices). Raises
    :class:`AuditError` when the runs scored different clips, classes or protocols, lack
    a requested seed, or have fewer than K seeds."""
    if not run_dirs:
        raise AuditError("an ensemble needs at least one run directory")
    wanted = None if seeds is None else sorted(set(seeds))
    if wanted is not None and not wanted:
        raise AuditError("seeds: none asked for (give at least one, or None for all)")
    if subset_size is not None and subset_size < 1:
        raise AuditError(f"subset size {subset_size}: give at least 1 seed per run")
    means, members, models, seeds_of, ref = [], [], [], [], None
    seed_probs: list[dict[int, np.ndarray]] = []  # per run: seed -> (clips, classes)
    for run_dir in run_dirs:
        config, records = read_audit_records(run_dir, with_curves=False)
        if not records:
            raise AuditError(f"{run_dir}: no finished fold")
        key = (config.get("protocol"), tuple(config["data"]["class_names"]))
        if ref is None:
            ref = key
        elif key != ref:
            raise AuditError(f"{run_dir}: protocol / classes {key} differ from {ref}")
        k = len(key[1])
        grouped, partial = records_by_seed(records)
        if partial and wanted is None:  # a seed still being trained is not a seed yet
            warnings.warn(f"{run_dir}: seeds {partial} are incomplete; the ensemble leaves "
                          "them out", stacklevel=2)
        finished = [s for s in grouped if s not in partial]
        kept = finished if wanted is None else wanted
        missing = [s for s in kept if s not in finished]
        if missing:
            raise AuditError(f"{run_dir}: seeds {missing} asked for are not finished "
                             f"(finished: {finished or 'none'})")
        by_seed = [grouped[s] for s in kept]
        records = [r for recs in by_seed for r in recs]
        clip_sets = {tuple(sorted(int(i) for r in recs for i in r.index)) for recs in by_seed}
        if len(clip_sets) != 1:
            raise AuditError(f"{run_dir}: its seeds scored different clips (incomplete seed?)")
        index, probs, labels, datasets, _ = mean_probabilities(records)
        means.append((index, probs, labels, datasets))
        if subset_size is not None and subset_size > len(kept):
            raise AuditError(f"{run_dir}: {len(kept)} seeds kept, fewer than the subset "
                             f"size {subset_size}")
        probs_of_seed = {s: mean_probabilities(recs)[1] for s, recs in zip(kept, by_seed,
                                                                          strict=True)}
        seed_probs.append(probs_of_seed)
        members.append(_mean_std_by_db([_scores(p, labels, datasets, k)
                                        for p in probs_of_seed.values()]))
        models.append(str(config.get("train", {}).get("model", "?")))
        seeds_of.append(tuple(kept))
    index0 = means[0][0]
    for run_dir, (index, *_rest) in zip(run_dirs, means, strict=True):
        if not np.array_equal(index, index0):
            raise AuditError(f"{run_dir}: scored other clips than {run_dirs[0]}")
    probs = np.mean([m[1] for m in means], axis=0)
    _, _, labels, datasets = means[0]
    scores = _scores(probs, labels, datasets, len(ref[1]))
    common = sorted(set.intersection(*(set(r) for r in seed_probs)))
    paired = (_paired_by_seed(seed_probs, common, labels, datasets, len(ref[1]))
              if len(run_dirs) > 1 and common else None)
    subsets = (_subset_spread([np.stack(list(r.values())) for r in seed_probs], subset_size,
                              labels, datasets, len(ref[1]))
               if subset_size is not None else None)
    return EnsembleResult(tuple(Path(r) for r in run_dirs), tuple(models), tuple(seeds_of),
                          scores, tuple(members), paired, tuple(common) if paired else (),
                          subsets)


def _subset_spread(seed_probs: Sequence[np.ndarray], size: int, labels: np.ndarray,
                   datasets: np.ndarray, k: int) -> SubsetSpread:
    """Score the ensemble (mean over each run's chosen seeds, then over the runs) of
    every choice of ``size`` seeds per run, or of :data:`MAX_SUBSETS` random choices."""
    counts = [len(p) for p in seed_probs]
    possible = math.prod(math.comb(n, size) for n in counts)
    if possible <= MAX_SUBSETS:
        choices = list(itertools.product(*(itertools.combinations(range(n), size)
                                           for n in counts)))
    else:
        rng = np.random.default_rng(0)
        choices = [tuple(tuple(sorted(rng.choice(n, size, replace=False))) for n in counts)
                   for _ in range(MAX_SUBSETS)]
    per_choice = [_scores(np.mean([p[list(c)].mean(axis=0)
                                   for p, c in zip(seed_probs, choice, strict=True)], axis=0),
                          labels, datasets, k) for choice in choices]
    ranges = {db: {m: (float(np.nanmin(v)), float(np.nanmax(v)))
                   for m in METRICS for v in [[getattr(sc[db], m) for sc in per_choice]]}
              for db in per_choice[0]}
    return SubsetSpread(size, len(choices), possible, _mean_std_by_db(per_choice), ranges)


def _paired_by_seed(seed_probs: Sequence[dict[int, np.ndarray]], seeds: Sequence[int],
                    labels: np.ndarray, datasets: np.ndarray, k: int
                    ) -> dict[str, dict[str, tuple[float, float | None]]]:
    """For each seed, the ensemble of the runs' models of that seed (probabilities
    averaged per clip); mean ± std of its scores over the seeds."""
    return _mean_std_by_db([_scores(np.mean([run[s] for run in seed_probs], axis=0),
                                    labels, datasets, k) for s in seeds])


def _scores(probs: np.ndarray, labels: np.ndarray, datasets: np.ndarray, k: int
            ) -> dict[str, Any]:
    return scores_by_dataset(labels, probs.argmax(-1), datasets, k, order=_ORDER)


def _mean_std_by_db(per: Sequence[dict[str, Any]]
                    ) -> dict[str, dict[str, tuple[float, float | None]]]:
    """``{db: {metric: (mean, std)}}`` over a list of :func:`_scores` results."""
    return {db: {m: _mean_std([getattr(sc[db], m) for sc in per]) for m in METRICS}
            for db in per[0]}


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    a = np.asarray(values, dtype=np.float64)
    return float(np.nanmean(a)), (float(np.nanstd(a, ddof=1)) if len(a) > 1 else None)


def _seeds(n: int) -> str:
    return f"{n} seed" + ("" if n == 1 else "s")


def _seed_text(seeds: Sequence[int]) -> str:
    s = list(seeds)
    if s == list(range(s[0], s[-1] + 1)) and len(s) > 1:
        return f"{len(s)} ({s[0]}-{s[-1]})"
    return f"{len(s)} ({', '.join(map(str, s))})"
