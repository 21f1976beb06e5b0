"""Evaluation protocols as scikit-learn style splitters over a sample table.

A splitter has ``split(X, y=None, groups=None)`` yielding ``(train_idx, test_idx)``
(positional int64 indices) and ``get_n_splits(...)``, like scikit-learn's. ``X`` may be
any array-like of N rows; when it is a sample table (see :mod:`mefr.data.table`) the
groups are taken from it, so ``LOSO().split(table)`` just works.

Protocols of the paper (Section 4.2):

* **LOSO** (leave one subject out): one fold per subject, the group being
  ``group_key(table) = "{dataset}/{subject}"``. It is scikit-learn's
  ``LeaveOneGroupOut`` with those groups. Used for CDE (the MEGC 2019 composite of
  SMIC-HS, CASME II and SAMM, Table 9) and for the single-database experiments
  (SMIC-HS 3 classes, CASME II 5 and 4 classes, SAMM 4 classes; Tables 12-13).
* **CrossDatabase** (CDMER, Table 10): train on all of a source database, test on all
  of a target database; :data:`CDMER_EXPERIMENTS` lists the paper's 12 experiments.
* **Holdout** (Fig. 4): one subject-disjoint split, a share of the subjects drawn with
  a seed tested and the others trained (``holdout:0.5`` is the paper's half/half split).

:func:`protocol_folds` turns a protocol name into named :class:`Fold` objects,
:func:`parse_seeds` a seed list into seeds, and :func:`build_jobs` folds x seeds into
the training engine's jobs.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.model_selection import LeaveOneGroupOut

from mefr.data.table import DATASETS, group_key

if TYPE_CHECKING:
    from mefr.train.jobs import Job

#: The databases of the MEGC 2019 composite (CDE protocol, Table 9).
CDE_DATASETS: tuple[str, ...] = ("smic_hs", "casme2", "samm")


class ProtocolError(ValueError):
    """A protocol name or the table it is applied to is unusable."""


Split = tuple[np.ndarray, np.ndarray]


def _n_rows(X: Any) -> int:
    if X is None:
        raise ProtocolError("X is required (an array-like or a sample table)")
    return len(X)


def _table_column(X: Any, column: str, what: str) -> np.ndarray:
    if isinstance(X, pd.DataFrame) and column in X.columns:
        return X[column].astype(str).to_numpy(dtype=object)
    raise ProtocolError(
        f"{what}: pass groups=..., or X as a sample table with a {column!r} column"
    )


def _subjects(X: Any, groups: Any, who: str) -> np.ndarray:
    """The subject group of each row: ``groups``, or ``group_key(X)`` of a sample table."""
    if groups is None:
        if isinstance(X, pd.DataFrame) and {"dataset", "subject"} <= set(X.columns):
            return group_key(X).to_numpy(dtype=object)
        raise ProtocolError(
            f"{who} needs groups=... or X as a sample table with 'dataset' and 'subject'"
        )
    g = np.asarray(groups, dtype=object)
    n = _n_rows(X) if X is not None else g.size
    if g.ndim != 1 or g.size != n:
        raise ProtocolError(f"groups has shape {g.shape}, expected ({n},)")
    return g


class LOSO:
    """Leave one subject out: one fold per group, every sample tested exactly once.

    ``groups`` are the LOSO groups of the rows; when omitted and ``X`` is a sample
    table, they are ``group_key(X)`` (``"{dataset}/{subject}"``). Folds come in the
    sorted order of the groups, exactly as ``sklearn.model_selection.LeaveOneGroupOut``.
    """

    def _groups(self, X: Any, groups: Any) -> np.ndarray:
        return _subjects(X, groups, "LOSO")

    def group_names(self, X: Any = None, y: Any = None, groups: Any = None) -> list[str]:
        """The group held out by each fold, in the order :meth:`split` yields them."""
        return [str(g) for g in np.unique(self._groups(X, groups).astype(str))]

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """The number of folds (= distinct groups)."""
        return len(self.group_names(X, y, groups))

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[Split]:
        """Yield ``(train_idx, test_idx)`` per group; needs at least two groups."""
        g = self._groups(X, groups).astype(str)
        if np.unique(g).size < 2:
            raise ProtocolError(
                f"LOSO needs at least two subjects, got {np.unique(g).tolist()}"
            )
        for train, test in LeaveOneGroupOut().split(np.zeros((g.size, 1)), groups=g):
            yield train.astype(np.int64), test.astype(np.int64)


class CrossDatabase:
    """Train on every sample of ``source``, test on every sample of ``target`` (CDMER).

    ``groups`` are the database names of the rows; when omitted and ``X`` is a sample
    table, its ``dataset`` column. One split.
    """

    def __init__(self, source: str, target: str) -> None:
        for name in (source, target):
            if name not in DATASETS:
                raise ProtocolError(f"unknown database {name!r}; known: {DATASETS}")
        if source == target:
            raise ProtocolError(f"source and target are both {source!r}")
        self.source = source
        self.target = target

    def __repr__(self) -> str:
        return f"CrossDatabase(source={self.source!r}, target={self.target!r})"

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """Always 1."""
        return 1

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[Split]:
        """Yield the single ``(source rows, target rows)`` split."""
        if groups is None:
            ds = _table_column(X, "dataset", "CrossDatabase needs the database of each row")
        else:
            ds = np.asarray(groups, dtype=object).astype(str)
            if ds.ndim != 1 or (X is not None and ds.size != _n_rows(X)):
                raise ProtocolError(f"groups has shape {ds.shape}, expected ({_n_rows(X)},)")
        train = np.flatnonzero(ds == self.source).astype(np.int64)
        test = np.flatnonzero(ds == self.target).astype(np.int64)
        present = sorted(set(ds.tolist()))
        for role, name, idx in (("source", self.source, train), ("target", self.target, test)):
            if idx.size == 0:
                raise ProtocolError(f"{role} database {name!r} has no rows; rows have {present}")
        yield train, test


class Holdout:
    """One split: ``round(fraction * subjects)`` subjects (at least one, and at least one
    left to train on), drawn with ``seed``, are tested; the others train.

    ``groups`` are the subjects of the rows; when omitted and ``X`` is a sample table,
    ``group_key(X)``. The draw is numpy's ``default_rng(crc32(f"{seed}|fig4") &
    0x7FFFFFFF ^ 0x5EED).choice(sorted subjects, n, replace=False)``: the draw Fig. 4
    has made from the start (then as the engine's inner-validation draw of a job keyed
    ``fig4``, :func:`mefr.train.jobs.inner_split`), kept so that Fig. 4's split did not
    change when it moved onto this protocol.
    """

    def __init__(self, fraction: float = 0.5, seed: int = 0) -> None:
        if not 0.0 < float(fraction) < 1.0:
            raise ProtocolError(f"holdout: the tested fraction must lie in (0, 1), got {fraction}")
        if int(seed) < 0:
            raise ProtocolError(f"holdout: the seed must be non-negative, got {seed}")
        self.fraction, self.seed = float(fraction), int(seed)

    def __repr__(self) -> str:
        return f"Holdout(fraction={self.fraction!r}, seed={self.seed!r})"

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """Always 1."""
        return 1

    def test_subjects(self, groups: Any) -> list[str]:
        """The subjects drawn for testing, sorted."""
        subjects = np.unique(np.asarray(groups, dtype=object).astype(str))
        if subjects.size < 2:
            raise ProtocolError(f"holdout needs at least two subjects, got {subjects.tolist()}")
        n = min(max(1, round(self.fraction * subjects.size)), subjects.size - 1)
        rng = np.random.default_rng((zlib.crc32(f"{self.seed}|fig4".encode()) & 0x7FFFFFFF)
                                    ^ 0x5EED)
        return sorted(str(s) for s in rng.choice(subjects, size=n, replace=False))

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[Split]:
        """Yield the single ``(training rows, test rows)`` split, each sorted."""
        g = _subjects(X, groups, "Holdout").astype(str)
        tested = np.isin(g, self.test_subjects(g))
        yield np.flatnonzero(~tested).astype(np.int64), np.flatnonzero(tested).astype(np.int64)


@dataclass(frozen=True)
class CdmerExperiment:
    """One cross-database experiment of Table 10 (``Exp.<number>: <name>``)."""

    number: int
    name: str  # e.g. "H->V"
    source: str
    target: str
    type: str  # "Type-I" (SMIC cameras) or "Type-II" (CASME II <-> SMIC)

    @property
    def fold_name(self) -> str:
        """A file-system safe name, e.g. ``exp01_smic_hs_to_smic_vis``."""
        return f"exp{self.number:02d}_{self.source}_to_{self.target}"

    def splitter(self) -> CrossDatabase:
        return CrossDatabase(self.source, self.target)


_CDMER_LETTERS = {"H": "smic_hs", "V": "smic_vis", "N": "smic_nir", "C": "casme2"}
_CDMER_TABLE = (  # Table 10, in the paper's order
    ("H", "V"), ("V", "H"), ("H", "N"), ("N", "H"), ("V", "N"), ("N", "V"),
    ("C", "H"), ("H", "C"), ("C", "V"), ("V", "C"), ("C", "N"), ("N", "C"),
)

#: The 12 CDMER experiments of the paper's Table 10 (Exp.1-6 Type-I, Exp.7-12 Type-II).
CDMER_EXPERIMENTS: tuple[CdmerExperiment, ...] = tuple(
    CdmerExperiment(
        number=i,
        name=f"{s}->{t}",
        source=_CDMER_LETTERS[s],
        target=_CDMER_LETTERS[t],
        type="Type-I" if i <= 6 else "Type-II",
    )
    for i, (s, t) in enumerate(_CDMER_TABLE, start=1)
)


def cdmer_experiment(key: int | str) -> CdmerExperiment:
    """Look up an experiment of Table 10 by number (``3`` / ``"3"``) or name (``"H->N"``)."""
    text = str(key).strip()
    for e in CDMER_EXPERIMENTS:
        if text == str(e.number) or text.upper() == e.name:
            return e
    raise ProtocolError(
        f"unknown CDMER experiment {key!r}; use 1..12 or one of "
        f"{[e.name for e in CDMER_EXPERIMENTS]}"
    )


@dataclass(frozen=True)
class Fold:
    """One train/test split of a protocol; indices are positions in the sample table.

    ``name`` is file-system safe apart from ``/`` (LOSO folds are named by their group,
    e.g. ``casme2/sub01``).
    """

    name: str
    train_idx: np.ndarray
    test_idx: np.ndarray


#: The protocol names :func:`protocol_folds` accepts, with a one-line description.
PROTOCOLS: dict[str, str] = {
    "cde": "LOSO over the MEGC 2019 composite (SMIC-HS + CASME II + SAMM)",
    "loso": "LOSO over every row of the table (single-database experiments)",
    "loso:<dataset>": "LOSO over the rows of one database only",
    "cdmer:<n>": "train on the source, test on the target of Exp.n of Table 10 (1..12)",
    "holdout[:<fraction>[:<seed>]]": "one fold: a fraction (default 0.5) of the subjects, "
    "drawn with a seed (default 0), tested, the others trained (Fig. 4)",
}


def _check_table(table: pd.DataFrame) -> None:
    need = {"dataset", "subject"}
    if not isinstance(table, pd.DataFrame) or not need <= set(table.columns):
        raise ProtocolError(f"protocols need a sample table with columns {sorted(need)}")
    if len(table) == 0:
        raise ProtocolError("the sample table is empty")


def _loso_folds(table: pd.DataFrame, rows: np.ndarray) -> list[Fold]:
    sub = table.iloc[rows]
    splitter = LOSO()
    names = splitter.group_names(sub)
    return [
        Fold(name, rows[train], rows[test])
        for name, (train, test) in zip(names, splitter.split(sub), strict=True)
    ]


def protocol_folds(table: pd.DataFrame, protocol: str) -> list[Fold]:
    """The named folds of ``protocol`` on ``table`` (see :data:`PROTOCOLS`).

    * ``cde``: LOSO over the whole table, which may only hold the composite's databases
      (:data:`CDE_DATASETS`); per-database figures are computed later from the pooled
      predictions.
    * ``loso``: LOSO over the whole table.
    * ``loso:<dataset>``: LOSO over the rows of one database (e.g. ``loso:smic_hs`` on
      the composite gives the SMIC-HS 3-class experiment).
    * ``cdmer:<n>``: Exp.n of Table 10, one fold named like ``exp01_smic_hs_to_smic_vis``.
    * ``holdout``, ``holdout:<fraction>``, ``holdout:<fraction>:<seed>``: one fold named
      ``holdout`` (:class:`Holdout`; fraction 0.5 and seed 0 unless given).
    """
    _check_table(table)
    datasets = table["dataset"].astype(str).to_numpy(dtype=object)
    present = sorted(set(datasets.tolist()))
    kind, _, arg = protocol.partition(":")
    if kind == "cde" and not arg:
        extra = sorted(set(present) - set(CDE_DATASETS))
        if extra:
            raise ProtocolError(
                f"protocol 'cde' is the composite of {CDE_DATASETS}; the table also has {extra}"
            )
        return _loso_folds(table, np.arange(len(table), dtype=np.int64))
    if kind == "loso":
        if not arg:
            return _loso_folds(table, np.arange(len(table), dtype=np.int64))
        rows = np.flatnonzero(datasets == arg).astype(np.int64)
        if rows.size == 0:
            raise ProtocolError(
                f"protocol {protocol!r}: no rows of {arg!r}; the table has {present}"
            )
        return _loso_folds(table, rows)
    if kind == "cdmer" and arg:
        exp = cdmer_experiment(arg)
        train, test = next(exp.splitter().split(table))
        return [Fold(exp.fold_name, train, test)]
    if kind == "holdout":
        train, test = next(_holdout(arg).split(table))
        return [Fold("holdout", train, test)]
    raise ProtocolError(f"unknown protocol {protocol!r}; known: {list(PROTOCOLS)}")


def _holdout(arg: str) -> Holdout:
    """The :class:`Holdout` of a ``holdout[:<fraction>[:<seed>]]`` protocol's argument."""
    fraction, _, seed = arg.partition(":")
    try:
        return Holdout(float(fraction) if fraction else 0.5, int(seed) if seed else 0)
    except ValueError as e:
        if isinstance(e, ProtocolError):
            raise
        raise ProtocolError(f"protocol 'holdout:{arg}': expected holdout[:<fraction>"
                            "[:<seed>]], e.g. holdout:0.5:3") from None


