"""The hand-crafted baseline (LBP-TOP + linear SVM) through the engine's interface."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.calibration import CalibratedClassifierCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from mefr.models.registry import create_model, is_handcrafted, model_entry, model_specs
from mefr.preprocess.lbptop import lbp_top_dim
from mefr.train.config import TrainConfig, resolve_config
from mefr.train.engine import train_group
from mefr.train.jobs import Job, job_seed


def _blobs(seed: int = 0, n: int = 60, k: int = 3, d: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    x = rng.normal(size=(n, d)) + 3.0 * np.eye(k, d)[y]
    return x.reshape(n, 1, 1, d).astype(np.float32), y


def _config(**kw) -> TrainConfig:
    return TrainConfig(model="lbptop_svm", channels=("lbptop",), **kw)


def test_registry_knows_it_is_not_a_network() -> None:
    assert is_handcrafted("lbptop_svm") and not is_handcrafted("fr")
    assert model_entry("lbptop_svm").channels == ("lbptop",)
    assert model_entry("lbptop_svm").descriptor == "lbptop"
    assert "lbptop_svm" not in {s["name"] for s in model_specs((3,))}
    with pytest.raises(ValueError, match="hand-crafted baseline, not a network"):
        create_model("lbptop_svm", 3)
    # --model lbptop_svm reads the LBP-TOP channel without --set channels=...
    assert resolve_config("cde", None, ["model=lbptop_svm"]).channels == ("lbptop",)


def test_engine_hands_it_to_scikit_learn_with_the_same_results() -> None:
    x, y = _blobs()
    train, test = np.arange(45), np.arange(45, 60)
    job = Job("seed0/fold", 0, train, test)
    seen = []
    result = train_group(x, y, [job], _config(), 3, device="cpu", progress=False,
                         on_result=lambda key, p, info: seen.append((key, p, info)))
    clf = make_pipeline(StandardScaler(), CalibratedClassifierCV(
        SVC(kernel="linear", C=1.0), method="sigmoid", cv=5, ensemble=False))
    clf.fit(x[train].reshape(45, -1).astype(np.float64), y[train])
    expected = clf.predict_proba(x[test].reshape(15, -1).astype(np.float64))
    np.testing.assert_allclose(result.probs[job.key], expected, rtol=1e-10)
    assert (result.probs[job.key].argmax(1) == y[test]).mean() > 0.7  # chance: 1/3
    key, _, info = seen[0]
    assert key == job.key and info["train_rows"] == 45 and info["calibration_folds"] == 5
    assert info["seed"] == job_seed(job)


def test_test_rows_never_touch_the_fit() -> None:
    """The standardisation statistics come from the training rows only: changing one
    test row changes no other test row's probabilities."""
    x, y = _blobs(1)
    job = Job("j", 0, np.arange(40), np.arange(40, 60))
    before = train_group(x, y, [job], _config(), 3, progress=False).probs["j"]
    x2 = x.copy()
    x2[59] *= 100.0
    after = train_group(x2, y, [job], _config(), 3, progress=False).probs["j"]
    np.testing.assert_array_equal(before[:-1], after[:-1])


def test_classes_missing_from_training() -> None:
    x, y = _blobs(2, k=3)
    only_two = np.flatnonzero(y != 2)
    job = Job("two", 0, only_two[:30], np.arange(60))
    p = train_group(x, y, [job], _config(), 3, progress=False).probs["two"]
    assert p.shape == (60, 3) and (p[:, 2] == 0).all()
    np.testing.assert_allclose(p.sum(1), 1.0)
    # a class with a single training clip: no calibration, one-hot predictions
    rare = np.concatenate([np.flatnonzero(y == 0)[:10], np.flatnonzero(y == 1)[:1]])
    p = train_group(x, y, [Job("rare", 0, rare, np.arange(60))], _config(), 3,
                    progress=False).probs["rare"]
    assert set(np.unique(p)) <= {0.0, 1.0} and (p.sum(1) == 1).all()
    only_one = np.flatnonzero(y == 1)
    job = Job("one", 0, only_one, np.arange(5))
    p = train_group(x, y, [job], _config(), 3, progress=False).probs["one"]
    np.testing.assert_array_equal(p, np.tile([0.0, 1.0, 0.0], (5, 1)))


def test_settings_and_misuse() -> None:
    x, y = _blobs(3)
    job = Job("j", 0, np.arange(40), np.arange(40, 60))
    with pytest.raises(ValueError, match=r"unknown settings \['gamma'\]"):
        train_group(x, y, [job], _config(model_kwargs={"gamma": 1}), 3, progress=False)
    with pytest.raises(ValueError, match="no network to return"):
        train_group(x, y, [job], _config(), 3, progress=False, return_models=True)
    default = train_group(x, y, [job], _config(), 3, progress=False).probs["j"]
    weak = train_group(x, y, [job], _config(model_kwargs={"C": 1e-4}), 3,
                       progress=False).probs["j"]
    assert weak.shape == (20, 3)
    assert not np.allclose(weak, default)  # C reaches the SVM (the blobs separate at C=1)


def test_cli_evaluate_lbptop_on_raw_databases(tmp_path: Path,
                                              synthetic_databases: dict[str, Path]) -> None:
    from mefr.cli import main

    run = tmp_path / "run"
    argv = ["evaluate", "--data", f"casme2:{synthetic_databases['casme2']}",
            "--data", f"samm:{synthetic_databases['samm']}", "--protocol", "cde",
            "--model", "lbptop_svm", "--lbp-grid", "3", "--workers", "1",
            "--run-dir", str(run), "--no-progress"]
    assert main(argv) == 0
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["data"]["feature_channels"] == ["lbptop"]
    assert cfg["data"]["input_shape"][1:] == [1, 1, lbp_top_dim(3)]
    assert "descriptor='lbptop'" in cfg["features"]
    pred = pd.read_csv(run / "predictions.csv")
    assert len(pred) == cfg["data"]["n"]
    probs = pred.filter(like="p_").to_numpy()
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-9)
    assert (pred["pred"] == probs.argmax(1)).all()
    assert "nothing was tuned" in (run / "table.md").read_text()
    # no model file for a baseline without a network
    assert main(["train", "--data", f"casme2:{synthetic_databases['casme2']}", "--model",
                 "lbptop_svm", "--out", str(tmp_path / "m.safetensors"), "--no-progress"]) == 2
