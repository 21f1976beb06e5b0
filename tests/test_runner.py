"""The protocol runner, driven by a fake deterministic engine (nearest centroid)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score
from sklearn.model_selection import LeaveOneGroupOut

from mefr._env import code_revision
from mefr.data.flowset import FlowSet
from mefr.data.table import group_key, make_table
from mefr.evaluate.protocols import parse_seeds
from mefr.evaluate.rundir import RunDirError
from mefr.evaluate.runner import run_protocol
from mefr.preprocess.sources import load_features
from mefr.train.config import TrainConfig

CLASSES = ("negative", "positive", "surprise")
SUBJECTS = {"smic_hs": ["s1", "s2", "s3"], "casme2": ["sub01", "sub02", "sub03"],
            "samm": ["006", "007"]}
CONFIG = TrainConfig(epochs=3)


def _features(seed: int = 0) -> FlowSet:
    """8 subjects x 5 clips; the class shifts the mean of channel u, so a centroid
    classifier does better than chance without being perfect."""
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for ds, subs in SUBJECTS.items():
        for sub in subs:
            for i in range(5):
                labels.append(int(rng.integers(0, 3)))
                rows.append({"dataset": ds, "subject": sub, "clip": f"{sub}_{i:02d}",
                             "emotion": CLASSES[labels[-1]]})
    table = make_table(rows)
    table["label"] = labels
    table["label_name"] = [CLASSES[v] for v in labels]
    x = rng.normal(size=(len(table), 3, 4, 4)).astype(np.float32)
    x[:, 0] += 0.5 * np.asarray(labels, dtype=np.float32)[:, None, None]
    return FlowSet(table=table, x=x, channels=("u", "v", "strain"), class_names=CLASSES)


def _centroid_probs(x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray,
                    seed: int, k: int) -> np.ndarray:
    """Softmax of minus the distance to each class centroid of the training rows, with a
    little noise that depends on the seed and the test rows only."""
    flat = x.reshape(len(x), -1).astype(np.float64)
    cents = np.stack([flat[train][y[train] == c].mean(axis=0) for c in range(k)])
    d = ((flat[test][:, None, :] - cents[None]) ** 2).sum(axis=-1)
    noise = np.random.default_rng([seed, int(test[0])]).normal(scale=4.0, size=d.shape)
    z = -(d + noise)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class Interrupted(Exception):
    """Stands for a Ctrl-C or a crash in the middle of training."""


class FakeEngine:
    """train_group's signature; records calls; raises after ``fail_after`` results."""

    def __init__(self, fail_after: int | None = None, use_callback: bool = True) -> None:
        self.calls: list[list[str]] = []
        self.fail_after = fail_after
        self.use_callback = use_callback
        self.reported = 0

    def __call__(self, x, y, jobs, config, num_classes, groups=None, device="auto",
                 on_result=None, progress=True, return_models=False):
        assert x.shape[1] == len(config.channels)
        assert groups is not None and len(groups) == len(x)
        self.calls.append([j.key for j in jobs])
        probs, info = {}, {}
        for job in jobs:
            if self.fail_after is not None and self.reported >= self.fail_after:
                raise Interrupted("simulated interruption")
            p = _centroid_probs(x, y, job.train_idx, job.test_idx, job.seed, num_classes)
            probs[job.key] = p
            info[job.key] = {"evaluated_epoch": config.epochs}
            self.reported += 1
            if on_result is not None and self.use_callback:
                on_result(job.key, p, info[job.key])
        return SimpleNamespace(probs=probs, models=None, info=info)


def _run(tmp: Path, engine=None, **kw):
    kw.setdefault("features", _features())
    kw.setdefault("protocol", "cde")
    kw.setdefault("config", CONFIG)
    kw.setdefault("seeds", "0-1")
    return run_protocol(run_dir=tmp, train_fn=engine or FakeEngine(), progress=False, **kw)


