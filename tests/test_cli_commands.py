"""The ``mefr`` command as a user meets it: help with defaults, messages instead of
tracebacks, Ctrl-C, renamed and new options (issue 38, items 4, 6, 7, 14)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

from mefr.cli import build_parser, main


def _help(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as stop:
        main([*argv, "--help"])
    assert stop.value.code == 0
    return capsys.readouterr().out


# --------------------------------------------------------------------------- help
def test_help_shows_each_options_default(capsys):
    text = " ".join(_help(capsys, "evaluate").split())  # argparse wraps lines
    assert "--protocol PROTOCOL the split: cde | loso | loso:<dataset> | cdmer:<n> | " \
        "holdout[:<fraction>[:<seed>]] (default: cde)" in text
    assert "Ray: retries of a failed task (default: 2)" in text
    assert "--seeds SEEDS e.g. 0-9 or 0,3,5 (default: 0)" in text
    assert "(default: None)" not in text and "(default: False)" not in text
    prepare = " ".join(_help(capsys, "prepare").split())
    assert "side of the network input (default: 28)" in prepare


def test_training_help_lists_the_set_keys_and_the_presets(capsys):
    from mefr.train.config import PRESETS, TrainConfig

    for command in ("evaluate", "train"):
        text = _help(capsys, command)
        keys = text.split("--set KEY=VALUE keys", 1)[1]
        for field in TrainConfig.__dataclass_fields__:
            assert field in keys, (command, field)
        presets = text.split("presets (--preset):", 1)[1].splitlines()
        named = {line.split()[0] for line in presets if line.startswith("  ")}
        assert named == set(PRESETS)
    cde = next(line for line in presets if line.strip().startswith("cde "))
    assert "optimizer adam" in cde and "lr 0.0001" in cde


def test_top_level_help_imports_no_library():
    code = ("import sys; from mefr.cli import build_parser; build_parser(()).format_help(); "
            "print(sorted(m for m in ('torch', 'pandas', 'cv2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_every_command_is_declared():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {"demo", "synth", "prepare", "detect", "flow", "models", "train", "predict",
            "evaluate", "compare", "reproduce"} <= set(sub.choices)


def test_choices_are_the_librarys(capsys):
    from mefr.data.table import DATASETS
    from mefr.preprocess.apex import APEX_POLICIES

    text = " ".join(_help(capsys, "prepare").split())
    assert "{" + ",".join(APEX_POLICIES) + "}" in text
    assert "{" + ",".join(DATASETS) + "}" in text


# --------------------------------------------------------------------------- messages
def test_models_lists_the_handcrafted_baseline(capsys):
    assert main(["models"]) == 0
    rows = [line.split(maxsplit=4) for line in capsys.readouterr().out.splitlines()[1:]]
    assert ["fr", "3", "1", "10,252,750"] in rows
    lbptop = [r for r in rows if r[0] == "lbptop_svm"]
    assert len(lbptop) == 1 and lbptop[0][4].startswith("hand-crafted")


def test_flow_with_the_lbptop_descriptor_is_a_message(tmp_path, capsys):
    face = cv2.resize(np.ascontiguousarray(skimage.data.astronaut()[10:240, 120:340, ::-1]),
                      (128, 128), interpolation=cv2.INTER_AREA)
    onset, apex = tmp_path / "on.png", tmp_path / "ap.png"
    cv2.imwrite(str(onset), face)
    cv2.imwrite(str(apex), np.roll(face, 1, axis=1))
    rc = main(["flow", str(onset), str(apex), "--out", str(tmp_path / "x.npy"),
               "--descriptor", "lbptop"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: --descriptor lbptop")
    assert "mefr prepare" in err and "Traceback" not in err
    assert not (tmp_path / "x.npy").exists()


def test_evaluate_ststnet_without_strain_says_add_strain(tmp_path, capsys):
    """The fix is given before anything is read or preprocessed."""
    rc = main(["evaluate", "--data", f"casme2:{tmp_path / 'nowhere'}", "--model", "ststnet",
               "--run-dir", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "'strain'" in err and "--strain" in err
    assert not (tmp_path / "run").exists()


def test_train_protocol_is_a_deprecated_alias_of_labels(capsys):
    parser = build_parser("train")
    args = parser.parse_args(["train", "--data", "x:y", "--out", "m", "--protocol",
                              "four_class"])
    assert args.labels == "four_class"
    assert "--protocol` is deprecated" in capsys.readouterr().err
    args = parser.parse_args(["train", "--data", "x:y", "--out", "m", "--labels", "cdmer"])
    assert args.labels == "cdmer" and capsys.readouterr().err == ""


def test_evaluate_epochs_sets_the_training_epochs(tmp_path, monkeypatch):
    seen = {}

    def fake_run_protocol(features, protocol, config, seeds, run_dir, **kw):
        seen["config"] = config

    monkeypatch.setattr("mefr.evaluate.runner.run_protocol", fake_run_protocol)
    monkeypatch.setattr("mefr.preprocess.sources.load_features", lambda spec: object())
    assert main(["evaluate", "--features", "flowset:somewhere", "--epochs", "3",
                 "--run-dir", str(tmp_path / "run"), "--no-progress"]) == 0
    assert seen["config"].epochs == 3 and seen["config"].model == "fr"


# --------------------------------------------------------------------------- stops
def _stub_evaluate(monkeypatch, error: BaseException) -> None:
    def stopped(*args, **kw):
        raise error

    monkeypatch.setattr("mefr.evaluate.runner.run_protocol", stopped)
    monkeypatch.setattr("mefr.preprocess.sources.load_features", lambda spec: object())


def test_ctrl_c_says_what_was_kept_and_exits_130(tmp_path, monkeypatch, capsys):
    _stub_evaluate(monkeypatch, KeyboardInterrupt())
    run = tmp_path / "run"
    rc = main(["evaluate", "--features", "flowset:x", "--run-dir", str(run), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 130 and "Traceback" not in err
    assert err.splitlines() == [f"interrupted: the finished folds are kept in {run}; rerun the "
                                "same command to train only the missing ones"]


def test_an_unexpected_error_is_one_line(tmp_path, monkeypatch, capsys):
    _stub_evaluate(monkeypatch, RuntimeError("boom"))
    monkeypatch.delenv("MEFR_TRACEBACK", raising=False)
    rc = main(["evaluate", "--features", "flowset:x", "--run-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 1 and err == "error: RuntimeError: boom (set MEFR_TRACEBACK=1 to see where)\n"
    monkeypatch.setenv("MEFR_TRACEBACK", "1")
    with pytest.raises(RuntimeError, match="boom"):
        main(["evaluate", "--features", "flowset:x", "--run-dir", str(tmp_path / "r")])


def test_warnings_are_one_line(tmp_path, monkeypatch):
    """While a command runs, a warning prints as ``warning: <message>``, whole, without
    the source line (outside pytest's own capture, which records warnings instead)."""
    import warnings

    shown = []

    def formats(*args, **kw):
        shown.append(warnings.formatwarning("cut (not here)", UserWarning, "f.py", 3, "x"))

    _stub_evaluate(monkeypatch, KeyboardInterrupt())
    monkeypatch.setattr("mefr.evaluate.runner.run_protocol", formats)
    before = warnings.formatwarning
    assert main(["evaluate", "--features", "flowset:x", "--run-dir", str(tmp_path / "r")]) == 0
    assert shown == ["warning: cut (not here)\n"] and warnings.formatwarning is before


def test_python_m_mefr_cli_runs(tmp_path):
    out = subprocess.run([sys.executable, "-m", "mefr.cli", "models"], capture_output=True,
                         text=True, check=True, cwd=tmp_path).stdout
    assert "lbptop_svm" in out and Path(tmp_path).is_dir()


def test_ctrl_c_in_the_runner_prints_what_it_kept(tmp_path, monkeypatch, capsys):
    from mefr.evaluate.runner import RunInterrupted

    run = tmp_path / "run"
    _stub_evaluate(monkeypatch, RunInterrupted(run, kept=3, total=10, trained=2))
    rc = main(["evaluate", "--features", "flowset:x", "--run-dir", str(run), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 130 and len(err) == 1
    assert err[0].startswith(f"interrupted: 3 of 10 folds are finished and kept in {run}")
