"""Train one network on every clip of a database and return it as a :class:`Predictor`.

:func:`load_training_data` reads raw databases (through their readers, a label protocol
and :func:`mefr.preprocess.build_features`), the synthetic databases, or a pre-computed
flow set; :func:`train_model` fits the network with :func:`mefr.train.engine.train_group`
(one job: every row trains, none is tested) and fills the model file's header;
:func:`train_ensemble` trains one model per seed and combines them into an ensemble.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mefr._env import mefr_version, model_environment, opencv_version, package_version
from mefr.data.flowset import FlowSet, select_channels
from mefr.data.table import features_fingerprint, group_key
from mefr.modelfile import make_header
from mefr.models.registry import is_handcrafted, model_entry
from mefr.predict.ensemble import ensemble_of
from mefr.predict.predictor import Predictor
from mefr.preprocess.settings import PreprocessSettings
from mefr.preprocess.sources import is_feature_source, load_sources
from mefr.train.config import TrainConfig


@dataclass(frozen=True)
class TrainingData:
    """Training clips with their network inputs and a description for the model header.

    ``features``: a :class:`~mefr.data.flowset.FlowSet` (or ``FeatureSet``) with a
    ``label`` column; ``preprocess``: the header's ``preprocess`` section; ``data``: its
    ``data`` section (see :mod:`mefr.modelfile`).
    """

    features: FlowSet
    preprocess: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)


def describe_data(features: FlowSet, sources: Sequence[str], protocol: str,
                  failures: Sequence[str] = ()) -> dict[str, Any]:
    """The header's ``data`` section: sources, protocol, clip/subject/class counts, hash."""
    table = features.table
    labels = np.asarray(table["label"], np.int64)
    counts = np.bincount(labels, minlength=len(features.class_names))
    return {
        "sources": list(sources),
        "protocol": protocol,
        "clips": int(len(table)),
        "subjects": int(group_key(table).nunique()),
        "datasets": {str(k): int(v) for k, v in
                     table["dataset"].astype(str).value_counts().sort_index().items()},
        "class_counts": {c: int(n) for c, n in zip(features.class_names, counts, strict=True)},
        "failures": len(failures),
        "failed_clips": list(failures)[:50],
        "sha256": features_fingerprint(features.x, table),
    }


def raw_preprocess_section(settings: PreprocessSettings) -> dict[str, Any]:
    """The header's ``preprocess`` section for features made by mefr from raw clips."""
    return {
        "source": "raw",
        "exact": True,
        "settings": settings.to_dict(),
        "channels": list(settings.channels),
        "opencv": opencv_version(),
        "yuface": package_version("yuface"),
        "note": "mefr.preprocess: face on the onset (yuface), apex policy, TV-L1 (OpenCV)",
    }


