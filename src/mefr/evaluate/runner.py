"""Run a protocol over seeds into a resumable run directory (``mefr evaluate``).

:func:`run_protocol` trains one model per (seed, fold) through the training engine and
keeps everything on disk::

    run_dir/
      config.yaml            resolved TrainConfig, protocol, seeds, data, environment
      folds/seed<k>/<fold>.csv   the test predictions of one finished fold (written
                             atomically the moment the engine reports it)
      folds/seed<k>/<fold>.json  what the engine reported about that job (if anything),
                             with the mefr version and git commit that trained it
      folds/seed<k>/<fold>.curves.npz  its learning curves: test (and inner-validation)
                             probabilities after every epoch (float16) and the training
                             loss per epoch (:func:`read_curves`; ``mefr audit`` reads them)
      predictions.csv        seed, dataset, subject, clip, label, pred, p_<class>...
      metrics.json           composite and per-database Acc / UF1 / UAR (Eqs. 9-13)
                             per seed, then mean and std over seeds
      table.md               Markdown table laid out like the paper's Table 2
      megc_log/seed<k>.txt   the MEGC 2019 log format

A rerun skips the folds whose file exists (resume after an interruption), trains only
the new seeds when more are asked for, refuses a run directory made with a different
configuration, and does nothing once the run is complete. A resumed run equals an
uninterrupted one as far as the engine's results do not depend on which jobs train
together (byte-identical on CPU; on a GPU the resumed jobs train in other groups, hence
other kernels, and may differ slightly).

The model evaluated in a fold is the last-epoch one, or the one whose epoch was chosen
on an inner validation split of the *training* subjects: nothing ever looks at the test
fold.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd
import yaml
from tqdm.auto import tqdm

from mefr.data.flowset import load_flowset, select_channels
from mefr.data.table import features_fingerprint, group_key, sample_key
from mefr.evaluate.executors import accepts_keyword
from mefr.evaluate.metrics import COMPOSITE, Scores, scores_by_dataset
from mefr.evaluate.protocols import Fold, protocol_folds
from mefr.models.registry import is_handcrafted
from mefr.train.config import TrainConfig, default_settings

if TYPE_CHECKING:
    from mefr.train.engine import Job

#: Column order of databases in metrics.json and table.md (the paper's Table 2 order).
DATASET_ORDER: tuple[str, ...] = ("smic_hs", "casme2", "samm", "smic_vis", "smic_nir")
#: Display names used in table.md.
DISPLAY_NAMES: dict[str, str] = {
    COMPOSITE: "Composite",
    "smic_hs": "SMIC-HS",
    "casme2": "CASME II",
    "samm": "SAMM",
    "smic_vis": "SMIC-VIS",
    "smic_nir": "SMIC-NIR",
}
#: Display names of the metrics in table.md.
METRIC_NAMES: dict[str, str] = {"acc": "Acc", "uf1": "UF1", "uar": "UAR"}
#: The parts of config.yaml that must match to resume a run. Seeds are not among them: asking an
#: existing run for more seeds trains only the new (seed, fold) jobs.
COMPARED_KEYS: tuple[str, ...] = ("protocol", "train", "data")
STD_DEFINITION = "sample standard deviation over seeds (ddof=1); null with a single seed"
POOLING = (
    "Acc, UF1 and UAR (Eqs. 9-13) are computed once on the test predictions of all folds "
    "pooled, not averaged over folds; per-database scores are the same pooled predictions "
    "restricted to that database"
)


class RunDirError(RuntimeError):
    """A run directory cannot be (re)used as asked."""


class FeatureSetLike(Protocol):
    """What the runner needs of a feature set (``FlowSet``, ``FeatureSet``)."""

    table: pd.DataFrame
    x: np.ndarray
    channels: tuple[str, ...]
    class_names: tuple[str, ...]


TrainFn = Callable[..., Any]


# ----------------------------------------------------------------------------- loaders
FeatureLoader = Callable[[str], FeatureSetLike]
FEATURE_LOADERS: dict[str, FeatureLoader] = {}


def register_feature_loader(scheme: str, loader: FeatureLoader) -> None:
    """Make ``load_features("<scheme>:PATH")`` call ``loader(PATH)``."""
    FEATURE_LOADERS[scheme] = loader


def _load_flowset(path: str) -> FeatureSetLike:
    return load_flowset(path)


register_feature_loader("flowset", _load_flowset)


def load_features(spec: str) -> FeatureSetLike:
    """Load a feature set from ``"<scheme>:PATH"`` (e.g. ``flowset:/data/megc2019-cde-flow``)."""
    scheme, sep, path = spec.partition(":")
    if not sep or not path:
        raise ValueError(
            f"features {spec!r}: expected SCHEME:PATH, schemes {sorted(FEATURE_LOADERS)}"
        )
    if scheme not in FEATURE_LOADERS:
        raise ValueError(
            f"features {spec!r}: no loader for {scheme!r}; known: {sorted(FEATURE_LOADERS)} "
            "(add one with mefr.evaluate.runner.register_feature_loader)"
        )
    return FEATURE_LOADERS[scheme](path)


# ----------------------------------------------------------------------------- inputs
def parse_seeds(text: str | int | Iterable[int]) -> tuple[int, ...]:
    """``"0-9"`` / ``"0,3,5-7"`` / ``3`` / ``[0, 1]`` -> sorted unique seeds."""
    if isinstance(text, int | np.integer):
        seeds = [int(text)]
    elif isinstance(text, str):
        seeds = []
        for part in text.split(","):
            part = part.strip()
            lo, dash, hi = part.partition("-")
            try:
                if dash and lo:
                    a, b = int(lo), int(hi)
                    if b < a:
                        raise ValueError
                    seeds.extend(range(a, b + 1))
                else:
                    seeds.append(int(part))
            except ValueError:
                raise ValueError(f"seeds {text!r}: {part!r} is not N or N-M (N <= M)") from None
    else:
        seeds = [int(s) for s in text]
    if not seeds or min(seeds) < 0:
        raise ValueError(f"seeds {text!r}: need at least one non-negative seed")
    return tuple(sorted(set(seeds)))


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


# ----------------------------------------------------------------------------- files
def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def job_key(seed: int, fold: str) -> str:
    """The engine job key of a (seed, fold): ``"seed3/casme2/sub01"``."""
    return f"seed{seed}/{fold}"


def fold_path(run_dir: str | Path, seed: int, fold: str) -> Path:
    """``run_dir/folds/seed<k>/<fold>.csv`` (a LOSO fold name ``casme2/sub01`` nests)."""
    parts = fold.split("/")
    if any(p in ("", ".", "..") or "\\" in p or "\0" in p for p in parts):
        raise RunDirError(f"fold name {fold!r} cannot be used as a file name")
    return Path(run_dir, "folds", f"seed{seed}", *parts[:-1], f"{parts[-1]}.csv")


def curves_path(fold_csv: Path) -> Path:
    """The learning-curves file beside a fold file: ``<fold>.curves.npz``."""
    return fold_csv.with_name(fold_csv.stem + ".curves.npz")


def write_curves(path: Path, curves: dict[str, np.ndarray]) -> None:
    """Write a job's learning curves (:data:`mefr.train.engine.CURVE_ARRAYS`) atomically,
    compressed; probabilities stay float16."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, **{k: np.asarray(v) for k, v in curves.items()})
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_curves(path: str | Path) -> dict[str, np.ndarray]:
    """A fold's learning curves: ``test`` ``(E, T, K)``, ``inner_val`` ``(E, V, K)``,
    ``inner_val_index`` ``(V,)``, ``train_loss`` ``(E,)``."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as e:
        raise RunDirError(f"{path}: unreadable learning curves ({e}); delete the fold's "
                          "files to retrain it") from None


def _check_writable(run_dir: Path) -> None:
    """Fail before any training when the run directory cannot be written."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=run_dir, prefix=".write-check.")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise RunDirError(f"{run_dir}: cannot write the run directory ({e.strerror or e}); "
                          "nothing was trained") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _plain(obj: Any) -> Any:
    """Tuples, numpy scalars and arrays -> YAML/JSON-safe Python objects."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | np.ndarray):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


# ----------------------------------------------------------------------------- config
def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


@functools.cache
def code_revision() -> str | None:
    """The git commit of the mefr source in use, with ``+`` when ``src/mefr`` has
    uncommitted changes; None when mefr does not run from a git checkout of itself."""
    here = Path(__file__).resolve().parent.parent  # the mefr package folder

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(here), *args], capture_output=True,
                              text=True, timeout=20, check=True).stdout.strip()

    try:
        git("ls-files", "--error-unmatch", "__init__.py")  # tracked here, not a vendored copy
        rev = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".")
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("+" if dirty else "")


def _environment(device: str) -> dict[str, Any]:
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "packages": {d: _version(d) for d in ("mefr", "torch", "numpy", "pandas", "scikit-learn")},
        "code": code_revision(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpus": os.cpu_count(),
        "device": device,
    }
    try:
        import torch

        env["cuda_available"] = bool(torch.cuda.is_available())
        if env["cuda_available"]:
            env["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except ImportError:  # pragma: no cover - torch is a dependency
        env["cuda_available"] = None
    return env


def describe_run(
    features: FeatureSetLike,
    x: np.ndarray,
    y: np.ndarray,
    protocol: str,
    config: TrainConfig,
    seeds: Sequence[int],
    folds: Sequence[Fold],
) -> dict[str, Any]:
    """The identity of a run: what config.yaml records under :data:`COMPARED_KEYS`."""
    table = features.table
    k = len(features.class_names)
    return _plain(
        {
            "protocol": protocol,
            "seeds": list(seeds),
            "train": config.to_dict(),
            "data": {
                "n": len(table),
                "datasets": table["dataset"].astype(str).value_counts().sort_index().to_dict(),
                "subjects": int(group_key(table).nunique()),
                "class_names": list(features.class_names),
                "class_counts": np.bincount(y, minlength=k).tolist(),
                "feature_channels": list(features.channels),
                "input_shape": list(x.shape),
                "folds": len(folds),
                "sha256": features_fingerprint(x, table, y),
            },
        }
    )


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def config_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``"key: old != new"`` for every compared setting that differs.

    A training setting that the older run's config.yaml does not name (it was written
    before the setting existed) counts as that setting's default, which it used.
    """
    if isinstance(old.get("train"), dict):
        defaults = {k: v for k, v in default_settings().items() if k not in old["train"]}
        old = {**old, "train": {**old["train"], **_plain(defaults)}}
    a = _flatten({k: old.get(k) for k in COMPARED_KEYS})
    b = _flatten({k: new.get(k) for k in COMPARED_KEYS})
    return [
        f"{k}: {a.get(k, '<absent>')!r} (run dir) != {b.get(k, '<absent>')!r} (now)"
        for k in sorted(set(a) | set(b))
        if a.get(k, "<absent>") != b.get(k, "<absent>")
    ]


