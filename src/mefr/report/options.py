"""What ``mefr reproduce`` takes: :class:`ReproduceOptions` and :class:`SyntheticSpec`."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Where the composite flow set is looked for when ``--flowset`` is not given
#: (``$MEFR_FLOWSET`` first), relative to the working directory.
DEFAULT_FLOWSET = Path("../shared/data/megc2019-cde-flow")


class ReproduceError(RuntimeError):
    """A target cannot be reproduced as asked (missing data, conflicting run)."""


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
        """One phrase naming the databases (for the tables' notes)."""
        if self.root is not None:
            return f"synthetic databases under {self.root}"
        return (f"synthetic databases (mefr.data.synthetic: {self.subjects} subjects x "
                f"{self.clips} clips per database, {self.frames[0]}-{self.frames[1]} frames "
                f"of {self.size[0]}x{self.size[1]}, seed {self.seed})")


@dataclass(frozen=True)
class ReproduceOptions:
    """Everything ``mefr reproduce`` takes (see the CLI for each option).

    ``seeds`` ``None`` means: the seeds a run directory already has, else seed 0.
    ``preset`` ``None`` means :data:`mefr.report.targets.DEFAULT_PRESET` for every run.
    ``train`` ``False`` renders from finished runs only: a target whose runs are not all
    finished is an error, unless ``allow_missing`` (their cells: "not yet run").
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
    allow_missing: bool = False

    def __post_init__(self) -> None:
        from mefr.evaluate.protocols import parse_seeds
        from mefr.train.config import PRESETS

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
        """``out``, else ``<results>/report`` (``<results>/synthetic/report`` with
        ``data="synthetic"``), suffixed like the run directories when the recipe is not
        the reports' default: ``report-<preset>`` for another ``--preset``, ``-e<N>``
        for another number of epochs. So a table rendered under another recipe never
        overwrites the committed one."""
        if self.out is not None:
            return Path(self.out)
        base = Path(self.results)
        name = "report" + self.recipe_suffix()
        return base / "synthetic" / name if self.data == "synthetic" else base / name

    def recipe_suffix(self) -> str:
        """``-<preset>`` when ``preset`` is not the reports' default, ``-e<N>`` when
        ``epochs`` is not the preset's; ``""`` for the default recipe."""
        from mefr.report.targets import DEFAULT_PRESET

        preset = self.preset or DEFAULT_PRESET
        return ("" if preset == DEFAULT_PRESET else f"-{preset}") + epochs_suffix(
            preset, self.epochs)


def epochs_suffix(preset: str, epochs: int | None) -> str:
    """``-e<N>`` when ``epochs`` is given and differs from ``preset``'s, else ``""``:
    the part of a run or report directory's name that marks a changed epoch count."""
    from mefr.train.config import PRESETS, TrainConfig

    if epochs is None or epochs == PRESETS[preset].get("epochs", TrainConfig.epochs):
        return ""
    return f"-e{epochs}"
