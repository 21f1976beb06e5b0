"""``mefr reproduce``: protocols end to end on synthetic databases, splits, tables, figures.

Runs use a fake engine (random probabilities seeded by the job, with timing info);
Fig. 4, which needs trained models, trains the real engine for one epoch. Synthetic
databases are tiny (2 subjects x 3 clips each); their features are cached once for the
module.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from mefr.evaluate.protocols import CDMER_EXPERIMENTS
from mefr.evaluate.rundir import RunDir
from mefr.models.registry import model_specs
from mefr.report import targets as T
from mefr.report.build import NO_FOLD_PREDICTIONS
from mefr.report.options import ReproduceError, ReproduceOptions, SyntheticSpec
from mefr.report.reproduce import Reproducer

REPO = Path(__file__).resolve().parents[1]
FLOWSET = REPO.parent / "shared" / "data" / "megc2019-cde-flow"


class FakeEngine:
    """``train_group``'s signature: random probabilities per job, timing info, and a
    record of every job with the LOSO groups of the rows."""

    def __init__(self) -> None:
        self.calls: list[tuple[list, np.ndarray]] = []
        self.models: list[str] = []

    def __call__(self, x, y, jobs, config, num_classes, groups=None, device="auto",
                 on_result=None, progress=True, **kw):
        assert x.shape[1] == len(config.channels)
        self.calls.append((list(jobs), np.asarray(groups, dtype=object)))
        self.models.extend([config.model] * len(jobs))
        probs, info = {}, {}
        for j in jobs:
            p = np.random.default_rng([j.seed, len(j.test_idx)]).dirichlet(
                np.ones(num_classes), size=len(j.test_idx))
            probs[j.key] = p
            info[j.key] = {"group_seconds": 3.0, "group_size": 2}
            if on_result is not None:
                on_result(j.key, p)
        return SimpleNamespace(probs=probs, info=info)

    def jobs(self) -> list[tuple[object, np.ndarray]]:
        return [(j, g) for jobs, g in self.calls for j in jobs]


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> Path:
    from mefr.data.synthetic import SYNTHETIC_DATABASES, write_synthetic_databases

    root = tmp_path_factory.mktemp("reproduce_synthetic")
    write_synthetic_databases(root, databases=SYNTHETIC_DATABASES, subjects=2,
                              clips_per_subject=3, frames=(10, 12), size=(120, 160), seed=5)
    return root


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """One feature cache for the module."""
    return tmp_path_factory.mktemp("reproduce_work")


def _options(tmp_path: Path, root: Path, work: Path, **kw) -> ReproduceOptions:
    base = dict(data="synthetic", epochs=1, results=tmp_path / "results", work=work,
                synthetic=SyntheticSpec(root=root), workers=1, progress=False)
    base.update(kw)
    return ReproduceOptions(**base)


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def test_every_target_is_declared():
    assert set(T.TABLE_SPECS) | {"fig3", "fig4"} == set(T.TARGETS)


def test_run_directory_layout(tmp_path):
    rep = Reproducer(ReproduceOptions(results=tmp_path))
    assert rep.ref("cde", "fr").run_dir == tmp_path / "cde" / "fr"
    assert not rep.ref("cde", "fr").synthetic
    # Dual-Inception needs middle-frame flow: synthetic even with --data real
    dual = rep.ref("cde", "dual_inception")
    assert dual.synthetic and dual.run_dir == tmp_path / "synthetic" / "cde" / "dual_inception"
    # every run trains with mefr's recipe (preset cde) unless --preset says otherwise; the
    # directories of a preset other than the paper's for the experiment carry its name
    assert rep.ref("loso/smic_hs", "fr").run_dir == tmp_path / "loso" / "smic_hs" / "fr-cde"
    cdmer = rep.ref("cdmer/exp03", "fr")
    assert cdmer.synthetic
    assert cdmer.run_dir == tmp_path / "synthetic" / "cdmer" / "exp03" / "fr-cde"
    paper = Reproducer(ReproduceOptions(results=tmp_path, preset="paper_single"))
    assert paper.ref("loso/smic_hs", "fr").run_dir == tmp_path / "loso" / "smic_hs" / "fr"
    assert paper.ref("cde", "fr").run_dir == tmp_path / "cde" / "fr-paper_single"
    # a preset other than the experiment's default and changed epochs are in the name
    other = Reproducer(ReproduceOptions(results=tmp_path, preset="paper_cde", epochs=7))
    assert other.ref("cde", "fr").run_dir.name == "fr-paper_cde-e7"
    assert other.ref("loso/smic_hs", "fr").run_dir.name == "fr-paper_cde-e7"
    same = Reproducer(ReproduceOptions(results=tmp_path, preset="cde", epochs=100))
    assert same.ref("cde", "fr").run_dir.name == "fr"
    small = Reproducer(ReproduceOptions(results=tmp_path,
                                        synthetic=SyntheticSpec(subjects=3, clips=4)))
    assert small.ref("cdmer/exp01", "fr").run_dir.parts[-4] == "s3c4f12-24z180x240r0"
    assert Reproducer(ReproduceOptions(data="synthetic")).ref("cde", "fr").synthetic
    # a row's own preset wins over --preset, and names its directory the same way
    assert rep.ref("cde", "fr").preset == "cde"
    fitted = paper.ref("cde", "fr", preset="paper_adam")
    assert fitted.run_dir == tmp_path / "cde" / "fr-paper_adam" and fitted.preset == "paper_adam"
    assert paper.ref("cde", "fr", preset="cde").run_dir == tmp_path / "cde" / "fr"
    assert other.ref("cde", "fr", preset="cde").run_dir.name == "fr-e7"


def test_report_folder_is_named_after_the_recipe(tmp_path):
    """A table rendered under another preset or epoch count goes beside the default
    report, named like the run directories, never over it."""
    def out(**kw):
        return ReproduceOptions(results=tmp_path, **kw).out_dir

    assert out() == out(preset="cde") == out(preset="cde", epochs=100) == tmp_path / "report"
    assert out(preset="paper_adam") == tmp_path / "report-paper_adam"
    assert out(preset="paper_single") == tmp_path / "report-paper_single"
    assert out(epochs=2) == tmp_path / "report-e2"
    assert out(preset="paper_adam", epochs=2) == tmp_path / "report-paper_adam-e2"
    assert out(data="synthetic", preset="paper_adam") == (
        tmp_path / "synthetic" / "report-paper_adam")
    assert out(preset="paper_adam", out=tmp_path / "x") == tmp_path / "x"


def test_paper_adam_runs_render_table6_beside_the_default_report(tmp_path, capsys):
    """The committed paper_adam runs sit where ``--preset paper_adam`` looks for them:
    Table 6 renders from them without training, into report-paper_adam."""
    from mefr.cli import main

    results = tmp_path / "results"
    for model in ("fr", "basic_inception"):
        src = REPO / "results" / "cde" / f"{model}-paper_adam"
        if not (src / "metrics.json").is_file():
            pytest.skip(f"no committed run {src}")
        dst = results / "cde" / src.name
        dst.mkdir(parents=True)
        for name in ("metrics.json", "config.yaml"):
            shutil.copy(src / name, dst / name)
        # the folds' predictions (not their curves) feed the rows "ensemble of its seeds"
        shutil.copytree(src / "folds", dst / "folds",
                        ignore=shutil.ignore_patterns("*.curves.npz"))
    rc = main(["reproduce", "table6", "--preset", "paper_adam", "--no-train", "--results",
               str(results), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    md = (results / "report-paper_adam" / "table6.md").read_text()
    assert not (results / "report").exists()
    fr = json.loads((results / "cde" / "fr-paper_adam" / "metrics.json").read_text())
    assert f"{fr['mean']['composite']['uf1']:.4f}" in md
    # the ensemble row, against the committed predictions averaged per clip by hand
    pred = pd.read_csv(REPO / "results" / "cde" / "fr-paper_adam" / "predictions.csv")
    probs = [c for c in pred.columns if c.startswith("p_")]
    mean = pred.groupby(["dataset", "subject", "clip", "label"])[probs].mean().reset_index()
    uf1 = f1_score(mean["label"], mean[probs].to_numpy().argmax(1), average="macro")
    (row,) = [line for line in md.splitlines() if line.startswith("| FR, ensemble of its seeds")]
    assert row.split(" | ")[1] == f"{uf1:.4f}"
    assert "Preset: paper_adam" in md and "inner validation" in md


def test_recipes_trains_each_row_with_its_own_preset(tmp_path, synthetic_root, work):
    """``recipes``: FR and Basic Inception under paper_adam and cde, whatever --preset
    says; each run's config holds its own recipe, and the paired difference of one
    network under two recipes has no published value."""
    engine = FakeEngine()
    opts = _options(tmp_path, synthetic_root, work, train_fn=engine, seeds="0-1",
                    preset="paper_single")
    table = Reproducer(opts).table("recipes")
    results = tmp_path / "results" / "synthetic" / f"dir-{opts.synthetic.tag()[4:]}" / "cde"
    lrs = {}
    for run_dir in results.iterdir():
        lrs[run_dir.name] = RunDir(run_dir).config()["train"]["lr"]
    assert lrs == {"fr-paper_adam-e1": 1e-3, "basic_inception-paper_adam-e1": 1e-3,
                   "fr-e1": 1e-4, "basic_inception-e1": 1e-4}
    rows = {r.label: r for r in table.rows}
    a, b = rows["FR (paper_adam)"], rows["FR (cde)"]
    diff = rows["FR (paper_adam) minus FR (cde)"].cells["samm.uar"]
    want = [x - y for x, y in zip(a.cells["samm.uar"].values, b.cells["samm.uar"].values,
                                  strict=True)]
    assert diff.values == pytest.approx(want) and diff.seeds == (0, 1)
    assert diff.paper is None and a.cells["composite.uf1"].paper == 0.7838
    across = rows["FR (paper_adam) minus Basic Inception (paper_adam)"].cells["composite.uf1"]
    assert across.paper == pytest.approx(0.7838 - 0.7360)


def test_committed_recipes_render_from_the_run_directories():
    """The committed paper_adam and cde runs of FR and Basic Inception fill ``recipes``
    without training: each single-seed cell is its run's metrics.json, each ensemble
    cell the macro F1 of the seeds' probabilities averaged per clip (sklearn)."""
    from sklearn.metrics import f1_score

    results = REPO / "results"
    for name in ("fr-paper_adam", "fr", "basic_inception-paper_adam", "basic_inception"):
        if not (results / "cde" / name / "metrics.json").is_file():
            pytest.skip(f"no committed run results/cde/{name}")
    table = Reproducer(ReproduceOptions(results=results, train=False)).table("recipes")
    rows = {r.label: r for r in table.rows}
    fitted = _metrics(results / "cde" / "fr-paper_adam")
    cell = rows["FR (paper_adam)"].cells["casme2.uf1"]
    assert cell.values == tuple(fitted["per_seed"][str(s)]["casme2"]["uf1"]
                                for s in fitted["seeds"])
    pred = pd.read_csv(results / "cde" / "fr" / "predictions.csv", dtype={"subject": str})
    probs = [c for c in pred.columns if c.startswith("p_")]
    clips = pred.groupby(["dataset", "subject", "clip"])
    want = f1_score(clips["label"].first(), clips[probs].mean().to_numpy().argmax(1),
                    average="macro")
    ensemble = rows["FR (cde), ensemble of its seeds"].cells["composite.uf1"]
    assert ensemble.values == (pytest.approx(want),) and ensemble.std is None
    assert ensemble.n == len(_metrics(results / "cde" / "fr")["seeds"]) > 1
    assert any(n.startswith("Preset: paper_adam (") and "fr-paper_adam" in n
               and "fr," not in n for n in table.notes)
    assert any("0.7209" in n for n in table.notes)  # STSTNet's own code, cited
    # how well the cde recipe fits FR: the median of every fold's final training loss
    finals = [json.loads(p.read_text())["final_train_loss"]
              for s in _metrics(results / "cde" / "fr")["seeds"]
              for p in (results / "cde" / "fr" / "folds" / f"seed{s}").rglob("*.json")]
    fit = [n for n in table.notes if n.startswith("FR (cde): training loss")]
    assert fit and f"median {np.median(finals):.3f} over the {len(finals)} folds" in fit[0]