def _open_run_dir(run_dir: Path, identity: dict[str, Any], extra: dict[str, Any]) -> None:
    """Write config.yaml, or check that the existing one describes the same run."""
    path = run_dir / "config.yaml"
    # compare in the stored form
    identity = yaml.safe_load(yaml.safe_dump(identity, sort_keys=False))
    if path.is_file():
        try:
            old = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise RunDirError(f"{path}: unreadable ({e})") from None
        diffs = config_differences(old, identity)
        if diffs:
            raise RunDirError(
                f"{run_dir} holds a run with a different configuration; use another --run-dir "
                "or delete it. Differences:\n  " + "\n  ".join(diffs)
            )
        if old.get("seeds") != identity.get("seeds"):  # extended (or narrowed) seed list
            _atomic_write(path, yaml.safe_dump({**old, "seeds": identity["seeds"]},
                                               sort_keys=False))
        return
    if run_dir.is_dir() and (run_dir / "folds").exists():
        raise RunDirError(f"{run_dir} has folds/ but no config.yaml; refusing to mix runs")
    _atomic_write(path, yaml.safe_dump({**identity, **_plain(extra)}, sort_keys=False))


# ----------------------------------------------------------------------------- folds
def build_jobs(folds: Sequence[Fold], seeds: Sequence[int]) -> list[Job]:
    """One engine :class:`~mefr.train.engine.Job` per (seed, fold), seeds outermost."""
    from mefr.train.engine import Job

    return [
        Job(key=job_key(s, f.name), seed=int(s), train_idx=f.train_idx, test_idx=f.test_idx)
        for s in seeds
        for f in folds
    ]


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
    return p