def test_run_dir_contents(tmp_path: Path) -> None:
    feats = _features()
    res = _run(tmp_path, features=feats)
    n, n_folds = len(feats.table), 8
    assert len(res.trained) == 2 * n_folds and not res.skipped and not res.already_complete
    for f in ("config.yaml", "predictions.csv", "metrics.json", "table.md",
              "megc_log/seed0.txt", "megc_log/seed1.txt", "folds/seed1/casme2/sub01.csv",
              "folds/seed0/samm/006.csv", "folds/seed0/samm/006.json"):
        assert (tmp_path / f).is_file(), f
    cfg = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert cfg["train"] == CONFIG.to_dict()
    assert cfg["protocol"] == "cde" and cfg["seeds"] == [0, 1]
    assert cfg["data"]["n"] == n and cfg["data"]["input_shape"] == [n, 2, 4, 4]
    assert cfg["environment"]["packages"]["torch"]
    fold_info = json.loads((tmp_path / "folds/seed0/samm/006.json").read_text())
    assert fold_info["evaluated_epoch"] == CONFIG.epochs  # what the engine reported
    assert fold_info["mefr"] == cfg["environment"]["packages"]["mefr"]
    assert fold_info["code"] == code_revision() == cfg["environment"]["code"]
    assert pd.Timestamp(fold_info["written"]).tzinfo is not None
    pred = pd.read_csv(tmp_path / "predictions.csv", dtype={"subject": str})
    assert list(pred.columns) == ["seed", "dataset", "subject", "clip", "label", "pred",
                                  "p_negative", "p_positive", "p_surprise"]
    assert len(pred) == 2 * n
    assert not pred.duplicated(["seed", "dataset", "subject", "clip"]).any()
    assert "006" in set(pred["subject"])  # subject ids stay strings
    log = (tmp_path / "megc_log" / "seed0.txt").read_text().splitlines()
    assert len(log) == n_folds + n
    assert log[0] == "casme2 sub01"  # LOSO folds in sorted group order
    clip, gt, p = log[1].split()
    row = pred[(pred["seed"] == 0) & (pred["clip"] == clip)].iloc[0]
    assert (int(gt), int(p)) == (row["label"], row["pred"])
    table = (tmp_path / "table.md").read_text()
    assert "| Model | Composite UF1 | Composite UAR | SMIC-HS UF1 |" in table
    assert "±" in table.splitlines()[2]


def test_predictions_are_pooled_loso_folds(tmp_path: Path) -> None:
    feats = _features()
    res = _run(tmp_path, features=feats, seeds=[3])
    x, y = feats.x[:, :2], feats.table["label"].to_numpy()
    groups = group_key(feats.table).to_numpy()
    expected = np.zeros((len(y), 3))
    for train, test in LeaveOneGroupOut().split(x, y, groups):
        expected[test] = _centroid_probs(x, y, train, test, 3, 3)
    got = res.predictions
    np.testing.assert_array_equal(got["clip"], feats.table["clip"])  # table order
    np.testing.assert_allclose(got[["p_negative", "p_positive", "p_surprise"]], expected,
                               rtol=1e-6)
    np.testing.assert_array_equal(got["pred"], expected.argmax(axis=1))
    np.testing.assert_array_equal(got["label"], y)


def test_metrics_json_agrees_with_predictions_csv(tmp_path: Path) -> None:
    _run(tmp_path, seeds="0-2")
    m = json.loads((tmp_path / "metrics.json").read_text())
    pred = pd.read_csv(tmp_path / "predictions.csv")
    assert m["seeds"] == [0, 1, 2] and m["databases"] == ["composite", "smic_hs", "casme2",
                                                          "samm"]
    assert "no choice looked at the test fold" in m["selection"]
    for db in m["databases"]:
        uf1s = []
        for s in (0, 1, 2):
            p = pred[pred["seed"] == s]
            if db != "composite":
                p = p[p["dataset"] == db]
            got = m["per_seed"][str(s)][db]
            assert got["uf1"] == pytest.approx(f1_score(p["label"], p["pred"], average="macro"))
            assert got["uar"] == pytest.approx(balanced_accuracy_score(p["label"], p["pred"]))
            assert got["acc"] == pytest.approx(accuracy_score(p["label"], p["pred"]))
            assert np.sum(got["confusion"]) == len(p)
            uf1s.append(got["uf1"])
        assert m["mean"][db]["uf1"] == pytest.approx(np.mean(uf1s))
        assert m["std"][db]["uf1"] == pytest.approx(np.std(uf1s, ddof=1))


