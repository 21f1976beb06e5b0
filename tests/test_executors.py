"""Executors: the Ray executor gives the local executor's run, retries, and reports failures.

The Ray tests share one local Ray instance (2 CPUs) started once for this module; they
skip when Ray is not installed (``pip install 'mefr[ray]'``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mefr.data.flowset import FlowSet
from mefr.data.table import make_table
from mefr.evaluate.executors import (
    ExecutorError,
    LocalExecutor,
    RayExecutor,
    chunk_jobs,
    import_ray,
    make_executor,
    task_device,
)
from mefr.evaluate.runner import run_protocol
from mefr.preprocess.sources import register_feature_loader
from mefr.train.config import TrainConfig
from mefr.train.engine import train_group
from mefr.train.jobs import Job

CLASSES = ("negative", "positive", "surprise")
SUBJECTS = ("s1", "s2", "s3", "s4")
SMALL_FR = {"shared_dim": 64, "widths": [2, 4], "detector_hidden": 16, "classifier_hidden": 32}
CONFIG = TrainConfig(model="fr", model_kwargs=SMALL_FR, epochs=2, batch_size=16, lr=3e-3)
SEEDS = "0-1"
FAIL_KEY = "seed0/casme2/s2"


def _features() -> FlowSet:
    """40 clips of 4 subjects, (u, v) 28 x 28; the class moves one half of a field."""
    rng = np.random.default_rng(7)
    y = np.tile(np.arange(3), 14)[:40]
    rng.shuffle(y)
    x = rng.normal(0.5, 0.1, (40, 2, 28, 28)).astype(np.float32)
    x[y == 1, 0, :, :14] += 0.4
    x[y == 2, 1, 14:, :] += 0.4
    rows = [{"dataset": "casme2", "subject": SUBJECTS[i % 4], "clip": f"c{i:02d}",
             "emotion": CLASSES[v]} for i, v in enumerate(y)]
    table = make_table(rows)
    table["label"] = y
    table["label_name"] = [CLASSES[v] for v in y]
    return FlowSet(table=table, x=x, channels=("u", "v"), class_names=CLASSES)


FEATURES = _features()


class FlakyTrain:
    """``train_group`` that fails the first ``failures`` attempts of the task holding
    ``key``, by raising or by killing its worker process (``crash``); every attempt of
    every task leaves a file in ``state`` (tasks run in other processes, so the count
    lives on disk)."""

    def __init__(self, state: Path, key: str, failures: int, crash: bool = False) -> None:
        self.state, self.key, self.failures, self.crash = state, key, failures, crash

    def attempts(self, key: str) -> int:
        return len(list(self.state.glob(key.replace("/", "_") + ".*")))

    def __call__(self, x, y, jobs, config, num_classes, **kw):
        for job in jobs:
            n = self.attempts(job.key)
            (self.state / f"{job.key.replace('/', '_')}.{n}").touch()
            if job.key == self.key and n < self.failures:
                if self.crash:
                    os._exit(3)  # a worker dying: a system failure for Ray
                raise RuntimeError(f"injected failure {n + 1} of {job.key}")
        return train_group(x, y, jobs, config, num_classes, **kw)


# ----------------------------------------------------------------------------- no Ray
def test_make_executor_by_name() -> None:
    assert isinstance(make_executor("local", workers=1), LocalExecutor)
    ray_ex = make_executor("ray", address="auto", max_retries=5)
    assert isinstance(ray_ex, RayExecutor) and ray_ex.max_retries == 5
    with pytest.raises(ValueError, match="'dask'.*local.*ray"):
        make_executor("dask")
    with pytest.raises(ValueError, match="max_retries"):
        RayExecutor(max_retries=-1)


def test_missing_ray_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail
    with pytest.raises(ImportError, match=r"pip install 'mefr\[ray\]'"):
        import_ray()
    job = Job("seed0/a", 0, np.arange(3), np.arange(3, 5))
    with pytest.raises(ImportError, match="mefr"):
        RayExecutor()(FEATURES.x, np.zeros(40, int), [job], CONFIG, 3)


def test_chunks_and_task_devices() -> None:
    jobs = [Job(f"k{i}", 0, np.arange(2), np.arange(2)) for i in range(5)]
    chunks = chunk_jobs(jobs, 2)
    assert [[j.key for j in c] for c in chunks] == [["k0", "k1"], ["k2", "k3"], ["k4"]]
    assert task_device("auto", 0) == "cpu" and task_device("auto", 0.5) == "cuda"
    assert task_device("cuda:1", 1) == "cuda"
    with pytest.raises(ValueError, match="GPU"):
        task_device("cuda", 0)
    with pytest.raises(ValueError, match="idle"):
        task_device("cpu", 1)


def test_cli_deterministic_flag_reaches_the_engine(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    """``mefr evaluate --deterministic`` hands ``deterministic=True`` to ``train_group``;
    without the flag the engine's default (False) is left alone."""
    import mefr.train.engine as engine
    from mefr.cli import main

    seen: list[dict] = []

    def recording_train_group(*args, **kw):
        seen.append(kw)
        return train_group(*args, **kw)

    monkeypatch.setattr(engine, "train_group", recording_train_group)
    register_feature_loader("executors_test", lambda _path: FEATURES)
    cfg = tmp_path / "train.yaml"
    tiny = CONFIG.to_dict() | {"epochs": 1}
    cfg.write_text(yaml.safe_dump({"train": json.loads(json.dumps(tiny))}))
    base = ["evaluate", "--features", "executors_test:-", "--protocol", "loso:casme2",
            "--config", str(cfg), "--device", "cpu", "--no-progress", "--chunk", "4"]
    assert main([*base, "--run-dir", str(tmp_path / "a"), "--deterministic"]) == 0
    assert main([*base, "--run-dir", str(tmp_path / "b")]) == 0
    assert len(seen) == 2
    assert seen[0].get("deterministic") is True and "deterministic" not in seen[1]


