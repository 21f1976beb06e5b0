"""Run a protocol over seeds into a resumable run directory (``mefr evaluate``).

:func:`run_protocol` trains one model per (seed, fold) through the training engine (or
any ``train_fn`` of its signature, e.g. an executor of :mod:`mefr.evaluate.executors`)
and keeps everything in a run directory (:mod:`mefr.evaluate.rundir` holds its layout
and is the only module that reads or writes it): ``config.yaml``, one fold file per
finished (seed, fold) - written atomically the moment the engine reports it, with the
engine's info, learning curves and (``keep_models``) weights beside it - then
``predictions.csv``, ``metrics.json`` (:mod:`mefr.evaluate.summary`), ``table.md`` and
the MEGC logs.

A rerun skips the folds whose file exists (resume after an interruption), trains only
the new seeds when more are asked for (or the other folds, after a PARTIAL run of some
folds: :mod:`mefr.evaluate.partial`), refuses a run directory made with a different
configuration or in use by another run (its lock names the holder), and does nothing
once the run is complete. A resumed run equals an uninterrupted one as far as the
engine's results do not depend on which jobs train together (byte-identical on CPU; on
a GPU the resumed jobs train in other groups, hence other kernels, and may differ
slightly). Ctrl-C raises :class:`RunInterrupted`, which says what was kept and how to
resume; an I/O error names its file and what was kept.

The model evaluated in a fold is the last-epoch one, or the one whose epoch was chosen
on an inner validation split of the *training* subjects: nothing ever looks at the test
fold. The runner prints nothing: it logs to ``logging.getLogger("mefr.evaluate.runner")``
and :meth:`RunResult.summary` holds the text a caller shows (``mefr evaluate`` prints it).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mefr._env import environment
from mefr._io import PathError
from mefr.data.flowset import select_channels
from mefr.data.table import group_key, sample_key
from mefr.evaluate.executors import accepts_keyword
from mefr.evaluate.identity import FeatureSetLike, describe_run
from mefr.evaluate.partial import FoldSpec, SubjectSpec, partial_done, plan_folds, select_folds
from mefr.evaluate.protocols import Fold, build_jobs, job_key, parse_seeds, protocol_folds
from mefr.evaluate.rundir import (
    PARTIAL,
    PROBABILITY_TOLERANCE,
    RunDir,
    RunDirError,
    metrics_partial,
)
from mefr.evaluate.summary import (
    RunWarning,
    compute_metrics,
    markdown_table,
    megc_log,
    run_warnings,
    scores_frame,
)
from mefr.models.registry import is_handcrafted
from mefr.train.config import TrainConfig

if TYPE_CHECKING:
    from mefr.train.jobs import Job

logger = logging.getLogger(__name__)


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) stopped :func:`run_protocol`; the message says what is kept and
    how to resume (``mefr`` prints it after ``interrupted:``).

    Attributes: ``run_dir``, ``kept`` (finished folds on disk), ``total`` (folds of the
    run), ``trained`` (folds this call trained before it stopped).
    """

    def __init__(self, run_dir: Path, kept: int, total: int, trained: int) -> None:
        self.run_dir, self.kept, self.total, self.trained = run_dir, kept, total, trained
        super().__init__(
            f"{kept} of {total} folds are finished and kept in {run_dir} "
            f"({trained} trained by this run); run the same command again to resume "
            "(finished folds are not trained again)")

    def __str__(self) -> str:
        return str(self.args[0])


TrainFn = Callable[..., Any]


# ----------------------------------------------------------------------------- inputs
def _labels(features: FeatureSetLike) -> np.ndarray:
    table, k = features.table, len(features.class_names)
    if "label" not in table.columns:
        raise ValueError("the feature set's table has no 'label' column (apply a label protocol)")
    y = pd.to_numeric(table["label"], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(y) | (y < 0) | (y >= k) | (y != np.round(y)))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"table row {i} ({sample_key(table.iloc[[i]]).iloc[0]}): label "
            f"{table['label'].iloc[i]!r} is not a class index 0..{k - 1}"
        )
    return y.astype(np.int64)


def _inputs(features: FeatureSetLike, channels: Sequence[str]) -> np.ndarray:
    x = np.asarray(features.x)
    if x.ndim != 4 or x.shape[0] != len(features.table):
        raise ValueError(
            f"feature array has shape {x.shape}; expected (N={len(features.table)}, C, H, W)"
        )
    return select_channels(x, features.channels, channels)


