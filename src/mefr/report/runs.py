"""The runs a report reads: their references, outcomes and what their directories record.

:class:`Runs` names the run directory of each (experiment, network) under the options
(``<results>[/synthetic[/<spec>]]/<experiment>/<model>[-<preset>][-e<epochs>]``, see
``results/README.md``), runs or resumes it through :func:`mefr.evaluate.runner.run_protocol`
and keeps its :class:`RunOutcome`. The functions below are the reports' only readers of
run directories (status, per-fold training seconds, the hardware of each seed).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from mefr.model_inputs import flowset_serves
from mefr.report.options import ReproduceError, ReproduceOptions
from mefr.report.targets import DEFAULT_PRESET, EXPERIMENTS

if TYPE_CHECKING:
    from mefr.report.features import FeatureSource
    from mefr.train.config import TrainConfig

#: Status of a run (or cell) without a number.
NOT_RUN = "not yet run"


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


# =========================================================================== readers
def read_yaml(path: Path) -> dict[str, Any] | None:
    """A YAML file's mapping; None when the file is absent."""
    if not path.is_file():
        return None
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ReproduceError(f"{path}: unreadable ({e})") from None


def read_metrics(run_dir: Path) -> dict[str, Any] | None:
    """A run's metrics.json; None when the run is not finished."""
    path = Path(run_dir) / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None


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
    metrics = Path(run_dir) / "metrics.json"
    if metrics.is_file():
        seeds = json.loads(metrics.read_text()).get("seeds", [])
        extra = "".join(f"; seed {k} partial ({n} fold files)"
                        for k, n in sorted(per_seed.items()) if k not in seeds and n)
        return f"complete, seeds {seeds}{extra}"
    n = sum(per_seed.values())
    return f"partial ({n} fold files)" if n else NOT_RUN


def _fold_infos(run_dir: Path, seed: int, ordered: bool = True) -> list[dict[str, Any] | None]:
    """The engine's report of every fold of a seed (``folds/seed<k>/**/<fold>.json``),
    in path order (or the file system's); None for an unreadable one."""
    out: list[dict[str, Any] | None] = []
    paths = Path(run_dir, "folds", f"seed{seed}").rglob("*.json")
    for path in sorted(paths) if ordered else paths:
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            info = None
        out.append(info if isinstance(info, dict) else None)
    return out


def fold_seconds(run_dir: Path) -> dict[int, float]:
    """Mean training seconds per fold and seed: ``group_seconds / group_size`` of every
    ``folds/seed<k>/**/<fold>.json`` the engine wrote (seeds without any: left out)."""
    out: dict[int, float] = {}
    for seed in sorted(seed_dirs(run_dir)):
        secs = []
        for info in _fold_infos(run_dir, seed, ordered=False):
            try:
                secs.append(float(info["group_seconds"]) / max(1, int(info["group_size"])))
            except (ValueError, KeyError, TypeError):
                continue
        if secs:
            out[seed] = float(np.mean(secs))
    return out


def describe_environment(config: Mapping[str, Any]) -> str:
    """A short hardware line from a run's config.yaml ``environment`` section."""
    env = config.get("environment") or {}
    gpus = env.get("gpus") or []
    if env.get("device", "").startswith("cuda") or (env.get("device") == "auto" and gpus):
        return ", ".join(dict.fromkeys(gpus)) or "CUDA GPU"
    cpus = env.get("cpus")
    machine = env.get("machine") or "CPU"
    return f"CPU ({machine}, {cpus} cores)" if cpus else f"CPU ({machine})"


def describe_fold_device(device: str) -> str:
    """The engine's fold ``device`` (``cuda (NVIDIA H200)``, ``cpu (x86_64, 2 cores)``) in
    the words of :func:`describe_environment` (``NVIDIA H200``, ``CPU (x86_64, 2 cores)``)."""
    kind, _, detail = device.partition(" (")
    detail = detail.rstrip(")")
    if kind.startswith("cuda"):
        return detail or "CUDA GPU"
    return f"CPU ({detail})" if detail else "CPU"


def seed_hardware(run_dir: str | Path, config: Mapping[str, Any],
                  seeds: Sequence[int]) -> dict[int, str]:
    """The hardware that trained each seed of a run directory.

    Each fold's engine info (``folds/seed<k>/.../<fold>.json``) names its device; folds
    written before the engine recorded it count as the machine in ``config.yaml``'s
    ``environment`` (the one that created the run). A seed trained on several machines
    (an interrupted run resumed elsewhere) lists them joined by `` + ``.
    """
    fallback = describe_environment(config)
    out: dict[int, str] = {}
    for seed in seeds:
        found = []
        for info in _fold_infos(Path(run_dir), int(seed)):
            device = (info or {}).get("device")
            found.append(describe_fold_device(device) if isinstance(device, str) else fallback)
        out[int(seed)] = " + ".join(dict.fromkeys(found)) or fallback
    return out


