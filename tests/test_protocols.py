"""Protocol splitters: LOSO equals LeaveOneGroupOut, CDMER source/target disjoint, the
holdout split subject-disjoint and drawn as Fig. 4 always drew it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import LeaveOneGroupOut

from mefr.data.table import group_key, make_table
from mefr.evaluate.protocols import (
    CDMER_EXPERIMENTS,
    LOSO,
    CrossDatabase,
    Holdout,
    ProtocolError,
    cdmer_experiment,
    protocol_folds,
)


def _table(spec: dict[str, dict[str, int]], seed: int = 0) -> pd.DataFrame:
    """{dataset: {subject: n_clips}} -> a shuffled sample table."""
    rows = [
        {"dataset": ds, "subject": sub, "clip": f"{sub}_{i}", "emotion": "negative"}
        for ds, subs in spec.items()
        for sub, n in subs.items()
        for i in range(n)
    ]
    order = np.random.default_rng(seed).permutation(len(rows))
    return make_table([rows[i] for i in order])


# Subject "s1" exists in three databases: it must be three different LOSO groups.
SPEC = {
    "smic_hs": {"s1": 3, "s2": 2, "s3": 4},
    "smic_vis": {"s1": 2, "s2": 2},
    "smic_nir": {"s1": 2, "s2": 1},
    "casme2": {"sub01": 3, "sub02": 1, "sub03": 2},
    "samm": {"006": 2, "007": 3},
}


@pytest.fixture
def table() -> pd.DataFrame:
    return _table(SPEC)


def test_loso_equals_leave_one_group_out(table: pd.DataFrame) -> None:
    groups = group_key(table).to_numpy()
    ours = list(LOSO().split(table))
    ref = list(LeaveOneGroupOut().split(np.zeros(len(table)), groups=groups))
    assert len(ours) == len(ref) == LOSO().get_n_splits(table) == 3 + 2 + 2 + 3 + 2
    for (a_tr, a_te), (b_tr, b_te) in zip(ours, ref, strict=True):
        np.testing.assert_array_equal(a_tr, b_tr)
        np.testing.assert_array_equal(a_te, b_te)
    # explicit groups give the same splits as the table
    for (a_tr, a_te), (b_tr, b_te) in zip(ours, LOSO().split(np.zeros(len(table)), groups=groups),
                                          strict=True):
        np.testing.assert_array_equal(a_tr, b_tr)
        np.testing.assert_array_equal(a_te, b_te)


@pytest.mark.parametrize("protocol", ["loso", "loso:smic_hs", "loso:casme2"])
def test_loso_folds_hold_out_one_subject_and_test_each_sample_once(
    table: pd.DataFrame, protocol: str
) -> None:
    folds = protocol_folds(table, protocol)
    groups = group_key(table).to_numpy()
    ds = protocol.partition(":")[2]
    rows = np.flatnonzero(table["dataset"].to_numpy() == ds) if ds else np.arange(len(table))
    tested = np.concatenate([f.test_idx for f in folds])
    np.testing.assert_array_equal(np.sort(tested), rows)  # every sample once
    for f in folds:
        assert set(groups[f.test_idx]) == {f.name}
        assert f.name not in set(groups[f.train_idx])
        assert len(f.train_idx) + len(f.test_idx) == len(rows)
        assert set(f.train_idx) <= set(rows)
    assert [f.name for f in folds] == sorted(set(groups[rows]))


def test_cde_is_loso_over_the_composite() -> None:
    t = _table({k: SPEC[k] for k in ("smic_hs", "casme2", "samm")}, seed=1)
    folds = protocol_folds(t, "cde")
    assert len(folds) == 3 + 3 + 2
    assert [f.name for f in folds] == [f.name for f in protocol_folds(t, "loso")]
    assert "casme2/sub01" in [f.name for f in folds]


def test_cde_refuses_other_databases(table: pd.DataFrame) -> None:
    with pytest.raises(ProtocolError, match="smic_nir"):
        protocol_folds(table, "cde")


def test_cdmer_table_10() -> None:
    assert [e.number for e in CDMER_EXPERIMENTS] == list(range(1, 13))
    assert [e.name for e in CDMER_EXPERIMENTS] == [
        "H->V", "V->H", "H->N", "N->H", "V->N", "N->V",
        "C->H", "H->C", "C->V", "V->C", "C->N", "N->C",
    ]
    assert {e.type for e in CDMER_EXPERIMENTS[:6]} == {"Type-I"}
    assert {e.type for e in CDMER_EXPERIMENTS[6:]} == {"Type-II"}
    for e in CDMER_EXPERIMENTS[:6]:
        assert {e.source, e.target} <= {"smic_hs", "smic_vis", "smic_nir"}
    for e in CDMER_EXPERIMENTS[6:]:
        assert "casme2" in (e.source, e.target)
    assert cdmer_experiment("h->n") is cdmer_experiment(3)
    # each ordered pair appears once
    assert len({(e.source, e.target) for e in CDMER_EXPERIMENTS}) == 12


@pytest.mark.parametrize("exp", CDMER_EXPERIMENTS, ids=lambda e: e.name)
def test_cdmer_folds_train_on_source_test_on_target(table: pd.DataFrame, exp) -> None:
    (fold,) = protocol_folds(table, f"cdmer:{exp.number}")
    ds = table["dataset"].to_numpy()
    assert set(ds[fold.train_idx]) == {exp.source}
    assert set(ds[fold.test_idx]) == {exp.target}
    assert not set(fold.train_idx) & set(fold.test_idx)
    assert len(fold.train_idx) == (ds == exp.source).sum()
    assert len(fold.test_idx) == (ds == exp.target).sum()
    assert "/" not in fold.name and ">" not in fold.name


def test_cross_database_with_explicit_groups() -> None:
    ds = np.array(["casme2", "smic_hs", "casme2", "smic_vis"])
    (train, test), = CrossDatabase("casme2", "smic_vis").split(np.zeros(4), groups=ds)
    np.testing.assert_array_equal(train, [0, 2])
    np.testing.assert_array_equal(test, [3])


@pytest.mark.parametrize(
    ("protocol", "message"),
    [
        ("cdmer:13", "unknown CDMER experiment"),
        ("loso:samm2", "no rows of 'samm2'"),
        ("holdout:1.5", "fraction must lie in"),
        ("holdout:0.5:x", r"expected holdout\[:<fraction>"),
        ("holdout:half", r"expected holdout\[:<fraction>"),
        ("split", "unknown protocol"),
        ("cdmer", "unknown protocol"),
    ],
)
def test_bad_protocols_are_named(table: pd.DataFrame, protocol: str, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        protocol_folds(table, protocol)


def test_cdmer_missing_target_is_named() -> None:
    t = _table({"casme2": {"sub01": 2}, "smic_hs": {"s1": 2}})
    with pytest.raises(ProtocolError, match="target database 'smic_vis' has no rows"):
        protocol_folds(t, "cdmer:1")


def test_loso_needs_two_subjects_and_groups() -> None:
    t = _table({"casme2": {"sub01": 3}})
    with pytest.raises(ProtocolError, match="at least two subjects"):
        protocol_folds(t, "loso")
    with pytest.raises(ProtocolError, match="groups"):
        list(LOSO().split(np.zeros(3)))
    with pytest.raises(ProtocolError, match="both"):
        CrossDatabase("casme2", "casme2")


def _old_fig4_draw(groups: np.ndarray, seed: int, fraction: float = 0.5) -> np.ndarray:
    """The test rows Fig. 4 drew before it ran through the runner: the engine's
    inner-validation subjects of a job keyed ``fig4``."""
    from mefr.train.jobs import Job, inner_split

    every = np.arange(len(groups), dtype=np.int64)
    return np.sort(inner_split(Job("fig4", seed, every, every[:0]), groups, fraction)[1])


def test_holdout_is_one_subject_disjoint_fold_drawn_by_its_seed() -> None:
    spec = {"casme2": {f"sub{i:02d}": 1 + i % 3 for i in range(1, 12)},
            "samm": {f"{i:03d}": 2 for i in range(6, 15)}}
    t = _table(spec)
    groups = group_key(t).to_numpy(dtype=object)
    n_subjects = len(set(groups))  # 20
    for seed in range(4):
        (fold,) = protocol_folds(t, f"holdout:0.5:{seed}")
        assert fold.name == "holdout"
        train, test = set(groups[fold.train_idx]), set(groups[fold.test_idx])
        assert not train & test and len(train | test) == n_subjects
        assert len(test) == n_subjects // 2
        np.testing.assert_array_equal(np.sort(np.concatenate([fold.train_idx, fold.test_idx])),
                                      np.arange(len(t)))
        np.testing.assert_array_equal(fold.test_idx, _old_fig4_draw(groups, seed))
        assert Holdout(0.5, seed).test_subjects(groups) == sorted(test)
    folds = {s: protocol_folds(t, f"holdout:0.5:{s}")[0].test_idx.tolist() for s in range(4)}
    assert len({tuple(v) for v in folds.values()}) > 1  # the seed decides the draw
    assert protocol_folds(t, "holdout:0.5:2")[0].test_idx.tolist() == folds[2]  # and only it
    # defaults: fraction 0.5, seed 0
    for text in ("holdout", "holdout:", "holdout:0.5"):
        assert protocol_folds(t, text)[0].test_idx.tolist() == folds[0]
    (quarter,) = protocol_folds(t, "holdout:0.25:1")
    assert len(set(groups[quarter.test_idx])) == 5
    np.testing.assert_array_equal(quarter.test_idx, _old_fig4_draw(groups, 1, 0.25))
    # at least one subject tested and one trained, whatever the fraction
    two = _table({"casme2": {"sub01": 2, "sub02": 3}})
    for fraction in (0.01, 0.99):
        (fold,) = protocol_folds(two, f"holdout:{fraction}")
        assert len(set(group_key(two).iloc[fold.test_idx])) == 1
    with pytest.raises(ProtocolError, match="at least two subjects"):
        protocol_folds(_table({"casme2": {"sub01": 3}}), "holdout")
    # the scikit-learn shape, with explicit groups
    assert Holdout().get_n_splits() == 1
    train, test = next(Holdout(0.5, 3).split(None, groups=groups))
    np.testing.assert_array_equal(test, _old_fig4_draw(groups, 3))


SHARED_FLOW = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "megc2019-cde-flow"


@pytest.mark.real_data
@pytest.mark.skipif(not SHARED_FLOW.is_dir(), reason="../shared/data is absent")
def test_cde_on_the_composite_flow_set_has_table_9_folds() -> None:
    from mefr.data.flowset import load_flowset

    table = load_flowset(SHARED_FLOW).table
    folds = protocol_folds(table, "cde")
    assert len(folds) == 16 + 24 + 28  # subjects of SMIC-HS, CASME II, SAMM (Table 9)
    tested = np.sort(np.concatenate([f.test_idx for f in folds]))
    np.testing.assert_array_equal(tested, np.arange(442))
    assert len(protocol_folds(table, "loso:smic_hs")) == 16


@pytest.mark.real_data
@pytest.mark.skipif(not SHARED_FLOW.is_dir(), reason="../shared/data is absent")
def test_holdout_on_the_composite_tests_34_of_68_subjects() -> None:
    from mefr.data.flowset import load_flowset

    table = load_flowset(SHARED_FLOW).table
    (fold,) = protocol_folds(table, "holdout:0.5:0")
    groups = group_key(table).to_numpy(dtype=object)
    train, test = set(groups[fold.train_idx]), set(groups[fold.test_idx])
    assert len(train) == len(test) == 34 and not train & test
    np.testing.assert_array_equal(fold.test_idx, _old_fig4_draw(groups, 0))
