"""Paired subject bootstrap of two runs: against explicit resampling with scikit-learn."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

from mefr.cli import main
from mefr.evaluate.compare import (
    compare_runs,
    differences_for_counts,
    draw_subject_counts,
    paired_bootstrap,
    subject_confusions,
)
from mefr.evaluate.metrics import confusion_matrix, metric_from_confusions

SKLEARN = {
    "acc": accuracy_score,
    "uf1": lambda t, p: f1_score(t, p, average="macro"),
    "uar": balanced_accuracy_score,
}


def _case(rng: np.random.Generator, n_subjects: int = 7, k: int = 3, seeds: int = 2):
    per_subject = rng.integers(1, 6, n_subjects)
    subject = np.repeat(np.arange(n_subjects), per_subject)
    y = rng.integers(0, k, len(subject))
    noisy = [np.where(rng.random(len(y)) < 0.6, y, rng.integers(0, k, len(y)))
             for _ in range(2 * seeds)]
    return subject, y, np.stack(noisy[:seeds]), np.stack(noisy[seeds:]), k


@pytest.mark.parametrize("metric", ["acc", "uf1", "uar"])
def test_metric_from_confusions_matches_sklearn(metric: str) -> None:
    rng = np.random.default_rng(1)
    cms, expected = [], []
    for _ in range(20):
        k = 4
        y = rng.integers(0, k, 30)
        p = np.where(rng.random(30) < 0.5, y, rng.integers(0, 2, 30))  # classes 2, 3 rare
        cms.append(confusion_matrix(y, p, k))
        expected.append(SKLEARN[metric](y, p))
    got = metric_from_confusions(np.stack(cms).reshape(4, 5, k, k), metric).ravel()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("metric", ["acc", "uf1", "uar"])
def test_each_draw_equals_an_explicit_resample(metric: str) -> None:
    rng = np.random.default_rng(2)
    subject, y, pa, pb, k = _case(rng)
    s = subject.max() + 1
    cms_a = np.stack([subject_confusions(y, p, subject, s, k) for p in pa])
    cms_b = np.stack([subject_confusions(y, p, subject, s, k) for p in pb])
    counts = draw_subject_counts(s, 25, seed=3)
    got = differences_for_counts(cms_a, cms_b, counts, metric)
    for draw, c in zip(got, counts, strict=True):
        # the clips of subject j, repeated c[j] times, scored by scikit-learn per seed
        rows = np.concatenate([np.flatnonzero(subject == j) for j in range(s)
                               for _ in range(c[j])])
        diffs = [SKLEARN[metric](y[rows], a[rows]) - SKLEARN[metric](y[rows], b[rows])
                 for a, b in zip(pa, pb, strict=True)]
        assert draw == pytest.approx(np.mean(diffs), abs=1e-12)


def test_draws_use_every_subject_once_on_average() -> None:
    counts = draw_subject_counts(10, 4000, seed=0)
    assert counts.shape == (4000, 10)
    assert (counts.sum(axis=1) == 10).all()
    np.testing.assert_allclose(counts.mean(axis=0), 1.0, atol=0.06)


def test_point_estimate_and_interval() -> None:
    rng = np.random.default_rng(4)
    subject, y, pa, pb, k = _case(rng, n_subjects=12)
    r = paired_bootstrap(y, pa, pb, subject, k, "uf1", replicates=500, seed=0)
    expected = np.mean([f1_score(y, a, average="macro") - f1_score(y, b, average="macro")
                        for a, b in zip(pa, pb, strict=True)])
    assert r.difference == pytest.approx(expected, abs=1e-12)
    assert r.a == pytest.approx(np.mean([f1_score(y, a, average="macro") for a in pa]))
    assert r.b == pytest.approx(np.mean([f1_score(y, b, average="macro") for b in pb]))
    assert r.low <= r.high
    assert r.subjects == 12 and r.clips == len(y)


def test_identical_models_differ_by_exactly_zero() -> None:
    rng = np.random.default_rng(5)
    subject, y, pa, _, k = _case(rng)
    r = paired_bootstrap(y, pa, pa, subject, k, "uar", replicates=200)
    assert (r.difference, r.low, r.high, r.share_a_better) == (0.0, 0.0, 0.0, 0.0)


def test_a_perfect_model_beats_a_noisy_one_in_every_draw() -> None:
    rng = np.random.default_rng(6)
    subject, y, _, pb, k = _case(rng, n_subjects=15, seeds=1)
    r = paired_bootstrap(y, y[None], pb, subject, k, "uf1", replicates=300)
    assert r.low > 0 and r.share_a_better == 1.0


def test_bad_arguments_are_refused() -> None:
    y = np.array([0, 1, 2])
    with pytest.raises(ValueError, match="shapes differ"):
        paired_bootstrap(y, y, y[:2], ["a", "b", "c"], 3)
    with pytest.raises(ValueError, match="confidence"):
        paired_bootstrap(y, y, y, ["a", "b", "c"], 3, confidence=1.5)
    with pytest.raises(ValueError, match="unknown metric"):
        paired_bootstrap(y, y, y, ["a", "b", "c"], 3, metric="f2")


# ----------------------------------------------------------------------------- run dirs
def _write_run(path: Path, seeds: list[int], preds: dict[int, np.ndarray], table: pd.DataFrame
               ) -> Path:
    path.mkdir(parents=True)
    frames = []
    for s in seeds:
        df = table.copy()
        df.insert(0, "seed", s)
        df["pred"] = preds[s]
        for c, name in enumerate(("negative", "positive", "surprise")):
            df[f"p_{name}"] = (preds[s] == c).astype(float)
        frames.append(df)
    pd.concat(frames).to_csv(path / "predictions.csv", index=False)
    return path


@pytest.fixture
def clip_table() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    rows = [(db, f"s{j}", f"c{j}_{i}") for db in ("casme2", "samm") for j in range(6)
            for i in range(3)]
    table = pd.DataFrame(rows, columns=["dataset", "subject", "clip"])
    table["label"] = rng.integers(0, 3, len(table))
    return table


def test_compare_runs_pairs_clips_by_name(tmp_path: Path, clip_table: pd.DataFrame) -> None:
    rng = np.random.default_rng(8)
    y = clip_table["label"].to_numpy()
    pa = {s: np.where(rng.random(len(y)) < 0.8, y, (y + 1) % 3) for s in (0, 1, 2)}
    pb = {s: np.where(rng.random(len(y)) < 0.5, y, (y + 1) % 3) for s in (0, 1)}
    run_a = _write_run(tmp_path / "a", [0, 1, 2], pa, clip_table)
    # B's file lists its clips in another order: pairing is by (dataset, subject, clip)
    run_b = _write_run(tmp_path / "b", [0, 1], pb, clip_table)
    shuffled = pd.read_csv(run_b / "predictions.csv").sample(frac=1, random_state=0)
    shuffled.to_csv(run_b / "predictions.csv", index=False)

    results = compare_runs(run_a, run_b, metrics=("uf1",), replicates=300)
    assert [r.database for r in results] == ["composite", "casme2", "samm"]
    assert all(r.seeds == (0, 1) for r in results)
    comp = results[0]
    expected = np.mean([f1_score(y, pa[s], average="macro") - f1_score(y, pb[s], average="macro")
                        for s in (0, 1)])
    assert comp.difference == pytest.approx(expected, abs=1e-12)
    assert comp.subjects == 12  # (database, subject): s0 of CASME II is not s0 of SAMM
    casme = clip_table["dataset"] == "casme2"
    exp_casme = np.mean([f1_score(y[casme], pa[s][casme], average="macro")
                         - f1_score(y[casme], pb[s][casme], average="macro") for s in (0, 1)])
    assert results[1].difference == pytest.approx(exp_casme, abs=1e-12)


def test_compare_runs_refuses_runs_on_other_clips(tmp_path: Path,
                                                  clip_table: pd.DataFrame) -> None:
    y = clip_table["label"].to_numpy()
    run_a = _write_run(tmp_path / "a", [0], {0: y}, clip_table)
    run_b = _write_run(tmp_path / "b", [0], {0: y[:-1]}, clip_table.iloc[:-1])
    with pytest.raises(ValueError, match="in one run only.*samm/s5/c5_2 only in"):
        compare_runs(run_a, run_b)
    relabelled = clip_table.assign(label=(y + 1) % 3)
    run_c = _write_run(tmp_path / "c", [0], {0: y}, relabelled)
    with pytest.raises(ValueError, match="different labels"):
        compare_runs(run_a, run_c)
    run_d = _write_run(tmp_path / "d", [3], {3: y}, clip_table)
    with pytest.raises(ValueError, match="no seed in common"):
        compare_runs(run_a, run_d)
    # both runs lost the same clip of seed 1 only: the seeds no longer pool the same clips
    for name in ("e", "f"):
        run = _write_run(tmp_path / name, [0, 1], {0: y, 1: y}, clip_table)
        df = pd.read_csv(run / "predictions.csv")
        df.iloc[:-1].to_csv(run / "predictions.csv", index=False)
    with pytest.raises(ValueError, match="did not all score the same clips"):
        compare_runs(tmp_path / "e", tmp_path / "f")


def test_cli_compare(tmp_path: Path, clip_table: pd.DataFrame, capsys) -> None:
    y = clip_table["label"].to_numpy()
    run_a = _write_run(tmp_path / "a", [0], {0: y}, clip_table)
    run_b = _write_run(tmp_path / "b", [0], {0: (y + 1) % 3}, clip_table)
    assert main(["compare", str(run_a), str(run_b), "--databases", "composite",
                 "--metrics", "acc", "--replicates", "100", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out) == 1
    assert out[0]["a"] == 1.0 and out[0]["b"] == 0.0 and out[0]["low"] == 1.0
    assert main(["compare", str(run_a), str(tmp_path / "missing")]) == 2
    assert "no predictions.csv" in capsys.readouterr().err


def test_cli_stops_quietly_when_the_reader_of_stdout_goes_away(
        tmp_path: Path, clip_table: pd.DataFrame) -> None:
    y = clip_table["label"].to_numpy()
    run_a = _write_run(tmp_path / "a", [0], {0: y}, clip_table)
    run_b = _write_run(tmp_path / "b", [0], {0: (y + 1) % 3}, clip_table)
    code = "import sys; from mefr.cli import main; sys.exit(main(sys.argv[1:]))"
    child = subprocess.Popen(
        [sys.executable, "-c", code, "compare", str(run_a), str(run_b), "--replicates", "50"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    child.stdout.close()  # as `| head` does once it has read enough; here before any output
    stderr = child.stderr.read().decode()
    assert child.wait(timeout=120) == 141, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
