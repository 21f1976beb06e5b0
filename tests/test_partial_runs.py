"""PARTIAL runs: ``run_protocol(folds=..., subjects=...)`` and ``mefr evaluate --folds /
--subjects`` run some outer folds for a quick look, marked PARTIAL everywhere; a later run
of all folds completes them; readers of finished runs refuse them (issue 38, item 4)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.metrics import f1_score
from test_runner import CONFIG, FakeEngine, Interrupted, _features, _write_flowset

from mefr.evaluate.audit import AuditError, audit_run
from mefr.evaluate.compare import compare_runs
from mefr.evaluate.ensemble import ensemble_of_runs
from mefr.evaluate.rundir import RunDir, RunDirError
from mefr.evaluate.runner import run_protocol
from mefr.report.runs import read_metrics, run_status

#: The 8 LOSO folds of the toy composite, in the protocol's (sorted) order.
FOLDS = ["casme2/sub01", "casme2/sub02", "casme2/sub03", "samm/006", "samm/007",
         "smic_hs/s1", "smic_hs/s2", "smic_hs/s3"]


def _run(run_dir: Path, engine: FakeEngine | None = None, seeds: str = "0", **kw):
    return run_protocol(_features(), "cde", CONFIG, seeds, run_dir,
                        train_fn=engine or FakeEngine(), progress=False, **kw)


def _fold_files(run_dir: Path) -> dict[str, bytes]:
    base = run_dir / "folds"
    return {p.relative_to(base).as_posix(): p.read_bytes() for p in sorted(base.rglob("*"))
            if p.is_file()}


def _trained(engine: FakeEngine) -> list[str]:
    return [k for call in engine.calls for k in call]


# --------------------------------------------------------------------------- the subset
def test_a_subset_trains_only_those_folds_and_scores_their_clips(tmp_path: Path) -> None:
    engine = FakeEngine()
    res = _run(tmp_path, engine, seeds="0-1", folds="0-1,samm/006")
    asked = ["casme2/sub01", "casme2/sub02", "samm/006"]
    assert _trained(engine) == [f"seed{s}/{f}" for s in (0, 1) for f in asked]
    assert sorted(_fold_files(tmp_path)) == sorted(
        f"seed{s}/{f}.{ext}" for s in (0, 1) for f in asked for ext in ("csv", "json"))
    pred = res.predictions
    assert set(zip(pred["dataset"], pred["subject"], strict=True)) == {
        ("casme2", "sub01"), ("casme2", "sub02"), ("samm", "006")}
    seed0 = pred[pred["seed"] == 0]
    assert res.metrics["per_seed"]["0"]["composite"]["uf1"] == pytest.approx(
        f1_score(seed0["label"], seed0["pred"], average="macro", labels=[0, 1, 2]))
    assert res.metrics["databases"] == ["composite", "casme2", "samm"]


def test_subjects_pick_the_folds_that_test_them(tmp_path: Path) -> None:
    engine = FakeEngine()
    res = _run(tmp_path, engine, subjects="s2,casme2/sub03")
    assert _trained(engine) == ["seed0/casme2/sub03", "seed0/smic_hs/s2"]
    assert res.partial == {"folds": ["casme2/sub03", "smic_hs/s2"], "of": 8}
    # both given: the folds of either
    other = FakeEngine()
    _run(tmp_path / "both", other, folds="7", subjects="samm/006")
    assert _trained(other) == ["seed0/samm/006", "seed0/smic_hs/s3"]


def test_a_partial_run_is_marked_in_every_output(tmp_path: Path) -> None:
    res = _run(tmp_path, folds="casme2/sub01,1,samm/006")
    names = ["casme2/sub01", "casme2/sub02", "samm/006"]
    cfg = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert cfg["partial"] == {"folds": names, "of": 8}
    assert cfg["data"]["folds"] == 8  # the run's identity is the whole protocol's
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["partial"] is True
    assert metrics["folds_run"] == names and metrics["folds_total"] == 8
    table = (tmp_path / "table.md").read_text()
    assert table.startswith("**PARTIAL (3 of 8 folds: casme2/sub01, casme2/sub02, samm/006)")
    assert "| fr (PARTIAL 3/8 folds) |" in table and "not the protocol's result" in table
    assert res.table() == table
    log = (tmp_path / "megc_log/seed0.txt").read_text().splitlines()
    assert log[0].startswith("# PARTIAL (3 of 8 folds") and log[1] == "casme2 sub01"
    summary = res.summary()
    assert "PARTIAL run, 3 of 8 folds" in summary.splitlines()[-1]
    assert "run complete" not in summary
    assert RunDir(tmp_path).status() == "PARTIAL (3 of 8 folds), seeds [0]"


def test_asking_for_every_fold_is_a_full_run(tmp_path: Path) -> None:
    res = _run(tmp_path, folds="0-7")
    assert res.partial is None and "partial" not in res.metrics
    assert "partial" not in yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert RunDir(tmp_path).status() == "complete, seeds [0]"


# --------------------------------------------------------------------------- extending
def test_a_run_of_all_folds_completes_a_partial_run(tmp_path: Path) -> None:
    part, full = tmp_path / "part", tmp_path / "full"
    _run(part, seeds="0-1", folds="0,3")
    before = _fold_files(part)
    engine = FakeEngine()
    res = _run(part, engine, seeds="0-1")
    assert len(_trained(engine)) == 2 * 6  # only the missing folds
    after = _fold_files(part)
    assert {k: after[k] for k in before} == before  # the partial folds' files unchanged
    assert res.partial is None and not res.already_complete
    cfg = yaml.safe_load((part / "config.yaml").read_text())
    metrics = json.loads((part / "metrics.json").read_text())
    assert "partial" not in cfg
    assert not {"partial", "folds_run", "folds_total"} & set(metrics)
    assert "PARTIAL" not in (part / "table.md").read_text() + res.summary()
    assert "PARTIAL" not in (part / "megc_log/seed1.txt").read_text()
    assert RunDir(part).status() == "complete, seeds [0, 1]"
    # the same as a run of all folds at once
    _run(full, seeds="0-1")
    for name in ("predictions.csv", "metrics.json", "table.md", "megc_log/seed0.txt"):
        assert (part / name).read_bytes() == (full / name).read_bytes(), name


def test_later_subsets_add_to_a_partial_run(tmp_path: Path) -> None:
    _run(tmp_path, folds="0")
    engine = FakeEngine()
    res = _run(tmp_path, engine, subjects="samm/006")
    assert _trained(engine) == ["seed0/samm/006"]
    assert res.partial == {"folds": ["casme2/sub01", "samm/006"], "of": 8}
    assert len(res.predictions) == 10  # the clips of both folds
    again = _run(tmp_path, engine, folds="samm/006")
    assert again.already_complete and len(engine.calls) == 1
    assert "PARTIAL run, 2 of 8 folds" in again.summary()
    assert "nothing to do" in again.summary()


def test_a_partial_request_into_a_complete_run_is_refused(tmp_path: Path) -> None:
    _run(tmp_path)
    kept = {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()
            and p.name != ".lock"}
    engine = FakeEngine()
    with pytest.raises(RunDirError, match="holds a complete run of all 8 folds"):
        _run(tmp_path, engine, seeds="0-1", folds="1")
    assert not engine.calls
    assert {p: p.read_bytes() for p in kept} == kept


# --------------------------------------------------------------------------- readers
def test_readers_of_finished_runs_refuse_a_partial_run(tmp_path: Path) -> None:
    part, full = tmp_path / "part", tmp_path / "full"
    _run(part, folds="0-3")
    _run(full)
    with pytest.raises(ValueError, match=r"holds a PARTIAL run \(4 of 8 folds"):
        compare_runs(part, full)
    with pytest.raises(ValueError, match="PARTIAL"):
        compare_runs(full, part)
    with pytest.raises(AuditError, match="PARTIAL"):
        audit_run(part)
    with pytest.raises(AuditError, match="PARTIAL"):
        ensemble_of_runs([full, part])
    assert read_metrics(part) is None and read_metrics(full) is not None  # the reports
    assert run_status(part).startswith("PARTIAL (4 of 8 folds)")
    # a run of all folds that stops half-way leaves the outputs partial, still refused
    with pytest.raises(Interrupted):
        _run(part, FakeEngine(fail_after=1))
    assert "partial" not in yaml.safe_load((part / "config.yaml").read_text())
    with pytest.raises(ValueError, match="PARTIAL"):
        compare_runs(part, full)
    assert read_metrics(part) is None and run_status(part).startswith("PARTIAL")


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(("kw", "message"), [
    ({"folds": "casme2/sub9"}, r"unknown fold 'casme2/sub9' \(did you mean 'casme2/sub0"),
    ({"folds": "8"}, r"fold index '8' is out of range: protocol 'cde' has 8 folds, 0-7"),
    ({"folds": "3-1"}, "out of range"),
    ({"folds": "1-"}, "unknown fold '1-'"),
    ({"folds": "first"}, "protocol 'cde' has 8 folds: casme2/sub01, casme2/sub02"),
    ({"folds": " , "}, "names nothing"),
    ({"subjects": "sub99"}, "unknown subject 'sub99'.* 8 subjects: casme2/sub01"),
])
def test_unknown_folds_and_subjects_are_named(tmp_path: Path, kw: dict, message: str) -> None:
    engine = FakeEngine()
    with pytest.raises(ValueError, match=message):
        _run(tmp_path / "run", engine, **kw)
    assert not engine.calls and not (tmp_path / "run").exists()


def test_a_subject_outside_the_protocols_test_folds_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'samm/006' is in no test fold of protocol "
                       "'loso:casme2'"):
        run_protocol(_features(), "loso:casme2", CONFIG, "0", tmp_path, train_fn=FakeEngine(),
                     progress=False, subjects="samm/006")


# --------------------------------------------------------------------------- the command
def test_cli_evaluate_folds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture) -> None:
    from mefr.cli import main

    _write_flowset(tmp_path / "flow", _features())
    engine = FakeEngine()
    monkeypatch.setattr("mefr.train.engine.train_group", engine)
    run = tmp_path / "run"
    argv = ["evaluate", "--features", f"flowset:{tmp_path / 'flow'}", "--model", "fr",
            "--run-dir", str(run), "--no-progress"]
    assert main([*argv, "--folds", "0-1", "--subjects", "samm/007"]) == 0
    out = capsys.readouterr().out
    assert "PARTIAL (3 of 8 folds: casme2/sub01, casme2/sub02, samm/007)" in out
    assert "PARTIAL run, 3 of 8 folds" in out
    assert yaml.safe_load((run / "config.yaml").read_text())["partial"]["folds"] == [
        "casme2/sub01", "casme2/sub02", "samm/007"]
    assert main([*argv, "--folds", "casme2/sub1"]) == 2
    assert "unknown fold 'casme2/sub1'" in capsys.readouterr().err
    assert main(argv) == 0 and len(_trained(engine)) == 8
    assert "run complete" in capsys.readouterr().out
    assert main([*argv, "--folds", "2"]) == 2
    assert "holds a complete run" in capsys.readouterr().err
    assert len(engine.calls) == 2 and np.isfinite(
        json.loads((run / "metrics.json").read_text())["mean"]["composite"]["uf1"])


def test_evaluate_help_shows_the_default_and_an_example(capsys) -> None:
    from mefr.cli import main

    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--folds SPEC" in text and "e.g. 0-3,10 or casme2/sub01" in text
    assert "(default: all folds)" in text
    assert "--subjects LIST" in text and "e.g. casme2/sub01,samm/006" in text