def test_run_status_names_complete_partial_and_extended_runs(tmp_path):
    from mefr.evaluate.rundir import NOT_RUN
    from mefr.report.runs import run_status

    run = tmp_path / "run"
    assert run_status(run) == NOT_RUN
    for seed, folds in ((0, ("s1", "s2", "s3")), (1, ("s1", "s2"))):
        d = run / "folds" / f"seed{seed}" / "casme2"
        d.mkdir(parents=True)
        for f in folds:
            (d / f"{f}.csv").write_text("row,prob_0\n")
            (d / f"{f}.json").write_text("{}")
    assert run_status(run) == "partial (5 fold files)"
    (run / "metrics.json").write_text(json.dumps({"seeds": [0]}))
    assert run_status(run) == "complete, seeds [0]; seed 1 partial (2 fold files)"
    (run / "metrics.json").write_text(json.dumps({"seeds": [0, 1]}))
    assert run_status(run) == "complete, seeds [0, 1]"


def test_cdmer_end_to_end_on_synthetic_databases(tmp_path, synthetic_root, work):
    engine = FakeEngine()
    rep = Reproducer(_options(tmp_path, synthetic_root, work, train_fn=engine,
                              preset="paper_single"))
    paths = rep.reproduce("table4")
    # one job per experiment: source rows only for training, target rows only for testing
    jobs = engine.jobs()
    assert len(jobs) == 6
    for job, groups in jobs:
        exp = next(e for e in CDMER_EXPERIMENTS if job.key.endswith(e.fold_name))
        train_dbs = {g.split("/")[0] for g in groups[job.train_idx]}
        test_dbs = {g.split("/")[0] for g in groups[job.test_idx]}
        assert train_dbs == {exp.source} and test_dbs == {exp.target}
        assert not set(job.train_idx) & set(job.test_idx)
    # the table holds each run's numbers and their average beside the paper's
    df = pd.read_csv(paths["csv"])
    fr = df[df["row"] == "FR"].set_index("column")
    accs = []
    for n in range(7, 13):
        run_dir = tmp_path / "results" / "synthetic" / SyntheticSpec(root=synthetic_root).tag() \
            / "cdmer" / f"exp{n:02d}" / "fr-e1"
        m = _metrics(run_dir)
        assert m["protocol"] == f"cdmer:{n}"
        acc = m["per_seed"]["0"]["composite"]["acc"]
        accs.append(acc)
        assert fr.loc[f"exp{n:02d}.acc", "ours_mean"] == pytest.approx(acc)
        assert fr.loc[f"exp{n:02d}.acc", "run_dir"] == str(run_dir)
        assert fr.loc[f"exp{n:02d}.acc", "data"] == "synthetic"
    assert fr.loc["average.acc", "ours_mean"] == pytest.approx(np.mean(accs))
    assert fr.loc["average.acc", "paper"] == pytest.approx(0.5552)
    md = paths["md"].read_text()
    assert md.splitlines()[0].endswith("(synthetic data)")
    assert "Table 4 of the paper" in md and "sgd lr 0.0005 momentum 0.8" in md