def load_training_data(
    sources: Sequence[str],
    protocol: str = "cde",
    settings: PreprocessSettings | None = None,
    cache_dir: str | os.PathLike | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> TrainingData:
    """The training clips of ``sources`` (``SCHEME:PATH`` strings, see
    :func:`mefr.preprocess.sources.parse_source`).

    * ``casme2:ROOT``, ``samm:ROOT``, ``smic_hs:ROOT``... raw databases (several may be
      given; they are pooled), labelled by ``protocol`` and preprocessed with ``settings``
      (through the feature cache ``cache_dir`` when given);
    * ``synthetic:DIR`` the synthetic CASME II, SAMM and SMIC-HS under ``DIR`` (written by
      ``mefr synth DIR``), handled as raw databases;
    * ``flowset:PATH`` a pre-computed composite flow set (alone; CDE labels only). Its
      preprocessing was not mefr's: the model file records mefr's closest settings
      (``minmax_per_image``, the apex policy of ``settings``) and a warning at load time.
    """
    s = settings or PreprocessSettings()
    fs = load_sources(sources, protocol, s, cache_dir, workers, progress)
    if is_feature_source(sources[0]):
        approx = PreprocessSettings(**{**s.to_dict(), "normalisation": "minmax_per_image",
                                       "strain": True})
        pre = {**raw_preprocess_section(approx), "source": "flowset", "exact": False,
               "note": "8-bit u/v/strain images min-max scaled per image by the flow set's own "
                       "tool; mefr computes minmax_per_image TV-L1 flow instead"}
        return TrainingData(fs, pre, describe_data(fs, list(sources), protocol))
    failures = [str(f) for f in getattr(fs, "failures", ())]
    return TrainingData(fs, raw_preprocess_section(s),
                        describe_data(fs, list(sources), protocol, failures))


def _check_channels(config: TrainConfig, feature_channels: Sequence[str]) -> None:
    missing = [c for c in config.channels if c not in feature_channels]
    if missing:
        hint = " (add the strain channel: --strain)" if "strain" in missing else ""
        raise ValueError(
            f"the training config reads channels {list(config.channels)} but the features "
            f"have {list(feature_channels)}{hint}"
        )
    entry = model_entry(config.model)
    wanted = int(config.model_kwargs.get("in_channels", len(entry.channels)))
    if wanted != len(config.channels):
        raise ValueError(
            f"network {config.model!r} reads {wanted} channels, the config gives "
            f"{len(config.channels)} ({list(config.channels)}); set channels accordingly "
            f"(e.g. --set channels=[{','.join(entry.channels)}])"
        )


def train_model(data: TrainingData, config: TrainConfig, seed: int = 0, device: str = "auto",
                progress: bool = False) -> Predictor:
    """Fit one network on every clip of ``data`` and return it as a :class:`Predictor`.

    One :class:`~mefr.train.jobs.Job` trains on all rows and tests on none, so the
    model is the one after ``config.epochs`` epochs (or the inner-validation epoch when
    ``config.select_epoch_by == "inner_val"``, which holds out training subjects).
    """
    from mefr.train.engine import train_group
    from mefr.train.jobs import Job
    from mefr.train.runtime import resolve_device

    if is_handcrafted(config.model):
        raise ValueError(f"{config.model!r} is a hand-crafted baseline without a network: it "
                         "has no model file; evaluate it with `mefr evaluate`")
    fs = data.features
    _check_channels(config, fs.channels)
    x = select_channels(fs.x, fs.channels, config.channels)
    y = np.array(fs.table["label"], dtype=np.int64)
    k = len(fs.class_names)
    groups = group_key(fs.table).to_numpy(dtype=object)
    job = Job("model", int(seed), np.arange(len(y), dtype=np.int64), np.zeros(0, np.int64))
    result = train_group(x, y, [job], config, k, groups=groups, device=device,
                         progress=progress, return_models=True, workers=1)
    model = result.models["model"].cpu().eval()  # type: ignore[index]
    with torch.no_grad():
        has_det = model(torch.zeros((1, *x.shape[1:]))).detector_logits is not None
    info = result.info["model"]
    header = make_header(
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        mefr_version=mefr_version(),
        network={"name": config.model, "num_classes": k, "detectors": has_det,
                 "kwargs": {n: v for n, v in model.config.items() if n != "num_classes"}},
        classes=list(fs.class_names),
        input={"channels": list(config.channels), "size": int(x.shape[-1]),
               "feature_channels": list(fs.channels)},
        preprocess=data.preprocess,
        train={**config.to_dict(), "seed": int(seed), "model_seed": info["seed"],
               "device": str(resolve_device(device)), "evaluated_epoch": info["evaluated_epoch"],
               "final_train_loss": info["final_train_loss"]},
        data=data.data,
        environment=model_environment(),
    )
    return Predictor(model, header, source="<trained>")


def train_ensemble(data: TrainingData, config: TrainConfig, seeds: Sequence[int],
                   device: str = "auto", progress: bool = False) -> Predictor:
    """Fit one network per seed on every clip of ``data`` and return their ensemble (a
    :class:`Predictor` whose probabilities are the mean of the members', each weighing
    ``1 / len(seeds)``); one seed gives a single model.

    The seeds are trained one after another, each exactly as :func:`train_model` with
    that seed trains it, so member k is the model ``mefr train --seed SEEDS[k]`` writes.
    """
    chosen = [int(s) for s in seeds]
    if not chosen:
        raise ValueError("train_ensemble needs at least one seed")
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"seeds {chosen} repeat a seed: the members would be the same model")
    models = [train_model(data, config, seed=s, device=device, progress=progress)
              for s in chosen]
    if len(models) == 1:
        return models[0]
    return ensemble_of(models, files=[None] * len(models))