def test_resume_after_interruption_equals_uninterrupted_run(tmp_path: Path) -> None:
    full = _run(tmp_path / "full")
    broken = FakeEngine(fail_after=2)
    with pytest.raises(Interrupted):
        _run(tmp_path / "resumed", engine=broken)
    done = sorted(p.relative_to(tmp_path / "resumed") for p in
                  (tmp_path / "resumed" / "folds").rglob("*.csv"))
    assert len(done) == 2
    # what the engine said of each finished fold survives the interruption too
    assert all((tmp_path / "resumed" / d).with_suffix(".json").is_file() for d in done)
    assert not (tmp_path / "resumed" / "metrics.json").exists()
    again = FakeEngine()
    res = _run(tmp_path / "resumed", engine=again)
    assert len(again.calls) == 1
    assert set(again.calls[0]) == set(full.trained) - set(broken.calls[0][:2])
    assert set(res.skipped) == set(broken.calls[0][:2])
    for f in ("metrics.json", "predictions.csv", "table.md", "megc_log/seed1.txt"):
        assert (tmp_path / "full" / f).read_text() == (tmp_path / "resumed" / f).read_text()


def test_chunks_and_results_without_callback(tmp_path: Path) -> None:
    full = _run(tmp_path / "full")
    engine = FakeEngine(use_callback=False)
    res = _run(tmp_path / "chunked", engine=engine, chunk=3)
    assert [len(c) for c in engine.calls] == [3, 3, 3, 3, 3, 1]
    pd.testing.assert_frame_equal(res.predictions, full.predictions)


def test_finished_run_does_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    first = _run(tmp_path)
    engine = FakeEngine(fail_after=0)  # would raise if called
    res = _run(tmp_path, engine=engine)
    assert res.already_complete and not res.trained and not engine.calls
    assert res.summary() == f"{tmp_path}: run complete (16 folds); nothing to do\n"
    assert capsys.readouterr().out == ""  # the library prints nothing
    assert res.metrics == first.metrics
    pd.testing.assert_frame_equal(res.predictions, first.predictions)


def test_a_different_config_is_refused(tmp_path: Path) -> None:
    _run(tmp_path)
    with pytest.raises(RunDirError, match=r"train\.lr: 0\.0001 \(run dir\) != 0\.001"):
        _run(tmp_path, config=TrainConfig(epochs=3, lr=1e-3))
    other = _features(seed=1)
    with pytest.raises(RunDirError, match=r"data\.sha256"):
        _run(tmp_path, features=other)


def test_more_seeds_extend_a_finished_run(tmp_path: Path) -> None:
    first = _run(tmp_path, seeds=0)
    more = _run(tmp_path, seeds="0-1")
    assert more.skipped == first.trained
    assert len(more.trained) == len(first.trained)
    assert all(k.startswith("seed1/") for k in more.trained)
    assert sorted(more.metrics["seeds"]) == [0, 1]
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["seeds"] == [0, 1]


def test_fewer_seeds_rebuild_the_outputs_of_a_finished_run(tmp_path: Path) -> None:
    both = _run(tmp_path, seeds="0-1")
    one = _run(tmp_path, seeds=0)
    assert one.trained == () and not one.already_complete
    assert one.metrics["seeds"] == [0]
    assert set(one.predictions["seed"]) == {0}
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["seeds"] == [0]
    seed0 = both.predictions[both.predictions["seed"] == 0].reset_index(drop=True)
    pd.testing.assert_frame_equal(one.predictions, seed0)
    assert _run(tmp_path, seeds=0).already_complete


def test_cdmer_run_scores_the_target(tmp_path: Path) -> None:
    res = _run(tmp_path, protocol="cdmer:8", seeds=0)  # H -> C
    assert set(res.predictions["dataset"]) == {"casme2"}
    assert res.metrics["databases"] == ["composite", "casme2"]
    assert (tmp_path / "folds/seed0/exp08_smic_hs_to_casme2.csv").is_file()
    head = (tmp_path / "table.md").read_text().splitlines()[0]
    assert head == "| Model | CASME II UF1 | CASME II Acc |"
    assert res.metrics["std"]["composite"]["uf1"] is None  # one seed: no std