def test_single_database_loso_and_table7_on_synthetic(tmp_path, synthetic_root, work):
    engine = FakeEngine()
    rep = Reproducer(_options(tmp_path, synthetic_root, work, train_fn=engine))
    rep.reproduce("table5")
    jobs = engine.jobs()
    assert jobs
    for job, groups in jobs:  # LOSO: one test subject, never among the training subjects
        test_subjects = set(groups[job.test_idx])
        assert len(test_subjects) == 1
        assert not test_subjects & set(groups[job.train_idx])
        db = job.key.split("/")[1]  # seed0/<dataset>/<subject>
        assert {g.split("/")[0] for g in groups[np.r_[job.train_idx, job.test_idx]]} == {db}
    base = tmp_path / "results" / "synthetic" / SyntheticSpec(root=synthetic_root).tag() / "loso"
    assert _metrics(base / "casme2_5class" / "fr-cde-e1")["class_names"] == [
        "happiness", "surprise", "disgust", "repression", "others"]
    assert _metrics(base / "samm_4class" / "fr-cde-e1")["class_names"] == [
        "negative", "positive", "surprise", "others"]
    assert _metrics(base / "smic_hs" / "fr-cde-e1")["databases"] == ["composite", "smic_hs"]

    # Table 7 reuses the FR runs (no new FR job) and adds Basic Inception's
    before = len(engine.models)
    paths = rep.reproduce("table7")
    assert set(engine.models[:before]) == {"fr"}
    assert engine.models[before:] and set(engine.models[before:]) == {"basic_inception"}
    df = pd.read_csv(paths["csv"]).set_index(["row", "column"])
    expected = {s["num_classes"]: s["parameters"] / 1e6 for s in model_specs((3, 4))
                if s["name"] == "fr" and s.get("detector_units") == 1}
    assert df.loc[("FR", "smic_hs.params_m"), "ours_mean"] == pytest.approx(expected[3])
    assert df.loc[("FR", "samm_4class.params_m"), "ours_mean"] == pytest.approx(expected[4])
    assert df.loc[("FR", "samm_4class.params_m"), "paper"] == pytest.approx(11.4231)
    assert df.loc[("Basic Inception", "casme2_4class.et_s"), "ours_mean"] == pytest.approx(1.5)
    assert df.loc[("FR", "smic_hs.acc"), "ours_mean"] == pytest.approx(
        _metrics(base / "smic_hs" / "fr-cde-e1")["per_seed"]["0"]["composite"]["acc"])


