"""What identifies a run directory's run: the part of config.yaml a rerun must match.

:func:`describe_run` is what config.yaml records of a run (protocol, seeds, training
settings, data); :data:`COMPARED_KEYS` the parts of it that must match to resume the run
and :func:`config_differences` says which differ. :class:`FeatureSetLike` is what the
runner needs of a feature set. Neither the seeds nor the folds asked for (a PARTIAL run,
:mod:`mefr.evaluate.partial`) are compared: a rerun with more seeds or folds extends the
run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import pandas as pd

from mefr._io import to_plain
from mefr.data.table import features_fingerprint, group_key
from mefr.evaluate.protocols import Fold
from mefr.train.config import TrainConfig, default_settings

#: The parts of config.yaml that must match to resume a run. Seeds are not among them: asking an
#: existing run for more seeds trains only the new (seed, fold) jobs.
COMPARED_KEYS: tuple[str, ...] = ("protocol", "train", "data")


class FeatureSetLike(Protocol):
    """What the runner needs of a feature set (``FlowSet``, ``FeatureSet``)."""

    table: pd.DataFrame
    x: np.ndarray
    channels: tuple[str, ...]
    class_names: tuple[str, ...]


def describe_run(
    features: FeatureSetLike,
    x: np.ndarray,
    y: np.ndarray,
    protocol: str,
    config: TrainConfig,
    seeds: Sequence[int],
    folds: Sequence[Fold],
) -> dict[str, Any]:
    """The identity of a run: what config.yaml records under ``COMPARED_KEYS``."""
    table = features.table
    k = len(features.class_names)
    return to_plain(
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
        old = {**old, "train": {**old["train"], **to_plain(defaults)}}
    a = _flatten({k: old.get(k) for k in COMPARED_KEYS})
    b = _flatten({k: new.get(k) for k in COMPARED_KEYS})
    return [
        f"{k}: {a.get(k, '<absent>')!r} (run dir) != {b.get(k, '<absent>')!r} (now)"
        for k in sorted(set(a) | set(b))
        if a.get(k, "<absent>") != b.get(k, "<absent>")
    ]