def _read_fold(path: Path, test_idx: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, dtype={"dataset": str, "subject": str, "clip": str})
    except (OSError, ValueError) as e:
        raise RunDirError(f"{path}: unreadable fold file ({e}); delete it to retrain") from None
    if "index" not in df.columns or not np.array_equal(df["index"].to_numpy(), test_idx):
        raise RunDirError(
            f"{path}: its rows are not the test rows of this fold; delete it to retrain"
        )
    if not np.array_equal(df["label"].to_numpy(), y[test_idx]):
        raise RunDirError(f"{path}: its labels differ from the feature set's; delete it to retrain")
    return df


# ----------------------------------------------------------------------------- metrics
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
) -> dict[str, Any]:
    """metrics.json: scores per seed and database, then mean / std over seeds."""
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
    return {
        "protocol": protocol,
        "model": config.model,
        "class_names": list(class_names),
        "seeds": list(seeds),
        "databases": databases,
        "selection": selection_note(config),
        "pooling": POOLING,
        "std_definition": STD_DEFINITION,
        "mean": mean,
        "std": std,
        "per_seed": per_seed,
    }


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


def markdown_table(metrics: dict[str, Any], row_name: str | None = None) -> str:
    """A Markdown table laid out like the paper's Table 2 (one row per model).

    Columns: Composite (when the run spans several databases), then each database,
    times UF1 / UAR (UF1 / Acc for CDMER; Acc / UF1 / UAR for one database alone), as
    ``mean ± std`` over seeds.
    """
    metric_names = _table_metrics(metrics["protocol"])
    dbs = [d for d in metrics["databases"] if d != COMPOSITE]
    cols = ([COMPOSITE] if len(dbs) > 1 else []) + dbs
    head = ["Model"] + [
        f"{DISPLAY_NAMES.get(d, d)} {METRIC_NAMES[m]}" for d in cols for m in metric_names
    ]
    cells = [row_name or metrics["model"]] + [
        _cell(metrics["mean"][d][m], metrics["std"][d][m]) for d in cols for m in metric_names
    ]
    seeds = metrics["seeds"]
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|",
        "| " + " | ".join(cells) + " |",
        "",
        f"Protocol `{metrics['protocol']}`, {len(seeds)} seed(s) {seeds}: mean ± "
        f"{metrics['std_definition']}. {metrics['pooling']}. Selection: "
        f"{metrics['selection']}.",
    ]
    return "\n".join(lines) + "\n"


