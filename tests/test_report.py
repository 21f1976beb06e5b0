"""The paper's numbers, the table model and its renderers, and the figures."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mefr.report import paper as P
from mefr.report.figures import confusion_figure, row_percent, save_figure, tsne_figure
from mefr.report.runs import describe_run_hardware
from mefr.report.tables import (
    Cell,
    Column,
    ReportTable,
    Row,
    average_cell,
    cell_from_metrics,
    difference_cell,
    latex_escape,
    to_csv,
    to_latex,
    to_markdown,
    write_table,
)

PAPER_TEXT = Path(__file__).resolve().parents[2] / "shared" / "paper" / "000_f4db6da6bef4957e.txt"


# --------------------------------------------------------------------------- paper numbers
def test_paper_tables_agree_with_each_other():
    """Identities the paper states between its tables hold in the transcription."""
    t1, t2, t5, t6, t8 = (P.paper_table(n) for n in ("table1", "table2", "table5", "table6",
                                                      "table8"))
    for row in ("Basic Inception", "FR"):
        for col in ("composite.uf1", "composite.uar"):
            assert t6.value(row, col) == t1.value(row, col)
    for row in ("FR", "Dual-Inception"):
        assert t1.value(row, "composite.uf1") == t2.value(row, "composite.uf1")
    # Table 8 repeats Table 3 / 4 (CDMER Acc) and Table 5 (single database SMIC-HS)
    assert t8.value("CDMER Exp.2: V->H", "acc") == P.TABLE3.value("FR", "exp02.acc")
    assert t8.value("CDMER Exp.4: N->H", "acc") == P.TABLE3.value("FR", "exp04.acc")
    assert t8.value("CDMER Exp.7: C->H", "acc") == P.TABLE4.value("FR", "exp07.acc")
    assert t8.value("Single database", "acc") == t5.value("FR", "smic_hs.acc")
    # the paper's averages are the means of the row (to the printed 4 digits)
    for t in (P.TABLE3, P.TABLE4):
        for m in ("uf1", "acc"):
            vals = [t.value("FR", c) for c in t.columns if c.endswith(m) and c.startswith("exp")]
            assert t.value("FR", f"average.{m}") == pytest.approx(np.mean(vals), abs=1e-4)
    fr5 = [t5.value("FR", c) for c in t5.columns if not c.startswith("average")]
    assert t5.value("FR", "average.acc") == pytest.approx(np.mean(fr5), abs=1e-4)
    # Fig. 3 rows are percentages of the true class; the FR diagonal is quoted in the text
    for cm in P.FIG3_CONFUSION.values():
        assert cm.sum(axis=1) == pytest.approx([100.0] * 3, abs=0.02)
    assert np.diag(P.FIG3_CONFUSION["fr"]).tolist() == [83.60, 70.64, 80.72]


def _numbers(tokens: list[str]) -> list[float | None]:
    out: list[float | None] = []
    for tok in tokens:
        tok = tok.strip()
        if tok == "-":
            out.append(None)
        elif re.fullmatch(r"[\d.]+\*?(/[\d.]+\*?)?", tok):
            out += [float(part.rstrip("*")) for part in tok.split("/")]
    return out


def _line(lines: list[str], after: str, name: str) -> list[str]:
    """The tokens after the cell ``name`` (citation ``[NN]`` ignored) on the first
    tab-separated line holding it after the line containing ``after``."""
    start = next(i for i, ln in enumerate(lines) if after in ln)
    for ln in lines[start:]:
        toks = ln.split("\t")
        names = [re.sub(r"\s*\[\d+\]$", "", t.strip()) for t in toks]
        if name in names:
            return [t for t in toks[names.index(name) + 1:] if t.strip()]
    raise AssertionError(f"no line with a cell {name!r} after {after!r}")


@pytest.mark.skipif(not PAPER_TEXT.is_file(), reason="the paper's text (../shared) is absent")
def test_paper_numbers_match_the_paper_text():
    lines = PAPER_TEXT.read_text(encoding="utf-8").splitlines()
    # Table 1: two lines holding (a), (b), (c) side by side
    first = _numbers(_line(lines, "Backbone selection for the expression", "Dual-Inception"))
    second = _numbers(_line(lines, "Backbone selection for the expression", "Basic Inception"))
    t1 = P.TABLE1
    assert first == [*t1.rows["Dual-Inception"].values(), *t1.rows["FR-fc"].values(),
                     *t1.rows["FR-concatenated"].values()]
    assert second == [*t1.rows["Basic Inception"].values(), *t1.rows["FR"].values(),
                      *t1.rows["FR"].values()]
    # Table 2: every row
    names = {"FR": "FR (Ours)"}
    for row, values in P.TABLE2.rows.items():
        label = names.get(row, row)
        toks = _line(lines, "Groups\tApproaches\tComposite", label)
        assert _numbers(toks) == list(values.values()), row
    # Tables 3 and 4: the FR rows
    assert _numbers(_line(lines, "Table 3: Experimental", "FR (Ours)")) == list(
        P.TABLE3.rows["FR"].values())
    assert _numbers(_line(lines, "Table 4: Experimental", "FR (Ours)")) == list(
        P.TABLE4.rows["FR"].values())
    # Table 5: deep rows and FR
    for row, values in P.TABLE5.rows.items():
        toks = _line(lines, "Groups\tApproaches\tSMIC-HS", names.get(row, row))
        assert _numbers(toks) == list(values.values()), row
    # Tables 6 and 7
    for row in ("Basic Inception", "FR"):
        assert _numbers(_line(lines, "Table 6: Performance", row)) == list(
            P.TABLE6.rows[row].values())
        assert _numbers(_line(lines, "Methods\tSMIC-HS", row)) == list(
            P.TABLE7.rows[row].values())
    # Table 8
    t8 = {"CDE": "CDE", "CDMER Exp.2: V->H": r"$Exp.2: V \rightarrow H$",
          "CDMER Exp.4: N->H": r"$Exp.4: N \rightarrow H$",
          "CDMER Exp.7: C->H": r"$Exp.7: C \rightarrow H$", "Single database": "Single database"}
    for row, prefix in t8.items():
        nums = [v for v in _numbers(_line(lines, "Protocols\tExperiments", prefix))
                if v is not None]
        assert nums[-1:] == [P.TABLE8.value(row, "acc")], row
    # Fig. 3: (a) Basic Inception then (b) FR
    start = next(i for i, ln in enumerate(lines) if "4.7. Analysis on feature" in ln)
    rows = [_numbers(ln.split("\t")[1:]) for ln in lines[start:]
            if ln.split("\t")[0] in ("Negative", "Positive", "Surprise") and "\t" in ln][:6]
    assert np.allclose(rows[:3], P.FIG3_CONFUSION["basic_inception"])
    assert np.allclose(rows[3:], P.FIG3_CONFUSION["fr"])


# --------------------------------------------------------------------------- table model
def _metrics(per_seed: dict[int, dict[str, dict[str, float]]]) -> dict:
    """A hand-made metrics.json: per seed, per database, some metrics."""
    return {"protocol": "cde", "model": "fr", "seeds": sorted(per_seed),
            "per_seed": {str(s): v for s, v in per_seed.items()}}


METRICS = _metrics({
    0: {"composite": {"uf1": 0.70, "uar": 0.71}, "smic_hs": {"uf1": 0.60, "uar": 0.62}},
    1: {"composite": {"uf1": 0.80, "uar": 0.69}, "smic_hs": {"uf1": 0.64, "uar": None}},
    2: {"composite": {"uf1": 0.75, "uar": 0.70}, "smic_hs": {"uf1": 0.66, "uar": 0.61}},
})


def _table(synthetic: bool = False) -> ReportTable:
    cols = (Column("composite.uf1", "Composite UF1"), Column("smic_hs.uar", "SMIC-HS UAR"))
    fr = {c.key: cell_from_metrics(METRICS, *c.key.split("."), paper=P.TABLE2.value("FR", c.key),
                                   run_dir="results/cde/fr", synthetic=synthetic)
          for c in cols}
    lbp = {c.key: Cell(paper=P.TABLE2.value("LBP-TOP", c.key), status="not reproduced")
           for c in cols}
    return ReportTable("table2", "Table 2: CDE", cols,
                       (Row("LBP-TOP", lbp, note="paper only"), Row("FR", fr)),
                       ("Hardware: test CPU.",))


def test_cells_take_mean_and_sample_std_over_seeds():
    cell = cell_from_metrics(METRICS, "composite", "uf1")
    vals = [0.70, 0.80, 0.75]
    assert cell.mean == pytest.approx(np.mean(vals))
    assert cell.std == pytest.approx(np.std(vals, ddof=1))
    assert cell.seeds == (0, 1, 2) and cell.n == 3
    undefined = cell_from_metrics(METRICS, "smic_hs", "uar")  # seed 1 undefined: left out
    assert undefined.seeds == (0, 2)
    assert undefined.mean == pytest.approx(np.mean([0.62, 0.61]))
    with pytest.raises(KeyError, match="samm"):
        cell_from_metrics(METRICS, "samm", "uf1")
    assert Cell(values=(0.5,)).std is None and Cell(values=(6.4, 6.5), exact=True).std is None


def test_average_cell_is_per_seed_mean_over_common_seeds():
    a = Cell(values=(0.2, 0.4, 0.9), seeds=(0, 1, 2))
    b = Cell(values=(0.6, 0.8), seeds=(0, 1))
    avg = average_cell([a, b], paper=0.5)
    assert avg.seeds == (0, 1)
    assert avg.values == pytest.approx((0.4, 0.6))
    assert not avg.synthetic and avg.paper == 0.5
    assert not average_cell([a, Cell()]).measured
    # a synthetic cell is never averaged with a real one
    assert not average_cell([a, Cell(values=(1.0,), seeds=(0,), synthetic=True)]).measured


def test_difference_cell_pairs_seeds():
    fr = Cell(values=(0.70, 0.74, 0.69), seeds=(0, 1, 2), paper=0.7838)
    basic = Cell(values=(0.68, 0.75, 0.60), seeds=(0, 2, 3), paper=0.7360)
    d = difference_cell(fr, basic)
    assert d.seeds == (0, 2)  # seed 1 and 3 have no partner
    assert d.values == pytest.approx((0.70 - 0.68, 0.69 - 0.75))
    assert d.mean == pytest.approx(-0.02)
    assert d.std == pytest.approx(np.std([0.02, -0.06], ddof=1))
    assert d.paper == pytest.approx(0.0478)
    assert not difference_cell(fr, Cell(paper=0.7)).measured
    assert difference_cell(fr, Cell(paper=0.7)).paper == pytest.approx(0.0838)
    assert difference_cell(fr, Cell(values=(0.5,), seeds=(9,))).status == "no common seed"


def test_markdown_has_ours_beside_paper_with_the_right_numbers():
    md = to_markdown(_table())
    assert md.startswith("### Table 2: CDE\n")
    header = next(ln for ln in md.splitlines() if ln.startswith("| Model"))
    assert "Composite UF1 ours | Composite UF1 paper" in header
    fr = next(ln for ln in md.splitlines() if ln.startswith("| FR "))
    vals = [0.70, 0.80, 0.75]
    assert f"{np.mean(vals):.4f} ± {np.std(vals, ddof=1):.4f}" in fr
    assert f"| {P.TABLE2.value('FR', 'composite.uf1'):.4f} |" in fr
    assert fr.rstrip().endswith("| 2, 3 |")  # seeds behind the two cells
    lbp = next(ln for ln in md.splitlines() if ln.startswith("| LBP-TOP"))
    assert "0.5882" in lbp and "not reproduced" in lbp
    assert "`results/cde/fr`: FR" in md and "Hardware: test CPU." in md
    assert "synthetic" not in md


def test_synthetic_cells_are_marked_and_titled():
    t = _table(synthetic=True)
    assert t.data_kind == "synthetic" and t.full_title.endswith("(synthetic data)")
    md = to_markdown(t)
    assert md.startswith("### Table 2: CDE (synthetic data)")
    assert "† measured on synthetic databases" in md
    mixed = ReportTable("t", "T", t.columns, (t.rows[1], _table().rows[1]))
    assert "partly synthetic" in mixed.full_title


def test_csv_is_tidy_and_holds_the_numbers():
    df = pd.read_csv(io.StringIO(to_csv(_table())))
    assert len(df) == 4 and set(df["row"]) == {"LBP-TOP", "FR"}
    fr = df[(df["row"] == "FR") & (df["column"] == "composite.uf1")].iloc[0]
    assert fr["ours_mean"] == pytest.approx(0.75)
    assert fr["ours_std"] == pytest.approx(np.std([0.70, 0.80, 0.75], ddof=1))
    assert fr["n_seeds"] == 3 and fr["seeds"] == "0 1 2" and fr["data"] == "real"
    assert fr["paper"] == pytest.approx(0.7838) and fr["run_dir"] == "results/cde/fr"
    lbp = df[df["row"] == "LBP-TOP"].iloc[0]
    assert np.isnan(lbp["ours_mean"]) and lbp["status"] == "not reproduced"


def test_latex_is_a_booktabs_table_with_escaped_text(tmp_path):
    tex = to_latex(_table(synthetic=True))
    assert tex.count(r"\begin{tabular}{lrrrrl}") == 1
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"\caption{" in tex
    assert r"$\pm$" in tex and r"$^\dagger$" in tex and "±" not in tex
    assert r"\multicolumn{2}{c}{Composite UF1}" in tex
    assert latex_escape("a_b & 5% -> c") == r"a\_b \& 5\% $\rightarrow$ c"
    body = tex[tex.index(r"\midrule"):tex.index(r"\bottomrule")].splitlines()[1:]
    assert len(body) == 2 and all(ln.count(" & ") == 5 and ln.endswith(r"\\") for ln in body)
    assert tex.count("{") == tex.count("}")
    paths = write_table(_table(), tmp_path)
    assert sorted(paths) == ["csv", "md", "tex"]
    assert all(p.is_file() and p.stem == "table2" for p in paths.values())


def test_hardware_by_seed_from_the_fold_infos(tmp_path):
    """A run created on a GPU and resumed on a CPU names each machine with its seeds;
    folds written before the engine recorded a device count as the creating machine."""
    gpu = {"environment": {"device": "cuda", "gpus": ["NVIDIA H200"], "cpus": 16}}

    def fold(seed, name, info):
        path = tmp_path / "folds" / f"seed{seed}" / "casme2" / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(info))

    fold(0, "sub01", {"epochs": 100})  # no device: written by the creating machine
    for seed in (1, 2, 4):
        fold(seed, "sub01", {"device": "cpu (x86_64, 2 cores)"})
    fold(3, "sub01", {"device": "cuda (NVIDIA H100 80GB HBM3)"})
    fold(3, "sub02", {"device": "cpu (x86_64, 2 cores)"})  # resumed elsewhere
    (tmp_path / "config.yaml").write_text(json.dumps(gpu))  # JSON is YAML
    assert describe_run_hardware(tmp_path, [0, 1, 2, 3, 4]) == (
        "NVIDIA H200 (seed 0), CPU (x86_64, 2 cores) (seeds 1-2, 4), "
        "NVIDIA H100 80GB HBM3 + CPU (x86_64, 2 cores) (seed 3)")
    assert describe_run_hardware(tmp_path, [0]) == "NVIDIA H200"
    assert describe_run_hardware(tmp_path, [1, 2]) == "CPU (x86_64, 2 cores)"


# --------------------------------------------------------------------------- figures
def test_row_percent():
    cm = np.array([[3, 1], [0, 0]])
    assert row_percent(cm).tolist() == [[75.0, 25.0], [0.0, 0.0]]
    with pytest.raises(ValueError):
        row_percent(np.zeros((2, 3)))


def test_confusion_figure_axes_text_and_colour_bar(tmp_path):
    classes = ("negative", "positive", "surprise")
    counts = np.array([[8, 1, 1], [2, 6, 2], [0, 1, 3]])
    fig = confusion_figure({"(a) Basic Inception": None, "(b) FR": counts}, classes,
                           "Fig. 3: test", paper={"(b) FR": P.FIG3_CONFUSION["fr"]})
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(panels) == 2 and len(fig.axes) == 3  # two panels and a colour bar
    for ax in panels:
        assert ax.get_xlabel() == "Predicted class" and ax.get_ylabel() == "True class"
        assert [t.get_text() for t in ax.get_xticklabels()] == ["Negative", "Positive",
                                                                "Surprise"]
        assert [t.get_text() for t in ax.get_yticklabels()] == ["Negative", "Positive",
                                                                "Surprise"]
    assert "not yet run" in panels[0].get_title()
    texts = [t.get_text() for t in panels[1].texts]
    expected = 100.0 * counts / counts.sum(axis=1, keepdims=True)
    assert texts[0] == f"{expected[0, 0]:.2f}\n(paper 83.60)"
    assert texts[5] == f"{expected[1, 2]:.2f}\n(paper 4.59)"
    assert fig.get_suptitle() == "Fig. 3: test"
    assert "% of the true class" in fig.axes[2].get_ylabel()
    path = save_figure(fig, tmp_path / "fig3.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tsne_figure_legend_and_titles():
    rng = np.random.default_rng(0)
    xy = rng.normal(size=(12, 2))
    labels = np.array([0] * 5 + [1] * 4 + [2] * 3)
    fig = tsne_figure({"(a) Basic Inception": (xy, labels), "(b) FR": (xy, labels)},
                      ("negative", "positive", "surprise"), "Fig. 4: test")
    assert [ax.get_title() for ax in fig.axes] == ["(a) Basic Inception", "(b) FR"]
    for ax in fig.axes:
        assert ax.get_xlabel() == "t-SNE dimension 1" and ax.get_ylabel() == "t-SNE dimension 2"
        legend = ax.get_legend()
        assert legend.get_title().get_text() == "True class"
        assert [t.get_text() for t in legend.get_texts()] == [
            "Negative (5)", "Positive (4)", "Surprise (3)"]
