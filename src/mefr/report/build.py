"""A paper table reproduced: its :class:`~mefr.report.targets.TableSpec` filled from the
runs (:class:`~mefr.report.runs.Runs`) into a :class:`~mefr.report.tables.ReportTable`."""

from __future__ import annotations

from collections.abc import Sequence

from mefr.evaluate.metrics import COMPOSITE
from mefr.report import paper as P
from mefr.report.notes import bootstrap_notes, run_notes, timing_notes, titled
from mefr.report.options import ReproduceError
from mefr.report.runs import NOT_RUN, RunRef, Runs, fold_seconds
from mefr.report.tables import (
    NOT_REPRODUCED,
    Cell,
    Column,
    ReportTable,
    Row,
    average_cell,
    cell_from_metrics,
    difference_cell,
)
from mefr.report.targets import (
    DIFFERENCE_NOTE,
    EXPERIMENTS,
    TABLE_SPECS,
    ColumnSpec,
    RowSpec,
    TableSpec,
)


def parameters_millions(model: str, num_classes: int) -> float:
    """Learnable parameters of ``model`` for K classes (default options), in millions."""
    from mefr.models.registry import model_specs

    for s in model_specs((num_classes,)):
        if s["name"] == model and s.get("detector_units", 1) == 1:
            return s["parameters"] / 1e6
    raise ReproduceError(f"no parameter count for {model!r} with {num_classes} classes")


def plan_table(name: str, runs: Runs) -> list[RunRef]:
    """The runs table ``name`` reads, in order, without duplicates."""
    spec = TABLE_SPECS[name]
    refs: list[RunRef] = []
    for r in spec.rows:
        if r.model is None:
            continue
        for c in spec.columns:
            exp = c.experiment or r.experiment
            if c.metric in ("params_m", "average") or exp is None:
                continue
            refs.append(runs.ref(exp, r.model, r.synthetic))
    return list(dict.fromkeys(refs))


def _cell(runs: Runs, row: RowSpec, col: ColumnSpec, paper: float | None
          ) -> tuple[Cell, RunRef | None]:
    from mefr.data.labels import protocol_classes

    exp = col.experiment or row.experiment
    if exp is None:
        raise ReproduceError(f"column {col.key!r} of row {row.label!r} names no experiment")
    assert row.model is not None
    if col.metric == "params_m":
        k = len(protocol_classes(EXPERIMENTS[exp].labels))
        return Cell(values=(parameters_millions(row.model, k),), paper=paper, exact=True), None
    ref = runs.ref(exp, row.model, row.synthetic)
    out = runs.outcome(ref)
    where = str(ref.run_dir)
    if col.metric == "et_s":
        secs = fold_seconds(ref.run_dir) if out.metrics is not None else {}
        if not secs:
            status = NOT_RUN if out.metrics is None else "no timing in folds/*.json"
            return Cell(paper=paper, run_dir=where, status=status), ref
        seeds = tuple(sorted(secs))
        return Cell(values=tuple(secs[s] for s in seeds), seeds=seeds, paper=paper,
                    synthetic=ref.synthetic, run_dir=where), ref
    if out.metrics is None:
        return Cell(paper=paper, run_dir=where, status=out.status), ref
    db = col.database or row.database or COMPOSITE
    try:
        cell = cell_from_metrics(out.metrics, db, col.metric, paper, where, ref.synthetic)
    except KeyError as e:
        raise ReproduceError(f"{ref.run_dir}/metrics.json: {e}") from None
    return cell, ref


def compared_rows(spec: TableSpec, rows: Sequence[Row]) -> list[tuple[str, str, Row, Row]]:
    """``(label A, label B, row A, row B)`` for each of the table's differences."""
    by_label: dict[str, Row] = {}
    for r in rows:
        by_label.setdefault(r.label, r)  # the first row of a label (not its control)
    out = []
    for a, b in spec.differences:
        if a not in by_label or b not in by_label:
            raise ReproduceError(f"{spec.name}: no row {a!r} or {b!r} to compare")
        out.append((a, b, by_label[a], by_label[b]))
    return out


def difference_rows(spec: TableSpec, rows: Sequence[Row]) -> list[Row]:
    """One "A minus B" row per difference of the table, paired by seed."""
    out = []
    for a, b, ra, rb in compared_rows(spec, rows):
        cells = {k: difference_cell(ra.cells[k], rb.cells[k])
                 for k in ra.cells if k in rb.cells}
        out.append(Row(f"{a} minus {b}", cells, note="paired by seed"))
    return out


def build_table(name: str, runs: Runs) -> ReportTable:
    """Run what table ``name`` needs and return it beside the paper's numbers."""
    spec = TABLE_SPECS[name]
    paper = P.paper_table(name)
    rows: list[Row] = []
    seen: list[tuple[RunRef, ...]] = []
    used: list[RunRef] = []
    for r in spec.rows:
        if r.model is None:
            cells = {c.key: Cell(paper=paper.value(r.paper, c.key), status=NOT_REPRODUCED)
                     for c in spec.columns}
            rows.append(Row(r.label, cells, note="paper only"))
            continue
        cells, refs = {}, []
        for c in spec.columns:
            if c.metric == "average":
                continue
            cells[c.key], ref = _cell(runs, r, c, paper.value(r.paper, c.key))
            if ref is not None:
                refs.append(ref)
        for c in spec.columns:
            if c.metric == "average":
                cells[c.key] = average_cell([cells[k] for k in c.average_of],
                                            paper.value(r.paper, c.key))
        key = tuple(dict.fromkeys(refs))
        if r.dedupe and key in seen:
            continue
        seen.append(key)
        used += refs
        rows.append(Row(r.label, cells, note=r.note))
    rows += difference_rows(spec, rows)
    columns = tuple(Column(c.key, c.header) for c in spec.columns)
    notes = run_notes(list(dict.fromkeys(used)), runs.outcomes, runs.options) + list(spec.notes)
    notes += timing_notes(spec, rows)
    if spec.differences:
        notes.append(DIFFERENCE_NOTE)
        notes += bootstrap_notes(compared_rows(spec, rows))
    title = f"{paper.reference} of the paper: {spec.title}, ours vs paper"
    return ReportTable(name, titled(title, used, runs.outcomes), columns, tuple(rows),
                       tuple(notes))