def megc_log(fold_frames: Sequence[pd.DataFrame]) -> str:
    """The MEGC 2019 log of one seed: per (fold, subject) a ``db subject`` header line,
    then one ``file GT pred`` line per clip (GT and pred are class indices)."""
    lines: list[str] = []
    for df in fold_frames:
        for (db, subject), part in df.groupby(["dataset", "subject"], sort=False):
            lines.append(f"{db} {subject}")
            rows = part[["clip", "label", "pred"]].itertuples(index=False)
            lines.extend(f"{clip} {gt} {pred}" for clip, gt, pred in rows)
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- runner
@dataclass(frozen=True)
class RunResult:
    """What :func:`run_protocol` did and produced.

    Attributes
    ----------
    run_dir : the run directory.
    trained : job keys trained by this call.
    skipped : job keys whose fold file already existed (resumed).
    already_complete : True when the run was complete before this call (nothing done).
    metrics : the content of metrics.json.
    predictions : the content of predictions.csv.
    """

    run_dir: Path
    trained: tuple[str, ...]
    skipped: tuple[str, ...]
    already_complete: bool
    metrics: dict[str, Any]
    predictions: pd.DataFrame


OUTPUTS = ("predictions.csv", "metrics.json", "table.md")


def _finished_metrics(run_dir: Path, seeds: Sequence[int]) -> dict[str, Any] | None:
    """The run's metrics if all its outputs exist and cover exactly ``seeds``; None
    otherwise (a narrowed or widened seed list rebuilds them from the fold files)."""
    if not all((run_dir / f).is_file() for f in OUTPUTS) or not all(
        (run_dir / "megc_log" / f"seed{s}.txt").is_file() for s in seeds
    ):
        return None
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(metrics, dict) or metrics.get("seeds") != [int(s) for s in seeds]:
        return None
    return metrics


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
) -> None:
    size = len(todo) if not chunk else int(chunk)
    options = {"curves": True} if curves and accepts_keyword(train_fn, "curves") else {}
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
            if info:  # written with the fold, so an interrupted run keeps it
                write_info(key, info)
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
) -> RunResult:
    """Train and evaluate ``config`` on ``features`` under ``protocol`` for every seed.

    ``protocol`` is a name of :data:`mefr.evaluate.protocols.PROTOCOLS` (``cde``,
    ``loso``, ``loso:<dataset>``, ``cdmer:<n>``). ``train_fn`` defaults to
    :func:`mefr.train.engine.train_group`; all remaining jobs go to it in one call, or
    ``chunk`` jobs per call. Each finished fold is written atomically as soon as it is
    reported, so an interrupted run resumes where it stopped. ``data_source`` (e.g. the
    ``--features`` argument) is recorded in config.yaml but not compared on reruns.
    ``curves`` keeps each fold's learning curves (``<fold>.curves.npz``) when the
    engine can record them; they do not change the predictions.
    """
    if train_fn is None:
        from mefr.train.engine import train_group

        train_fn = train_group
    if chunk is not None and int(chunk) < 1:
        raise ValueError(f"chunk must be a positive number of jobs, got {chunk!r}")
    run_dir = Path(run_dir)
    seeds = parse_seeds(seeds)
    table = features.table
    class_names = tuple(str(c) for c in features.class_names)
    k = len(class_names)
    y = _labels(features)
    x = _inputs(features, config.channels)
    folds = protocol_folds(table, protocol)
    identity = describe_run(features, x, y, protocol, config, seeds, folds)
    env = _environment(device)
    extra = {"features": data_source, "environment": env,
             "created": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds")}
    # what each fold file records of the code that trained it: a resumed run may mix
    # code revisions, and the fold files say which
    software = {"mefr": env["packages"]["mefr"], "code": env["code"]}
    _check_writable(run_dir)
    _open_run_dir(run_dir, identity, extra)

    jobs = build_jobs(folds, seeds)
    by_key = {j.key: j for j in jobs}
    path_of = {
        job_key(s, f.name): fold_path(run_dir, s, f.name) for s in seeds for f in folds
    }
    todo = [j for j in jobs if not path_of[j.key].is_file()]
    skipped = tuple(j.key for j in jobs if path_of[j.key].is_file())
    for key in skipped:  # a stale fold file fails now, not after hours of training
        _read_fold(path_of[key], by_key[key].test_idx, y)
    finished = None if todo else _finished_metrics(run_dir, seeds)
    if finished is not None:
        print(f"{run_dir}: run complete ({len(jobs)} folds); nothing to do")
        return RunResult(
            run_dir=run_dir, trained=(), skipped=skipped, already_complete=True,
            metrics=finished,
            predictions=_read_predictions(run_dir / "predictions.csv"),
        )

    trained: list[str] = []
    bar = tqdm(total=len(jobs), initial=len(skipped), desc="folds", unit="fold",
               disable=not progress)

    def write(key: str, probs: Any) -> None:
        if key not in by_key:
            raise RunDirError(f"the engine reported an unknown job {key!r}")
        job = by_key[key]
        p = _check_probs(key, probs, len(job.test_idx), k)
        frame = _fold_frame(table, y, job.test_idx, p, class_names)
        _atomic_write(path_of[key], frame.to_csv(index=False))
        trained.append(key)
        bar.update(1)

    def write_info(key: str, info: dict[str, Any]) -> None:
        if key in path_of:
            written = pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds")
            record = {**info, **software, "written": written}
            _atomic_write(path_of[key].with_suffix(".json"),
                          json.dumps(_plain(record), indent=2, default=str))

    def write_job_curves(key: str, job_curves: dict[str, np.ndarray]) -> None:
        if key in path_of:
            write_curves(curves_path(path_of[key]), job_curves)

    try:
        if todo:
            groups = group_key(table).to_numpy(dtype=object)
            _train_missing(train_fn, x, y, groups, todo, config, k, device, chunk, write,
                           write_info, progress, write_job_curves, curves)
    finally:
        bar.close()

    predictions, frames = _collect(run_dir, folds, seeds, y, path_of)
    metrics = compute_metrics(predictions, class_names, seeds, protocol, config)
    _write_outputs(run_dir, predictions, frames, metrics)
    print(markdown_table(metrics), end="")
    print(f"{run_dir}: {len(trained)} fold(s) trained, {len(skipped)} resumed; run complete")
    return RunResult(
        run_dir=run_dir, trained=tuple(trained), skipped=skipped, already_complete=False,
        metrics=metrics, predictions=predictions,
    )


def _read_predictions(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"dataset": str, "subject": str, "clip": str})


