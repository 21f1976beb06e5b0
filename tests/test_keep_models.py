"""``run_protocol(keep_models=True)``: each fold's trained weights beside its fold file, as
safetensors, from which the network is rebuilt with the fold's own predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mefr.data.flowset import FlowSet
from mefr.evaluate.protocols import protocol_folds
from mefr.evaluate.rundir import RunDir, RunDirError
from mefr.evaluate.runner import run_protocol
from mefr.train.config import TrainConfig
from mefr.train.runtime import load_network

pytestmark = pytest.mark.filterwarnings("ignore::mefr.evaluate.summary.RunWarning")
SMALL_FR = {"shared_dim": 32, "widths": (2, 4), "detector_hidden": 8, "classifier_hidden": 16}
CONFIG = TrainConfig(model="fr", model_kwargs=SMALL_FR, epochs=2, batch_size=8, lr=1e-3)


def _flowset(n_subjects: int = 4, per: int = 5, seed: int = 0) -> FlowSet:
    rng = np.random.default_rng(seed)
    rows = [{"dataset": "casme2" if s % 2 else "samm", "subject": f"{s:02d}", "clip": f"c{c}",
             "label": (s + c) % 3} for s in range(n_subjects) for c in range(per)]
    table = pd.DataFrame(rows)
    x = rng.uniform(0, 1, (len(table), 2, 28, 28)).astype(np.float32)
    x[table["label"].to_numpy() == 1, 0] += 0.5
    return FlowSet(table=table, x=x, channels=("u", "v"),
                   class_names=("negative", "positive", "surprise"))


def _probs(frame: pd.DataFrame, classes) -> np.ndarray:
    return frame[[f"p_{c}" for c in classes]].to_numpy()


def test_kept_weights_rebuild_the_model_of_each_fold(tmp_path: Path) -> None:
    feats = _flowset()
    res = run_protocol(feats, "holdout:0.5:1", CONFIG, "0,1", tmp_path / "run", device="cpu",
                       progress=False, keep_models=True)
    run = RunDir(res.run_dir)
    (fold,) = protocol_folds(feats.table, "holdout:0.5:1")
    for seed in (0, 1):
        path = run.fold_csv(seed, "holdout").with_suffix(".safetensors")
        assert path.is_file() and run.has_fold(seed, "holdout", weights=True)
        assert path.read_bytes()[8:9] == b"{"  # a safetensors header, no pickle
        weights, meta = run.weights(seed, "holdout")
        assert meta == {"model": "fr", "job": f"seed{seed}/holdout", "num_classes": "3"}
        assert all(isinstance(v, np.ndarray) for v in weights.values())
        net = load_network(CONFIG, 3, weights)
        assert not net.training and net.num_models == 1
        with torch.no_grad():
            logits = net(torch.from_numpy(feats.x[fold.test_idx])).logits
        stored = run.read_fold(seed, "holdout")
        np.testing.assert_allclose(torch.softmax(logits, -1).numpy(),
                                   _probs(stored, feats.class_names), atol=1e-5)
        assert (logits.argmax(-1).numpy() == stored["pred"].to_numpy()).all()
    # the two seeds trained two different models
    w0, w1 = run.weights(0, "holdout")[0], run.weights(1, "holdout")[0]
    assert any(not np.array_equal(w0[n], w1[n]) for n in w0)
    # a resumed run keeps them and trains nothing
    stamp = run.fold_csv(0, "holdout").with_suffix(".safetensors").stat().st_mtime_ns
    again = run_protocol(feats, "holdout:0.5:1", CONFIG, "0,1", tmp_path / "run",
                         device="cpu", progress=False, keep_models=True)
    assert again.already_complete and not again.trained
    assert run.fold_csv(0, "holdout").with_suffix(".safetensors").stat().st_mtime_ns == stamp
    # ... and so does a rerun without keep_models
    run_protocol(feats, "holdout:0.5:1", CONFIG, "0,1", tmp_path / "run", device="cpu",
                 progress=False)
    assert run.weights(1, "holdout")[0].keys() == w1.keys()


def test_a_fold_without_its_weights_is_trained_again(tmp_path: Path) -> None:
    feats = _flowset()
    first = run_protocol(feats, "loso", CONFIG, "0", tmp_path / "run", device="cpu",
                         progress=False)
    run = RunDir(first.run_dir)
    assert not list(run.path.rglob("*.safetensors"))
    with pytest.raises(RunDirError, match="no kept weights"):
        run.weights(0, "casme2/01")
    # weights asked for later: the folds are trained again (same seeds, same predictions)
    second = run_protocol(feats, "loso", CONFIG, "0", tmp_path / "run", device="cpu",
                          progress=False, keep_models=True)
    assert len(second.trained) == 4 and not second.skipped
    pd.testing.assert_frame_equal(first.predictions, second.predictions)
    assert len(list(run.path.rglob("*.safetensors"))) == 4
    # a damaged weights file is named
    run.fold_csv(0, "samm/00").with_suffix(".safetensors").write_bytes(b"not safetensors")
    with pytest.raises(RunDirError, match="unreadable weights"):
        run.weights(0, "samm/00")


def test_keep_models_needs_networks(tmp_path: Path) -> None:
    feats = _flowset()

    def no_models(x, y, jobs, config, num_classes, groups=None, device="auto",
                  on_result=None, progress=True):
        raise AssertionError("not called")

    with pytest.raises(ValueError, match="keep_models"):
        run_protocol(feats, "loso", CONFIG, "0", tmp_path / "a", train_fn=no_models,
                     keep_models=True)
    lbp = TrainConfig(model="lbptop_svm", channels=("lbptop",))
    with pytest.raises(ValueError, match="keep_models: lbptop_svm"):
        run_protocol(feats, "loso", lbp, "0", tmp_path / "b", keep_models=True)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
