"""Networks by name: ``create_model("fr", num_classes=3)``, and their parameter counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mefr.models.base import GroupNet
from mefr.models.baselines import OffApexNet, STSTNet
from mefr.models.fr import BasicInception, FeatureRefinement


@dataclass(frozen=True)
class ModelEntry:
    """A registered network: its class, fixed constructor arguments and input needs.

    ``channels`` are the feature channels the network reads, in order; ``apex_policy``
    is the apex choice its ablation stands for (Dual-Inception: the middle frame);
    ``descriptor`` what preprocessing makes of a clip for it (see
    :class:`mefr.preprocess.pipeline.PreprocessSettings`). A hand-crafted baseline has no
    class (``cls=None``); ``kwargs`` are its settings.
    """

    cls: type[GroupNet] | None
    kwargs: dict[str, Any] = field(default_factory=dict)
    channels: tuple[str, ...] = ("u", "v")
    apex_policy: str = "annotated"
    description: str = ""
    descriptor: str = "flow"


MODELS: dict[str, ModelEntry] = {
    "fr": ModelEntry(FeatureRefinement, {}, description="FR: softmax attention, sum fusion"),
    "fr_branch_softmax": ModelEntry(
        FeatureRefinement, {"attention": "branch_softmax"},
        description="FR, Eq. (2)'s softmax taken across the K branches (a labelled variant)"),
    "fr_fc": ModelEntry(FeatureRefinement, {"attention": "fc"},
                        description="FR-fc: dense sub-branches instead of attention"),
    "fr_concat": ModelEntry(FeatureRefinement, {"fusion": "concat"},
                            description="FR-concatenated: K features concatenated"),
    "basic_inception": ModelEntry(BasicInception, {},
                                  description="two-stream Inception + dense classifier"),
    "dual_inception": ModelEntry(BasicInception, {}, apex_policy="middle",
                                 description="Basic Inception on onset->middle-frame flow"),
    "off_apexnet": ModelEntry(OffApexNet, {}, description="OFF-ApexNet (Gan et al. 2019)"),
    "ststnet": ModelEntry(STSTNet, {}, channels=("u", "v", "strain"),
                          description="STSTNet (Liong et al. 2019)"),
}


#: Baselines without a network, trained with scikit-learn by
#: :func:`mefr.train.handcrafted.train_handcrafted` (the engine hands them over).
HANDCRAFTED: dict[str, ModelEntry] = {
    "lbptop_svm": ModelEntry(None, {"C": 1.0}, channels=("lbptop",), descriptor="lbptop",
                             description="LBP-TOP histograms + linear SVM (MEGC 2019 "
                             "baseline)"),
}


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


def create_model(
    name: str, num_classes: int, num_models: int = 1, **kwargs: Any
) -> GroupNet:
    """Build ``num_models`` independent copies of network ``name`` for K classes.

    ``kwargs`` override the constructor arguments (sizes keep the paper's defaults).
    Parameters are left uninitialised: call ``model.init_models(seeds)``.
    """
    entry = model_entry(name)
    if entry.cls is None:
        raise ValueError(f"{name!r} is a hand-crafted baseline, not a network: it is trained "
                         "with scikit-learn (mefr.train.handcrafted) and has no weights")
    args = {**entry.kwargs, **kwargs}
    args.setdefault("in_channels", len(entry.channels))
    return entry.cls(num_classes=num_classes, num_models=num_models, **args)


def count_parameters(model: GroupNet) -> int:
    """Learnable parameters (weights and biases) of one model of the group."""
    total = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total // model.num_models


def model_specs(classes: tuple[int, ...] = (3, 4, 5)) -> list[dict[str, Any]]:
    """Name, K, options and exact learnable parameter count of each network.

    FR and its ablations are listed with one-unit (sigmoid) detectors, the default,
    and with two-unit detectors (the reading that matches Table 7's per-class step).
    """
    import torch

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