# ----------------------------------------------------------------------------- folds
def _fold_frame(
    table: pd.DataFrame, y: np.ndarray, test_idx: np.ndarray, probs: np.ndarray,
    class_names: Sequence[str],
) -> pd.DataFrame:
    rows = table.iloc[test_idx]
    df = pd.DataFrame(
        {
            "index": test_idx,
            "dataset": rows["dataset"].astype(str).to_numpy(),
            "subject": rows["subject"].astype(str).to_numpy(),
            "clip": rows["clip"].astype(str).to_numpy(),
            "label": y[test_idx],
            "pred": probs.argmax(axis=1),
        }
    )
    for j, c in enumerate(class_names):
        df[f"p_{c}"] = probs[:, j]
    return df


def _check_probs(key: str, probs: Any, n: int, k: int) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.shape != (n, k):
        raise RunDirError(f"job {key}: probabilities of shape {p.shape}, expected ({n}, {k})")
    if not np.isfinite(p).all():
        raise RunDirError(f"job {key}: probabilities contain NaN or inf")
    tol = PROBABILITY_TOLERANCE
    if (p < -tol).any() or (p > 1 + tol).any() or (np.abs(p.sum(axis=1) - 1) > tol).any():
        raise RunDirError(f"job {key}: the engine's probabilities are not in [0, 1] or a row "
                          "does not sum to 1")
    return p


# ----------------------------------------------------------------------------- runner
@dataclass(frozen=True)
class RunResult:
    """What :func:`run_protocol` did and produced.

    Attributes
    ----------
    run_dir : the run directory.
    trained : job keys trained by this call.
    skipped : job keys whose fold file already existed (resumed).
    already_complete : True when the run (a PARTIAL run: its folds asked) was complete
        before this call (nothing done).
    metrics : the content of metrics.json.
    predictions : the content of predictions.csv.
    partial : the PARTIAL mark ``{"folds": [...], "of": N}`` of a run of some folds
        (``run_protocol(folds=..., subjects=...)``); None for a run of all folds.
    warnings : signs of a failed training (:func:`mefr.evaluate.summary.run_warnings`),
        also issued as :class:`~mefr.evaluate.summary.RunWarning` and kept in metrics.json.
    """

    run_dir: Path
    trained: tuple[str, ...]
    skipped: tuple[str, ...]
    already_complete: bool
    metrics: dict[str, Any]
    predictions: pd.DataFrame
    warnings: tuple[str, ...] = field(default=())

    def scores_frame(self) -> pd.DataFrame:
        """Acc / UF1 / UAR per seed and database: columns ``seed, database, metric,
        value`` (:func:`mefr.evaluate.summary.scores_frame`)."""
        return scores_frame(self.metrics)

    def table(self) -> str:
        """table.md: the run's Markdown table."""
        return markdown_table(self.metrics)

    @property
    def partial(self) -> dict[str, Any] | None:
        """The PARTIAL mark of metrics.json (see the attributes); None: every fold."""
        return metrics_partial(self.metrics)

    def summary(self) -> str:
        """What to show when the call ends: the table and what was trained and resumed,
        or that the run was complete already; a PARTIAL run says so on its last line."""
        mark = self.partial
        done = partial_done(mark) if mark else "run complete"
        if self.already_complete and mark:
            return (f"{self.run_dir}: the {len(self.skipped)} fold(s) asked are finished; "
                    f"nothing to do. {done}\n")
        if self.already_complete:
            return f"{self.run_dir}: run complete ({len(self.skipped)} folds); nothing to do\n"
        return (self.table() + f"{self.run_dir}: {len(self.trained)} fold(s) trained, "
                f"{len(self.skipped)} resumed; {done}\n")


def _train_missing(
    train_fn: TrainFn,
    x: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    todo: list[Job],
    config: TrainConfig,
    k: int,
    device: str,
    chunk: int | None,
    write: Callable[[str, np.ndarray], None],
    write_info: Callable[[str, dict[str, Any]], None],
    progress: bool,
    write_job_curves: Callable[[str, dict[str, np.ndarray]], None],
    curves: bool,
    keep: Callable[[str, Any], None] | None,
) -> None:
    size = len(todo) if not chunk else int(chunk)
    options = {"curves": True} if curves and accepts_keyword(train_fn, "curves") else {}
    if keep is not None:
        options["return_models"] = True
    for start in range(0, len(todo), size):
        jobs = todo[start : start + size]
        done: set[str] = set()
        informed: set[str] = set()

        def on_result(key: str, probs: np.ndarray, info: dict[str, Any] | None = None,
                      _done: set[str] = done, _informed: set[str] = informed) -> None:
            info = dict(info or {})
            job_curves = info.pop("curves", None)
            if job_curves is not None:  # before the fold file, which marks the fold done
                write_job_curves(key, job_curves)
            write(key, probs)
            write_info(key, info)  # with the fold (and its checksum): a stop keeps it
            if info:
                _informed.add(key)
            _done.add(key)

        result = train_fn(
            x, y, jobs, config, k, groups=groups, device=device, on_result=on_result,
            progress=progress, **options,
        )
        probs = getattr(result, "probs", None) or {}
        for job in jobs:
            if job.key not in done:
                if job.key not in probs:
                    raise RunDirError(f"the engine returned no probabilities for job {job.key}")
                write(job.key, probs[job.key])
        for key, info in (getattr(result, "info", None) or {}).items():
            if key not in informed:
                info = dict(info)
                job_curves = info.pop("curves", None)
                if job_curves is not None and key not in done:
                    write_job_curves(key, job_curves)
                write_info(key, info)
        if keep is not None:
            models = getattr(result, "models", None) or {}
            for job in jobs:
                if job.key not in models:
                    raise RunDirError(f"the engine returned no model for job {job.key}")
                keep(job.key, models[job.key])


