"""What the runner does when things go wrong: I/O errors name their file, Ctrl-C says
what was kept, failed trainings are flagged; and what it gives back instead of printing."""

from __future__ import annotations

import errno
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score
from test_evaluate_rundir import CLASSES, Engine, features, run

from mefr.evaluate.rundir import RunDirError
from mefr.evaluate.runner import RunInterrupted
from mefr.evaluate.summary import RunWarning, run_warnings, scores_frame


# ----------------------------------------------------------------------------- I/O errors
def test_disk_full_names_the_file_and_keeps_what_finished(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.replace
    calls = {"n": 0}

    def replace(src, dst):  # the third fold file finds the disk full
        if str(dst).endswith(".csv") and "folds" in str(dst):
            calls["n"] += 1
            if calls["n"] == 3:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(RunDirError) as e:
        run(tmp_path)
    text = str(e.value)
    third = tmp_path / "folds/seed0/casme2/s3.csv"
    assert text.startswith(f"{third}: cannot write (No space left on device)")
    assert "2 of 5 folds are finished and kept" in text and "run the same command" in text
    assert not list(tmp_path.rglob("*.tmp"))  # no partial file left behind
    monkeypatch.setattr(os, "replace", real)
    res = run(tmp_path)  # space freed: the rerun trains the 3 missing folds only
    assert len(res.trained) == 3 and len(res.skipped) == 2


def test_probabilities_that_are_not_probabilities_are_refused_before_writing(
        tmp_path: Path) -> None:
    def scores(x, y, jobs, config, num_classes, on_result=None, **_):
        for job in jobs:
            on_result(job.key, np.full((len(job.test_idx), num_classes), 2.0), {})

    with pytest.raises(RunDirError, match="not in \\[0, 1\\] or a row does not sum to 1"):
        run(tmp_path, scores)
    assert not list((tmp_path / "folds").rglob("*.csv"))


def test_ctrl_c_says_what_was_kept_and_how_to_resume(tmp_path: Path) -> None:
    with pytest.raises(RunInterrupted) as e:
        run(tmp_path, Engine(interrupt_after=2), seeds="0-1")
    err = e.value
    assert isinstance(err, KeyboardInterrupt)  # still stops a caller that does not catch it
    assert (err.kept, err.total, err.trained) == (2, 10, 2)
    assert str(err) == (f"2 of 10 folds are finished and kept in {tmp_path} (2 "
                        "trained by this run); run the same command again to resume "
                        "(finished folds are not trained again)")
    assert len(list((tmp_path / "folds").rglob("*.csv"))) == 2
    engine = Engine()
    res = run(tmp_path, engine, seeds="0-1")
    assert len(engine.trained) == 8 and len(res.skipped) == 2
    whole = run(tmp_path / "whole", seeds="0-1")
    pd.testing.assert_frame_equal(res.predictions, whole.predictions)


def test_mefr_evaluate_prints_what_ctrl_c_kept_without_a_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from mefr.cli import main
    from mefr.preprocess.sources import FEATURE_LOADERS, register_feature_loader

    engine = Engine(interrupt_after=3)
    monkeypatch.setattr("mefr.train.engine.train_group", engine)
    register_feature_loader("safety_test", lambda _path: features())
    try:
        status = main(["evaluate", "--features", "safety_test:-", "--protocol", "loso",
                       "--set", "epochs=1", "--run-dir", str(tmp_path), "--no-progress"])
    finally:
        del FEATURE_LOADERS["safety_test"]
    err = capsys.readouterr().err
    assert status == 130 and "Traceback" not in err
    assert f"interrupted: 3 of 5 folds are finished and kept in {tmp_path}" in err
    assert "run the same command again to resume" in err


# ----------------------------------------------------------------------------- warnings
def test_a_seed_collapsed_to_one_class_is_warned_and_recorded(tmp_path: Path) -> None:
    with pytest.warns(RunWarning, match="seed 0: all 20 predictions are class 'positive'"):
        res = run(tmp_path, Engine(constant=1))
    assert len(res.warnings) == 1 and res.metrics["warnings"] == list(res.warnings)
    assert (tmp_path / "metrics.json").read_text().count("collapsed to one class") == 1


def test_a_fold_whose_loss_did_not_fall_is_warned_and_recorded(tmp_path: Path) -> None:
    stalled = {"initial_train_loss": 1.10, "final_train_loss": 1.08}
    with pytest.warns(RunWarning, match=r"seed 0: the training loss of 5 fold\(s\)"):
        res = run(tmp_path, Engine(info=stalled))
    assert "casme2/s1 (1.1 -> 1.08)" in res.metrics["warnings"][0]


def test_a_healthy_run_has_no_warnings(tmp_path: Path) -> None:
    learned = {"initial_train_loss": 1.10, "final_train_loss": 0.30}
    with warnings.catch_warnings():
        warnings.simplefilter("error", RunWarning)
        res = run(tmp_path, Engine(info=learned))
    assert res.warnings == () and "warnings" not in res.metrics


def test_run_warnings_judges_only_folds_with_both_losses() -> None:
    pred = pd.DataFrame({"seed": [0, 0, 1, 1], "pred": [2, 2, 0, 1]})
    infos = {0: {"a": {"final_train_loss": 1.0}, "b": None,
                 "c": {"initial_train_loss": 1.0, "final_train_loss": 0.96}},
             1: {"d": {"initial_train_loss": 1.0, "final_train_loss": 0.94}}}
    notes = run_warnings(pred, CLASSES, infos)
    assert len(notes) == 2
    assert notes[0].startswith("seed 0: all 2 predictions are class 'surprise'")
    assert notes[1].startswith("seed 0: the training loss of 1 fold(s)")
    assert "c (1 -> 0.96)" in notes[1]


# ----------------------------------------------------------------------------- results
def test_scores_frame_matches_scikit_learn_per_seed_and_database(tmp_path: Path) -> None:
    res = run(tmp_path, seeds="0-2")
    frame = res.scores_frame()
    assert list(frame.columns) == ["seed", "database", "metric", "value"]
    assert len(frame) == 3 * 3 * 3  # seeds x (composite, casme2, samm) x (acc, uf1, uar)
    pred = res.predictions
    for (seed, db, metric), value in frame.set_index(["seed", "database", "metric"])[
            "value"].items():
        part = pred[pred["seed"] == seed]
        if db != "composite":
            part = part[part["dataset"] == db]
        y, p = part["label"].to_numpy(), part["pred"].to_numpy()
        want = {"acc": accuracy_score(y, p), "uar": balanced_accuracy_score(y, p),
                "uf1": f1_score(y, p, average="macro")}[metric]
        assert value == pytest.approx(want, abs=1e-12), (seed, db, metric)
    assert frame.equals(scores_frame(res.metrics))
    assert frame["seed"].tolist()[:9] == [0] * 9
    assert list(dict.fromkeys(frame["database"])) == ["composite", "casme2", "samm"]


def test_the_runner_prints_nothing_and_logs_its_summary(tmp_path: Path, capsys,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="mefr.evaluate.runner"):
        res = run(tmp_path)
        again = run(tmp_path)
    assert capsys.readouterr().out == ""
    status = f"{tmp_path}: 5 fold(s) trained, 0 resumed; run complete\n"
    assert res.summary() == res.table() + status
    assert res.table() == (tmp_path / "table.md").read_text()
    assert again.summary() == f"{tmp_path}: run complete (5 folds); nothing to do\n"
    logged = [r.getMessage() for r in caplog.records]
    assert logged == [res.summary().rstrip("\n"), again.summary().rstrip("\n")]
