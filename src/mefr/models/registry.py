"""Networks by name: ``create_model("fr")``, their parameter counts and display names.

The networks register themselves beside their classes
(:func:`mefr.models.catalog.register`, in :mod:`mefr.models.fr` and
:mod:`mefr.models.baselines`); importing this module imports them, so
:data:`mefr.models.catalog.MODELS` is complete once it is imported. The hand-crafted
baseline ``lbptop_svm`` (no network; :mod:`mefr.train.handcrafted`) is registered below.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from mefr.models.base import GroupNet
from mefr.models.catalog import HANDCRAFTED, MODELS, ModelEntry, add_entry
from mefr.models.fr import FeatureRefinement  # registers FR, its ablations, Basic Inception

# isort: split
import mefr.models.baselines  # noqa: F401, E402 - registers OFF-ApexNet and STSTNet (after FR)

__all__ = [
    "count_parameters",
    "create_model",
    "display_name",
    "display_names",
    "is_handcrafted",
    "list_models",
    "model_entry",
    "model_specs",
]

add_entry(ModelEntry(None, {"C": 1.0}, channels=("lbptop",), descriptor="lbptop",
                     description="LBP-TOP histograms + linear SVM (MEGC 2019 baseline)",
                     display="LBP-TOP", uses_dropout=False, name="lbptop_svm"))


def model_entry(name: str) -> ModelEntry:
    """The registered network or hand-crafted baseline ``name``."""
    entry = MODELS.get(name) or HANDCRAFTED.get(name)
    if entry is None:
        raise ValueError(f"unknown model {name!r}; known: {sorted(MODELS)} and the "
                         f"hand-crafted {sorted(HANDCRAFTED)}")
    return entry


def is_handcrafted(name: str) -> bool:
    """Whether ``name`` is a hand-crafted baseline (no network to build or save)."""
    return name in HANDCRAFTED


def list_models(handcrafted: bool = True) -> list[str]:
    """The registered names: the networks, then (``handcrafted``) the hand-crafted
    baselines."""
    return [*MODELS, *(HANDCRAFTED if handcrafted else ())]


def display_name(name: str) -> str:
    """The name tables and figures print for model ``name`` (``fr_fc`` -> ``FR-fc``)."""
    entry = model_entry(name)
    return entry.display or name


def display_names() -> dict[str, str]:
    """Registry name -> display name, for every network and hand-crafted baseline."""
    return {name: display_name(name) for name in list_models()}


def _seeds(seed: int | Sequence[int], num_models: int) -> list[int]:
    if isinstance(seed, int):
        return [seed + g for g in range(num_models)]
    seeds = [int(s) for s in seed]
    if len(seeds) != num_models:
        raise ValueError(f"need {num_models} seeds, got {len(seeds)}")
    return seeds


def create_model(
    name: str,
    num_classes: int = 3,
    num_models: int = 1,
    *,
    seed: int | Sequence[int] = 0,
    **kwargs: Any,
) -> GroupNet:
    """Build ``num_models`` independent, initialised copies of network ``name`` for K
    classes.

    ``kwargs`` override the constructor arguments (sizes keep the paper's defaults).
    Model g is initialised by ``init_models`` from ``seed + g`` (or from ``seed[g]`` when
    ``seed`` is a sequence), so its outputs are finite and reproducible from the start.
    Built under ``torch.device("meta")`` (shapes only, for counting parameters) nothing
    is initialised.

    >>> model = create_model("fr")
    >>> out = model(torch.zeros(2, 2, 28, 28))
    >>> tuple(out.logits.shape), bool(torch.isfinite(out.logits).all())
    ((2, 3), True)
    """
    entry = model_entry(name)
    if entry.cls is None:
        raise ValueError(f"{name!r} is a hand-crafted baseline, not a network: it is trained "
                         "with scikit-learn (mefr.train.handcrafted) and has no weights")
    seeds = _seeds(seed, num_models)
    args = {**entry.kwargs, **kwargs}
    args.setdefault("in_channels", len(entry.channels))
    model = entry.cls(num_classes=num_classes, num_models=num_models, **args)
    if not any(p.is_meta for p in model.parameters()):
        model.init_models(seeds)
    return model


def count_parameters(model: GroupNet) -> int:
    """Learnable parameters (weights and biases) of one model of the group."""
    total = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total // model.num_models


def model_specs(classes: tuple[int, ...] = (3, 4, 5)) -> list[dict[str, Any]]:
    """Name, K, options and exact learnable parameter count of each network.

    FR and its ablations are listed with one-unit (sigmoid) detectors, the default,
    and with two-unit detectors (the reading that matches Table 7's per-class step).
    """
    specs: list[dict[str, Any]] = []
    with torch.device("meta"):
        for name, entry in MODELS.items():
            det_options: tuple[int | None, ...] = (
                (1, 2) if entry.cls is FeatureRefinement else (None,)
            )
            for k in classes:
                for units in det_options:
                    kw = {} if units is None else {"detector_units": units}
                    model = create_model(name, k, **kw)
                    spec: dict[str, Any] = {
                        "name": name,
                        "num_classes": k,
                        "parameters": count_parameters(model),
                        "channels": list(entry.channels),
                        "apex_policy": entry.apex_policy,
                        "description": entry.description,
                    }
                    if units is not None:
                        spec["detector_units"] = units
                    specs.append(spec)
    return specs