def run_protocol(
    features: FeatureSetLike,
    protocol: str,
    config: TrainConfig,
    seeds: str | int | Iterable[int],
    run_dir: str | Path,
    device: str = "auto",
    train_fn: TrainFn | None = None,
    chunk: int | None = None,
    progress: bool = True,
    data_source: str | None = None,
    curves: bool = True,
    keep_models: bool = False,
    folds: FoldSpec | None = None,
    subjects: SubjectSpec | None = None,
) -> RunResult:
    """Train and evaluate ``config`` on ``features`` under ``protocol`` for every seed.

    ``protocol`` is a name of :data:`mefr.evaluate.protocols.PROTOCOLS` (``cde``,
    ``loso``, ``loso:<dataset>``, ``cdmer:<n>``). ``train_fn`` defaults to
    :func:`mefr.train.engine.train_group`; all remaining jobs go to it in one call, or
    ``chunk`` jobs per call. Each finished fold is written atomically as soon as it is
    reported, so an interrupted run resumes where it stopped. ``data_source`` (e.g. the
    ``--features`` argument) is recorded in config.yaml but not compared on reruns.
    ``curves`` keeps each fold's learning curves (``<fold>.curves.npz``) when the
    engine can record them; they do not change the predictions. ``keep_models`` keeps
    each fold's trained weights (``<fold>.safetensors``: :meth:`RunDir.weights` reads
    them, :func:`mefr.train.runtime.load_network` rebuilds the network); a fold finished
    without them is then trained again.

    ``folds`` (names as in the run directory, ``"casme2/sub01"``; 0-based indices and
    ranges, ``"0-3,10"``) and ``subjects`` (``"casme2/sub01"``, or ``"sub01"`` in every
    database: the folds testing them) run only those outer folds, a quick look marked
    PARTIAL in config.yaml, metrics.json, table.md, the MEGC logs and :attr:`RunResult.
    partial`; its scores pool the clips of those folds (with those of an earlier PARTIAL
    run there). A later call without them trains only the missing folds and clears the
    mark; into a complete run they are refused (:mod:`mefr.evaluate.partial`).

    Raises :class:`~mefr.evaluate.rundir.RunDirError` (a run directory that cannot be
    used as asked, an I/O error naming its file) and :class:`RunInterrupted` (Ctrl-C).
    """
    if train_fn is None:
        from mefr.train.engine import train_group

        train_fn = train_group
    if chunk is not None and int(chunk) < 1:
        raise ValueError(f"chunk must be a positive number of jobs, got {chunk!r}")
    if keep_models and (is_handcrafted(config.model)
                        or not accepts_keyword(train_fn, "return_models")):
        raise ValueError(f"keep_models: {config.model} trained by {train_fn!r} gives no "
                         "network weights to keep")
    run = RunDir(run_dir)
    seeds = parse_seeds(seeds)
    y = _labels(features)
    x = _inputs(features, config.channels)
    every_fold = protocol_folds(features.table, protocol)
    asked = select_folds(every_fold, features.table, folds, subjects, protocol)
    identity = describe_run(features, x, y, protocol, config, seeds, every_fold)
    env = environment(device)
    extra = {"features": data_source, "environment": env,
             "created": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds")}
    run.check_writable()
    with run.lock():
        run_folds, mark = plan_folds(run, every_fold, asked)
        run.open({**identity, PARTIAL: mark} if mark else identity, extra)
        result = _run(run, features, x, y, run_folds, seeds, protocol, config, device,
                      train_fn, chunk, progress, curves, env, mark, keep_models)
    logger.info("%s", result.summary().rstrip("\n"))
    return result


def _run(run: RunDir, features: FeatureSetLike, x: np.ndarray, y: np.ndarray,
         folds: Sequence[Fold], seeds: Sequence[int], protocol: str, config: TrainConfig,
         device: str, train_fn: TrainFn, chunk: int | None, progress: bool, curves: bool,
         env: dict[str, Any], mark: dict[str, Any] | None, keep_models: bool) -> RunResult:
    """The body of :func:`run_protocol` once the run directory is open and locked:
    ``folds`` are those to run (some, with the PARTIAL ``mark``, or all)."""
    table = features.table
    class_names = tuple(str(c) for c in features.class_names)
    k = len(class_names)
    # what each fold file records of the code that trained it: a resumed run may mix
    # code revisions, and the fold files say which
    software = {"mefr": env["packages"]["mefr"], "code": env["code"]}
    jobs = build_jobs(folds, seeds)
    by_key = {j.key: j for j in jobs}
    where = {job_key(s, f.name): (int(s), f.name) for s in seeds for f in folds}
    todo = [j for j in jobs if not run.has_fold(*where[j.key], keep_models)]
    skipped = tuple(j.key for j in jobs if run.has_fold(*where[j.key], keep_models))
    for key in skipped:  # a stale or edited fold file fails now, not after hours of training
        run.read_fold(*where[key], by_key[key].test_idx, y)
    finished = None if todo else run.finished_metrics(seeds, mark)
    if finished is not None:
        return RunResult(run_dir=run.path, trained=(), skipped=skipped, already_complete=True,
                         metrics=finished, predictions=run.predictions())

    trained: list[str] = []
    checksum: dict[str, str] = {}
    bar = tqdm(total=len(jobs), initial=len(skipped), desc="folds", unit="fold",
               disable=not progress)

    def write(key: str, probs: Any) -> None:
        if key not in by_key:
            raise RunDirError(f"the engine reported an unknown job {key!r}")
        job = by_key[key]
        p = _check_probs(key, probs, len(job.test_idx), k)
        frame = _fold_frame(table, y, job.test_idx, p, class_names)
        checksum[key] = run.write_fold(*where[key], frame)
        trained.append(key)
        bar.update(1)

    def write_info(key: str, info: dict[str, Any]) -> None:
        if key in where:
            written = pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds")
            sha = {"csv_sha256": checksum[key]} if key in checksum else {}
            run.write_info(*where[key], {**info, **software, **sha, "written": written})

    def write_job_curves(key: str, job_curves: dict[str, np.ndarray]) -> None:
        if key in where:
            run.write_fold_curves(*where[key], job_curves)

    def keep(key: str, model: Any) -> None:
        state = {n: v.detach().cpu().numpy() for n, v in model.state_dict().items()}
        run.write_weights(*where[key], state, {"model": config.model, "job": key,
                                               "num_classes": str(k)})

    def kept() -> int:
        return sum(run.has_fold(*w, keep_models) for w in where.values())

    try:
        if todo:
            groups = group_key(table).to_numpy(dtype=object)
            _train_missing(train_fn, x, y, groups, todo, config, k, device, chunk, write,
                           write_info, progress, write_job_curves, curves,
                           keep if keep_models else None)
    except KeyboardInterrupt:
        raise RunInterrupted(run.path, kept(), len(jobs), len(trained)) from None
    except PathError as e:
        raise RunDirError(f"{e}; {kept()} of {len(jobs)} folds are finished and kept in "
                          f"{run.path}: fix that, then run the same command again to "
                          "resume") from e
    finally:
        bar.close()

    predictions, frames, infos = _collect(run, folds, seeds, y)
    notes = run_warnings(predictions, class_names, infos)
    for note in notes:
        warnings.warn(f"{run.path}: {note}", RunWarning, stacklevel=3)
    metrics = compute_metrics(predictions, class_names, seeds, protocol, config, notes, mark)
    run.write_outputs(predictions, {s: megc_log(fs, mark) for s, fs in frames.items()},
                      markdown_table(metrics), metrics)
    return RunResult(run_dir=run.path, trained=tuple(trained), skipped=skipped,
                     already_complete=False, metrics=metrics, predictions=predictions,
                     warnings=tuple(notes))


def _collect(
    run: RunDir, folds: Sequence[Fold], seeds: Sequence[int], y: np.ndarray,
) -> tuple[pd.DataFrame, dict[int, list[pd.DataFrame]], dict[int, dict[str, Any]]]:
    """Read every fold file (and its info); pool them per seed in the order of the
    sample table."""
    frames: dict[int, list[pd.DataFrame]] = {}
    infos: dict[int, dict[str, Any]] = {}
    pooled = []
    for s in seeds:
        frames[s] = [run.read_fold(s, f.name, f.test_idx, y) for f in folds]
        infos[s] = {f.name: run.read_info(s, f.name) for f in folds}
        df = pd.concat(frames[s], ignore_index=True).sort_values("index", kind="stable")
        df.insert(0, "seed", s)
        pooled.append(df)
    predictions = pd.concat(pooled, ignore_index=True).drop(columns="index")
    return predictions, frames, infos

