"""The engine: groups train exactly as single models, inner validation, metrics helper."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from mefr.evaluate.metrics import uf1
from mefr.train.config import TrainConfig
from mefr.train.engine import macro_f1_per_model, train_group
from mefr.train.jobs import Job, inner_split, plan_groups


def _toy(n=72, seed=0):
    """Three classes whose u/v fields differ in sign: learnable in a few epochs."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(0, 0.3, (n, 3, 28, 28)).astype(np.float32)
    x[y == 1, 0, :, :14] += 1.0
    x[y == 2, 1, 14:, :] += 1.0
    groups = np.array([f"s{i % 6}" for i in range(n)])
    return x, y, groups


SMALL_FR = {"shared_dim": 64, "widths": (2, 4), "detector_hidden": 16, "classifier_hidden": 32}


def _loso_jobs(groups, seed=0, only=3):
    subs = sorted(set(groups))[:only]
    idx = np.arange(len(groups))
    return [Job(f"seed{seed}/{s}", seed, idx[groups != s], idx[groups == s]) for s in subs]


@pytest.mark.parametrize(("model", "channels"), [("fr", 2), ("ststnet", 3)])
def test_group_training_equals_one_at_a_time(model, channels):
    x, y, groups = _toy()
    jobs = _loso_jobs(groups)
    kw = SMALL_FR if model == "fr" else {}
    cfg = TrainConfig(model=model, model_kwargs=kw, epochs=2, batch_size=16, lr=1e-3)
    together = train_group(x[:, :channels], y, jobs, cfg, 3, max_models=3, workers=1,
                           progress=False)
    alone = train_group(x[:, :channels], y, jobs, cfg, 3, max_models=1, workers=1,
                        progress=False)
    for j in jobs:
        np.testing.assert_allclose(together.probs[j.key], alone.probs[j.key], atol=2e-5)
        assert together.info[j.key]["group_size"] == 3


def test_engine_learns_a_separable_toy_problem():
    x, y, groups = _toy(n=120)
    jobs = _loso_jobs(groups, only=2)
    cfg = TrainConfig(model="fr", model_kwargs=SMALL_FR, epochs=8, batch_size=16, lr=3e-3)
    res = train_group(x[:, :2], y, jobs, cfg, 3, workers=1, progress=False)
    correct = sum(int((res.probs[j.key].argmax(1) == y[j.test_idx]).sum()) for j in jobs)
    total = sum(len(j.test_idx) for j in jobs)
    assert correct / total > 0.8


def test_probabilities_cover_test_rows_and_sum_to_one():
    x, y, groups = _toy()
    jobs = _loso_jobs(groups, only=2)
    res = train_group(x[:, :2], y, jobs, TrainConfig(model="basic_inception", epochs=1), 3,
                      workers=1, progress=False, return_models=True)
    for j in jobs:
        p = res.probs[j.key]
        assert p.shape == (len(j.test_idx), 3)
        np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-5)
        single = res.models[j.key]
        with torch.no_grad():
            direct = torch.softmax(single(torch.from_numpy(x[j.test_idx, :2])).logits, -1)
        np.testing.assert_allclose(direct.numpy(), p, atol=1e-5)


def test_inner_split_uses_training_subjects_only():
    _, _, groups = _toy()
    job = _loso_jobs(groups, only=1)[0]
    fit, val = inner_split(job, groups, 0.2)
    assert set(fit) | set(val) == set(job.train_idx)
    assert not set(groups[val]) & set(groups[fit])
    assert not set(val) & set(job.test_idx)
    assert len(set(groups[val])) == 1  # round(0.2 * 5 subjects)


def test_inner_validation_picks_an_epoch_without_the_test_fold():
    x, y, groups = _toy()
    jobs = _loso_jobs(groups, only=2)
    cfg = TrainConfig(model="fr", model_kwargs=SMALL_FR, epochs=3, batch_size=16, lr=1e-3,
                      select_epoch_by="inner_val")
    seen = []
    res = train_group(x[:, :2], y, jobs, cfg, 3, groups=groups, workers=1, progress=False,
                      on_result=lambda k, p, info: seen.append((k, info["seed"])))
    assert sorted(seen) == sorted((j.key, res.info[j.key]["seed"]) for j in jobs)
    for j in jobs:
        assert 1 <= res.info[j.key]["evaluated_epoch"] <= 3
        assert res.info[j.key]["inner_val_rows"] > 0


