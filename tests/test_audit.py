"""mefr audit: honest and LEAKY selections of a run, against independent computations."""

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score

from mefr.data.flowset import FlowSet
from mefr.evaluate.audit import (
    LEAKY,
    AuditError,
    audit_markdown,
    audit_run,
    format_loss,
    reference_position,
)
from mefr.evaluate.runner import run_protocol
from mefr.evaluate.selection import (
    FoldRecord,
    best_epoch_per_subject,
    selection_under_shuffled_labels,
)
from mefr.train.config import TrainConfig

EPOCHS, K = 6, 3
CLASSES = ("negative", "positive", "surprise")


def _features(n_subjects=6, per=5, seed=0):
    rng = np.random.default_rng(seed)
    rows = [{"dataset": ("casme2", "samm", "smic_hs")[s % 3], "subject": f"{s:02d}",
             "clip": f"c{c}", "label": int(rng.integers(0, K))}
            for s in range(n_subjects) for c in range(per)]
    table = pd.DataFrame(rows)
    x = rng.uniform(0, 1, (len(table), 2, 4, 4)).astype(np.float32)
    return FlowSet(table=table, x=x, channels=("u", "v"), class_names=CLASSES)


class CurveEngine:
    """Reports random learning curves; the evaluated model is the last epoch's (or a
    fixed 'inner-validation' epoch)."""

    def __init__(self, evaluated_epoch=None):
        self.evaluated_epoch = evaluated_epoch

    def __call__(self, x, y, jobs, config, num_classes, groups=None, device="auto",
                 on_result=None, progress=True, curves=False):
        probs = {}
        for job in jobs:
            rng = np.random.default_rng(abs(hash(job.key)) % 2**32)
            logits = rng.normal(size=(EPOCHS, len(job.test_idx), num_classes))
            curve = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
            curve = curve.astype(np.float16)
            e = self.evaluated_epoch or EPOCHS
            p = curve[e - 1].astype(np.float64)
            p /= p.sum(-1, keepdims=True)
            info = {"evaluated_epoch": e}
            if curves:
                info["curves"] = {"test": curve,
                                  "train_loss": np.linspace(1, rng.uniform(0.05, 0.5), EPOCHS),
                                  "inner_val": np.zeros((EPOCHS, 0, num_classes), np.float16),
                                  "inner_val_index": np.zeros(0, np.int64)}
            probs[job.key] = p
            on_result(job.key, p, info)
        return SimpleNamespace(probs=probs, info={})


def _run(tmp_path, seeds="0-2", **cfg):
    config = TrainConfig(epochs=EPOCHS, **cfg)
    return run_protocol(_features(), "cde", config, seeds, tmp_path / "run",
                        train_fn=CurveEngine(3 if cfg else None), progress=False)


def _curves_frame(run_dir: Path, seed: int) -> tuple[np.ndarray, pd.DataFrame]:
    """Independently: every fold's curves of a seed, concatenated in fold-file order."""
    frames, curves = [], []
    for csv in sorted((run_dir / "folds" / f"seed{seed}").rglob("*.csv")):
        frames.append(pd.read_csv(csv, dtype={"subject": str}))
        with np.load(csv.with_name(csv.stem + ".curves.npz")) as z:
            curves.append(z["test"].astype(np.float32))
    return np.concatenate(curves, axis=1), pd.concat(frames, ignore_index=True)