def test_bad_engine_output_is_named(tmp_path: Path) -> None:
    def wrong_shape(x, y, jobs, config, num_classes, on_result=None, **kw):
        on_result(jobs[0].key, np.ones((1, num_classes)))

    with pytest.raises(RunDirError, match=r"seed0/casme2/sub01: probabilities of shape \(1, 3\)"):
        _run(tmp_path, engine=wrong_shape, seeds=0)


def test_bad_labels_and_channels_are_named(tmp_path: Path) -> None:
    feats = _features()
    feats.table.loc[4, "label"] = 7
    with pytest.raises(ValueError, match=r"row 4 \(smic_hs/s1/s1_04\)"):
        _run(tmp_path, features=feats)
    with pytest.raises(ValueError, match="flow_x"):
        _run(tmp_path, config=TrainConfig(channels=("flow_x",)))


def test_parse_seeds() -> None:
    assert parse_seeds("0-3") == (0, 1, 2, 3)
    assert parse_seeds("5,1,2-3,1") == (1, 2, 3, 5)
    assert parse_seeds(7) == (7,)
    assert parse_seeds([2, 0]) == (0, 2)
    for bad in ("3-1", "a", "", "-1"):
        with pytest.raises(ValueError):
            parse_seeds(bad)


def test_load_features_names_the_scheme() -> None:
    with pytest.raises(ValueError, match="no loader for 'nope'"):
        load_features("nope:/tmp/x")
    with pytest.raises(ValueError, match="SCHEME:PATH"):
        load_features("/tmp/x")


def _write_flowset(root: Path, feats: FlowSet) -> None:
    """The composite flow-set layout: label CSV + one 8-bit RGB PNG per clip."""
    import cv2

    names = {"smic_hs": "smic", "casme2": "casme2", "samm": "samm"}
    images = root / "STSNet_whole_norm_u_v_os"
    images.mkdir(parents=True)
    t = feats.table
    pd.DataFrame({"dataset": t["dataset"].map(names), "sub": t["subject"],
                  "filename_o": t["clip"], "label": t["label"]}).to_csv(
        root / "combined_3_class2_for_optical_flow.csv", index=False)
    for i, r in enumerate(t.itertuples()):
        img = np.clip((feats.x[i] + 3) * 40, 0, 255).astype(np.uint8).transpose(1, 2, 0)
        cv2.imwrite(str(images / f"{r.subject}_{r.clip} .png"), img[:, :, ::-1])


def test_cli_evaluate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                      capsys: pytest.CaptureFixture) -> None:
    from mefr.cli import main

    _write_flowset(tmp_path / "flow", _features())
    engine = FakeEngine()
    monkeypatch.setattr("mefr.train.engine.train_group", engine)
    run = tmp_path / "run"
    argv = ["evaluate", "--features", f"flowset:{tmp_path / 'flow'}", "--protocol", "loso:casme2",
            "--model", "basic_inception", "--set", "epochs=2", "--seeds", "0-1",
            "--run-dir", str(run), "--no-progress"]
    assert main(argv) == 0
    assert [len(c) for c in engine.calls] == [2 * 3]
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["train"]["model"] == "basic_inception" and cfg["train"]["epochs"] == 2
    assert cfg["features"] == f"flowset:{tmp_path / 'flow'}"
    table = (run / "table.md").read_text().splitlines()
    assert table[0] == "| Model | CASME II Acc | CASME II UF1 | CASME II UAR |"  # as Table 5
    assert table[2].startswith("| basic_inception |")
    assert "run complete" in capsys.readouterr().out
    assert main(argv) == 0 and len(engine.calls) == 1
    assert "nothing to do" in capsys.readouterr().out
    assert main([*argv[:-3], "--set", "lr=0.01", *argv[-3:]]) == 2
    assert "train.lr" in capsys.readouterr().err
    other = str(tmp_path / "other")
    # a flow set is onset->apex flow: Dual-Inception (middle frame) and LBP-TOP are refused
    for model in ("dual_inception", "lbptop_svm"):
        assert main([*argv[:5], "--model", model, "--run-dir", other]) == 2
        assert f"--model {model} needs" in capsys.readouterr().err
    assert main([*argv[:-3], "--labels", "four_class", "--run-dir", other]) == 2
    assert "--labels four_class applies to --data" in capsys.readouterr().err
    assert not (tmp_path / "other").exists() and len(engine.calls) == 1