# ----------------------------------------------------------------------------- Ray
@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray instance (2 CPUs) for the module; workers can import this file."""
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    path = os.pathsep.join(p for p in (str(Path(__file__).parent),
                                       os.environ.get("PYTHONPATH")) if p)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING",
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    """The reference: the same protocol trained in this process."""
    return run_protocol(FEATURES, "loso", CONFIG, SEEDS, tmp_path_factory.mktemp("local"),
                        train_fn=LocalExecutor(workers=1), progress=False)


def _assert_same_run(run_dir: Path, reference: Path) -> None:
    got = json.loads((run_dir / "metrics.json").read_text())
    want = json.loads((reference / "metrics.json").read_text())
    assert got["per_seed"] == want["per_seed"] and got["mean"] == want["mean"]
    a = pd.read_csv(run_dir / "predictions.csv")
    b = pd.read_csv(reference / "predictions.csv")
    pd.testing.assert_frame_equal(a, b, check_exact=False, atol=1e-5, rtol=0)


def test_ray_run_equals_local_run(ray_instance, local_run, tmp_path: Path) -> None:
    res = run_protocol(FEATURES, "loso", CONFIG, SEEDS, tmp_path,
                       train_fn=RayExecutor(max_retries=0), progress=False)
    assert sorted(res.trained) == sorted(local_run.trained) and len(res.trained) == 8
    _assert_same_run(tmp_path, local_run.run_dir)
    info = json.loads((tmp_path / "folds/seed1/casme2/s3.json").read_text())
    assert info["executor"] == "ray" and info["epochs"] == CONFIG.epochs


def test_cli_ray_executor(ray_instance, local_run, tmp_path: Path) -> None:
    from mefr.cli import main

    register_feature_loader("executors_test", lambda _path: FEATURES)
    cfg = tmp_path / "train.yaml"
    cfg.write_text(yaml.safe_dump({"train": json.loads(json.dumps(CONFIG.to_dict()))}))
    run_dir = tmp_path / "run"
    rc = main(["evaluate", "--features", "executors_test:-", "--protocol", "loso",
               "--config", str(cfg), "--seeds", SEEDS, "--run-dir", str(run_dir),
               "--device", "cpu", "--no-progress", "--executor", "ray",
               "--jobs-per-task", "3", "--max-retries", "1"])
    assert rc == 0
    _assert_same_run(run_dir, local_run.run_dir)


@pytest.mark.parametrize("crash", [False, True], ids=["exception", "worker_crash"])
def test_failed_task_is_retried(ray_instance, local_run, tmp_path: Path, crash: bool) -> None:
    state = tmp_path / "attempts"
    state.mkdir()
    flaky = FlakyTrain(state, FAIL_KEY, failures=1, crash=crash)
    run_dir = tmp_path / "run"
    res = run_protocol(FEATURES, "loso", CONFIG, SEEDS, run_dir, progress=False,
                       train_fn=RayExecutor(max_retries=1, train_fn=flaky))
    assert len(res.trained) == 8
    assert flaky.attempts(FAIL_KEY) == 2
    others = [k for k in res.trained if k != FAIL_KEY]
    assert all(flaky.attempts(k) == 1 for k in others)  # the others ran once
    _assert_same_run(run_dir, local_run.run_dir)


def test_task_failing_every_retry_is_named_and_others_kept(ray_instance, local_run,
                                                           tmp_path: Path) -> None:
    state = tmp_path / "attempts"
    state.mkdir()
    flaky = FlakyTrain(state, FAIL_KEY, failures=99)
    run_dir = tmp_path / "run"
    with pytest.raises(ExecutorError, match=FAIL_KEY) as err:
        run_protocol(FEATURES, "loso", CONFIG, SEEDS, run_dir, progress=False,
                     train_fn=RayExecutor(max_retries=1, train_fn=flaky))
    assert list(err.value.failed) == [FAIL_KEY]
    assert "injected failure 2" in err.value.failed[FAIL_KEY]
    assert flaky.attempts(FAIL_KEY) == 2  # the first run and one retry
    written = sorted(str(p.relative_to(run_dir / "folds").with_suffix(""))
                     for p in (run_dir / "folds").rglob("*.csv"))
    assert written == sorted(k for k in local_run.trained if k != FAIL_KEY)
    assert not (run_dir / "metrics.json").exists()
    # the run directory resumes: a working executor trains only the failed job
    res = run_protocol(FEATURES, "loso", CONFIG, SEEDS, run_dir, progress=False,
                       train_fn=RayExecutor(max_retries=0))
    assert res.trained == (FAIL_KEY,) and len(res.skipped) == 7
    _assert_same_run(run_dir, local_run.run_dir)
