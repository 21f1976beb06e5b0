"""Every table and figure of the paper, one command each (``mefr reproduce NAME``).

A target (``table1`` ... ``table8``, ``fig3``, ``fig4``) is a list of cells; each cell
names an *experiment* (a protocol on a data set), a network and a metric, as declared in
:mod:`mefr.report.targets`. :class:`Reproducer` runs every (experiment, network) the
target needs through :func:`mefr.evaluate.runner.run_protocol` into a run directory -
reusing finished runs, resuming partial ones - and renders the target beside the paper's
numbers (:mod:`mefr.report.tables`, :mod:`mefr.report.figures`, :mod:`mefr.report.paper`).

Data
----
``--data real`` uses the pre-computed MEGC 2019 composite flow set (SMIC-HS 164, CASME II
145, SAMM 133 clips, 3 classes, onset->apex u/v/strain) wherever it can serve: the CDE
protocol (Tables 1, 2, 6, 8, Fig. 3, Fig. 4) and SMIC-HS alone (``loso:smic_hs``,
Tables 5, 7, 8). Everything else runs on synthetic databases
(:mod:`mefr.data.synthetic`, preprocessed by :mod:`mefr.preprocess`) and is marked so:
CDMER (Tables 3, 4; needs SMIC-VIS/NIR and CASME II with its own labels), CASME II and
SAMM alone (4 and 5 classes), Dual-Inception (needs onset->middle-frame flow) and LBP-TOP
(needs the face frames).
``--data synthetic`` runs everything on synthetic databases.

Run directories (see ``results/README.md``)
-------------------------------------------
``<results>/<experiment>/<model>[-<preset>][-e<epochs>]`` on real data and
``<results>/synthetic[/<spec>]/<experiment>/<model>...`` on synthetic data, where
``<experiment>`` is ``cde``, ``loso/smic_hs``, ``loso/casme2_5class``,
``loso/casme2_4class``, ``loso/samm_4class`` or ``cdmer/exp01`` ... ``cdmer/exp12``; the
preset suffix appears only when it differs from the experiment's default preset, the
epochs suffix only when ``--epochs`` changes the preset's epochs, ``<spec>`` only for a
non-default synthetic size. Fig. 4 keeps its split, features and t-SNE in
``<results>/[synthetic/]fig4[...]``.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from mefr.data.flowset import select_channels
from mefr.data.labels import protocol_classes
from mefr.data.table import features_fingerprint
from mefr.evaluate.compare import compare_runs
from mefr.evaluate.metrics import COMPOSITE
from mefr.evaluate.runner import FeatureSetLike, parse_seeds, run_protocol
from mefr.models.registry import model_entry, model_specs
from mefr.report import paper as P
from mefr.report.figures import (
    confusion_figure,
    row_percent,
    save_figure,
    tsne_embedding,
    tsne_figure,
)
from mefr.report.tables import (
    NOT_REPRODUCED,
    NOT_RUN,
    Cell,
    Column,
    ReportTable,
    Row,
    average_cell,
    cell_from_metrics,
    describe_fold_device,
    describe_run_hardware,
    difference_cell,
    seed_hardware,
    write_table,
)
from mefr.report.targets import (
    DIFFERENCE_NOTE,
    EXPERIMENTS,
    MODEL_NAMES,
    TABLE_SPECS,
    TARGETS,
    ColumnSpec,
    Experiment,
    RowSpec,
    TableSpec,
)
from mefr.train.config import PRESETS, TrainConfig, resolve_config

#: Where the composite flow set is looked for when ``--flowset`` is not given
#: (``$MEFR_FLOWSET`` first), relative to the working directory.
DEFAULT_FLOWSET = Path("../shared/data/megc2019-cde-flow")
SYNTHETIC_DIRS = {"casme2": "casme2", "samm": "samm", "smic_hs": "smic", "smic_vis": "smic",
                  "smic_nir": "smic"}


class ReproduceError(RuntimeError):
    """A target cannot be reproduced as asked (missing data, conflicting run)."""


# =========================================================================== options
@dataclass(frozen=True)
class SyntheticSpec:
    """Size of the synthetic databases written for targets without real data.

    The default (8 subjects x 9 clips per database, 12-24 frames of 180x240) takes
    about 0.5 GB (SMIC's frames are BMP) and a few minutes to write and preprocess.
    ``root``: use databases already written there (``mefr synth DIR``) instead.
    """

    subjects: int = 8
    clips: int = 9
    frames: tuple[int, int] = (12, 24)
    size: tuple[int, int] = (180, 240)
    seed: int = 0
    root: Path | None = None

    def tag(self) -> str:
        """The run-directory level of this spec (``""`` for the default one)."""
        if self.root is not None:
            digest = hashlib.sha1(str(Path(self.root).resolve()).encode()).hexdigest()[:8]
            return f"dir-{digest}"
        if self == SyntheticSpec():
            return ""
        return (f"s{self.subjects}c{self.clips}f{self.frames[0]}-{self.frames[1]}"
                f"z{self.size[0]}x{self.size[1]}r{self.seed}")

    def describe(self) -> str:
        if self.root is not None:
            return f"synthetic databases under {self.root}"
        return (f"synthetic databases (mefr.data.synthetic: {self.subjects} subjects x "
                f"{self.clips} clips per database, {self.frames[0]}-{self.frames[1]} frames "
                f"of {self.size[0]}x{self.size[1]}, seed {self.seed})")


@dataclass(frozen=True)
class ReproduceOptions:
    """Everything ``mefr reproduce`` takes (see the CLI for each option).

    ``seeds`` ``None`` means: the seeds a run directory already has, else seed 0.
    ``train`` ``False`` renders from finished runs only (missing cells: "not yet run").
    ``train_fn`` replaces the training engine of the runs (tests).
    """

    data: str = "real"
    seeds: str | None = None
    epochs: int | None = None
    preset: str | None = None
    device: str = "auto"
    results: Path = Path("results")
    out: Path | None = None
    flowset: Path | None = None
    work: Path = Path("runs/reproduce")
    synthetic: SyntheticSpec = field(default_factory=SyntheticSpec)
    workers: int | None = None
    chunk: int | None = None
    train: bool = True
    progress: bool = True
    train_fn: Callable[..., Any] | None = None

    def __post_init__(self) -> None:
        if self.data not in ("real", "synthetic"):
            raise ValueError(f"data must be 'real' or 'synthetic', got {self.data!r}")
        if self.preset is not None and self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; presets: {sorted(PRESETS)}")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"epochs must be positive, got {self.epochs}")
        if self.seeds is not None:
            parse_seeds(self.seeds)

    @property
    def out_dir(self) -> Path:
        if self.out is not None:
            return Path(self.out)
        base = Path(self.results)
        return base / "synthetic" / "report" if self.data == "synthetic" else base / "report"


@dataclass(frozen=True)
class RunRef:
    """One (experiment, network, data kind) and its run directory."""

    experiment: str
    model: str
    synthetic: bool
    run_dir: Path


@dataclass(frozen=True)
class RunOutcome:
    """A run's state: its metrics.json and config.yaml (None when not finished)."""

    ref: RunRef
    metrics: dict[str, Any] | None
    config: dict[str, Any] | None
    status: str


# =========================================================================== helpers
def read_yaml(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ReproduceError(f"{path}: unreadable ({e})") from None


def seed_dirs(run_dir: Path) -> dict[int, Path]:
    """``{k: run_dir/folds/seed<k>}`` for every seed folder the runner has written."""
    base = Path(run_dir) / "folds"
    if not base.is_dir():
        return {}
    return {int(d.name[4:]): d for d in base.glob("seed*") if d.name[4:].isdigit()}


def run_status(run_dir: Path) -> str:
    """``complete, seeds [..]``, ``partial (n fold files)`` or ``not yet run``; a
    complete run that is being extended adds ``; seed k partial (n fold files)`` for
    each seed with fold files that ``metrics.json`` does not cover yet."""
    per_seed = {k: sum(1 for _ in d.rglob("*.csv")) for k, d in seed_dirs(run_dir).items()}
    metrics = run_dir / "metrics.json"
    if metrics.is_file():
        seeds = json.loads(metrics.read_text()).get("seeds", [])
        extra = "".join(f"; seed {k} partial ({n} fold files)"
                        for k, n in sorted(per_seed.items()) if k not in seeds and n)
        return f"complete, seeds {seeds}{extra}"
    n = sum(per_seed.values())
    return f"partial ({n} fold files)" if n else NOT_RUN


def fold_seconds(run_dir: Path) -> dict[int, float]:
    """Mean training seconds per fold and seed: ``group_seconds / group_size`` of every
    ``folds/seed<k>/**/<fold>.json`` the engine wrote (seeds without any: left out)."""
    out: dict[int, float] = {}
    for seed, seed_dir in sorted(seed_dirs(run_dir).items()):
        secs = []
        for p in seed_dir.rglob("*.json"):
            try:
                info = json.loads(p.read_text())
                secs.append(float(info["group_seconds"]) / max(1, int(info["group_size"])))
            except (ValueError, KeyError, TypeError):
                continue
        if secs:
            out[seed] = float(np.mean(secs))
    return out


def parameters_millions(model: str, num_classes: int) -> float:
    """Learnable parameters of ``model`` for K classes (default options), in millions."""
    for s in model_specs((num_classes,)):
        if s["name"] == model and s.get("detector_units", 1) == 1:
            return s["parameters"] / 1e6
    raise ReproduceError(f"no parameter count for {model!r} with {num_classes} classes")


def split_subjects(groups: Sequence[str], seed: int, fraction: float = 0.5
                   ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Fig. 4's split: ``round(fraction * subjects)`` random subjects train, the others
    test (the paper drew 34 of the composite's 68). Returns train rows, test rows and
    the training subjects."""
    g = np.asarray(groups, dtype=object).astype(str)
    subjects = np.unique(g)
    if subjects.size < 2:
        raise ReproduceError(f"a subject split needs two subjects, got {subjects.tolist()}")
    n = min(max(1, round(fraction * subjects.size)), subjects.size - 1)
    chosen = np.random.default_rng(seed).choice(subjects, size=n, replace=False)
    is_train = np.isin(g, chosen)
    return (np.flatnonzero(is_train).astype(np.int64), np.flatnonzero(~is_train).astype(np.int64),
            sorted(str(s) for s in chosen))


def _train_text(cfg: dict[str, Any]) -> str:
    t = cfg.get("train") or {}
    opt = f"{t.get('optimizer')} lr {t.get('lr')}"
    if t.get("optimizer") == "sgd":
        opt += f" momentum {t.get('momentum')}"
    return (f"{opt}, batch {t.get('batch_size')}, {t.get('epochs')} epochs, "
            f"lambda {t.get('lam')}, epoch selection {t.get('select_epoch_by')}")


# =========================================================================== reproducer
class Reproducer:
    """Runs and renders targets; caches feature sets and run outcomes across targets."""

    def __init__(self, options: ReproduceOptions | None = None) -> None:
        self.options = options or ReproduceOptions()
        self._features: dict[tuple, tuple[FeatureSetLike, str]] = {}
        self._outcomes: dict[RunRef, RunOutcome] = {}
        self._synthetic_paths: dict[str, Path] | None = None

    # ------------------------------------------------------------------ naming
    def is_synthetic(self, experiment: str, model: str, force: bool = False) -> bool:
        """Whether (experiment, model) runs on synthetic data under these options."""
        if force or self.options.data == "synthetic":
            return True
        exp = EXPERIMENTS[experiment]
        entry = model_entry(model)
        return not (exp.real and entry.apex_policy == "annotated"
                    and entry.descriptor == "flow")

    def preset_for(self, experiment: str) -> str:
        return self.options.preset or EXPERIMENTS[experiment].preset

    def config_for(self, experiment: str, model: str) -> TrainConfig:
        """The training configuration of (experiment, model): preset, network, its
        input channels, ``--epochs``."""
        over: dict[str, Any] = {"model": model, "channels": list(model_entry(model).channels)}
        if self.options.epochs is not None:
            over["epochs"] = self.options.epochs
        return resolve_config(self.preset_for(experiment), None, over)

    def _suffix(self, experiment: str) -> str:
        preset = self.preset_for(experiment)
        suffix = "" if preset == EXPERIMENTS[experiment].preset else f"-{preset}"
        default_epochs = PRESETS[preset].get("epochs", TrainConfig.epochs)
        if self.options.epochs is not None and self.options.epochs != default_epochs:
            suffix += f"-e{self.options.epochs}"
        return suffix

    def _base(self, synthetic: bool) -> Path:
        base = Path(self.options.results)
        if synthetic:
            base = base / "synthetic"
            tag = self.options.synthetic.tag()
            if tag:
                base = base / tag
        return base

    def ref(self, experiment: str, model: str, force_synthetic: bool = False) -> RunRef:
        """The run of ``model`` under ``experiment`` and its directory."""
        if experiment not in EXPERIMENTS:
            raise ReproduceError(f"unknown experiment {experiment!r}; known: {list(EXPERIMENTS)}")
        synthetic = self.is_synthetic(experiment, model, force_synthetic)
        run_dir = self._base(synthetic) / experiment / f"{model}{self._suffix(experiment)}"
        return RunRef(experiment, model, synthetic, run_dir)

    def fig4_dir(self) -> Path:
        return self._base(self.is_synthetic("cde", "fr")) / f"fig4{self._suffix('cde')}"

    # ------------------------------------------------------------------ data
    def flowset_path(self) -> Path:
        """The composite flow set: ``--flowset``, ``$MEFR_FLOWSET`` or
        :data:`DEFAULT_FLOWSET`; a clear error when none is there."""
        cands = [self.options.flowset, os.environ.get("MEFR_FLOWSET"), DEFAULT_FLOWSET]
        for c in cands:
            if c and Path(c).is_dir():
                return Path(c)
        raise ReproduceError(
            "the MEGC 2019 composite flow set was not found (looked at --flowset, "
            f"$MEFR_FLOWSET and {DEFAULT_FLOWSET}); pass --flowset PATH, or --data synthetic, or "
            "--no-train to render the finished runs only"
        )

    def synthetic_paths(self) -> dict[str, Path]:
        """``{dataset: root}`` of the synthetic databases, written once into
        ``<work>/synthetic[/<spec>]`` unless ``SyntheticSpec.root`` names existing ones."""
        if self._synthetic_paths is not None:
            return self._synthetic_paths
        spec = self.options.synthetic
        if spec.root is not None:
            root = Path(spec.root)
            smic = {"smic_hs": "HS", "smic_vis": "VIS", "smic_nir": "NIR"}
            paths = {d: root / sub for d, sub in SYNTHETIC_DIRS.items()
                     if (root / sub / "synthetic_truth.csv").is_file()
                     and (d not in smic or (root / sub / "SMIC" / smic[d]).is_dir())}
            if not paths:
                raise ReproduceError(f"{root}: no synthetic database there "
                                     f"(write them with `mefr synth {root} --databases ...`)")
        else:
            from mefr.data.synthetic import SYNTHETIC_DATABASES, write_synthetic_databases

            root = Path(self.options.work) / "synthetic" / (spec.tag() or "default")
            marker = root / "reproduce_spec.json"
            want = {"subjects": spec.subjects, "clips": spec.clips, "frames": list(spec.frames),
                    "size": list(spec.size), "seed": spec.seed,
                    "databases": list(SYNTHETIC_DATABASES)}
            have = json.loads(marker.read_text()) if marker.is_file() else None
            if have is None or have.get("spec") != want:
                print(f"writing {spec.describe()} to {root}")
                written = write_synthetic_databases(
                    root, databases=SYNTHETIC_DATABASES, subjects=spec.subjects,
                    clips_per_subject=spec.clips, frames=spec.frames, size=spec.size,
                    seed=spec.seed)
                marker.write_text(json.dumps(
                    {"spec": want, "paths": {k: str(v) for k, v in written.items()}}, indent=2))
            paths = {k: Path(v) for k, v in json.loads(marker.read_text())["paths"].items()}
        self._synthetic_paths = paths
        return paths

    def features(self, experiment: str, model: str, synthetic: bool
                 ) -> tuple[FeatureSetLike, str]:
        """The feature set of a run and its description (recorded in config.yaml)."""
        exp = EXPERIMENTS[experiment]
        if not synthetic:
            key: tuple = ("real",)
            if key not in self._features:
                from mefr.data.flowset import load_flowset

                path = self.flowset_path()
                self._features[key] = (load_flowset(path), f"flowset:{path}")
            return self._features[key]
        entry = model_entry(model)
        key = ("synthetic", exp.labels, exp.databases, entry.apex_policy, entry.descriptor)
        if key not in self._features:
            self._features[key] = self._synthetic_features(exp, entry.apex_policy,
                                                           entry.descriptor)
        return self._features[key]

    def _synthetic_features(self, exp: Experiment, policy: str, descriptor: str = "flow"
                            ) -> tuple[FeatureSetLike, str]:
        from mefr.data import read_database
        from mefr.data.labels import LabelWarning, apply_protocol, protocol_classes
        from mefr.preprocess.apex import ApexFallbackWarning
        from mefr.preprocess.pipeline import PreprocessSettings, build_features

        paths = self.synthetic_paths()
        missing = [d for d in exp.databases if d not in paths]
        if missing:
            raise ReproduceError(
                f"{exp.key} needs synthetic {missing}; have {sorted(paths)} (write them with "
                "`mefr synth DIR --databases casme2 samm smic_hs smic_vis smic_nir`)")
        tables = [read_database(d, paths[d]) for d in exp.databases]
        with warnings.catch_warnings():
            # documented, expected on synthetic data: classes a protocol drops, and SMIC's
            # missing apex spotted with Eq. (1) under the annotated policy
            warnings.simplefilter("ignore", LabelWarning)
            warnings.simplefilter("ignore", ApexFallbackWarning)
            table = apply_protocol(pd.concat(tables, ignore_index=True), exp.labels)
            settings = PreprocessSettings(apex_policy=policy, strain=True,
                                          descriptor=descriptor)
            fs = build_features(table, settings, Path(self.options.work) / "cache",
                                workers=self.options.workers, progress=self.options.progress,
                                class_names=protocol_classes(exp.labels))
        root = Path(next(iter(paths.values()))).parent
        source = (f"synthetic:{root} ({'+'.join(exp.databases)}, {exp.labels} labels, "
                  f"apex {policy}" + (f", {descriptor}" if descriptor != "flow" else "") + ")")
        return fs, source

    # ------------------------------------------------------------------ runs
    def seeds_for(self, run_dir: Path) -> tuple[int, ...]:
        """``--seeds``, else the seeds the run already has, else ``(0,)``."""
        if self.options.seeds is not None:
            return parse_seeds(self.options.seeds)
        cfg = read_yaml(Path(run_dir) / "config.yaml")
        return parse_seeds(cfg["seeds"]) if cfg and cfg.get("seeds") else (0,)

    def outcome(self, ref: RunRef) -> RunOutcome:
        """Run (or resume, or reuse) ``ref``; without training, read what is there."""
        if ref in self._outcomes:
            return self._outcomes[ref]
        run_dir = ref.run_dir
        if self.options.train:
            exp = EXPERIMENTS[ref.experiment]
            features, source = self.features(ref.experiment, ref.model, ref.synthetic)
            result = run_protocol(
                features, exp.protocol, self.config_for(ref.experiment, ref.model),
                self.seeds_for(run_dir), run_dir, device=self.options.device,
                train_fn=self.options.train_fn, chunk=self.options.chunk,
                progress=self.options.progress, data_source=source)
            metrics: dict[str, Any] | None = result.metrics
        else:
            path = run_dir / "metrics.json"
            metrics = json.loads(path.read_text()) if path.is_file() else None
        out = RunOutcome(ref, metrics, read_yaml(run_dir / "config.yaml"), run_status(run_dir))
        self._outcomes[ref] = out
        return out

    def plan(self, name: str) -> list[RunRef]:
        """The runs target ``name`` reads, in order, without duplicates."""
        refs: list[RunRef] = []
        if name in TABLE_SPECS:
            spec = TABLE_SPECS[name]
            for r in spec.rows:
                if r.model is None:
                    continue
                for c in spec.columns:
                    exp = c.experiment or r.experiment
                    if c.metric in ("params_m", "average") or exp is None:
                        continue
                    refs.append(self.ref(exp, r.model, r.synthetic))
        elif name == "fig3":
            refs = [self.ref("cde", m) for m in ("basic_inception", "fr")]
        elif name != "fig4":
            raise ReproduceError(f"unknown target {name!r}; known: {TARGETS}")
        return list(dict.fromkeys(refs))

    # ------------------------------------------------------------------ tables
    def _cell(self, row: RowSpec, col: ColumnSpec, paper: float | None
              ) -> tuple[Cell, RunRef | None]:
        exp = col.experiment or row.experiment
        if exp is None:
            raise ReproduceError(f"column {col.key!r} of row {row.label!r} names no experiment")
        assert row.model is not None
        if col.metric == "params_m":
            k = len(protocol_classes(EXPERIMENTS[exp].labels))
            return Cell(values=(parameters_millions(row.model, k),), paper=paper, exact=True), None
        ref = self.ref(exp, row.model, row.synthetic)
        out = self.outcome(ref)
        where = str(ref.run_dir)
        if col.metric == "et_s":
            secs = fold_seconds(ref.run_dir) if out.metrics is not None else {}
            if not secs:
                status = NOT_RUN if out.metrics is None else "no timing in folds/*.json"
                return Cell(paper=paper, run_dir=where, status=status), ref
            seeds = tuple(sorted(secs))
            return Cell(values=tuple(secs[s] for s in seeds), seeds=seeds, paper=paper,
                        synthetic=ref.synthetic, run_dir=where), ref
        if out.metrics is None:
            return Cell(paper=paper, run_dir=where, status=out.status), ref
        db = col.database or row.database or COMPOSITE
        try:
            cell = cell_from_metrics(out.metrics, db, col.metric, paper, where, ref.synthetic)
        except KeyError as e:
            raise ReproduceError(f"{ref.run_dir}/metrics.json: {e}") from None
        return cell, ref

    def table(self, name: str) -> ReportTable:
        """Run what table ``name`` needs and return it beside the paper's numbers."""
        spec = TABLE_SPECS[name]
        paper = P.paper_table(name)
        rows: list[Row] = []
        seen: list[tuple[RunRef, ...]] = []
        used: list[RunRef] = []
        for r in spec.rows:
            if r.model is None:
                cells = {c.key: Cell(paper=paper.value(r.paper, c.key), status=NOT_REPRODUCED)
                         for c in spec.columns}
                rows.append(Row(r.label, cells, note="paper only"))
                continue
            cells, refs = {}, []
            for c in spec.columns:
                if c.metric == "average":
                    continue
                cells[c.key], ref = self._cell(r, c, paper.value(r.paper, c.key))
                if ref is not None:
                    refs.append(ref)
            for c in spec.columns:
                if c.metric == "average":
                    cells[c.key] = average_cell([cells[k] for k in c.average_of],
                                                paper.value(r.paper, c.key))
            key = tuple(dict.fromkeys(refs))
            if r.dedupe and key in seen:
                continue
            seen.append(key)
            used += refs
            rows.append(Row(r.label, cells, note=r.note))
        rows += self._difference_rows(spec, rows)
        columns = tuple(Column(c.key, c.header) for c in spec.columns)
        notes = self._notes(list(dict.fromkeys(used))) + list(spec.notes)
        notes += self._timing_notes(spec, rows)
        if spec.differences:
            notes.append(DIFFERENCE_NOTE)
            notes += self._bootstrap_notes(spec, rows)
        title = f"{paper.reference} of the paper: {spec.title}, ours vs paper"
        return ReportTable(name, self._titled(title, used), columns, tuple(rows), tuple(notes))

    @staticmethod
    def _compared_rows(spec: TableSpec, rows: Sequence[Row]) -> list[tuple[str, str, Row, Row]]:
        """``(label A, label B, row A, row B)`` for each of the table's differences."""
        by_label: dict[str, Row] = {}
        for r in rows:
            by_label.setdefault(r.label, r)  # the first row of a label (not its control)
        out = []
        for a, b in spec.differences:
            if a not in by_label or b not in by_label:
                raise ReproduceError(f"{spec.name}: no row {a!r} or {b!r} to compare")
            out.append((a, b, by_label[a], by_label[b]))
        return out

    def _difference_rows(self, spec: TableSpec, rows: Sequence[Row]) -> list[Row]:
        out = []
        for a, b, ra, rb in self._compared_rows(spec, rows):
            cells = {k: difference_cell(ra.cells[k], rb.cells[k])
                     for k in ra.cells if k in rb.cells}
            out.append(Row(f"{a} minus {b}", cells, note="paired by seed"))
        return out

    @staticmethod
    def _timing_notes(spec: TableSpec, rows: Sequence[Row]) -> list[str]:
        """Per-seed ET of every timed cell with several seeds: a wall-clock time depends on
        what else the machine ran, so the spread of an ET cell is not the model's."""
        notes = []
        for col in spec.columns:
            if col.metric != "et_s":
                continue
            for r in rows:
                c = r.cells.get(col.key)
                if c is None or len(c.values) < 2:
                    continue
                per_seed = ", ".join(f"seed {s} {v:.1f} s"
                                     for s, v in zip(c.seeds, c.values, strict=True))
                notes.append(f"ET per seed, {r.label}, {col.header.removesuffix(' ET (s)')} "
                             f"({c.run_dir}): {per_seed}. Wall-clock seconds on the hardware "
                             "listed; a seed that shared the machine with another run is "
                             "slower, so the spread measures machine load, not the model.")
        return notes

    def _bootstrap_notes(self, spec: TableSpec, rows: Sequence[Row]) -> list[str]:
        """For each difference whose two runs have predictions: the subject-bootstrap
        interval of the composite difference (:mod:`mefr.evaluate.compare`)."""
        notes = []
        for a, b, ra, rb in self._compared_rows(spec, rows):
            key = next(iter(ra.cells))
            ca, cb = ra.cells[key], rb.cells.get(key)
            if cb is None or not (ca.measured and cb.measured) or ca.synthetic != cb.synthetic:
                continue
            dirs = [Path(c.run_dir) for c in (ca, cb) if c.run_dir]
            if len(dirs) != 2 or not all((d / "predictions.csv").is_file() for d in dirs):
                continue
            try:
                found = compare_runs(*dirs, databases=(COMPOSITE,), replicates=2000)
            except ValueError:  # runs on other clips or seeds: nothing to pair
                continue
            parts = [f"{r.metric.upper()} {r.difference:+.4f} [{r.low:+.4f}, {r.high:+.4f}], "
                     f"ahead in {100 * r.share_a_better:.0f}% of draws" for r in found]
            seeds = ",".join(str(v) for v in found[0].seeds)
            notes.append(f"{a} minus {b}, composite, 95% interval of a paired bootstrap over "
                         f"the {found[0].subjects} subjects ({found[0].replicates} draws, seeds "
                         f"{seeds}; `mefr compare {dirs[0]} {dirs[1]}`): " + "; ".join(parts)
                         + ". It measures how much the difference depends on which subjects "
                         "were recorded; the paired-by-seed row measures training noise.")
        return notes

    def _titled(self, title: str, refs: Sequence[RunRef]) -> str:
        """Append ``[data; hardware]`` to a title (every machine that trained a seed)."""
        data = []
        if any(not r.synthetic for r in refs):
            data.append("MEGC 2019 composite flow set")
        if any(r.synthetic for r in refs):
            data.append("synthetic databases")
        hw: dict[str, None] = {}
        for r in refs:
            o = self._outcomes.get(r)
            if o is not None and o.config and o.metrics:
                seeds = [int(s) for s in o.metrics.get("seeds", [])]
                for text in seed_hardware(o.ref.run_dir, o.config, seeds).values():
                    hw.update(dict.fromkeys(text.split(" + ")))
        parts = [" + ".join(data)] if data else []
        if hw:
            # each machine once; the Hardware notes say which run and seed used which
            parts.append(", ".join(hw))
        return f"{title} [{'; '.join(parts)}]" if parts else title

    @staticmethod
    def _hardware(out: RunOutcome) -> str:
        """The hardware of a finished run, by seed (see :func:`describe_run_hardware`)."""
        seeds = [int(s) for s in (out.metrics or {}).get("seeds", [])]
        return describe_run_hardware(out.ref.run_dir, out.config or {}, seeds)

    def _notes(self, refs: Sequence[RunRef]) -> list[str]:
        notes: list[str] = []
        outs = [self._outcomes[r] for r in refs if r in self._outcomes]
        real = [o for o in outs if not o.ref.synthetic and o.config and o.metrics]
        if real:
            srcs = sorted({str(o.config.get("features")) for o in real})
            notes.append("Real data: the MEGC 2019 composite flow set (SMIC-HS 164, CASME II "
                         f"145, SAMM 133 clips, 3 classes; {', '.join(srcs)}).")
        if any(o.ref.synthetic for o in outs):
            notes.append(f"Synthetic data: {self.options.synthetic.describe()}.")
        by_hw: dict[str, list[str]] = {}
        by_train: dict[str, list[str]] = {}
        for o in outs:
            if o.config and o.metrics:
                by_hw.setdefault(self._hardware(o), []).append(str(o.ref.run_dir))
                by_train.setdefault(_train_text(o.config), []).append(str(o.ref.run_dir))
        n_runs = sum(len(d) for d in by_hw.values())
        for label, groups in (("Hardware", by_hw), ("Training", by_train)):
            for text, dirs in groups.items():
                where = "all runs" if len(dirs) == n_runs else ", ".join(dirs)
                notes.append(f"{label}: {text} ({where}).")
        sel = sorted({o.metrics["selection"] for o in outs if o.metrics})
        notes += [f"Selection: {s}." for s in sel]
        if outs and any(o.metrics for o in outs):
            notes.append("Acc, UF1 and UAR (Eqs. 9-13) are computed once on the pooled "
                         "predictions of all folds of a seed.")
        missing = [str(o.ref.run_dir) for o in outs if o.metrics is None]
        if missing:
            notes.append("Not yet run: " + ", ".join(missing) + ".")
        return notes

    # ------------------------------------------------------------------ figures
    def fig3(self) -> tuple[ReportTable, Any]:
        """Fig. 3: row-normalised confusion matrices of Basic Inception and FR (CDE),
        pooled over seeds (every seed tests the same samples, so this equals the mean
        of the per-seed percentages)."""
        classes = P.FIG3_CLASSES
        panels, paper_panels, rows, refs = {}, {}, [], []
        for tag, model in (("(a)", "basic_inception"), ("(b)", "fr")):
            ref = self.ref("cde", model)
            refs.append(ref)
            out = self.outcome(ref)
            title = f"{tag} {MODEL_NAMES[model]}"
            ref_pct = P.FIG3_CONFUSION[model]
            paper_panels[title] = ref_pct
            per_seed = ([] if out.metrics is None else
                        [(int(s), np.asarray(v[COMPOSITE]["confusion"], dtype=np.float64))
                         for s, v in out.metrics["per_seed"].items()])
            panels[title] = None
            if per_seed:
                if list(out.metrics["class_names"]) != list(classes):
                    raise ReproduceError(f"{ref.run_dir}: classes {out.metrics['class_names']}"
                                         f" are not Fig. 3's {list(classes)}")
                panels[title] = sum(cm for _, cm in per_seed)
            for i, true in enumerate(classes):
                cells = {}
                for j, pred in enumerate(classes):
                    vals = tuple(row_percent(cm)[i, j] for _, cm in per_seed)
                    cells[pred] = Cell(values=vals, seeds=tuple(s for s, _ in per_seed),
                                       paper=float(ref_pct[i, j]), synthetic=ref.synthetic,
                                       run_dir=str(ref.run_dir),
                                       status="" if per_seed else NOT_RUN)
                rows.append(Row(f"{MODEL_NAMES[model]}: true {true}", cells))
        n = sorted({c.n for r in rows for c in r.cells.values() if c.measured})
        pooled = f"pooled over {', '.join(map(str, n))} seed(s)" if n else "not yet run"
        base = f"Fig. 3 of the paper: confusion matrices (%) on the CDE composite, {pooled}"
        table = ReportTable(
            "fig3", self._titled(base, refs),
            tuple(Column(c, f"predicted {c}", digits=2) for c in classes), tuple(rows),
            tuple(self._notes(refs) + ["Rows are true classes, normalised to 100 %."]))
        fig = None
        if any(v is not None for v in panels.values()):
            kind = " (synthetic data)" if all(r.synthetic for r in refs) else ""
            fig = confusion_figure(panels, classes, self._titled(base, refs) + kind,
                                   paper=paper_panels)
        return table, fig

    def fig4(self) -> tuple[ReportTable, Any]:
        """Fig. 4: t-SNE of Basic Inception's expression-shared and FR's expression-refined
        features of the test samples of a random half/half subject split of the composite."""
        run_dir = self.fig4_dir()
        synthetic = self.is_synthetic("cde", "fr")
        emb_path, info_path = run_dir / "embedding.csv", run_dir / "info.json"
        if emb_path.is_file() and info_path.is_file() and self.options.train:
            self._check_fig4(run_dir, synthetic)
        if not (emb_path.is_file() and info_path.is_file()):
            if not self.options.train:
                t = ReportTable("fig4", "Fig. 4 of the paper: t-SNE of the features",
                                (Column("acc", "test Acc"),),
                                (Row("Basic Inception", {"acc": Cell(status=NOT_RUN)}),
                                 Row("FR", {"acc": Cell(status=NOT_RUN)})),
                                (f"Not yet run: {run_dir}.",))
                return t, None
            self._run_fig4(run_dir, synthetic)
        info = json.loads(info_path.read_text())
        emb = pd.read_csv(emb_path, dtype={"subject": str, "clip": str})
        classes = tuple(info["class_names"])
        panels, rows = {}, []
        what = {"basic_inception": "expression-shared feature",
                "fr": "expression-refined feature"}
        for tag, model in (("(a)", "basic_inception"), ("(b)", "fr")):
            part = emb[emb["model"] == model]
            res = info["models"][model]
            panels[f"{tag} {MODEL_NAMES[model]}: {what[model]}"] = (
                part[["tsne_x", "tsne_y"]].to_numpy(), part["label"].to_numpy())
            rows.append(Row(MODEL_NAMES[model], {
                "acc": Cell(values=(res["test_acc"],), seeds=(info["seed"],),
                            synthetic=synthetic, run_dir=str(run_dir)),
                "sil_tsne": Cell(values=(res["silhouette_tsne"],), seeds=(info["seed"],),
                                 synthetic=synthetic, run_dir=str(run_dir)),
                "sil_feat": Cell(values=(res["silhouette_features"],), seeds=(info["seed"],),
                                 synthetic=synthetic, run_dir=str(run_dir)),
            }))
        split = info["split"]
        desc = (f"train {split['train_subjects']} subjects / {split['train_samples']} "
                f"samples, test {split['test_subjects']} subjects / "
                f"{split['test_samples']} samples (paper: {P.FIG4_SPLIT['train_subjects']} "
                f"subjects / {P.FIG4_SPLIT['train_samples']} samples train)")
        title = f"Fig. 4 of the paper: t-SNE of test-sample features, CDE composite, {desc}"
        data = "synthetic databases" if synthetic else "MEGC 2019 composite flow set"
        hardware = info["hardware"]
        if isinstance(hardware, str) and hardware.startswith(("cpu", "cuda")):
            hardware = describe_fold_device(hardware)  # the engine's words -> the tables'
        title_full = f"{title} [{data}; {hardware}]"
        table = ReportTable(
            "fig4", title_full,
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
             f"random_state {info['seed']}. Split, features and map: {run_dir}."))
        fig = tsne_figure(panels, classes,
                          title_full + (" (synthetic data)" if synthetic else ""))
        return table, fig

    def _fig4_identity(self, synthetic: bool) -> dict[str, Any]:
        """What must match for Fig. 4's stored split, features and map to be reused."""
        features, _ = self.features("cde", "fr", synthetic)
        seeds = parse_seeds(self.options.seeds) if self.options.seeds is not None else (0,)
        return {
            "sha256": features_fingerprint(np.asarray(features.x), features.table),
            "seed": int(seeds[0]),
            "configs": {m: self.config_for("cde", m).to_dict()
                        for m in ("basic_inception", "fr")},
        }

    def _check_fig4(self, run_dir: Path, synthetic: bool) -> None:
        stored = json.loads((run_dir / "info.json").read_text()).get("identity")
        now = json.loads(json.dumps(self._fig4_identity(synthetic)))
        if stored != now:
            raise ReproduceError(
                f"{run_dir} holds a Fig. 4 run with other data, seed or training settings; "
                "delete it or use another --results")

    def _run_fig4(self, run_dir: Path, synthetic: bool) -> None:
        import torch
        from sklearn.metrics import silhouette_score

        from mefr.data.table import group_key
        from mefr.train.engine import Job, resolve_device, train_group

        features, source = self.features("cde", "fr", synthetic)
        table = features.table
        y = np.asarray(table["label"], dtype=np.int64)
        groups = group_key(table).to_numpy(dtype=object)
        seeds = parse_seeds(self.options.seeds) if self.options.seeds is not None else (0,)
        seed = seeds[0]
        train_idx, test_idx, train_subjects = split_subjects(groups, seed)
        k = len(features.class_names)
        rows, results = [], {}
        hardware = ""
        for model in ("basic_inception", "fr"):
            config = self.config_for("cde", model)
            x = select_channels(features.x, features.channels, config.channels)
            job = Job(key=f"fig4/{model}", seed=seed, train_idx=train_idx, test_idx=test_idx)
            res = train_group(x, y, [job], config, k, groups=groups, device=self.options.device,
                              progress=self.options.progress, return_models=True, workers=1)
            net = res.models[job.key].to(resolve_device(self.options.device)).eval()  # type: ignore[index]
            with torch.no_grad():
                xt = torch.from_numpy(x[test_idx]).to(next(net.parameters()).device)
                out = net(xt)
            feat = (out.refined if out.refined is not None else out.shared).float().cpu().numpy()
            pred = out.logits.argmax(-1).cpu().numpy()
            xy = tsne_embedding(feat, seed)
            yt = y[test_idx]
            two = len(np.unique(yt)) > 1 and len(yt) > len(np.unique(yt))
            info = res.info.get(job.key, {})
            hardware = info.get("device", self.options.device)
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
            "identity": self._fig4_identity(synthetic),
            "data": source,
            "sha256": features_fingerprint(np.asarray(features.x), table),
            "class_names": list(features.class_names),
            "seed": int(seed),
            "train": _train_text({"train": self.config_for("cde", "fr").to_dict()}),
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

    # ------------------------------------------------------------------ targets
    def reproduce(self, name: str) -> dict[str, Path]:
        """Run what target ``name`` needs and write ``<out>/<name>.md/.csv/.tex`` (and
        ``.png`` for figures); return the paths written by suffix."""
        if name not in TARGETS:
            raise ReproduceError(f"unknown target {name!r}; known: {TARGETS} (or 'all')")
        for ref in self.plan(name):
            print(f"{name}: {ref.run_dir} [{'synthetic' if ref.synthetic else 'real'}] "
                  f"{run_status(ref.run_dir)}")
        if name == "fig4":
            d = self.fig4_dir()
            done = (d / "embedding.csv").is_file() and (d / "info.json").is_file()
            kind = "synthetic" if self.is_synthetic("cde", "fr") else "real"
            print(f"{name}: {d} [{kind}] {'complete' if done else NOT_RUN}")
        out_dir = self.options.out_dir
        if name in TABLE_SPECS:
            return write_table(self.table(name), out_dir)
        table, fig = self.fig3() if name == "fig3" else self.fig4()
        paths = write_table(table, out_dir)
        if fig is not None:
            paths["png"] = save_figure(fig, out_dir / f"{name}.png")
        return paths


def reproduce(names: str | Sequence[str], options: ReproduceOptions | None = None
              ) -> dict[str, dict[str, Path]]:
    """Reproduce targets (``"all"`` = every one of :data:`TARGETS`) sharing one
    :class:`Reproducer`; returns ``{target: {suffix: path}}``."""
    if isinstance(names, str):
        names = list(TARGETS) if names == "all" else [names]
    rep = Reproducer(options)
    return {n: rep.reproduce(n) for n in names}