def test_each_selection_matches_an_independent_computation(tmp_path):
    res = _run(tmp_path)
    audit = audit_run(res.run_dir)
    assert audit.seeds == (0, 1, 2)
    last, best_protocol, per_subject_acc = [], [], []
    for s in audit.seeds:
        curve, frame = _curves_frame(res.run_dir, s)
        y = frame["label"].to_numpy()
        by_epoch = [f1_score(y, curve[e].argmax(-1), average="macro") for e in range(EPOCHS)]
        last.append(by_epoch[-1])
        best_protocol.append(max(by_epoch))
        pred = np.empty(len(y), dtype=int)
        for _, part in frame.groupby("subject"):
            rows = part.index.to_numpy()
            accs = [(curve[e, rows].argmax(-1) == y[rows]).mean() for e in range(EPOCHS)]
            pred[rows] = curve[int(np.argmax(accs)), rows].argmax(-1)
        per_subject_acc.append((accuracy_score(y, pred), f1_score(y, pred, average="macro")))
        np.testing.assert_allclose(audit.uf1_by_epoch[list(audit.seeds).index(s)], by_epoch)
    assert audit.cell("last epoch")[0] == pytest.approx(np.mean(last))
    assert audit.cell("last epoch")[1] == pytest.approx(np.std(last, ddof=1))
    # the last epoch is what the run evaluated, so its row is the run's own metrics
    assert audit.cell("last epoch")[0] == pytest.approx(res.metrics["mean"]["composite"]["uf1"])
    assert audit.cell("best epoch for the protocol")[0] == pytest.approx(np.mean(best_protocol))
    acc = audit.cell("best epoch per subject, test accuracy", metric="acc")[0]
    assert acc == pytest.approx(np.mean([a for a, _ in per_subject_acc]))
    # choosing per test subject can only raise the pooled accuracy over any single epoch
    assert acc >= audit.cell("last epoch", metric="acc")[0]
    kinds = audit.scores.drop_duplicates("selection").set_index("selection")["kind"]
    assert kinds["best epoch per subject, test loss"] == LEAKY
    assert kinds["last epoch"] == "honest" and "inner validation" not in kinds


def test_the_ensemble_averages_the_seeds_probabilities(tmp_path):
    res = _run(tmp_path)
    audit = audit_run(res.run_dir)
    pred = pd.read_csv(res.run_dir / "predictions.csv")
    p = pred.groupby(["dataset", "subject", "clip"])[[f"p_{c}" for c in CLASSES]].mean()
    y = pred.groupby(["dataset", "subject", "clip"])["label"].first()
    want = f1_score(y, p.to_numpy().argmax(1), average="macro")
    value, std = audit.cell("ensemble of 3 seeds")
    assert value == pytest.approx(want) and std is None


def test_inner_validation_runs_get_their_own_honest_row(tmp_path):
    res = _run(tmp_path, seeds="0", select_epoch_by="inner_val")
    audit = audit_run(res.run_dir)
    curve, frame = _curves_frame(res.run_dir, 0)
    want = f1_score(frame["label"], curve[2].argmax(-1), average="macro")
    assert audit.cell("inner validation")[0] == pytest.approx(want)
    assert audit.epochs["inner validation"] == "3"
    md = audit.markdown()
    assert "**LEAKY**" in md and "| inner validation | honest | 3 |" in md
    # one seed has no ensemble: it would repeat the evaluated model's row
    assert not audit.scores["selection"].str.startswith("ensemble").any()


def test_a_run_without_curves_is_refused_with_a_reason(tmp_path):
    config = TrainConfig(epochs=EPOCHS)
    run_protocol(_features(), "cde", config, "0", tmp_path / "run", train_fn=CurveEngine(),
                 progress=False, curves=False)
    with pytest.raises(AuditError, match="no complete seed with learning curves"), \
            pytest.warns(UserWarning, match="no learning curves"):
        audit_run(tmp_path / "run")


def test_best_epoch_per_subject_breaks_ties_to_the_earliest_epoch():
    probs = np.array([[[0.6, 0.4]], [[0.9, 0.1]], [[0.7, 0.3]]])
    assert best_epoch_per_subject(probs, np.array([0]), "acc") == 0
    assert best_epoch_per_subject(probs, np.array([0]), "loss") == 1