def test_cli_evaluate_holdout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mefr.cli import main
    from mefr.evaluate.rundir import RunDir

    _write_flowset(tmp_path / "flow", _features())
    engine = FakeEngine()
    monkeypatch.setattr("mefr.train.engine.train_group", engine)
    argv = ["evaluate", "--features", f"flowset:{tmp_path / 'flow'}", "--protocol",
            "holdout:0.5", "--model", "fr", "--seeds", "0", "--run-dir", str(tmp_path / "run"),
            "--no-progress"]
    assert main(argv) == 0
    assert engine.calls == [["seed0/holdout"]]
    fold = RunDir(tmp_path / "run").read_fold(0, "holdout")
    assert (fold["dataset"] + "/" + fold["subject"]).nunique() == 4  # 4 of the 8 subjects


def test_a_stale_fold_file_is_named_before_training(tmp_path: Path) -> None:
    _run(tmp_path)
    stale = tmp_path / "folds/seed0/samm/007.csv"
    df = pd.read_csv(stale)
    df["index"] = df["index"] - 1
    df.to_csv(stale, index=False)
    (tmp_path / "folds/seed1/casme2/sub02.csv").unlink()
    engine = FakeEngine()
    with pytest.raises(RunDirError, match=r"samm/007\.csv: its rows are not the test rows"):
        _run(tmp_path, engine=engine)
    assert not engine.calls


def test_cli_evaluate_on_raw_databases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture,
                                       synthetic_databases: dict[str, Path]) -> None:
    """``--data``: raw databases are read, labelled, preprocessed, then evaluated."""
    from mefr.cli import main
    from mefr.data import read_database
    from mefr.data.labels import apply_protocol

    calls = []

    def engine(x, y, jobs, config, num_classes, on_result=None, **_):
        """Uniform probabilities (2 subjects leave classes out of a training fold)."""
        calls.append(len(jobs))
        for job in jobs:
            on_result(job.key, np.full((len(job.test_idx), num_classes), 1 / num_classes), {})
        return SimpleNamespace(probs={}, models=None, info={})

    monkeypatch.setattr("mefr.train.engine.train_group", engine)
    run = tmp_path / "run"
    argv = ["evaluate", "--data", f"casme2:{synthetic_databases['casme2']}",
            "--data", f"samm:{synthetic_databases['samm']}", "--protocol", "loso:casme2",
            "--labels", "casme2_5class", "--model", "dual_inception", "--seeds", "0",
            "--cache", str(tmp_path / "cache"), "--workers", "1", "--run-dir", str(run),
            "--no-progress"]
    assert main(argv) == 0
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    pooled = apply_protocol(pd.concat([read_database(d, synthetic_databases[d])
                                       for d in ("casme2", "samm")]), "casme2_5class")
    casme2 = pooled[pooled["dataset"] == "casme2"]
    assert cfg["data"]["class_names"] == ["happiness", "surprise", "disgust", "repression",
                                          "others"]
    assert cfg["data"]["datasets"] == pooled["dataset"].value_counts().sort_index().to_dict()
    assert cfg["data"]["folds"] == casme2["subject"].nunique()
    assert "casme2_5class labels" in cfg["features"]
    assert "apex_policy='middle'" in cfg["features"]  # Dual-Inception's own apex policy
    predictions = pd.read_csv(run / "predictions.csv")
    assert len(predictions) == len(casme2)
    # a second run reads the features from the cache and finds nothing to do
    assert main(argv) == 0 and calls == [casme2["subject"].nunique()]
    assert "nothing to do" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # one source of inputs, not two
        main([*argv, "--features", "flowset:x"])
