"""What a report says of where its numbers come from, and what it keeps apart (issue 38,
items 8-10): the runs and preset it used, an error when they are missing, synthetic
numbers never averaged with real ones nor sitting among them, paper-ready titles and
captions with the provenance beside them.

Runs are written by hand (metrics.json + config.yaml, as the runner leaves them), so no
training happens here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mefr.cli import main
from mefr.report.options import ReproduceError, ReproduceOptions
from mefr.report.reproduce import Reproducer
from mefr.report.tables import MIXED_DATA, Cell, average_cell

CLASSES = ["negative", "positive", "surprise"]


def write_run(run_dir: Path, per_db: dict[str, dict[str, float]], seeds=(0,),
              preset_lr: float = 1e-4, features: str = "flowset:/some/where/megc2019-cde-flow",
              confusion: list[list[int]] | None = None) -> Path:
    """A finished run: ``per_db[db][metric]`` for every seed (seed k adds k / 1000)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    per_seed = {}
    for k in seeds:
        per_seed[str(k)] = {
            db: {m: v + k / 1000 for m, v in ms.items()}
            | {"confusion": confusion or [[5, 1, 0], [1, 3, 1], [0, 1, 2]]}
            for db, ms in per_db.items()}
    metrics = {"protocol": "cde", "model": run_dir.name, "class_names": CLASSES,
               "seeds": list(seeds), "databases": list(per_db),
               "selection": "each fold evaluates the model after the last epoch (100)",
               "per_seed": per_seed}
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    config = {"seeds": list(seeds), "features": features,
              "train": {"optimizer": "adam", "lr": preset_lr, "batch_size": 32, "epochs": 100,
                        "lam": 0.85, "select_epoch_by": "none"},
              "environment": {"device": "cpu", "machine": "x86_64", "cpus": 2}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    return run_dir


def _cde(acc: float) -> dict[str, dict[str, float]]:
    dbs = ("composite", "smic_hs", "casme2", "samm")
    return {db: {"acc": acc, "uf1": acc, "uar": acc} for db in dbs}


def _options(results: Path, **kw) -> ReproduceOptions:
    return ReproduceOptions(results=results, out=results / "report", train=False,
                            progress=False, **kw)


# --------------------------------------------------------------------------- averages
def test_an_average_never_mixes_real_and_synthetic_cells():
    real, syn = Cell(values=(0.6,), seeds=(0,)), Cell(values=(1.0,), seeds=(0,), synthetic=True)
    mixed = average_cell([real, syn], paper=0.62)
    assert not mixed.measured and mixed.status == MIXED_DATA and mixed.paper == 0.62
    both = average_cell([syn, syn])
    assert both.mean == pytest.approx(1.0) and both.synthetic


@pytest.fixture
def table5_runs(tmp_path: Path) -> Path:
    """SMIC-HS alone with the paper's preset (does not train) and with mefr's (cde), and
    synthetic CASME II / SAMM runs, as results/ holds them."""
    r = tmp_path / "results"
    one = {"composite": {"acc": 0.4268, "uf1": 0.2, "uar": 0.33}}
    write_run(r / "loso/smic_hs/fr", one)
    write_run(r / "loso/smic_hs/fr-cde", {"composite": {"acc": 0.5982, "uf1": 0.6, "uar": 0.6}},
              seeds=range(10))
    for exp in ("casme2_5class", "casme2_4class", "samm_4class"):
        write_run(r / "synthetic/loso" / exp / "fr-cde",
                  {"composite": {"acc": 0.98, "uf1": 0.98, "uar": 0.98}},
                  features="synthetic:/tmp/x (casme2)")
    return r


def test_table5_uses_the_cde_runs_and_does_not_average_synthetic(table5_runs, capsys):
    rep = Reproducer(_options(table5_runs))
    paths = rep.reproduce("table5")
    assert capsys.readouterr().out == ""  # the library prints nothing; the CLI prints
    lines = [line for line, _ in rep.status_lines("table5")]
    assert f"table5: {table5_runs}/loso/smic_hs/fr-cde [real, preset cde] complete, seeds " \
        "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]" in lines
    df = pd.read_csv(paths["csv"]).set_index(["row", "column"])
    assert df.loc[("FR", "smic_hs.acc"), "ours_mean"] == pytest.approx(0.5982 + 0.0045)
    assert df.loc[("FR", "smic_hs.acc"), "run_dir"].endswith("loso/smic_hs/fr-cde")
    average = df.loc[("FR", "average.acc")]
    assert np.isnan(average["ours_mean"]) and average["status"] == MIXED_DATA
    md = paths["md"].read_text()
    assert "- Preset: cde (all runs)." in md
    assert "a synthetic number is never averaged with a real one" in md
    # the paper's preset is there on request, and named
    paper = Reproducer(_options(table5_runs, preset="paper_single",
                                allow_missing=True)).table("table5")
    fr = next(r for r in paper.rows if r.label == "FR")
    assert fr.cells["smic_hs.acc"].values == (0.4268,)
    assert "Preset: paper_single (" in " ".join(paper.notes)


# --------------------------------------------------------------------------- missing runs
def test_no_train_fails_when_the_runs_are_absent(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # outside the clone: ./results does not exist
    with pytest.raises(ReproduceError) as err:
        Reproducer(_options(Path("results"))).reproduce("table6")
    text = str(err.value)
    assert f"not finished under {tmp_path / 'results'}" in text
    assert "results/cde/basic_inception" in text and "results/cde/fr" in text
    assert not (tmp_path / "results").exists()
    capsys.readouterr()
    rc = main(["reproduce", "table6", "--no-train", "--no-progress"])
    out, err_text = capsys.readouterr()
    assert rc == 2 and "--allow-missing" in err_text
    assert out.splitlines()[0] == f"results      {tmp_path / 'results'} (run directories)"
    assert main(["reproduce", "table6", "--no-train", "--allow-missing"]) == 0
    assert "not yet run" in (tmp_path / "results/report/table6.md").read_text()


def test_all_renders_what_it_can_and_fails_at_the_end(table5_runs, capsys):
    rc = main(["reproduce", "all", "--no-train", "--results", str(table5_runs)])
    out, err = capsys.readouterr()
    assert rc == 2
    assert f"table5: {table5_runs / 'report' / 'table5.md'}" in out
    assert "error: table1:" in err and "error: table5:" not in err


# --------------------------------------------------------------------------- separation
@pytest.fixture
def table1_runs(tmp_path: Path) -> Path:
    r = tmp_path / "results"
    for i, model in enumerate(("basic_inception", "fr_fc", "fr_concat", "fr")):
        write_run(r / "cde" / model, _cde(0.69 + i / 100), seeds=range(3),
                  features=f"flowset:.devdata/{i}/megc2019-cde-flow")
    for model in ("dual_inception", "basic_inception", "lbptop_svm"):
        write_run(r / "synthetic/cde" / model, _cde(0.99), features="synthetic:/x (cde)")
    write_run(r / "cde/off_apexnet", _cde(0.71), seeds=range(3))
    write_run(r / "cde/ststnet", _cde(0.70), seeds=range(3))
    return r


def test_synthetic_rows_are_a_table_of_their_own(table1_runs):
    rep = Reproducer(_options(table1_runs))
    for name, apart in (("table1", ["Dual-Inception", "Basic Inception"]),
                        ("table2", ["LBP-TOP", "Dual-Inception"])):
        table = rep.table(name)
        assert table.data_kind == "real" and "synthetic" not in table.full_title
        for row in table.rows:
            assert not any(c.synthetic for c in row.cells.values()), (name, row.label)
        placeholder = next(r for r in table.rows if r.label == apart[0])
        assert not any(c.measured for c in placeholder.cells.values())
        assert all(c.paper is not None for c in placeholder.cells.values())
        supplement = table.supplement
        assert supplement is not None and supplement.data_kind == "synthetic"
        assert [r.label for r in supplement.rows] == apart
        paths = rep.reproduce(name)
        md = paths["md"].read_text()
        assert md.count("\n### ") == 1 and "rows measured on synthetic databases" in md
        df = pd.read_csv(paths["csv"])
        assert set(df[df["data"] == "synthetic"]["row"]) == set(apart)
        tex = paths["tex"].read_text()
        assert f"\\label{{tab:mefr-{name}}}" in tex
        assert f"\\label{{tab:mefr-{name}-synthetic}}" in tex


def test_latex_caption_is_short_and_provenance_is_beside_it(table1_runs):
    paths = Reproducer(_options(table1_runs)).reproduce("table1")
    tex = paths["tex"].read_text()
    captions = [line for line in tex.splitlines() if line.startswith("\\caption{")]
    assert len(captions) == 2 and all(len(c) < 300 for c in captions)
    assert "Hardware" not in captions[0] and "bootstrap" not in captions[0]
    comments = [line for line in tex.splitlines() if line.startswith("% ")]
    assert any(r"Hardware: CPU (x86\_64, 2 cores)" in c for c in comments)
    assert any(c.startswith("% [MEGC 2019 composite flow set; CPU") for c in comments)


def test_notes_name_the_data_not_a_machines_path(table1_runs):
    md = Reproducer(_options(table1_runs)).reproduce("table1")["md"].read_text()
    assert ".devdata" not in md and "flowset megc2019-cde-flow" in md


# --------------------------------------------------------------------------- figures
def test_figure_titles_are_the_papers_and_provenance_is_a_caption_file(table1_runs):
    rep = Reproducer(_options(table1_runs))
    table, fig = rep.fig3()
    title = fig._suptitle.get_text()
    assert title.startswith("Fig. 3 of the paper")
    assert "[" not in title and "CPU" not in title and "flow set" not in title
    paths = rep.reproduce("fig3")
    caption = paths["caption"].read_text()
    assert caption.startswith(table.full_title) and "CPU (x86_64, 2 cores)" in caption
    assert paths["caption"].parent == paths["png"].parent