def _collect(
    run_dir: Path,
    folds: Sequence[Fold],
    seeds: Sequence[int],
    y: np.ndarray,
    path_of: dict[str, Path],
) -> tuple[pd.DataFrame, dict[int, list[pd.DataFrame]]]:
    """Read every fold file; pool them per seed in the order of the sample table."""
    frames: dict[int, list[pd.DataFrame]] = {}
    pooled = []
    for s in seeds:
        frames[s] = [_read_fold(path_of[job_key(s, f.name)], f.test_idx, y) for f in folds]
        df = pd.concat(frames[s], ignore_index=True).sort_values("index", kind="stable")
        df.insert(0, "seed", s)
        pooled.append(df)
    predictions = pd.concat(pooled, ignore_index=True).drop(columns="index")
    return predictions, frames


def _write_outputs(
    run_dir: Path,
    predictions: pd.DataFrame,
    frames: dict[int, list[pd.DataFrame]],
    metrics: dict[str, Any],
) -> None:
    for s, fs in frames.items():
        _atomic_write(run_dir / "megc_log" / f"seed{s}.txt", megc_log(fs))
    _atomic_write(run_dir / "predictions.csv",
                  predictions.to_csv(index=False))
    _atomic_write(run_dir / "table.md", markdown_table(metrics))
    # metrics.json last: its presence (with the others) marks the run complete
    _atomic_write(run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
