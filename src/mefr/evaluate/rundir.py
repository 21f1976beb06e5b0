"""The run directory of ``mefr evaluate``: the only module that reads or writes its files.

::

    run_dir/
      config.yaml                 resolved TrainConfig, protocol, seeds, data, environment
      .lock                       while a run writes: who (pid, host, start, command)
      folds/seed<k>/<fold>.csv    the test predictions of one finished fold
      folds/seed<k>/<fold>.json   what the engine reported about it, the code that trained
                                  it and the SHA-256 of the fold file (``csv_sha256``)
      folds/seed<k>/<fold>.curves.npz   its learning curves (:meth:`RunDir.curves`)
      folds/seed<k>/<fold>.safetensors  with ``keep_models``: its weights (never a pickle)
      predictions.csv             seed, dataset, subject, clip, label, pred, p_<class>...
      metrics.json                scores per seed and database, mean and std over seeds
      table.md                    a Markdown table laid out like the paper's Table 2
      megc_log/seed<k>.txt        the MEGC 2019 log format

A fold name such as ``casme2/sub01`` nests (``folds/seed0/casme2/sub01.csv``). A run of
some of the protocol's folds (``mefr evaluate --folds``, :mod:`mefr.evaluate.partial`) is
marked PARTIAL: config.yaml records ``partial: {folds: [...], of: N}`` (the folds asked)
and metrics.json ``partial: true`` with ``folds_run`` and ``folds_total`` (the folds its
scores cover); :meth:`RunDir.partial` reads the mark. Every file is written atomically
(:mod:`mefr._io`); a fold file marks its fold finished, ``metrics.json`` (written last)
the run complete. A fold file is checked whenever it is read (probabilities in [0, 1]
summing to 1, ``pred`` their argmax, the SHA-256 its JSON records): an edited file is
refused, naming it. :class:`RunDir` is one directory; the functions below serve it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import safetensors
import safetensors.numpy
import yaml

from mefr._env import describe_device, describe_environment
from mefr._io import (
    LockHeld,
    PathError,
    atomic_write,
    atomic_write_bytes,
    atomic_write_text,
    exclusive_lock,
    read_bytes,
    to_plain,
)
from mefr.evaluate.identity import config_differences

CONFIG, FOLDS, LOCK = "config.yaml", "folds", ".lock"
PREDICTIONS, METRICS, TABLE, MEGC_LOG = "predictions.csv", "metrics.json", "table.md", "megc_log"
#: The files whose presence (with the MEGC logs of every seed) marks a run complete.
OUTPUTS: tuple[str, ...] = (PREDICTIONS, METRICS, TABLE)
#: The key of config.yaml (a mapping) and metrics.json (``true``) marking a PARTIAL run.
PARTIAL = "partial"
#: The status of a run directory without any fold file.
NOT_RUN = "not yet run"
#: How far a fold file's probabilities may be from [0, 1] and from summing to 1.
PROBABILITY_TOLERANCE = 1e-4
#: The key of a fold JSON that records the SHA-256 of its fold file.
CHECKSUM_KEY = "csv_sha256"
_TEXT_COLUMNS = {"dataset": str, "subject": str, "clip": str}
_RETRAIN = "delete the fold's files to retrain it"
_BESIDE = {"info": ".json", "curves": ".curves.npz", "weights": ".safetensors"}


class RunDirError(RuntimeError):
    """A run directory cannot be (re)used as asked."""


def fold_path(run_dir: str | Path, seed: int, fold: str) -> Path:
    """``run_dir/folds/seed<k>/<fold>.csv`` (a LOSO fold name ``casme2/sub01`` nests)."""
    parts = fold.split("/")
    if any(p in ("", ".", "..") or "\\" in p or "\0" in p for p in parts):
        raise RunDirError(f"fold name {fold!r} cannot be used as a file name")
    return Path(run_dir, FOLDS, f"seed{seed}", *parts[:-1], f"{parts[-1]}.csv")


def beside(fold_csv: Path, kind: str) -> Path:
    """A file kept beside a fold file: its engine ``info`` (``<fold>.json``), learning
    ``curves`` (``<fold>.curves.npz``) or kept ``weights`` (``<fold>.safetensors``)."""
    return fold_csv.with_name(fold_csv.stem + _BESIDE[kind])


def metrics_partial(metrics: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``{"folds": [...], "of": N}`` of a PARTIAL metrics.json; None for a full run's."""
    if not metrics or not metrics.get(PARTIAL):
        return None
    return {"folds": list(metrics.get("folds_run") or []), "of": metrics.get("folds_total")}


