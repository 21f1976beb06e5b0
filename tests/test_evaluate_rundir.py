"""The run directory (mefr.evaluate.rundir): its lock, checked fold files, config errors,
and the readers other modules use (status, fold seconds, hardware, folds)."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from mefr._env import describe_environment
from mefr.data.flowset import FlowSet
from mefr.data.table import make_table
from mefr.evaluate.rundir import RunDir, RunDirError
from mefr.evaluate.runner import run_protocol
from mefr.train.config import TrainConfig

CLASSES = ("negative", "positive", "surprise")
SUBJECTS = {"casme2": ["s1", "s2", "s3"], "samm": ["006", "007"]}
CONFIG = TrainConfig(epochs=2)


def features() -> FlowSet:
    """5 subjects x 4 clips, labels cycling through the classes."""
    rows = [{"dataset": ds, "subject": s, "clip": f"{s}_{i}", "emotion": CLASSES[i % 3]}
            for ds, subs in SUBJECTS.items() for s in subs for i in range(4)]
    table = make_table(rows)
    table["label"] = [i % 3 for i in range(len(rows))]
    x = np.random.default_rng(0).normal(size=(len(rows), 2, 4, 4)).astype(np.float32)
    return FlowSet(table=table, x=x, channels=("u", "v"), class_names=CLASSES)


class Engine:
    """train_group's signature: seeded softmax probabilities; optional engine info."""

    def __init__(self, info: dict | None = None, interrupt_after: int | None = None,
                 constant: int | None = None) -> None:
        self.info = info
        self.interrupt_after = interrupt_after
        self.constant = constant
        self.reported = 0
        self.trained: list[str] = []

    def __call__(self, x, y, jobs, config, num_classes, groups=None, device="auto",
                 on_result=None, progress=True, **_):
        for job in jobs:
            if self.interrupt_after is not None and self.reported >= self.interrupt_after:
                raise KeyboardInterrupt
            z = np.random.default_rng([job.seed, int(job.test_idx[0])]).normal(
                size=(len(job.test_idx), num_classes))
            if self.constant is not None:
                z[:, self.constant] += 100.0
            p = np.exp(z - z.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            self.reported += 1
            self.trained.append(job.key)
            on_result(job.key, p, dict(self.info or {}))
        return SimpleNamespace(probs={}, info={})


def run(run_dir: Path, engine: Engine | None = None, seeds: str = "0", **kw):
    return run_protocol(features(), "loso", CONFIG, seeds, run_dir, train_fn=engine or Engine(),
                        progress=False, **kw)


# ----------------------------------------------------------------------------- lock
def _hold_lock(run_dir: Path) -> subprocess.Popen:
    """A child process that holds ``run_dir``'s lock until its stdin closes."""
    code = textwrap.dedent(f"""
        import sys
        from mefr.evaluate.rundir import RunDir
        with RunDir({str(run_dir)!r}).lock():
            print("locked", flush=True)
            sys.stdin.read()
    """)
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "locked"
    return child


def test_a_second_run_on_a_locked_run_dir_is_refused_naming_the_holder(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    child = _hold_lock(run_dir)
    try:
        engine = Engine()
        with pytest.raises(RunDirError) as e:
            run(run_dir, engine)
        text = str(e.value)
        assert f"pid {child.pid}" in text and socket.gethostname() in text
        assert "since 20" in text  # the start time (UTC, ISO 8601)
        assert engine.trained == []  # nothing was trained
    finally:
        child.stdin.close()
        child.wait(timeout=60)
    res = run(run_dir)  # the holder has finished: the run goes ahead
    assert len(res.trained) == 5 and not (run_dir / ".lock").exists()


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".lock").write_text(json.dumps(
        {"pid": dead.pid, "host": socket.gethostname(), "started": "2020-01-01T00:00:00+00:00",
         "command": "mefr evaluate"}))
    res = run(run_dir)
    assert len(res.trained) == 5 and not (run_dir / ".lock").exists()


def test_the_lock_is_released_after_a_failure(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, Engine(interrupt_after=1))
    assert not (tmp_path / ".lock").exists()
    with RunDir(tmp_path).lock():  # free again
        assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()


# ----------------------------------------------------------------------------- fold files
def _edit(path: Path, change) -> None:
    df = pd.read_csv(path, dtype={"subject": str})
    change(df)
    df.to_csv(path, index=False)


def _scale_row(df: pd.DataFrame) -> None:
    df.loc[0, ["p_negative", "p_positive", "p_surprise"]] *= 0.5


def _flip_pred(df: pd.DataFrame) -> None:
    df.loc[0, "pred"] = (df.loc[0, "pred"] + 1) % 3


def _five(df: pd.DataFrame) -> None:
    df.loc[0, "p_positive"] = 5.0


def _consistent_swap(df: pd.DataFrame) -> None:
    """Swap two classes' probabilities and the prediction with them: every row is still
    valid, only the checksum can tell."""
    df[["p_negative", "p_positive"]] = df[["p_positive", "p_negative"]].to_numpy()
    df["pred"] = df[["p_negative", "p_positive", "p_surprise"]].to_numpy().argmax(axis=1)


@pytest.mark.parametrize(("change", "message"), [
    (_five, "not in \\[0, 1\\] or do not sum to 1"),
    (_scale_row, "not in \\[0, 1\\] or do not sum to 1"),
    (_flip_pred, "not the argmax"),
    (_consistent_swap, "SHA-256"),
])
def test_an_edited_fold_file_is_refused_naming_it(tmp_path: Path, change, message) -> None:
    run(tmp_path)
    fold = tmp_path / "folds/seed0/casme2/s2.csv"
    _edit(fold, change)
    (tmp_path / "metrics.json").unlink()  # the rerun reads every fold file again
    engine = Engine()
    with pytest.raises(RunDirError, match=message) as e:
        run(tmp_path, engine)
    assert str(fold) in str(e.value) and engine.trained == []


def test_each_fold_json_records_the_sha256_of_its_fold_file(tmp_path: Path) -> None:
    run(tmp_path, Engine(info={"evaluated_epoch": 2}))
    folds = sorted((tmp_path / "folds").rglob("*.csv"))
    assert len(folds) == 5
    for csv in folds:
        info = json.loads(csv.with_suffix(".json").read_text())
        assert info["csv_sha256"] == hashlib.sha256(csv.read_bytes()).hexdigest()
        assert info["evaluated_epoch"] == 2


def test_a_fold_file_of_an_older_run_without_checksum_is_read(tmp_path: Path) -> None:
    first = run(tmp_path)
    for js in (tmp_path / "folds").rglob("*.json"):
        js.unlink()
    (tmp_path / "metrics.json").unlink()
    again = run(tmp_path)
    pd.testing.assert_frame_equal(first.predictions, again.predictions)


# ----------------------------------------------------------------------------- config.yaml
@pytest.mark.parametrize(("text", "what"), [("- 1\n- 2\n", "a YAML list"), ("", "empty")])
def test_a_config_yaml_that_is_not_a_mapping_is_named(tmp_path: Path, text: str,
                                                      what: str) -> None:
    run(tmp_path)
    (tmp_path / "config.yaml").write_text(text)
    with pytest.raises(RunDirError) as e:
        run(tmp_path)
    message = str(e.value)
    assert message.startswith(f"{tmp_path / 'config.yaml'}: {what}")
    assert "\n" not in message  # not a list of 30 differences


# ----------------------------------------------------------------------------- readers
def test_the_readers_of_a_run_directory(tmp_path: Path) -> None:
    rd = RunDir(tmp_path / "run")
    assert rd.status() == "not yet run" and rd.seeds() == {} and rd.config() is None
    info = {"group_seconds": 6.0, "group_size": 2, "device": "cuda (NVIDIA H200)"}
    run(rd.path, Engine(info=info), seeds="0-1")
    assert rd.status() == "complete, seeds [0, 1]"
    assert sorted(rd.seeds()) == [0, 1]
    assert rd.folds(0) == ["casme2/s1", "casme2/s2", "casme2/s3", "samm/006", "samm/007"]
    assert rd.fold_seconds() == {0: 3.0, 1: 3.0}
    assert rd.hardware() == {0: "NVIDIA H200", 1: "NVIDIA H200"}
    assert rd.config()["protocol"] == "loso" and rd.metrics()["seeds"] == [0, 1]
    pred = rd.predictions()
    assert len(pred) == 40 and pred["subject"].iloc[-1] == "007"  # read as text
    folds = list(rd.iter_folds(with_curves=True))
    assert [(s, f) for s, f, *_ in folds][:2] == [(0, "casme2/s1"), (0, "casme2/s2")]
    seed, fold, frame, fold_info, curves = folds[0]
    assert len(frame) == 4 and fold_info["group_size"] == 2 and curves is None
    # a fold JSON without a device counts as the machine of config.yaml
    js = rd.fold_csv(1, "samm/007").with_suffix(".json")
    js.write_text(json.dumps({k: v for k, v in json.loads(js.read_text()).items()
                              if k != "device"}))
    machine = describe_environment(rd.config()["environment"])  # this one: checked in _env
    assert rd.hardware([1]) == {1: f"NVIDIA H200 + {machine}"}
    (rd.path / "folds/seed2/casme2").mkdir(parents=True)
    rd.fold_csv(0, "casme2/s1").replace(rd.path / "folds/seed2/casme2/s1.csv")
    assert rd.status() == "complete, seeds [0, 1]; seed 2 partial (1 fold files)"


def test_run_directory_files_get_the_permissions_of_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        run(tmp_path, Engine(info={"evaluated_epoch": 2}))
        os.umask(0o027)
        run(tmp_path / "group", Engine())
    finally:
        os.umask(old)
    for name in ("config.yaml", "predictions.csv", "metrics.json", "table.md",
                 "megc_log/seed0.txt", "folds/seed0/casme2/s1.csv", "folds/seed0/casme2/s1.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name
        assert (tmp_path / "group" / name).stat().st_mode & 0o777 == 0o640, name
