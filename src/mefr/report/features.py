"""The inputs of the reports' runs: the composite flow set, or synthetic databases
written once and preprocessed for each experiment's databases, labels and network."""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from mefr.report.options import DEFAULT_FLOWSET, ReproduceError, ReproduceOptions
from mefr.report.targets import EXPERIMENTS, Experiment

if TYPE_CHECKING:
    from mefr.evaluate.identity import FeatureSetLike

logger = logging.getLogger(__name__)

#: The folder of each database under a ``mefr synth`` root.
SYNTHETIC_DIRS = {"casme2": "casme2", "samm": "samm", "smic_hs": "smic", "smic_vis": "smic",
                  "smic_nir": "smic"}


class FeatureSource:
    """Loads (once) the feature set of each run, with its description for config.yaml."""

    def __init__(self, options: ReproduceOptions) -> None:
        self.options = options
        self._features: dict[tuple, tuple[FeatureSetLike, str]] = {}
        self._synthetic_paths: dict[str, Path] | None = None

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
                logger.info("writing %s to %s", spec.describe(), root)
                written = write_synthetic_databases(
                    root, databases=SYNTHETIC_DATABASES, subjects=spec.subjects,
                    clips_per_subject=spec.clips, frames=spec.frames, size=spec.size,
                    seed=spec.seed)
                marker.write_text(json.dumps(
                    {"spec": want, "paths": {k: str(v) for k, v in written.items()}}, indent=2))
            paths = {k: Path(v) for k, v in json.loads(marker.read_text())["paths"].items()}
        self._synthetic_paths = paths
        return paths

    def get(self, experiment: str, model: str, synthetic: bool) -> tuple[FeatureSetLike, str]:
        """The feature set of a run and its description (recorded in config.yaml)."""
        from mefr.models.registry import model_entry

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
            self._features[key] = self._synthetic(exp, entry.apex_policy, entry.descriptor)
        return self._features[key]

    def _synthetic(self, exp: Experiment, policy: str, descriptor: str = "flow"
                   ) -> tuple[FeatureSetLike, str]:
        from mefr.data import read_database
        from mefr.data.labels import LabelWarning, apply_protocol, protocol_classes
        from mefr.preprocess.apex import ApexFallbackWarning
        from mefr.preprocess.pipeline import build_features
        from mefr.preprocess.settings import PreprocessSettings

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