class SlowSeedEngine(FakeEngine):
    """FakeEngine whose folds of seed k take 10 * (k + 1) seconds each."""

    def __call__(self, *args, **kw):
        out = super().__call__(*args, **kw)
        for key in out.info:
            seed = int(key.split("/")[0].removeprefix("seed"))
            out.info[key] = {"group_seconds": 10.0 * (seed + 1), "group_size": 1}
        return out


def test_table7_notes_the_seconds_of_each_seed(tmp_path, synthetic_root, work):
    rep = Reproducer(_options(tmp_path, synthetic_root, work, seeds="0-1",
                              train_fn=SlowSeedEngine()))
    table = rep.table("table7")
    fr = next(r for r in table.rows if r.label == "FR")
    cell = fr.cells["smic_hs.et_s"]
    assert cell.seeds == (0, 1) and cell.values == pytest.approx((10.0, 20.0))
    notes = [n for n in table.notes if n.startswith("ET per seed, FR, SMIC-HS (")]
    assert len(notes) == 1
    assert "seed 0 10.0 s, seed 1 20.0 s" in notes[0]
    assert not [n for n in table.notes if n.startswith("ET per seed, FR, Acc")]


def test_table6_fig3_and_fig4_with_the_real_engine(tmp_path, synthetic_root, work):
    """Tables and Fig. 3 from runs (fake engine); Fig. 4 trains two real models."""
    opts = _options(tmp_path, synthetic_root, work, seeds="0", train_fn=FakeEngine())
    rep = Reproducer(opts)
    t6 = rep.reproduce("table6")
    assert "(synthetic data)" in t6["md"].read_text().splitlines()[0]
    table = rep.table("table6")
    basic, basic_ensemble, fr, fr_ensemble, diff = table.rows
    assert diff.label == "FR minus Basic Inception"
    for single, ensemble in ((basic, basic_ensemble), (fr, fr_ensemble)):
        # an ensemble of the run's one seed is that seed's model
        assert ensemble.label == f"{single.label}, ensemble of its seeds"
        assert ensemble.cells["composite.uf1"].values == pytest.approx(
            single.cells["composite.uf1"].values)
    cell = diff.cells["composite.uf1"]
    want = fr.cells["composite.uf1"].values[0] - basic.cells["composite.uf1"].values[0]
    assert cell.seeds == (0,) and cell.values == pytest.approx((want,))
    assert cell.paper == pytest.approx(0.7838 - 0.7360)
    boot = [n for n in table.notes if "paired bootstrap over the" in n]
    assert len(boot) == 1 and boot[0].startswith("FR minus Basic Inception, composite")
    assert f"UF1 {want:+.4f} [" in boot[0]  # the point estimate is the seed's difference
    f3 = rep.reproduce("fig3")
    assert f3["png"].read_bytes()[:4] == b"\x89PNG"
    f3_csv = pd.read_csv(f3["csv"])
    fr = f3_csv[f3_csv["row"].str.startswith("FR: true")]
    sums = fr.groupby("row")["ours_mean"].sum()
    assert sums.to_numpy() == pytest.approx([100.0] * len(sums))  # rows are % of true class

    f4 = rep.reproduce("fig4")
    assert f4["png"].read_bytes()[:4] == b"\x89PNG"
    run_dir = rep.fig4_dir()
    info = json.loads((run_dir / "info.json").read_text())
    emb = pd.read_csv(run_dir / "embedding.csv", dtype={"subject": str})
    train_subjects = set(info["split"]["training_subject_ids"])
    test_subjects = set(emb["dataset"] + "/" + emb["subject"])
    assert train_subjects and test_subjects and not train_subjects & test_subjects
    assert len(emb) == 2 * info["split"]["test_samples"]
    assert set(emb["model"]) == {"basic_inception", "fr"}
    assert info["models"]["fr"]["feature_dim"] == 1024  # FR's expression-refined feature
    assert re.search(r"; CPU( \(.*\))?\]", f4["md"].read_text().splitlines()[0])  # as tables
    # trained through the runner: one holdout run per network, its weights kept
    assert info["protocol"] == "holdout:0.5:0"
    for model in ("basic_inception", "fr"):
        run = RunDir(run_dir / model)
        assert run.config()["protocol"] == "holdout:0.5:0" and run.metrics() is not None
        fold = run.read_fold(0, "holdout")
        assert set(fold["dataset"] + "/" + fold["subject"]) == test_subjects
        assert fold["pred"].tolist() == emb.loc[emb["model"] == model, "pred"].tolist()
        assert run.weights(0, "holdout")[1]["model"] == model
    # a second call reuses the stored split, features and map
    stamp = (run_dir / "embedding.csv").stat().st_mtime_ns
    Reproducer(opts).reproduce("fig4")
    assert (run_dir / "embedding.csv").stat().st_mtime_ns == stamp
    # ... and refuses one made with other settings
    with pytest.raises(ReproduceError, match="other data, seed, split or training"):
        Reproducer(_options(tmp_path, synthetic_root, work, seeds="1")).fig4()
    # ... and one made under another split (an identity without the holdout protocol)
    info["identity"].pop("protocol")
    (run_dir / "info.json").write_text(json.dumps(info))
    with pytest.raises(ReproduceError, match="split"):
        Reproducer(opts).fig4()