def check_fold_frame(path: Path, df: pd.DataFrame) -> None:
    """Refuse an edited fold table: ``p_<class>`` not probabilities, ``pred`` not argmax."""
    cols = [c for c in df.columns if str(c).startswith("p_")]
    if not cols or "pred" not in df.columns:
        raise RunDirError(f"{path}: no pred / p_<class> columns; {_RETRAIN}")
    p = df[cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    tol = PROBABILITY_TOLERANCE
    bad = ~np.isfinite(p).all(axis=1) | (p < -tol).any(axis=1) | (p > 1 + tol).any(axis=1)
    bad |= np.abs(p.sum(axis=1) - 1) > tol
    pred = pd.to_numeric(df["pred"], errors="coerce").to_numpy()
    wrong = ~bad & (pred != p.argmax(axis=1))
    for rows, what in ((bad, "probabilities that are not in [0, 1] or do not sum to 1"),
                       (wrong, "a pred that is not the argmax of its probabilities")):
        if rows.any():
            i = int(np.flatnonzero(rows)[0])
            raise RunDirError(f"{path}: line {i + 2} has {what} ({int(rows.sum())} row(s)); "
                              f"the file was edited or damaged: {_RETRAIN}")


class RunDir:
    """One run directory (see the module docstring); nothing is read until asked."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    # ------------------------------------------------------------------ paths
    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS

    @property
    def predictions_path(self) -> Path:
        return self.path / PREDICTIONS

    @property
    def table_path(self) -> Path:
        return self.path / TABLE

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK

    def megc_log_path(self, seed: int) -> Path:
        return self.path / MEGC_LOG / f"seed{seed}.txt"

    def fold_csv(self, seed: int, fold: str) -> Path:
        """The fold file of (seed, fold) (:func:`fold_path`)."""
        return fold_path(self.path, seed, fold)

    # ------------------------------------------------------------------ config
    def config(self) -> dict[str, Any] | None:
        """config.yaml as a mapping, or None; an unreadable or non-mapping one raises."""
        path = self.config_path
        if not path.is_file():
            return None
        try:
            cfg = yaml.safe_load(read_bytes(path).decode("utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise RunDirError(f"{path}: unreadable ({e})") from None
        if not isinstance(cfg, dict) or not cfg:
            what = "empty" if cfg is None else f"a YAML {type(cfg).__name__}, not a mapping"
            raise RunDirError(f"{path}: {what}; it is not the config.yaml of a run (restore "
                              "it, or delete the run directory or use another --run-dir)")
        return cfg

    def open(self, identity: dict[str, Any], extra: Mapping[str, Any]) -> None:
        """Write config.yaml, or check that the existing one is the same run (identity's
        ``COMPARED_KEYS``) and record the seeds and :data:`PARTIAL` mark now asked for."""
        identity = yaml.safe_load(yaml.safe_dump(to_plain(identity), sort_keys=False))
        old = self.config()
        if old is not None:
            diffs = config_differences(old, identity)
            if diffs:
                raise RunDirError(
                    f"{self.path} holds a run with a different configuration; use another "
                    "--run-dir or delete it. Differences:\n  " + "\n  ".join(diffs))
            new = {**{k: v for k, v in old.items() if k != PARTIAL}, "seeds": identity["seeds"],
                   **{k: v for k, v in identity.items() if k == PARTIAL}}
            if new != old:  # other seeds, other folds asked, or a partial run completed
                atomic_write_text(self.config_path, yaml.safe_dump(new, sort_keys=False))
            return
        if (self.path / FOLDS).exists():
            raise RunDirError(f"{self.path} has folds/ but no config.yaml; refusing to mix runs")
        atomic_write_text(self.config_path, yaml.safe_dump(
            {**identity, **to_plain(extra)}, sort_keys=False))

    def check_writable(self) -> None:
        """Fail before any training when the run directory cannot be written."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=self.path, prefix=".write-check.")
            os.close(fd)
            os.unlink(probe)
        except OSError as e:
            raise RunDirError(f"{self.path}: cannot write the run directory "
                              f"({e.strerror or e}); nothing was trained") from None

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run directory's lock: a second run on it is refused, naming the
        holder; a lock left by a process that died is taken over."""
        try:
            with exclusive_lock(self.lock_path):
                yield
        except LockHeld as e:
            raise RunDirError(
                f"{self.path} is in use by another run: {e.holder.describe()}. Wait for it "
                f"to finish or use another --run-dir (a lock of a process that has ended "
                f"is taken over by itself; {e.path})") from None

    # ------------------------------------------------------------------ folds
    def has_fold(self, seed: int, fold: str, weights: bool = False) -> bool:
        """Whether (seed, fold) is finished (and, with ``weights``, its weights kept)."""
        csv = self.fold_csv(seed, fold)
        return csv.is_file() and (not weights or beside(csv, "weights").is_file())

    def write_fold(self, seed: int, fold: str, frame: pd.DataFrame) -> str:
        """Write a fold file atomically; returns its SHA-256 (for :meth:`write_info`)."""
        data = frame.to_csv(index=False).encode("utf-8")
        atomic_write_bytes(self.fold_csv(seed, fold), data)
        return hashlib.sha256(data).hexdigest()

    def read_fold(self, seed: int, fold: str, test_idx: np.ndarray | None = None,
                  labels: np.ndarray | None = None) -> pd.DataFrame:
        """A checked fold file (see the module docstring); with ``test_idx`` and ``labels``
        (of the whole table) its rows and labels must be this fold's."""
        return _read_fold_file(self.fold_csv(seed, fold), test_idx, labels)

    def write_info(self, seed: int, fold: str, info: Mapping[str, Any]) -> None:
        atomic_write_text(beside(self.fold_csv(seed, fold), "info"),
                          json.dumps(to_plain(info), indent=2, default=str))

    def read_info(self, seed: int, fold: str) -> dict[str, Any] | None:
        """The fold's JSON info; None when absent, unreadable or not a mapping."""
        return _read_info(beside(self.fold_csv(seed, fold), "info"))

    def write_fold_curves(self, seed: int, fold: str, curves: Mapping[str, np.ndarray]) -> None:
        """A job's learning curves (:data:`mefr.train.jobs.CURVE_ARRAYS`), compressed."""
        arrays = {k: np.asarray(v) for k, v in curves.items()}
        atomic_write(beside(self.fold_csv(seed, fold), "curves"),
                     lambda f: np.savez_compressed(f, **arrays))

    def curves(self, seed: int, fold: str) -> dict[str, np.ndarray] | None:
        """The fold's learning curves (``test`` ``(E, T, K)``, ``inner_val`` ``(E, V, K)``,
        ``inner_val_index`` ``(V,)``, ``train_loss`` ``(E,)``), None when it has none."""
        path = beside(self.fold_csv(seed, fold), "curves")
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError) as e:
            raise RunDirError(f"{path}: unreadable learning curves ({e}); {_RETRAIN}") from None

    def write_weights(self, seed: int, fold: str, tensors: Mapping[str, np.ndarray],
                      meta: Mapping[str, str]) -> None:
        """Keep a fold's trained weights (``keep_models``), atomically, as safetensors."""
        data = safetensors.numpy.save({k: np.ascontiguousarray(v) for k, v in tensors.items()},
                                      metadata={str(k): str(v) for k, v in meta.items()})
        atomic_write_bytes(beside(self.fold_csv(seed, fold), "weights"), data)

    def weights(self, seed: int, fold: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """A fold's kept weights and their metadata; :class:`RunDirError` naming the file
        when it is absent or unreadable."""
        path = beside(self.fold_csv(seed, fold), "weights")
        if not path.is_file():
            raise RunDirError(f"{path}: no kept weights (the run did not keep its models)")
        try:
            with safetensors.safe_open(path, framework="numpy") as f:
                return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
        except (safetensors.SafetensorError, OSError, ValueError) as e:
            raise RunDirError(f"{path}: unreadable weights ({e}); {_RETRAIN}") from None

    def seeds(self) -> dict[int, Path]:
        """``{k: run_dir/folds/seed<k>}`` for every seed folder the runner has written."""
        base = self.path / FOLDS
        if not base.is_dir():
            return {}
        return {int(d.name[4:]): d for d in sorted(base.glob("seed*")) if d.name[4:].isdigit()}

    def folds(self, seed: int) -> list[str]:
        """The names of the finished folds of a seed, sorted (``casme2/sub01``...)."""
        base = self.path / FOLDS / f"seed{seed}"
        return sorted(p.relative_to(base).with_suffix("").as_posix() for p in base.rglob("*.csv"))

    def iter_folds(self, with_curves: bool = False) -> Iterator[
            tuple[int, str, pd.DataFrame, dict[str, Any] | None, dict[str, np.ndarray] | None]]:
        """``(seed, fold, checked fold table, info or None, curves or None)`` of every
        finished fold, by seed then fold name (curves only with ``with_curves``)."""
        for seed in self.seeds():
            for fold in self.folds(seed):
                frame = self.read_fold(seed, fold)
                curves = self.curves(seed, fold) if with_curves else None
                yield seed, fold, frame, self.read_info(seed, fold), curves

    # ------------------------------------------------------------------ outputs
    def write_outputs(self, predictions: pd.DataFrame, megc_logs: Mapping[int, str],
                      table: str, metrics: Mapping[str, Any]) -> None:
        """predictions.csv, table.md and the MEGC logs, then metrics.json (last: its
        presence with the others marks the run complete)."""
        for seed, text in megc_logs.items():
            atomic_write_text(self.megc_log_path(seed), text)
        atomic_write_text(self.predictions_path, predictions.to_csv(index=False))
        atomic_write_text(self.table_path, table)
        atomic_write_text(self.metrics_path, json.dumps(metrics, indent=2) + "\n")

    def metrics(self) -> dict[str, Any] | None:
        """metrics.json; None when absent. Unreadable: :class:`RunDirError` naming it."""
        path = self.metrics_path
        if not path.is_file():
            return None
        try:
            metrics = json.loads(read_bytes(path))
        except ValueError as e:
            raise RunDirError(f"{path}: unreadable ({e})") from None
        if not isinstance(metrics, dict):
            raise RunDirError(f"{path}: not a JSON object")
        return metrics

    def predictions(self) -> pd.DataFrame:
        """predictions.csv (``FileNotFoundError`` naming it when the run has none)."""
        path = self.predictions_path
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no predictions.csv (has the run finished a seed?)")
        try:
            return pd.read_csv(io.BytesIO(read_bytes(path)), dtype=_TEXT_COLUMNS)
        except (ValueError, pd.errors.ParserError) as e:
            raise RunDirError(f"{path}: unreadable ({e})") from None

    def partial(self) -> dict[str, Any] | None:
        """The PARTIAL mark, ``{"folds": [...], "of": N}``: metrics.json's (the folds its
        scores cover), else config.yaml's (the folds asked); None for a run of all folds."""
        try:
            found = metrics_partial(self.metrics())
        except RunDirError:
            found = None
        mark = (self.config() or {}).get(PARTIAL) if found is None else found
        return dict(mark) if isinstance(mark, dict) else None

    def finished_metrics(self, seeds: Sequence[int], partial: Mapping[str, Any] | None = None
                         ) -> dict[str, Any] | None:
        """The run's metrics if all its outputs exist and cover exactly ``seeds`` and the
        folds of ``partial`` (None: all folds); None otherwise (another seed list or fold
        subset rebuilds them from the fold files)."""
        if not all((self.path / f).is_file() for f in OUTPUTS) or not all(
                self.megc_log_path(s).is_file() for s in seeds):
            return None
        try:
            metrics = self.metrics()
        except (RunDirError, OSError):
            return None
        if metrics is None or metrics.get("seeds") != [int(s) for s in seeds]:
            return None
        return metrics if metrics_partial(metrics) == (dict(partial) if partial else None) \
            else None

    # ------------------------------------------------------------------ reports
    def status(self) -> str:
        """``complete, seeds [..]``, ``partial (n fold files)`` or :data:`NOT_RUN`; a
        complete run that is being extended adds ``; seed k partial (n fold files)`` for
        each seed with fold files that ``metrics.json`` does not cover yet. A run of some
        folds (:meth:`partial`) says ``PARTIAL (n of N folds)`` instead of ``complete``."""
        per_seed = {k: sum(1 for _ in d.rglob("*.csv")) for k, d in self.seeds().items()}
        metrics, mark = self.metrics(), self.partial()
        some = f"PARTIAL ({len(mark['folds'])} of {mark['of']} folds)" if mark else ""
        if metrics is not None:
            seeds = metrics.get("seeds", [])
            extra = "".join(f"; seed {k} partial ({n} fold files)"
                            for k, n in sorted(per_seed.items()) if k not in seeds and n)
            return f"{some or 'complete'}, seeds {seeds}{extra}"
        n = sum(per_seed.values())
        return (f"partial ({n} fold files)" + (f", {some} asked" if some else "")) if n \
            else NOT_RUN

    def fold_infos(self, seed: int, ordered: bool = True) -> Iterator[dict[str, Any] | None]:
        """Each fold JSON of a seed, by fold name (None where unreadable)."""
        paths = (self.path / FOLDS / f"seed{seed}").rglob("*.json")
        yield from map(_read_info, sorted(paths) if ordered else paths)

    def fold_seconds(self) -> dict[int, float]:
        """Mean training seconds per fold and seed: ``group_seconds / group_size`` of
        every fold JSON the engine wrote (seeds without any: left out)."""
        out: dict[int, float] = {}
        for seed in self.seeds():
            secs = []
            for info in self.fold_infos(seed, ordered=False):  # summed in directory order
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    secs.append(float(info["group_seconds"]) / max(1, int(info["group_size"])))
            if secs:
                out[seed] = float(np.mean(secs))
        return out

    def hardware(self, seeds: Sequence[int] | None = None) -> dict[int, str]:
        """The hardware that trained each seed (:func:`mefr._env.describe_device` of each
        fold JSON's ``device``); folds without one count as the machine in config.yaml's
        ``environment``. A seed trained on several machines lists them joined by `` + ``."""
        cfg = self.config() or {}
        fallback = describe_environment(cfg.get("environment"))
        out: dict[int, str] = {}
        for seed in self.seeds() if seeds is None else seeds:
            found = [describe_device(d) if isinstance(d := (i or {}).get("device"), str)
                     else fallback for i in self.fold_infos(int(seed))]
            out[int(seed)] = " + ".join(dict.fromkeys(found)) or fallback
        return out


def _read_info(path: Path) -> dict[str, Any] | None:
    try:
        info = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _read_fold_file(path: Path, test_idx: np.ndarray | None,
                    labels: np.ndarray | None) -> pd.DataFrame:
    try:
        data = read_bytes(path)
        df = pd.read_csv(io.BytesIO(data), dtype=_TEXT_COLUMNS)
    except (PathError, ValueError, pd.errors.ParserError) as e:
        raise RunDirError(f"{path}: unreadable fold file ({e}); delete it to retrain") from None
    if test_idx is not None:
        if "index" not in df.columns or not np.array_equal(df["index"].to_numpy(), test_idx):
            raise RunDirError(
                f"{path}: its rows are not the test rows of this fold; delete it to retrain")
        if labels is not None and not np.array_equal(df["label"].to_numpy(), labels[test_idx]):
            raise RunDirError(
                f"{path}: its labels differ from the feature set's; delete it to retrain")
    check_fold_frame(path, df)
    ipath = beside(path, "info")
    if ipath.is_file():
        info = _read_info(ipath)
        if info is None:
            raise RunDirError(f"{ipath}: unreadable fold info; {_RETRAIN}")
        want = info.get(CHECKSUM_KEY)
        if want is not None and hashlib.sha256(data).hexdigest() != want:
            raise RunDirError(f"{path}: its SHA-256 is not the one recorded in {ipath.name} "
                              f"when it was written; the file was edited: {_RETRAIN}")
    return df