def parse_seeds(text: str | int | Iterable[int]) -> tuple[int, ...]:
    """``"0-9"`` / ``"0,3,5-7"`` / ``3`` / ``[0, 1]`` -> sorted unique seeds."""
    if isinstance(text, int | np.integer):
        seeds = [int(text)]
    elif isinstance(text, str):
        seeds = []
        for part in text.split(","):
            part = part.strip()
            lo, dash, hi = part.partition("-")
            try:
                if dash and lo:
                    a, b = int(lo), int(hi)
                    if b < a:
                        raise ValueError
                    seeds.extend(range(a, b + 1))
                else:
                    seeds.append(int(part))
            except ValueError:
                raise ValueError(f"seeds {text!r}: {part!r} is not N or N-M (N <= M)") from None
    else:
        seeds = [int(s) for s in text]
    if not seeds or min(seeds) < 0:
        raise ValueError(f"seeds {text!r}: need at least one non-negative seed")
    return tuple(sorted(set(seeds)))


def job_key(seed: int, fold: str) -> str:
    """The engine job key of a (seed, fold): ``"seed3/casme2/sub01"``."""
    return f"seed{seed}/{fold}"


def build_jobs(folds: Sequence[Fold], seeds: Sequence[int]) -> list[Job]:
    """One engine :class:`~mefr.train.jobs.Job` per (seed, fold), seeds outermost."""
    from mefr.train.jobs import Job

    return [
        Job(key=job_key(s, f.name), seed=int(s), train_idx=f.train_idx, test_idx=f.test_idx)
        for s in seeds
        for f in folds
    ]