def test_inner_validation_ignores_the_test_rows():
    """Changing the test subject's labels and inputs changes neither the chosen epoch nor,
    for the labels, the predictions: nothing of the test fold reaches the selection."""
    x, y, groups = _toy()
    job = _loso_jobs(groups, only=1)[0]
    cfg = TrainConfig(model="fr", model_kwargs=SMALL_FR, epochs=4, batch_size=16, lr=1e-3,
                      select_epoch_by="inner_val")

    def run(x, y):
        res = train_group(x[:, :2], y, [job], cfg, 3, groups=groups, workers=1,
                          progress=False)
        return res.info[job.key]["evaluated_epoch"], res.probs[job.key]

    epoch, probs = run(x, y)
    y_changed = y.copy()
    y_changed[job.test_idx] = (y[job.test_idx] + 1) % 3
    epoch_y, probs_y = run(x, y_changed)
    x_changed = x.copy()
    x_changed[job.test_idx] = np.random.default_rng(9).normal(
        0, 2, x[job.test_idx].shape).astype(np.float32)
    epoch_x, probs_x = run(x_changed, y)
    assert epoch_y == epoch and epoch_x == epoch
    np.testing.assert_allclose(probs_y, probs, rtol=0, atol=1e-6)
    assert not np.allclose(probs_x, probs)  # the test inputs do reach the predictions


def test_macro_f1_per_model_matches_sklearn():
    rng = np.random.default_rng(3)
    pred = rng.integers(0, 4, (3, 20))
    true = rng.integers(0, 3, (3, 20))  # class 3 never true
    pred[1][pred[1] == 3] = 0  # model 1: class 3 in neither truth nor prediction
    w = (rng.random((3, 20)) > 0.2).astype(np.float32)
    got = macro_f1_per_model(torch.from_numpy(pred), torch.from_numpy(true), torch.from_numpy(w), 5)
    for g in range(3):
        m = w[g] > 0
        # Eq. 10 as reported: the classes present in truth or prediction (sklearn's default)
        ref = f1_score(true[g][m], pred[g][m], average="macro", zero_division=0)
        assert got[g].item() == pytest.approx(ref, abs=1e-6)
        assert got[g].item() == pytest.approx(uf1(true[g][m], pred[g][m], 5), abs=1e-6)


def test_plan_groups_by_steps_and_size():
    jobs = [Job(str(i), 0, np.arange(3), np.arange(1)) for i in range(5)]
    plan = plan_groups(jobs, [14, 13, 14, 14, 14], max_models=2)
    assert plan == [[1], [0, 2], [3, 4]]


def test_cpu_processes_give_the_same_result():
    x, y, groups = _toy()
    jobs = _loso_jobs(groups, only=2)
    cfg = TrainConfig(model="ststnet", epochs=1, batch_size=16)
    a = train_group(x, y, jobs, cfg, 3, workers=2, progress=False)
    b = train_group(x, y, jobs, cfg, 3, workers=1, progress=False)
    for j in jobs:
        np.testing.assert_allclose(a.probs[j.key], b.probs[j.key], atol=1e-6)


def test_bad_labels_are_refused():
    x, y, groups = _toy()
    with pytest.raises(ValueError, match="labels must lie"):
        train_group(x[:, :2], y + 5, _loso_jobs(groups, only=1), TrainConfig(epochs=1), 3,
                    progress=False)


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_cpu_workers_end_when_their_run_is_killed():
    """A killed ``mefr evaluate`` must not leave its training processes holding the cores."""
    code = textwrap.dedent("""
        import multiprocessing as mp, os, time
        import numpy as np
        from concurrent.futures import ProcessPoolExecutor
        from mefr.train.workers import _init_worker
        x, y = np.zeros((1, 2, 28, 28), np.float32), np.zeros(1, np.int64)
        pool = ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"),
                                   initializer=_init_worker, initargs=(x, y, None, 1))
        print(pool.submit(os.getpid).result(), flush=True)
        pool.submit(time.sleep, 120)  # a long fold
        time.sleep(120)
    """)
    run = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    worker = int(run.stdout.readline())
    try:
        assert _running(worker)
        run.kill()
        run.wait()
        deadline = time.monotonic() + 30
        while _running(worker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _running(worker)
    finally:
        run.kill()
        if _running(worker):
            os.kill(worker, signal.SIGKILL)


def test_balanced_class_weights_match_sklearn():
    """``class_weighting=balanced``: each training fold's inverse class frequency, as
    scikit-learn's ``compute_class_weight("balanced")``; 0 for a class the fold lacks."""
    from sklearn.utils.class_weight import compute_class_weight

    from mefr.train.batches import class_weights as _class_weights

    y = np.array([0, 0, 0, 1, 2, 2, 1, 0, 0, 2])
    fits = [np.arange(10), np.array([0, 1, 2, 4, 5])]  # the second fold has no class 1
    got = _class_weights(y, fits, 3, "balanced", torch.device("cpu")).numpy()
    np.testing.assert_allclose(
        got[0], compute_class_weight("balanced", classes=np.arange(3), y=y), rtol=1e-6)
    present = compute_class_weight("balanced", classes=np.array([0, 2]), y=y[fits[1]])
    np.testing.assert_allclose(got[1], [present[0] * 2 / 3, 0.0, present[1] * 2 / 3],
                               rtol=1e-6)
    assert _class_weights(y, fits, 3, "none", torch.device("cpu")) is None
