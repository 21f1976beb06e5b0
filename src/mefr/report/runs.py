"""The runs a report reads: their references, outcomes and what their directories record.

:class:`Runs` names the run directory of each (experiment, network) under the options
(``<results>[/synthetic[/<spec>]]/<experiment>/<model>[-<preset>][-e<epochs>]``, see
``results/README.md``), runs or resumes it through :func:`mefr.evaluate.runner.run_protocol`
and keeps its :class:`RunOutcome`. The functions below read run directories for the
reports, through :class:`mefr.evaluate.rundir.RunDir` (the one reader of their files):
status, metrics, config, per-fold training seconds, the hardware of each seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mefr._env import describe_environment
from mefr.evaluate.rundir import RunDir
from mefr.model_inputs import flowset_serves
from mefr.report.options import ReproduceError, ReproduceOptions, epochs_suffix
from mefr.report.targets import DEFAULT_PRESET, EXPERIMENTS

if TYPE_CHECKING:
    from mefr.report.features import FeatureSource
    from mefr.train.config import TrainConfig

__all__ = ["RunOutcome", "RunRef", "Runs", "describe_run_hardware", "fold_seconds", "read_config",
           "read_metrics", "run_status", "seed_hardware", "seed_list"]


@dataclass(frozen=True)
class RunRef:
    """One (experiment, network, data kind, training preset) and its run directory."""

    experiment: str
    model: str
    synthetic: bool
    run_dir: Path
    preset: str


@dataclass(frozen=True)
class RunOutcome:
    """A run's state: its metrics.json (None when not finished or PARTIAL, see
    :func:`read_metrics`) and config.yaml (None when absent)."""

    ref: RunRef
    metrics: dict[str, Any] | None
    config: dict[str, Any] | None
    status: str


# =========================================================================== readers
# Every read of a run directory goes through mefr.evaluate.rundir.RunDir.
def read_config(run_dir: Path) -> dict[str, Any] | None:
    """A run's config.yaml; None when the run has none."""
    return RunDir(run_dir).config()


def read_metrics(run_dir: Path) -> dict[str, Any] | None:
    """A run's metrics.json; None when the run is not finished, or is PARTIAL (a run of
    some folds, ``mefr evaluate --folds``: never reported as the protocol's result)."""
    run = RunDir(run_dir)
    return None if run.partial() else run.metrics()


def run_status(run_dir: Path) -> str:
    """``complete, seeds [..]``, ``PARTIAL (n of N folds), seeds [..]``, ``partial (n fold
    files)`` or ``not yet run`` (:meth:`mefr.evaluate.rundir.RunDir.status`)."""
    return RunDir(run_dir).status()


def fold_seconds(run_dir: Path) -> dict[int, float]:
    """Mean training seconds per fold and seed
    (:meth:`~mefr.evaluate.rundir.RunDir.fold_seconds`)."""
    return RunDir(run_dir).fold_seconds()


def seed_hardware(run_dir: str | Path, seeds: Sequence[int]) -> dict[int, str]:
    """The hardware that trained each seed of a run directory
    (:meth:`~mefr.evaluate.rundir.RunDir.hardware`): each fold's device, the machine in
    config.yaml for folds that recorded none, several machines joined by `` + ``."""
    return RunDir(run_dir).hardware(seeds)


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


def describe_run_hardware(run_dir: str | Path, seeds: Sequence[int]) -> str:
    """One line naming the hardware of a run, by seed when the seeds differ:
    ``NVIDIA H200 (seed 0), CPU (x86_64, 2 cores) (seeds 1-2)``."""
    per_seed = seed_hardware(run_dir, seeds)
    by_text: dict[str, list[int]] = {}
    for seed, text in per_seed.items():
        by_text.setdefault(text, []).append(seed)
    if len(by_text) <= 1:
        return next(iter(by_text), describe_environment((read_config(Path(run_dir)) or {})
                                                        .get("environment")))
    return ", ".join(f"{text} ({seed_list(s)})" for text, s in by_text.items())