def seed_list(seeds: Sequence[int]) -> str:
    """``[0]`` -> ``seed 0``; ``[1, 2, 3, 5]`` -> ``seeds 1-3, 5``."""
    ordered = sorted(seeds)
    spans: list[list[int]] = []
    for s in ordered:
        if spans and s == spans[-1][1] + 1:
            spans[-1][1] = s
        else:
            spans.append([s, s])
    text = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in spans)
    return f"seed{'s' if len(ordered) > 1 else ''} {text}"


def describe_run_hardware(run_dir: str | Path, config: Mapping[str, Any],
                          seeds: Sequence[int]) -> str:
    """One line naming the hardware of a run, by seed when the seeds differ:
    ``NVIDIA H200 (seed 0), CPU (x86_64, 2 cores) (seeds 1-2)``."""
    per_seed = seed_hardware(run_dir, config, seeds)
    by_text: dict[str, list[int]] = {}
    for seed, text in per_seed.items():
        by_text.setdefault(text, []).append(seed)
    if len(by_text) <= 1:
        return next(iter(by_text), describe_environment(config))
    return ", ".join(f"{text} ({seed_list(s)})" for text, s in by_text.items())


# =========================================================================== runs
class Runs:
    """Names, runs and remembers the runs of the targets under one set of options."""

    def __init__(self, options: ReproduceOptions, features: FeatureSource) -> None:
        self.options = options
        self.features = features
        self.outcomes: dict[RunRef, RunOutcome] = {}

    # ------------------------------------------------------------------ naming
    def is_synthetic(self, experiment: str, model: str, force: bool = False) -> bool:
        """Whether (experiment, model) runs on synthetic data under these options."""
        if force or self.options.data == "synthetic":
            return True
        return not (EXPERIMENTS[experiment].real and flowset_serves(model))

    def preset_for(self, experiment: str) -> str:
        """``--preset``, else :data:`~mefr.report.targets.DEFAULT_PRESET`."""
        return self.options.preset or DEFAULT_PRESET

    def config_for(self, experiment: str, model: str) -> TrainConfig:
        """The training configuration of (experiment, model): preset, network, its
        input channels, ``--epochs``."""
        from mefr.models.registry import model_entry
        from mefr.train.config import resolve_config

        over: dict[str, Any] = {"model": model, "channels": list(model_entry(model).channels)}
        if self.options.epochs is not None:
            over["epochs"] = self.options.epochs
        return resolve_config(self.preset_for(experiment), None, over)

    def suffix(self, experiment: str) -> str:
        """``-<preset>`` when the preset is not the paper's for the experiment, ``-e<N>``
        when ``--epochs`` changes the preset's epochs."""
        from mefr.train.config import PRESETS, TrainConfig

        preset = self.preset_for(experiment)
        suffix = "" if preset == EXPERIMENTS[experiment].paper_preset else f"-{preset}"
        default_epochs = PRESETS[preset].get("epochs", TrainConfig.epochs)
        if self.options.epochs is not None and self.options.epochs != default_epochs:
            suffix += f"-e{self.options.epochs}"
        return suffix

    def base(self, synthetic: bool) -> Path:
        """``<results>``, or ``<results>/synthetic[/<spec>]``."""
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
        run_dir = self.base(synthetic) / experiment / f"{model}{self.suffix(experiment)}"
        return RunRef(experiment, model, synthetic, run_dir)

    def fig4_dir(self) -> Path:
        """Where Fig. 4 keeps its split, features and t-SNE map."""
        return self.base(self.is_synthetic("cde", "fr")) / f"fig4{self.suffix('cde')}"

    def first_seed(self) -> int:
        """``--seeds``' first seed, else 0 (Fig. 4 trains one seed)."""
        from mefr.evaluate.runner import parse_seeds

        return parse_seeds(self.options.seeds)[0] if self.options.seeds is not None else 0

    # ------------------------------------------------------------------ running
    def seeds_for(self, run_dir: Path) -> tuple[int, ...]:
        """``--seeds``, else the seeds the run already has, else ``(0,)``."""
        from mefr.evaluate.runner import parse_seeds

        if self.options.seeds is not None:
            return parse_seeds(self.options.seeds)
        cfg = read_yaml(Path(run_dir) / "config.yaml")
        return parse_seeds(cfg["seeds"]) if cfg and cfg.get("seeds") else (0,)

    def outcome(self, ref: RunRef) -> RunOutcome:
        """Run (or resume, or reuse) ``ref``; without training, read what is there."""
        if ref in self.outcomes:
            return self.outcomes[ref]
        run_dir = ref.run_dir
        if self.options.train:
            from mefr.evaluate.runner import run_protocol

            exp = EXPERIMENTS[ref.experiment]
            features, source = self.features.get(ref.experiment, ref.model, ref.synthetic)
            result = run_protocol(
                features, exp.protocol, self.config_for(ref.experiment, ref.model),
                self.seeds_for(run_dir), run_dir, device=self.options.device,
                train_fn=self.options.train_fn, chunk=self.options.chunk,
                progress=self.options.progress, data_source=source)
            metrics: dict[str, Any] | None = result.metrics
        else:
            metrics = read_metrics(run_dir)
        out = RunOutcome(ref, metrics, read_yaml(run_dir / "config.yaml"), run_status(run_dir))
        self.outcomes[ref] = out
        return out