def test_mefr_audit_writes_the_table_json_and_figure(tmp_path, capsys):
    from mefr.cli import main

    res = _run(tmp_path)
    out = tmp_path / "audit"
    assert main(["audit", str(res.run_dir), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "**LEAKY**" in printed and "ensemble of 3 seeds" in printed
    assert (out / "audit.png").stat().st_size > 10_000
    assert (out / "audit_run.json").is_file()
    # no curves: a message, not a traceback
    bare = tmp_path / "bare"
    run_protocol(_features(), "cde", TrainConfig(epochs=EPOCHS), "0", bare,
                 train_fn=CurveEngine(), progress=False, curves=False)
    with pytest.warns(UserWarning):
        assert main(["audit", str(bare), "--out", str(out)]) == 2
    assert "no complete seed with learning curves" in capsys.readouterr().err


def test_the_paper_reference_of_fr_is_table_2():
    from mefr.report.audit_report import paper_reference

    ref = paper_reference("fr")
    assert ref["uf1"] == 0.7838 and ref["uar"] == 0.7832 and ref["samm_uf1"] == 0.7372
    assert paper_reference("basic_inception") == {"uf1": 0.7360, "uar": 0.7391}
    assert paper_reference("fr", "loso:smic_hs") is None


def _two_networks(tmp_path, seeds_b):
    """FR on seeds 0-2 and Basic Inception on ``seeds_b``, same clips, other predictions."""
    feats = _features()
    a = run_protocol(feats, "cde", TrainConfig(epochs=EPOCHS), "0-2", tmp_path / "a",
                     train_fn=CurveEngine(), progress=False, curves=False)
    b = run_protocol(feats, "cde", TrainConfig(epochs=EPOCHS, model="basic_inception"), seeds_b,
                     tmp_path / "b", train_fn=CurveEngine(2), progress=False, curves=False)
    return a, b


def test_an_ensemble_of_runs_weighs_each_network_equally(tmp_path):
    from mefr.evaluate.ensemble import ensemble_of_runs

    a, b = _two_networks(tmp_path, "5")
    cols = [f"p_{c}" for c in CLASSES]
    keys = ["dataset", "subject", "clip"]
    pa = a.predictions.groupby(keys)[cols].mean()
    pb = b.predictions.groupby(keys)[cols].mean()
    y = a.predictions.groupby(keys)["label"].first()
    mean = (pa.to_numpy() + pb.loc[pa.index].to_numpy()) / 2
    result = ensemble_of_runs([a.run_dir, b.run_dir])
    assert result.scores["composite"].uf1 == pytest.approx(
        f1_score(y, mean.argmax(1), average="macro"))
    assert result.members[0]["composite"]["uf1"][0] == pytest.approx(
        a.metrics["mean"]["composite"]["uf1"])
    assert result.seeds == ((0, 1, 2), (5,))
    assert "ensemble of 2 networks" in result.markdown()
    other = _features(n_subjects=4)
    c = run_protocol(other, "cde", TrainConfig(epochs=EPOCHS), "0", tmp_path / "c",
                     train_fn=CurveEngine(), progress=False, curves=False)
    with pytest.raises(AuditError, match="scored other clips"):
        ensemble_of_runs([a.run_dir, c.run_dir])


def test_the_published_figure_is_placed_among_the_readings(tmp_path):
    """The sentence under the table says where the paper's number falls: within the
    honest readings, above them and inside, above or below the LEAKY range."""
    audit = audit_run(_run(tmp_path).run_dir)
    assert reference_position(audit) is None  # no published figure given
    readings = {"last epoch": ("honest", 0.60), "ensemble of 3 seeds": ("honest", 0.65),
                "best epoch for the protocol": (LEAKY, 0.70),
                "best epoch per subject, test accuracy": (LEAKY, 0.80)}
    scores = pd.DataFrame([{"selection": sel, "kind": kind, "database": db, "metric": m,
                            "mean": v + (0 if (db, m) == ("composite", "uf1") else 0.5),
                            "std": np.nan, "seeds": 3}
                           for sel, (kind, v) in readings.items()
                           for db in ("composite", "samm") for m in ("uf1", "uar", "acc")])
    audit = replace(audit, scores=scores)

    def where(value):
        return reference_position(replace(audit, reference={"uf1": value}))

    assert where(0.65) == ("The published composite UF1 0.6500 lies within the honest "
                           "readings' reach (best honest 0.6500).")
    assert where(0.75) == ("The published composite UF1 0.7500 lies above every honest "
                           "reading (best 0.6500) and inside the LEAKY range (0.7000 to "
                           "0.8000).")
    assert where(0.90).endswith("above every LEAKY one too (up to 0.8000).")
    assert where(0.68).endswith("below every LEAKY one (from 0.7000).")
    assert where(0.75) in audit_markdown(replace(audit, reference={"uf1": 0.75}))


def test_an_ensemble_leaves_out_a_seed_still_being_trained(tmp_path):
    """A run whose next seed has only some folds (training in progress) still gives the
    ensemble of its complete seeds, with a warning, not an error."""
    from mefr.evaluate.ensemble import ensemble_of_runs

    run_dir = _run(tmp_path, seeds="0-2").run_dir
    for f in sorted((run_dir / "folds" / "seed2").rglob("*.csv"))[:2]:
        f.unlink()
    with pytest.warns(UserWarning, match=r"seeds \[2\] are incomplete"):
        result = ensemble_of_runs([run_dir])
    assert result.seeds == ((0, 1),)
    pred = pd.read_csv(run_dir / "predictions.csv")
    pred = pred[pred["seed"] < 2]
    p = pred.groupby(["dataset", "subject", "clip"])[[f"p_{c}" for c in CLASSES]].mean()
    y = pred.groupby(["dataset", "subject", "clip"])["label"].first()
    want = f1_score(y, p.to_numpy().argmax(1), average="macro")
    assert result.scores["composite"].uf1 == pytest.approx(want)


def _records(n_epochs, per_subject=(3, 4, 5, 2), folds=2, seed=0, constant=False):
    """Folds of random learning curves, each with a few subjects."""
    rng = np.random.default_rng(seed)
    recs = []
    for f in range(folds):
        subjects = np.repeat([f"f{f}s{i}" for i in range(len(per_subject))], per_subject)
        n = len(subjects)
        test = rng.dirichlet(np.ones(K), size=(n_epochs, n))
        if constant:
            test = np.repeat(test[:1], n_epochs, axis=0)
        recs.append(FoldRecord(seed=0, fold=f"f{f}", index=np.arange(n),
                               dataset=np.array([("casme2", "samm")[f % 2]] * n),
                               subject=subjects,
                               label=rng.integers(0, K, n), evaluated=test[-1],
                               evaluated_epoch=None, test=test, train_loss=None))
    return recs


def test_the_shuffled_label_selection_matches_an_independent_computation():
    recs = _records(n_epochs=8)
    got = selection_under_shuffled_labels(recs, K, draws=3, seed=5)
    rng = np.random.default_rng(5)
    labels = np.concatenate([r.label for r in recs])
    for d in range(3):
        shuffled = rng.permutation(labels)
        start, picked, last = 0, [], []
        for r in recs:
            lab = shuffled[start:start + len(r.label)]
            start += len(r.label)
            for subject in dict.fromkeys(r.subject):
                rows = np.flatnonzero(r.subject == subject)
                accs = [accuracy_score(lab[rows], r.test[e, rows].argmax(-1))
                        for e in range(r.test.shape[0])]
                picked.extend(r.test[int(np.argmax(accs)), rows].argmax(-1))
            last.extend(r.test[-1].argmax(-1))
        datasets = np.concatenate([r.dataset for r in recs])
        for name, pred in (("per subject", picked), ("last epoch", last)):
            expected = f1_score(shuffled, pred, average="macro", labels=list(range(K)))
            assert got[name]["composite"][d] == pytest.approx(expected), (name, d)
            for db in set(datasets):  # a database's score: the same predictions, its clips
                m = datasets == db
                want = f1_score(shuffled[m], np.asarray(pred)[m], average="macro",
                                labels=sorted(set(shuffled[m]) | set(np.asarray(pred)[m])))
                assert got[name][db][d] == pytest.approx(want), (name, db, d)


def test_the_selection_adds_nothing_when_every_epoch_predicts_the_same():
    got = selection_under_shuffled_labels(_records(n_epochs=8, constant=True), K, draws=4)
    for db in got["last epoch"]:
        np.testing.assert_allclose(got["per subject"][db], got["last epoch"][db])


def test_choosing_among_more_epochs_on_shuffled_labels_adds_more():
    few = selection_under_shuffled_labels(_records(n_epochs=2, folds=6), K, draws=20)
    many = selection_under_shuffled_labels(_records(n_epochs=60, folds=6), K, draws=20)
    gain = {n: r["per subject"]["composite"].mean() - r["last epoch"]["composite"].mean()
            for n, r in (("few", few), ("many", many))}
    assert 0 < gain["few"] < gain["many"]


def test_the_audit_reports_the_final_training_loss_of_every_fold(tmp_path):
    res = _run(tmp_path)
    audit = audit_run(res.run_dir, shuffled_draws=0)
    finals = {s: [] for s in audit.seeds}
    for s in audit.seeds:
        for npz in sorted((res.run_dir / "folds" / f"seed{s}").rglob("*.curves.npz")):
            with np.load(npz) as z:
                finals[s].append(float(z["train_loss"][-1]))
    overall, per_seed = audit.final_train_loss()
    assert overall == pytest.approx(np.median(sum(finals.values(), [])))
    np.testing.assert_allclose(per_seed, [np.median(finals[s]) for s in audit.seeds])
    n = sum(map(len, finals.values()))
    assert f"median {format_loss(overall)} over the {n} outer folds" in audit.markdown()


def test_the_audit_measures_the_selection_against_shuffled_labels(tmp_path):
    from mefr.evaluate.audit import read_audit_records

    res = _run(tmp_path)
    audit = audit_run(res.run_dir, shuffled_draws=4)
    _, records = read_audit_records(res.run_dir)
    for i, s in enumerate(audit.seeds):
        recs = sorted((r for r in records if r.seed == s), key=lambda r: r.fold)
        want = selection_under_shuffled_labels(recs, K, draws=4, seed=s)
        for name, by_db in want.items():
            for db, values in by_db.items():
                assert audit.shuffled[name][db][i] == pytest.approx(values.mean())
    picked = np.mean(audit.shuffled["per subject"]["composite"])
    assert f"scores composite UF1 {picked:.4f}" in audit.markdown()
    assert "shuffled" not in audit_run(res.run_dir, shuffled_draws=0).markdown()


def test_a_fitted_networks_loss_does_not_read_zero():
    assert format_loss(0.04512) == "0.045"
    assert format_loss(0.00032) == "3.2e-04"
    assert format_loss(0.0) == "0.000"


def test_an_ensemble_of_networks_also_pairs_one_model_of_each_by_seed(tmp_path):
    from mefr.evaluate.ensemble import ensemble_of_runs

    a, b = _two_networks(tmp_path, "1-3")
    cols, keys = [f"p_{c}" for c in CLASSES], ["dataset", "subject", "clip"]
    scores = []
    for s in (1, 2):  # the seeds both runs have
        pa = a.predictions[a.predictions["seed"] == s].set_index(keys).sort_index()
        pb = b.predictions[b.predictions["seed"] == s].set_index(keys).loc[pa.index]
        mean = (pa[cols].to_numpy() + pb[cols].to_numpy()) / 2
        scores.append(f1_score(pa["label"], mean.argmax(1), average="macro"))
    result = ensemble_of_runs([a.run_dir, b.run_dir])
    assert result.paired_seeds == (1, 2)
    mean, std = result.paired["composite"]["uf1"]
    assert mean == pytest.approx(np.mean(scores)) and std == pytest.approx(np.std(scores, ddof=1))
    assert "one model of each network, paired by seed" in result.markdown()
    assert ensemble_of_runs([a.run_dir]).paired is None  # one network: nothing to pair


def test_an_ensemble_can_keep_the_same_seeds_of_every_run(tmp_path, capsys):
    """``seeds=`` (``mefr ensemble --seeds``) averages only those seeds of each run, so
    runs with different numbers of seeds are compared member for member; a seed that a
    run has not finished is a one-line error naming the run."""
    from mefr.cli import main
    from mefr.evaluate.ensemble import ensemble_of_runs

    a, b = _two_networks(tmp_path, "1-3")
    cols, keys = [f"p_{c}" for c in CLASSES], ["dataset", "subject", "clip"]
    kept = [1, 2]
    pa = a.predictions[a.predictions["seed"].isin(kept)].groupby(keys)[cols].mean()
    pb = b.predictions[b.predictions["seed"].isin(kept)].groupby(keys)[cols].mean()
    y = a.predictions.groupby(keys)["label"].first().loc[pa.index]
    mean = (pa.to_numpy() + pb.loc[pa.index].to_numpy()) / 2
    result = ensemble_of_runs([a.run_dir, b.run_dir], seeds=kept)
    assert result.seeds == ((1, 2), (1, 2))
    assert result.scores["composite"].uf1 == pytest.approx(
        f1_score(y, mean.argmax(1), average="macro"))
    every = ensemble_of_runs([a.run_dir, b.run_dir])
    assert every.seeds == ((0, 1, 2), (1, 2, 3))
    with pytest.raises(AuditError, match=r"seeds \[3\] asked for are not finished"):
        ensemble_of_runs([a.run_dir, b.run_dir], seeds=[1, 3])
    with pytest.raises(AuditError, match="none asked for"):
        ensemble_of_runs([a.run_dir], seeds=[])

    out = tmp_path / "ens.md"
    assert main(["ensemble", str(a.run_dir), str(b.run_dir), "--seeds", "1-2",
                 "--out", str(out)]) == 0
    assert f"{result.scores['composite'].uf1:.4f}" in out.read_text()
    capsys.readouterr()
    assert main(["ensemble", str(a.run_dir), str(b.run_dir), "--seeds", "0-3"]) != 0
    err = capsys.readouterr().err
    assert "not finished" in err and str(a.run_dir) in err and "Traceback" not in err


def test_an_ensemble_scores_every_choice_of_k_seeds_per_run(tmp_path, capsys, monkeypatch):
    """``subset_size=K`` (``mefr ensemble --subsets K``): the ensemble of every choice of K
    seeds from each run, mean ± std and range over the choices, against pandas and
    sklearn; K=1 of one run is its single seeds, K=all is the plain ensemble."""
    import itertools

    from mefr.cli import main
    from mefr.evaluate import ensemble as ens

    a, b = _two_networks(tmp_path, "1-3")
    cols, keys = [f"p_{c}" for c in CLASSES], ["dataset", "subject", "clip"]

    def probs(pred, seeds):
        return pred[pred["seed"].isin(seeds)].groupby(keys)[cols].mean()

    y = a.predictions.groupby(keys)["label"].first()
    scores = []
    for ca, cb in itertools.product(itertools.combinations((0, 1, 2), 2),
                                    itertools.combinations((1, 2, 3), 2)):
        mean = (probs(a.predictions, ca).to_numpy()
                + probs(b.predictions, cb).loc[y.index].to_numpy()) / 2
        scores.append(f1_score(y, mean.argmax(1), average="macro"))
    sub = ens.ensemble_of_runs([a.run_dir, b.run_dir], subset_size=2).subsets
    assert (sub.size, sub.scored, sub.possible) == (2, 9, 9)
    mean, std = sub.scores["composite"]["uf1"]
    assert mean == pytest.approx(np.mean(scores)) and std == pytest.approx(np.std(scores, ddof=1))
    assert sub.ranges["composite"]["uf1"] == pytest.approx((min(scores), max(scores)))

    single = ens.ensemble_of_runs([a.run_dir], subset_size=1)
    assert single.subsets.scores["composite"]["uf1"] == pytest.approx(
        single.members[0]["composite"]["uf1"])
    whole = ens.ensemble_of_runs([a.run_dir], subset_size=3)
    assert whole.subsets.scored == 1
    assert whole.subsets.scores["composite"]["uf1"][0] == pytest.approx(
        whole.scores["composite"].uf1)
    with pytest.raises(AuditError, match="fewer than the subset size 4"):
        ens.ensemble_of_runs([a.run_dir], subset_size=4)

    monkeypatch.setattr(ens, "MAX_SUBSETS", 4)  # more choices than that: drawn at random
    drawn = ens.ensemble_of_runs([a.run_dir, b.run_dir], subset_size=2).subsets
    assert (drawn.scored, drawn.possible) == (4, 9)
    low, high = drawn.ranges["composite"]["uf1"]
    assert min(scores) - 1e-12 <= low <= high <= max(scores) + 1e-12

    assert main(["ensemble", str(a.run_dir), str(b.run_dir), "--subsets", "2"]) == 0
    out = capsys.readouterr().out
    assert "ensembles of 2 seeds per network, over 4 choices" in out
    assert "4 choices of 2 of each run's seeds above, drawn at random from the 9 possible" in out
    assert main(["ensemble", str(a.run_dir), "--subsets", "5"]) != 0
    err = capsys.readouterr().err
    assert "fewer than the subset size" in err and "Traceback" not in err