def test_cli_renders_without_training(tmp_path, synthetic_root, capsys):
    from mefr.cli import main

    out = tmp_path / "out"
    argv = ["reproduce", "table6", "--data", "synthetic", "--no-train", "--results",
            str(tmp_path / "results"), "--out", str(out), "--synthetic-dir",
            str(synthetic_root), "--no-progress"]
    assert main(argv) == 2  # the runs it needs are not there
    assert "not finished under" in capsys.readouterr().err and not out.exists()
    rc = main([*argv, "--allow-missing"])
    assert rc == 0
    md = (out / "table6.md").read_text()
    assert "not yet run" in md and "0.7838" in md
    assert sorted(p.suffix for p in out.iterdir()) == [".csv", ".md", ".tex"]


def test_missing_flowset_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("MEFR_FLOWSET", raising=False)
    monkeypatch.chdir(tmp_path)
    rep = Reproducer(ReproduceOptions(results=tmp_path / "r", flowset=tmp_path / "nowhere"))
    with pytest.raises(ReproduceError, match="--flowset PATH, or --data synthetic"):
        rep.reproduce("table6")


def _copy_committed_fr_run(tmp_path: Path) -> tuple[Path, Path]:
    """Copy ``metrics.json`` and ``config.yaml`` of the committed real-data FR run into
    ``tmp_path/results/cde/fr``; skip when the repository has none."""
    src = REPO / "results" / "cde" / "fr"
    if not (src / "metrics.json").is_file():
        pytest.skip("no committed results/cde/fr run")
    dst = tmp_path / "results" / "cde" / "fr"
    dst.mkdir(parents=True)
    for name in ("metrics.json", "config.yaml"):
        shutil.copy(src / name, dst / name)
    return src, dst


