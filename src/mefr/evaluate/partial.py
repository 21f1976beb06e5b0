"""PARTIAL runs: some of a protocol's outer folds, for a quick look (``mefr evaluate
--folds / --subjects``).

* :func:`select_folds` - the folds named by a fold spec (fold names as the run directory
  names them, ``casme2/sub01``; 0-based indices; ranges ``0-3``) and/or by subjects (the
  folds that test them); ``None`` when nothing or every fold is asked for;
* :func:`plan_folds` - the folds a call runs into a run directory and the PARTIAL mark it
  records: the folds asked now and before (a later ``--folds`` adds to them), or every fold
  (a run without ``--folds`` completes a PARTIAL run and clears its mark);
* :func:`describe_partial` - the words that say ``PARTIAL (n of N folds: ...)``;
* :func:`partial_error` - why a reader of finished runs (compare, audit, ensemble, the
  reports) refuses a PARTIAL run.

The mark itself, ``{"folds": [...], "of": N}``, is kept in config.yaml and metrics.json
(:meth:`mefr.evaluate.rundir.RunDir.partial`). A PARTIAL request into a run directory
that holds a complete run is refused: it would replace the complete outputs.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mefr.data.table import group_key
from mefr.evaluate.protocols import Fold
from mefr.evaluate.rundir import RunDir, RunDirError

#: A fold spec: ``"0-3,10,casme2/sub01"``, an index, or a list of names and indices.
FoldSpec = str | int | Iterable[str | int]
#: Subjects: ``"casme2/sub01,samm/006"`` (a bare ``sub01`` matches it in every database).
SubjectSpec = str | Iterable[str]
_SPAN = re.compile(r"(\d+)(?:-(\d+))?", re.ASCII)
_SHOWN = 6  # fold names shown in a message or a PARTIAL line
_COMPLETE_IT = ("run the same mefr evaluate command without --folds / --subjects to train "
                "only the missing folds")


def _tokens(spec: FoldSpec | SubjectSpec, what: str) -> list[str | int]:
    """The items of a spec: comma-separated text, one index, or a list (kept whole)."""
    if isinstance(spec, int | np.integer):
        items: list[str | int] = [int(spec)]
    elif isinstance(spec, str):
        items = [t.strip() for t in spec.split(",") if t.strip()]
    else:
        items = [int(t) if isinstance(t, int | np.integer) else str(t).strip() for t in spec]
    if not items:
        raise ValueError(f"{what} {spec!r} names nothing")
    return items


def _few(names: Sequence[str]) -> str:
    if len(names) <= _SHOWN:
        return ", ".join(names)
    return ", ".join(names[: _SHOWN - 1]) + f", ... {names[-1]}"


def _unknown(what: str, item: str, names: Sequence[str], where: str, hint: str) -> str:
    close = difflib.get_close_matches(item, list(names), n=1)
    guess = f" (did you mean {close[0]!r}?)" if close else ""
    return (f"unknown {what} {item!r}{guess}; {where} has {len(names)} {what}s: "
            f"{_few(names)}{hint}")


def _span(text: str) -> tuple[int, int] | None:
    """``"3"`` -> (3, 3), ``"0-3"`` -> (0, 3); None for anything else."""
    found = _SPAN.fullmatch(text)
    if not found:
        return None
    return int(found[1]), int(found[2] or found[1])


def _fold_indices(spec: FoldSpec, folds: Sequence[Fold], protocol: str) -> set[int]:
    names = [f.name for f in folds]
    index = {n: i for i, n in enumerate(names)}
    n = len(names)
    hint = f" (or 0-based indices 0-{n - 1}, ranges such as 0-{min(3, n - 1)})"
    out: set[int] = set()
    for item in _tokens(spec, "folds"):
        if isinstance(item, str) and item in index:
            out.add(index[item])
            continue
        text = str(item)
        span = _span(text)
        if span is None:
            raise ValueError(_unknown("fold", text, names, f"protocol {protocol!r}", hint))
        lo, hi = span
        if not lo <= hi < n:
            raise ValueError(f"fold index {text!r} is out of range: protocol {protocol!r} "
                             f"has {n} folds, 0-{n - 1} ({_few(names)})")
        out.update(range(lo, hi + 1))
    return out


def _subject_indices(spec: SubjectSpec, folds: Sequence[Fold], table: pd.DataFrame,
                     protocol: str) -> set[int]:
    groups = group_key(table).astype(str).to_numpy()
    subjects = table["subject"].astype(str).to_numpy()
    known = sorted(set(groups.tolist()))
    out: set[int] = set()
    for item in _tokens(spec, "subjects"):
        text = str(item)
        rows = (groups == text) | (subjects == text)
        if not rows.any():
            raise ValueError(_unknown("subject", text, known, "the data",
                                      " (as dataset/subject; a bare subject matches it in "
                                      "every database)"))
        hits = {i for i, f in enumerate(folds) if rows[f.test_idx].any()}
        if not hits:
            raise ValueError(f"subject {text!r} is in no test fold of protocol {protocol!r} "
                             f"(its folds test {_few([f.name for f in folds])})")
        out |= hits
    return out


def select_folds(folds: Sequence[Fold], table: pd.DataFrame, folds_spec: FoldSpec | None = None,
                 subjects: SubjectSpec | None = None, protocol: str = "") -> list[Fold] | None:
    """The folds asked for, in the protocol's order: those of ``folds_spec`` (names,
    0-based indices, ranges ``a-b``) and those testing ``subjects`` (``dataset/subject``
    or a bare subject); both given: the folds of either. ``None`` when neither is given or
    they name every fold (a full run). An unknown name raises :class:`ValueError` listing
    a few valid ones."""
    if folds_spec is None and subjects is None:
        return None
    chosen: set[int] = set()
    if folds_spec is not None:
        chosen |= _fold_indices(folds_spec, folds, protocol)
    if subjects is not None:
        chosen |= _subject_indices(subjects, folds, table, protocol)
    return None if len(chosen) == len(folds) else [folds[i] for i in sorted(chosen)]


def _is_complete(run: RunDir) -> bool:
    try:
        return run.metrics() is not None
    except RunDirError:
        return False


def plan_folds(run: RunDir, folds: Sequence[Fold], asked: Sequence[Fold] | None
               ) -> tuple[list[Fold], dict[str, Any] | None]:
    """The folds a call runs and reports into ``run`` and the PARTIAL mark to record
    (``None``: every fold). ``asked`` (:func:`select_folds`) adds to the folds of an
    earlier PARTIAL run there; into a complete run it is refused (:class:`RunDirError`)."""
    if asked is None:
        return list(folds), None
    previous = run.partial()
    if previous is None and _is_complete(run):
        seeds = (run.metrics() or {}).get("seeds")
        raise RunDirError(
            f"{run.path} holds a complete run of all {len(folds)} folds (seeds {seeds}); a "
            f"PARTIAL run of {len(asked)} fold(s) (--folds / --subjects) would replace its "
            "outputs. Read its table.md, or use another --run-dir for the quick look")
    names = {f.name for f in asked} | set(previous["folds"] if previous else ())
    chosen = [f for f in folds if f.name in names]
    if len(chosen) == len(folds):
        return list(folds), None
    return chosen, {"folds": [f.name for f in chosen], "of": len(folds)}


def _counted(mark: Mapping[str, Any]) -> str:
    names = [str(n) for n in mark.get("folds") or []]
    return f"{len(names)} of {mark.get('of', '?')} folds: {_few(names)}"


def describe_partial(mark: Mapping[str, Any]) -> str:
    """``PARTIAL (3 of 68 folds: casme2/sub01, casme2/sub02, samm/006)``."""
    return f"PARTIAL ({_counted(mark)})"


def partial_note(mark: Mapping[str, Any]) -> str:
    """:func:`describe_partial` and what it means, for a table."""
    return (f"{describe_partial(mark)}: scores over these folds' clips only, a quick look "
            f"and not the protocol's result; {_COMPLETE_IT}.")


def partial_done(mark: Mapping[str, Any]) -> str:
    """The end of a PARTIAL run's summary: how far it is and how to complete it."""
    n, total = len(mark.get("folds") or []), mark.get("of", "?")
    rest = f" the other {total - n}" if isinstance(total, int) else " the others"
    return (f"PARTIAL run, {n} of {total} folds (a quick look, not the protocol's result); "
            f"the same command without --folds / --subjects trains only{rest}")


def partial_error(run: RunDir, purpose: str) -> str | None:
    """Why ``purpose`` (e.g. ``"comparing runs"``) refuses a PARTIAL run; None for a run
    of all folds (or one not yet run)."""
    mark = run.partial()
    if mark is None:
        return None
    return (f"{run.path} holds a PARTIAL run ({_counted(mark)}); {purpose} needs a "
            f"complete run. Complete it first: {_COMPLETE_IT}")
