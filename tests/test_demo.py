"""`mefr demo` end to end on the embedded synthetic databases (the README's first command).

The checks do not trust the pipeline's own bookkeeping: labels are compared with the
generator's record of what it drew (``synthetic_truth.csv``), and the reported scores
with scikit-learn on the written predictions.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from sklearn.metrics import f1_score, recall_score

from mefr.cli import main
from mefr.demo import run_demo

CDE_CLASSES = ["negative", "positive", "surprise"]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("demo")


def _truth(out: Path) -> pd.DataFrame:
    files = sorted((out / "databases").glob("**/synthetic_truth.csv"))
    parts = [pd.read_csv(p, dtype=str) for p in files]
    return pd.concat(parts, ignore_index=True)


def test_demo_command_writes_a_run_labelled_as_the_generator_drew_it(demo_dir, capsys):
    args = ["demo", "--out", str(demo_dir), "--epochs", "1", "--no-progress"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "| fr |" in text and "Composite UF1" in text
    # it says where it writes, how much it expects to, and how much it wrote
    lines = text.splitlines()
    assert lines[0].startswith("mefr demo: writing") and f"to {demo_dir.resolve()} " in lines[0]
    assert re.search(r"\(about \d+ MB\)$", lines[0])
    written = sum(p.stat().st_size for p in demo_dir.rglob("*") if p.is_file()) / 1e6
    assert f"{demo_dir.resolve()}: {written:.0f} MB on disk" in text
    run = demo_dir / "runs" / "cde_fr_1ep"
    preds = pd.read_csv(run / "predictions.csv", dtype={"subject": str, "clip": str})

    truth = _truth(demo_dir)
    truth = truth[truth["cde_class"].isin(CDE_CLASSES)]  # "others" is outside CDE
    merged = preds.merge(truth, on=["dataset", "subject", "clip"], how="outer",
                         indicator=True, validate="one_to_one")
    assert (merged["_merge"] == "both").all(), merged.loc[merged["_merge"] != "both",
                                                         ["dataset", "subject", "clip"]]
    assert [CDE_CLASSES[i] for i in merged["label"]] == list(merged["cde_class"])

    composite = json.loads((run / "metrics.json").read_text())["per_seed"]["0"]["composite"]
    assert composite["n"] == len(truth)
    assert composite["uf1"] == pytest.approx(f1_score(preds["label"], preds["pred"],
                                                      average="macro"))
    assert composite["uar"] == pytest.approx(recall_score(preds["label"], preds["pred"],
                                                          average="macro"))

    # a second call reuses databases, features and the finished run
    assert main(args) == 0
    again = capsys.readouterr().out
    assert "nothing to do" in again and again.startswith(f"mefr demo: reusing {demo_dir.resolve()}")


def test_demo_learns_the_synthetic_classes_on_held_out_subjects(demo_dir):
    """With the demo's own settings FR separates the synthetic motions on subjects it
    never saw (LOSO): composite UF1 well above the 1/3 of chance."""
    res = run_demo(demo_dir, epochs=20, progress=False)
    preds = pd.read_csv(res.run.run_dir / "predictions.csv")
    assert len(preds) == res.clips and res.failures == 0
    assert f1_score(preds["label"], preds["pred"], average="macro") > 0.6