# =========================================================================== runs
class Runs:
    """Names, runs and remembers the runs of the targets under one set of options."""

    def __init__(self, options: ReproduceOptions, features: FeatureSource) -> None:
        self.options = options
        self.features = features
        self.outcomes: dict[RunRef, RunOutcome] = {}
        self._ensembles: dict[RunRef, dict[str, Any] | None] = {}

    # ------------------------------------------------------------------ naming
    def is_synthetic(self, experiment: str, model: str, force: bool = False) -> bool:
        """Whether (experiment, model) runs on synthetic data under these options."""
        if force or self.options.data == "synthetic":
            return True
        return not (EXPERIMENTS[experiment].real and flowset_serves(model))

    def preset_for(self, experiment: str) -> str:
        """``--preset``, else :data:`~mefr.report.targets.DEFAULT_PRESET`."""
        return self.options.preset or DEFAULT_PRESET

    def config_for(self, experiment: str, model: str, preset: str | None = None
                   ) -> TrainConfig:
        """The training configuration of (experiment, model): ``preset`` (else
        :meth:`preset_for`), network, its input channels, ``--epochs``."""
        from mefr.models.registry import model_entry
        from mefr.train.config import resolve_config

        over: dict[str, Any] = {"model": model, "channels": list(model_entry(model).channels)}
        if self.options.epochs is not None:
            over["epochs"] = self.options.epochs
        return resolve_config(preset or self.preset_for(experiment), None, over)

    def suffix(self, experiment: str, preset: str | None = None) -> str:
        """``-<preset>`` when the preset (``preset``, else :meth:`preset_for`) is not the
        paper's for the experiment, ``-e<N>`` when ``--epochs`` changes its epochs."""
        preset = preset or self.preset_for(experiment)
        suffix = "" if preset == EXPERIMENTS[experiment].paper_preset else f"-{preset}"
        return suffix + epochs_suffix(preset, self.options.epochs)

    def base(self, synthetic: bool) -> Path:
        """``<results>``, or ``<results>/synthetic[/<spec>]``."""
        base = Path(self.options.results)
        if synthetic:
            base = base / "synthetic"
            tag = self.options.synthetic.tag()
            if tag:
                base = base / tag
        return base

    def ref(self, experiment: str, model: str, force_synthetic: bool = False,
            preset: str | None = None) -> RunRef:
        """The run of ``model`` under ``experiment`` and its directory; ``preset`` names
        the training recipe of this run whatever ``--preset`` says (a table row that
        compares recipes), else it is :meth:`preset_for`."""
        if experiment not in EXPERIMENTS:
            raise ReproduceError(f"unknown experiment {experiment!r}; known: {list(EXPERIMENTS)}")
        preset = preset or self.preset_for(experiment)
        synthetic = self.is_synthetic(experiment, model, force_synthetic)
        run_dir = (self.base(synthetic) / experiment
                   / f"{model}{self.suffix(experiment, preset)}")
        return RunRef(experiment, model, synthetic, run_dir, preset)

    def fig4_dir(self) -> Path:
        """Where Fig. 4 keeps its split, features and t-SNE map."""
        return self.base(self.is_synthetic("cde", "fr")) / f"fig4{self.suffix('cde')}"

    def first_seed(self) -> int:
        """``--seeds``' first seed, else 0 (Fig. 4 trains one seed)."""
        from mefr.evaluate.protocols import parse_seeds

        return parse_seeds(self.options.seeds)[0] if self.options.seeds is not None else 0

    # ------------------------------------------------------------------ running
    def seeds_for(self, run_dir: Path) -> tuple[int, ...]:
        """``--seeds``, else the seeds the run already has, else ``(0,)``."""
        from mefr.evaluate.protocols import parse_seeds

        if self.options.seeds is not None:
            return parse_seeds(self.options.seeds)
        cfg = read_config(Path(run_dir))
        return parse_seeds(cfg["seeds"]) if cfg and cfg.get("seeds") else (0,)

    def ensemble_scores(self, ref: RunRef) -> dict[str, Any] | None:
        """The scores (by database) of the finished run ``ref``'s seeds as one ensemble:
        class probabilities averaged per clip (:func:`mefr.evaluate.ensemble.ensemble_of_runs`);
        ``None`` when the run directory keeps no per-fold predictions (``folds/`` removed,
        only ``metrics.json`` kept), which an ensemble needs."""
        if ref not in self._ensembles:
            from mefr.evaluate.ensemble import ensemble_of_runs

            run = RunDir(ref.run_dir)
            if not any(run.folds(seed) for seed in run.seeds()):
                self._ensembles[ref] = None
            else:
                self._ensembles[ref] = ensemble_of_runs([ref.run_dir]).scores
        return self._ensembles[ref]

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
                features, exp.protocol, self.config_for(ref.experiment, ref.model, ref.preset),
                self.seeds_for(run_dir), run_dir, device=self.options.device,
                train_fn=self.options.train_fn, chunk=self.options.chunk,
                progress=self.options.progress, data_source=source)
            metrics: dict[str, Any] | None = result.metrics
        else:
            metrics = read_metrics(run_dir)
        out = RunOutcome(ref, metrics, read_config(run_dir), run_status(run_dir))
        self.outcomes[ref] = out
        return out
