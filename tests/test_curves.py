"""Learning curves, divergence, augmentation and the branch-softmax FR variant."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from mefr.data.flowset import FlowSet
from mefr.evaluate.identity import config_differences
from mefr.evaluate.rundir import RunDir, fold_path
from mefr.evaluate.runner import run_protocol
from mefr.models.registry import create_model
from mefr.train.augment import flip_flow, shift_images
from mefr.train.config import TrainConfig, resolve_config
from mefr.train.engine import TrainingDiverged, train_group
from mefr.train.jobs import Job
from mefr.train.losses import classification_loss

SMALL_FR = {"shared_dim": 32, "widths": (2, 4), "detector_hidden": 8, "classifier_hidden": 16}


def _toy(n=48, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.uniform(0, 1, (n, 2, 28, 28)).astype(np.float32)
    x[y == 1, 0, :, :14] += 0.5
    x[y == 2, 1, 14:, :] += 0.5
    groups = np.array([f"s{i % 6}" for i in range(n)])
    return x, y, groups


def _jobs(groups, seed=0, only=2):
    idx = np.arange(len(groups))
    return [Job(f"seed{seed}/{s}", seed, idx[groups != s], idx[groups == s])
            for s in sorted(set(groups))[:only]]


@pytest.mark.parametrize("select", ["none", "inner_val"])
def test_curves_do_not_change_the_predictions(select):
    x, y, groups = _toy()
    jobs = _jobs(groups)
    cfg = TrainConfig(model="fr", model_kwargs=SMALL_FR, epochs=3, batch_size=16, lr=1e-3,
                      select_epoch_by=select)
    plain = train_group(x, y, jobs, cfg, 3, groups=groups, workers=1, progress=False)
    with_curves = train_group(x, y, jobs, cfg, 3, groups=groups, workers=1, progress=False,
                              curves=True)
    for j in jobs:
        np.testing.assert_array_equal(plain.probs[j.key], with_curves.probs[j.key])
        c = with_curves.info[j.key]["curves"]
        assert c["test"].shape == (3, len(j.test_idx), 3) and c["test"].dtype == np.float16
        assert c["train_loss"].shape == (3,) and np.isfinite(c["train_loss"]).all()
        # the evaluated epoch's curve is the evaluated model's prediction
        e = with_curves.info[j.key]["evaluated_epoch"]
        np.testing.assert_allclose(c["test"][e - 1], plain.probs[j.key], atol=1e-3)
        assert abs(float(c["train_loss"][-1]) - with_curves.info[j.key]["final_train_loss"]) < 1e-5
        if select == "inner_val":
            assert c["inner_val"].shape == (3, len(c["inner_val_index"]), 3)
            assert len(c["inner_val_index"]) > 0
            assert not set(c["inner_val_index"]) & set(j.test_idx)
        else:
            assert c["inner_val"].shape[1] == 0


def test_curves_reach_the_info_through_worker_processes():
    x, y, groups = _toy()
    jobs = _jobs(groups)
    cfg = TrainConfig(model="fr", model_kwargs=SMALL_FR, epochs=2, batch_size=16, lr=1e-3)
    r = train_group(x, y, jobs, cfg, 3, groups=groups, workers=2, progress=False, curves=True)
    for j in jobs:
        assert r.info[j.key]["curves"]["test"].shape == (2, len(j.test_idx), 3)


def test_a_diverging_job_stops_at_the_epoch_and_is_named():
    x, y, groups = _toy()
    x[0] = np.nan  # a poisoned training row makes every loss NaN at the first step
    jobs = _jobs(groups, only=1)
    cfg = TrainConfig(model="fr", model_kwargs=SMALL_FR, epochs=50, batch_size=16)
    with pytest.raises(TrainingDiverged, match=r"seed0/s\d.*epoch 1\b"):
        train_group(x, y, jobs, cfg, 3, groups=groups, workers=1, progress=False)


def test_flip_mirrors_and_negates_u():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (2, 3, 3, 5, 6)).astype(np.float32)  # (G, B, C, H, W)
    mask = np.array([[True, False, True], [False, False, True]])
    out = flip_flow(torch.from_numpy(x), torch.from_numpy(mask), u_channel=0).numpy()
    for g in range(2):
        for b in range(3):
            want = x[g, b].copy()
            if mask[g, b]:
                want = want[:, :, ::-1].copy()
                want[0] = 1.0 - want[0]
            np.testing.assert_allclose(out[g, b], want, atol=1e-7)


def test_shift_moves_the_image_and_repeats_the_edge():
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 1, (1, 4, 2, 7, 7)).astype(np.float32)
    offsets = np.array([[[0, 0], [1, -2], [-2, 1], [2, 2]]])
    out = shift_images(torch.from_numpy(x), torch.from_numpy(offsets), 2).numpy()
    for b, (dy, dx) in enumerate(offsets[0]):
        padded = np.pad(x[0, b], ((0, 0), (2, 2), (2, 2)), mode="edge")
        want = padded[:, 2 - dy: 2 - dy + 7, 2 - dx: 2 - dx + 7]
        np.testing.assert_array_equal(out[0, b], want)
    # content moves by (dy, dx): pixel (3, 3) lands at (3 + dy, 3 + dx)
    assert out[0, 1, 0, 4, 1] == x[0, 1, 0, 3, 3]


def test_augmented_training_is_the_same_alone_or_in_a_group():
    x, y, groups = _toy()
    jobs = _jobs(groups)
    cfg = TrainConfig(model="fr", model_kwargs=SMALL_FR, epochs=2, batch_size=16, lr=1e-3,
                      augment_flip=True, augment_shift=1, label_smoothing=0.1)
    together = train_group(x, y, jobs, cfg, 3, max_models=2, workers=1, progress=False)
    alone = train_group(x, y, jobs, cfg, 3, max_models=1, workers=1, progress=False)
    plain = train_group(x, y, jobs, TrainConfig(model="fr", model_kwargs=SMALL_FR, epochs=2,
                                                batch_size=16, lr=1e-3),
                        3, max_models=1, workers=1, progress=False)
    for j in jobs:
        np.testing.assert_allclose(together.probs[j.key], alone.probs[j.key], atol=2e-5)
        assert not np.allclose(alone.probs[j.key], plain.probs[j.key], atol=1e-4)


def test_label_smoothing_matches_the_smoothed_cross_entropy():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(1, 5, 3))
    y = np.array([[0, 2, 1, 1, 0]])
    eps = 0.2
    target = (1 - eps) * np.eye(3)[y] + eps / 3
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    want = -(target * logp).sum(-1).mean()
    got = classification_loss(torch.tensor(logits), torch.tensor(y),
                              torch.ones(1, 5, dtype=torch.float64), label_smoothing=eps)
    assert abs(float(got[0]) - want) < 1e-10


def test_branch_softmax_attention_sums_to_one_across_branches():
    torch.set_grad_enabled(False)
    m = create_model("fr_branch_softmax", 3, **SMALL_FR)
    m.init_models([0])
    z = torch.rand(1, 4, SMALL_FR["shared_dim"])
    zk = m.proposals(z)
    # a_k sums to 1 over the K branches, so the fused z' = sum_k a_k z equals z
    torch.testing.assert_close(zk.sum(dim=2), z)
    literal = create_model("fr", 3, **SMALL_FR)
    literal.load_state_dict(m.state_dict())
    # the literal reading normalises over the features: each z_k* is about z / d
    assert float(literal.proposals(z).sum(dim=2).mean()) < 0.2 * float(z.mean())
    torch.set_grad_enabled(True)


def test_paper_adam_preset_is_adam_at_1e3_with_inner_validation():
    cfg = resolve_config("paper_adam")
    assert (cfg.optimizer, cfg.lr, cfg.batch_size, cfg.lam) == ("adam", 1e-3, 32, 0.85)
    assert cfg.select_epoch_by == "inner_val" and cfg.epochs == 100


def test_a_run_dir_written_before_a_setting_existed_still_resumes():
    new = {"protocol": "cde", "train": TrainConfig().to_dict(), "data": {"n": 3}}
    old_train = {k: v for k, v in new["train"].items()
                 if k not in ("augment_flip", "augment_shift", "label_smoothing")}
    old = yaml.safe_load(yaml.safe_dump({**new, "train": old_train}))
    assert config_differences(old, yaml.safe_load(yaml.safe_dump(new))) == []
    changed = {**new, "train": {**new["train"], "augment_flip": True}}
    assert config_differences(old, changed) == [
        "train.augment_flip: False (run dir) != True (now)"]


def _flowset(n_subjects=4, per=6, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_subjects):
        for c in range(per):
            rows.append({"dataset": "casme2" if s % 2 else "samm", "subject": f"{s:02d}",
                         "clip": f"c{c}", "label": (s + c) % 3})
    table = pd.DataFrame(rows)
    y = table["label"].to_numpy()
    x = rng.uniform(0, 1, (len(table), 2, 28, 28)).astype(np.float32)
    x[y == 1, 0] += 0.5
    return FlowSet(table=table, x=x, channels=("u", "v"),
                   class_names=("negative", "positive", "surprise"))


def test_runner_keeps_curves_beside_each_fold_and_predictions_do_not_change(tmp_path: Path):
    feats = _flowset()
    cfg = TrainConfig(model="fr", model_kwargs=SMALL_FR, epochs=2, batch_size=16, lr=1e-3)
    a = run_protocol(feats, "cde", cfg, "0", tmp_path / "a", progress=False)
    b = run_protocol(feats, "cde", cfg, "0", tmp_path / "b", progress=False, curves=False)
    pd.testing.assert_frame_equal(a.predictions, b.predictions)
    fold = fold_path(tmp_path / "a", 0, "casme2/01")
    c = RunDir(tmp_path / "a").curves(0, "casme2/01")
    got = pd.read_csv(fold)
    assert c["test"].shape == (2, len(got), 3)
    np.testing.assert_allclose(c["test"][-1], got[[f"p_{k}" for k in feats.class_names]],
                               atol=1e-3)
    assert RunDir(tmp_path / "b").curves(0, "casme2/01") is None
    assert not list((tmp_path / "b").rglob("*.npz"))
