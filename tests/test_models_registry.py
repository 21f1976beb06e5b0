"""The registry and the networks' recorded arguments; create_model's defaults (issue 38
item 3); metrics that infer their classes as scikit-learn does."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

import mefr.models.registry as registry
from mefr.evaluate import metrics
from mefr.evaluate.metrics import MetricInputError, accuracy, uar, uf1
from mefr.models.base import GroupNet, ModelOutput
from mefr.models.catalog import HANDCRAFTED, MODELS, register
from mefr.models.fr import BasicInception, FeatureRefinement
from mefr.models.layers import GroupLinear
from mefr.models.registry import create_model, display_name, display_names, model_entry
from mefr.train.config import TrainConfig
from mefr.train.runtime import network_kwargs

SMALL_FR = {"shared_dim": 32, "widths": (2, 4), "detector_hidden": 8, "classifier_hidden": 16}


def test_create_model_defaults_give_an_initialised_three_class_model() -> None:
    model = create_model("fr")
    assert model.num_classes == 3 and model.num_models == 1
    params = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert bool(torch.isfinite(params).all())
    x = torch.rand(4, 2, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model.eval()(x)
    assert out.logits.shape == (4, 3) and bool(torch.isfinite(out.logits).all())
    # seed 0 by default: the same weights as initialising model 0 explicitly
    explicit = FeatureRefinement(num_classes=3)
    explicit.init_models([0])
    for a, b in zip(model.state_dict().values(), explicit.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_create_model_seeds() -> None:
    a = create_model("basic_inception", seed=1, hidden=16)
    b = create_model("basic_inception", seed=1, hidden=16)
    c = create_model("basic_inception", seed=2, hidden=16)
    assert torch.equal(a.fc.weight, b.fc.weight) and not torch.equal(a.fc.weight, c.fc.weight)
    group = create_model("basic_inception", num_models=2, seed=[7, 1], hidden=16)
    assert torch.equal(group.fc.weight[1], a.fc.weight[0])
    with pytest.raises(ValueError, match="need 2 seeds"):
        create_model("basic_inception", num_models=2, seed=[1], hidden=16)
    with torch.device("meta"):  # shapes only: nothing to initialise
        assert create_model("fr").units.weight.is_meta


def test_constructor_arguments_are_recorded_and_rebuild_the_model() -> None:
    model = create_model("fr_fc", 4, num_models=2, **SMALL_FR)
    assert model.config == {
        "num_classes": 4, "in_channels": 2, "input_size": 28, "widths": (2, 4),
        "shared_dim": 32, "detector_hidden": 8, "detector_units": 1, "classifier_hidden": 16,
        "dropout": 0.5, "attention": "fc", "fusion": "sum", "channels_last": True}
    # a header read back from JSON gives lists; the rebuilt config is the same
    rebuilt = type(model)(num_models=1, **{**model.config, "widths": [2, 4]})
    assert rebuilt.config == model.config
    single = model.extract(1)
    assert single.config == model.config and single.num_models == 1
    for name, t in single.state_dict().items():
        assert torch.equal(t, model.state_dict()[name].reshape(2, -1)[1].view_as(t)), name


class _Tiny(GroupNet):
    def __init__(self, num_classes: int = 2, num_models: int = 1, in_channels: int = 1,
                 width: int = 3) -> None:
        super().__init__(num_models)
        self.head = GroupLinear(num_models, width, num_classes)

    def init_model(self, g: int, generator: torch.Generator) -> None:
        self.head.init_model(g, generator)

    def forward_group(self, x: torch.Tensor, sample_weight: torch.Tensor | None) -> ModelOutput:
        flat = x.flatten(2)[..., : self.head.in_features]
        return ModelOutput(self.head(flat), None, flat, None)


class _Wider(_Tiny):
    def __init__(self, num_models: int = 1, extra: int = 2) -> None:
        super().__init__(num_classes=5, num_models=num_models, width=3 + extra)


def test_a_subclass_of_a_network_records_its_own_arguments() -> None:
    assert _Tiny(width=4).config == {"num_classes": 2, "in_channels": 1, "width": 4}
    wider = _Wider(num_models=2, extra=1)
    assert wider.config == {"extra": 1}
    assert wider.extract(0).head.in_features == 4


def test_register_beside_a_class() -> None:
    try:
        register("tiny_test", display="Tiny", description="a test network",
                 kwargs={"width": 5}, uses_dropout=False)(_Tiny)
        model = create_model("tiny_test", 2, in_channels=1)
        assert isinstance(model, _Tiny) and model.head.in_features == 5
        assert display_name("tiny_test") == "Tiny"
        assert network_kwargs(TrainConfig(model="tiny_test")) == {}
        with pytest.raises(ValueError, match="already registered"):
            register("tiny_test", display="T", description="again")(_Tiny)
    finally:
        MODELS.pop("tiny_test", None)


def test_registry_entries_and_display_names() -> None:
    assert list(MODELS) == ["fr", "fr_branch_softmax", "fr_fc", "fr_concat", "basic_inception",
                            "dual_inception", "off_apexnet", "ststnet"]
    assert list(HANDCRAFTED) == ["lbptop_svm"]
    assert model_entry("fr_branch_softmax").kwargs == {"attention": "branch_softmax"}
    assert model_entry("dual_inception").cls is BasicInception
    assert model_entry("dual_inception").apex_policy == "middle"
    names = display_names()
    assert names["fr"] == "FR" and names["fr_concat"] == "FR-concatenated"
    assert names["basic_inception"] == "Basic Inception" and names["lbptop_svm"] == "LBP-TOP"
    assert set(names) == set(MODELS) | set(HANDCRAFTED)
    # the training setting `dropout` reaches every network but Basic Inception's head
    for name in MODELS:
        kw = network_kwargs(TrainConfig(model=name, dropout=0.3))
        assert ("dropout" in kw) == (name not in ("basic_inception", "dual_inception")), name
    assert network_kwargs(TrainConfig(model="basic_inception", model_kwargs={"dropout": 0.2})
                          ) == {"dropout": 0.2}


def test_docstring_examples_run() -> None:
    for module in (registry, metrics):
        failed, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert failed == 0, module.__name__


@pytest.mark.parametrize("seed", range(6))
def test_metrics_infer_the_classes_as_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = np.array([0, 2, 5, 7])[: 2 + seed % 3]  # gaps, and classes never predicted
    y_true = rng.choice(labels, 30)
    y_pred = rng.choice(labels[:-1] if seed % 2 else labels, 30)
    assert uf1(y_true, y_pred) == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert accuracy(y_true, y_pred) == pytest.approx(accuracy_score(y_true, y_pred))
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sklearn: y_pred has classes y_true lacks
            bacc = balanced_accuracy_score(y_true, y_pred)
    assert uar(y_true, y_pred) == pytest.approx(bacc)
    # given K, the classes are 0..K-1 and the values are the same
    k = int(max(y_true.max(), y_pred.max())) + 1
    assert uf1(y_true, y_pred, k) == pytest.approx(uf1(y_true, y_pred))


def test_metrics_take_string_labels_and_refuse_bad_input() -> None:
    t, p = ["neg", "pos", "sur", "neg"], ["neg", "neg", "sur", "pos"]
    assert uf1(t, p) == pytest.approx(f1_score(t, p, average="macro"))
    with pytest.raises(MetricInputError, match="entries"):
        uf1([0, 1], [0])
    with pytest.raises(MetricInputError, match="empty"):
        uar([], [])