def test_committed_real_run_renders_with_its_hardware(tmp_path):
    """Table 6 from a copy of the committed real-data FR run (metrics + config only)."""
    src, dst = _copy_committed_fr_run(tmp_path)
    rep = Reproducer(ReproduceOptions(results=tmp_path / "results", train=False))
    table = rep.table("table6")
    want = json.loads((src / "metrics.json").read_text())
    fr = next(r for r in table.rows if r.label == "FR")
    per_seed = tuple(want["per_seed"][str(s)]["composite"]["uf1"] for s in want["seeds"])
    assert fr.cells["composite.uf1"].values == per_seed
    assert not fr.cells["composite.uf1"].synthetic
    assert "MEGC 2019 composite flow set" in table.source and table.source in table.full_title
    bi = next(r for r in table.rows if r.label == "Basic Inception")
    assert not bi.cells["composite.uf1"].measured
    # without its folds/ the run has nothing to average: the ensemble row says so
    ensemble = next(r for r in table.rows if r.label == "FR, ensemble of its seeds")
    assert ensemble.cells["composite.uf1"].status == NO_FOLD_PREDICTIONS


def test_title_names_each_machine_once_and_notes_say_which_seed(tmp_path):
    """A run whose seeds were trained on different machines: the title lists every
    machine once, the Hardware note says which seeds ran where (from the fold infos)."""
    src, dst = _copy_committed_fr_run(tmp_path)
    devices: dict[int, set[str]] = {}
    for info in sorted(src.glob("folds/seed*/*/*.json")):
        seed = int(info.parent.parent.name.removeprefix("seed"))
        (dst / info.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(info, dst / info.relative_to(src))
        devices.setdefault(seed, set()).add(json.loads(info.read_text()).get("device"))
    if len({frozenset(d) for d in devices.values()}) < 2:
        pytest.skip("every seed of the committed run was trained on the same machine")
    rep = Reproducer(ReproduceOptions(results=tmp_path / "results", train=False))
    table = rep.table("table6")
    hardware = table.source.rsplit("; ", 1)[1]
    cpu = "CPU (x86_64, 2 cores)"
    cpu_seeds = sorted(s for s, d in devices.items() if d == {"cpu (x86_64, 2 cores)"})
    assert hardware.count(cpu) == 1
    assert "seed" not in hardware
    hw_note = next(n for n in table.notes if n.startswith("Hardware:"))
    assert f"{cpu} (seed{'s' if len(cpu_seeds) > 1 else ''} " in hw_note


@pytest.mark.skipif(not FLOWSET.is_dir(), reason="the composite flow set (../shared) is absent")
def test_smic_hs_alone_on_the_real_flowset(tmp_path):
    engine = FakeEngine()
    rep = Reproducer(ReproduceOptions(results=tmp_path, flowset=FLOWSET, epochs=1,
                                      progress=False, train_fn=engine))
    out = rep.outcome(rep.ref("loso/smic_hs", "fr"))
    jobs = engine.jobs()
    assert len(jobs) == 16  # the 16 SMIC-HS subjects
    assert sum(len(j.test_idx) for j, _ in jobs) == 164
    for job, groups in jobs:
        assert {g.split("/")[0] for g in groups[job.train_idx]} == {"smic_hs"}
        assert not set(groups[job.test_idx]) & set(groups[job.train_idx])
    assert out.metrics["databases"] == ["composite", "smic_hs"]
    assert out.config["data"]["n"] == 442


def test_fig4_split_is_the_holdout_protocol_with_the_draw_it_always_had():
    """Fig. 4 trains through the runner under ``holdout:0.5:<seed>``, whose test subjects
    are those the engine's inner split held out for a job keyed ``fig4`` (Fig. 4's draw
    before the runner)."""
    from mefr.data.table import make_table
    from mefr.evaluate.protocols import protocol_folds
    from mefr.report.fig4 import fig4_protocol
    from mefr.train.jobs import Job, inner_split

    table = make_table([{"dataset": "casme2", "subject": f"s{i:02d}", "clip": f"c{c}",
                         "emotion": "negative"} for i in range(10) for c in range(2)])
    groups = np.repeat([f"casme2/s{i:02d}" for i in range(10)], 2).astype(object)
    assert fig4_protocol(3) == "holdout:0.5:3"
    (fold,) = protocol_folds(table, fig4_protocol(3))
    every = np.arange(len(groups))
    fit, held = inner_split(Job("fig4", 3, every, every[:0]), groups, 0.5)
    assert fold.test_idx.tolist() == sorted(held.tolist())
    assert fold.train_idx.tolist() == sorted(fit.tolist())
