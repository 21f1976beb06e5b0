"""A paper table reproduced: its :class:`~mefr.report.targets.TableSpec` filled from the
runs (:class:`~mefr.report.runs.Runs`) into a :class:`~mefr.report.tables.ReportTable`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from mefr.evaluate.metrics import COMPOSITE
from mefr.evaluate.rundir import NOT_RUN, RunDir
from mefr.report import paper as P
from mefr.report.notes import (
    bootstrap_notes,
    fit_notes,
    provenance,
    run_notes,
    timing_notes,
)
from mefr.report.options import ReproduceError
from mefr.report.runs import RunRef, Runs, fold_seconds
from mefr.report.tables import (
    MIXED_DATA,
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

#: Status of a main-table cell whose row was measured on synthetic data only.
SYNTHETIC_ONLY = "synthetic data only: see the second table"
#: Status of an ensemble row whose run directory keeps only its metrics, not the per-fold
#: predictions that are averaged.
NO_FOLD_PREDICTIONS = "no per-fold predictions to average (folds/)"


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
            refs.append(runs.ref(exp, r.model, r.synthetic, r.preset))
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
    ref = runs.ref(exp, row.model, row.synthetic, row.preset)
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
    if row.ensemble:
        scores = runs.ensemble_scores(ref)
        if scores is None:
            return Cell(paper=paper, run_dir=where, status=NO_FOLD_PREDICTIONS), ref
        value = getattr(scores[db], col.metric)
        return Cell(values=(float(value),), seeds=tuple(out.metrics["seeds"]), paper=paper,
                    synthetic=ref.synthetic, run_dir=where, pooled=True), ref
    try:
        cell = cell_from_metrics(out.metrics, db, col.metric, paper, where, ref.synthetic)
    except KeyError as e:
        raise ReproduceError(f"{RunDir(ref.run_dir).metrics_path}: {e}") from None
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
    """One "A minus B" row per difference of the table, paired by seed. Two rows read
    from the same row of the paper (one network under two recipes) have no published
    difference: its paper cells stay empty rather than 0."""
    paper_row = {r.label: r.paper for r in spec.rows}
    out = []
    for a, b, ra, rb in compared_rows(spec, rows):
        cells = {k: difference_cell(ra.cells[k], rb.cells[k])
                 for k in ra.cells if k in rb.cells}
        if paper_row.get(a) == paper_row.get(b):
            cells = {k: replace(c, paper=None) for k, c in cells.items()}
        out.append(Row(f"{a} minus {b}", cells, note="paired by seed"))
    return out


def _row_kind(row: Row) -> str:
    """``real`` (a measured real cell), ``synthetic`` (measured, all synthetic) or ``none``."""
    measured = [c for c in row.cells.values() if c.measured and not c.exact]
    if not measured:
        return "none"
    return "synthetic" if all(c.synthetic for c in measured) else "real"


def split_synthetic_rows(rows: Sequence[Row]) -> tuple[list[Row], list[Row]]:
    """``(main rows, synthetic rows)``: when some rows are measured on real data, the rows
    measured only on synthetic databases move to a table of their own; in the main table
    a row of the same label keeps the paper's numbers, its own cells empty
    (:data:`SYNTHETIC_ONLY`). Nothing moves when no row is real or none synthetic."""
    kinds = [_row_kind(r) for r in rows]
    if "real" not in kinds or "synthetic" not in kinds:
        return list(rows), []
    main, apart = [], []
    labels = {r.label for r, k in zip(rows, kinds, strict=True) if k != "synthetic"}
    for r, k in zip(rows, kinds, strict=True):
        if k != "synthetic":
            main.append(r)
            continue
        apart.append(r)
        if r.label not in labels:
            labels.add(r.label)
            main.append(Row(r.label, {key: Cell(paper=c.paper, status=SYNTHETIC_ONLY)
                                      for key, c in r.cells.items()}, note=r.note))
    return main, apart


def build_table(name: str, runs: Runs) -> ReportTable:
    """Run what table ``name`` needs and return it beside the paper's numbers (rows
    measured only on synthetic data apart, see :func:`split_synthetic_rows`)."""
    spec = TABLE_SPECS[name]
    paper = P.paper_table(name)
    rows: list[Row] = []
    row_refs: list[list[RunRef]] = []
    seen: list[tuple[RunRef, ...]] = []
    fitted: list[tuple[str, RunRef]] = []  # (label, run) of the rows with a recipe to fit
    for r in spec.rows:
        if r.model is None:
            cells = {c.key: Cell(paper=paper.value(r.paper, c.key), status=NOT_REPRODUCED)
                     for c in spec.columns}
            rows.append(Row(r.label, cells, note="paper only"))
            row_refs.append([])
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
        rows.append(Row(r.label, cells, note=r.note))
        row_refs.append(refs)
        if refs and not r.ensemble and not refs[0].synthetic:
            fitted.append((r.label, refs[0]))
    differences = difference_rows(spec, rows)
    compared = compared_rows(spec, rows)
    main, apart = split_synthetic_rows(rows + differences)
    apart_refs = [ref for row, refs in zip(rows, row_refs, strict=True)
                  if any(row is a for a in apart) for ref in refs]
    used = list(dict.fromkeys(ref for refs in row_refs for ref in refs
                              if ref not in apart_refs))
    columns = tuple(Column(c.key, c.header) for c in spec.columns)
    notes = run_notes(used, runs) + list(spec.notes)
    if any(c.status == MIXED_DATA for r in main for c in r.cells.values()):
        notes.append(f"An average over real and synthetic cells is left empty ({MIXED_DATA}): "
                     "a synthetic number is never averaged with a real one.")
    notes += timing_notes(spec, main)
    if spec.fit_notes:
        notes += fit_notes(fitted, runs)
    if spec.differences:
        notes.append(DIFFERENCE_NOTE)
        notes += bootstrap_notes(compared)
    title = f"{paper.reference} of the paper: {spec.title}, ours vs paper"
    supplement = None
    if apart:
        notes.append(f"Rows marked '{SYNTHETIC_ONLY}' were measured on synthetic databases "
                     "only: they are in a table of their own below (synthetic numbers test "
                     "the pipeline and are not comparable with the paper's).")
        refs = list(dict.fromkeys(apart_refs))
        supplement = ReportTable(
            name, f"{title}: rows measured on synthetic databases", columns, tuple(apart),
            tuple(run_notes(refs, runs)), source=provenance(refs, runs.outcomes))
    return ReportTable(name, title, columns, tuple(main), tuple(notes),
                       source=provenance(used, runs.outcomes), supplement=supplement)
