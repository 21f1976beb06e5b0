"""Fig. 3 of the paper: row-normalised confusion matrices of Basic Inception and FR (CDE)."""

from __future__ import annotations

from typing import Any

import numpy as np

from mefr.evaluate.metrics import COMPOSITE
from mefr.evaluate.rundir import NOT_RUN
from mefr.models.registry import display_name
from mefr.report import paper as P
from mefr.report.figures import confusion_figure, row_percent
from mefr.report.notes import provenance, run_notes
from mefr.report.options import ReproduceError
from mefr.report.runs import RunRef, Runs
from mefr.report.tables import Cell, Column, ReportTable, Row

#: The two panels: (tag, network).
PANELS: tuple[tuple[str, str], ...] = (("(a)", "basic_inception"), ("(b)", "fr"))


def plan_fig3(runs: Runs) -> list[RunRef]:
    """The runs Fig. 3 reads."""
    return [runs.ref("cde", m) for _, m in PANELS]


def fig3(runs: Runs) -> tuple[ReportTable, Any]:
    """Fig. 3 as a table and a figure (None when neither run is finished), pooled over
    seeds (every seed tests the same samples, so this equals the mean of the per-seed
    percentages)."""
    classes = P.FIG3_CLASSES
    panels, paper_panels, rows, refs = {}, {}, [], []
    for tag, model in PANELS:
        ref = runs.ref("cde", model)
        refs.append(ref)
        out = runs.outcome(ref)
        title = f"{tag} {display_name(model)}"
        ref_pct = P.FIG3_CONFUSION[model]
        paper_panels[title] = ref_pct
        per_seed = ([] if out.metrics is None else
                    [(int(s), np.asarray(v[COMPOSITE]["confusion"], dtype=np.float64))
                     for s, v in out.metrics["per_seed"].items()])
        panels[title] = None
        if per_seed:
            if list(out.metrics["class_names"]) != list(classes):
                raise ReproduceError(f"{ref.run_dir}: classes {out.metrics['class_names']}"
                                     f" are not Fig. 3's {list(classes)}")
            panels[title] = sum(cm for _, cm in per_seed)
        for i, true in enumerate(classes):
            cells = {}
            for j, pred in enumerate(classes):
                vals = tuple(row_percent(cm)[i, j] for _, cm in per_seed)
                cells[pred] = Cell(values=vals, seeds=tuple(s for s, _ in per_seed),
                                   paper=float(ref_pct[i, j]), synthetic=ref.synthetic,
                                   run_dir=str(ref.run_dir),
                                   status="" if per_seed else NOT_RUN)
            rows.append(Row(f"{display_name(model)}: true {true}", cells))
    n = sorted({c.n for r in rows for c in r.cells.values() if c.measured})
    pooled = f"pooled over {', '.join(map(str, n))} seed(s)" if n else "not yet run"
    base = f"Fig. 3 of the paper: confusion matrices (%) on the CDE composite, {pooled}"
    table = ReportTable(
        "fig3", base, tuple(Column(c, f"predicted {c}", digits=2) for c in classes),
        tuple(rows),
        tuple(run_notes(refs, runs) + ["Rows are true classes, normalised to 100 %."]),
        source=provenance(refs, runs.outcomes))
    fig = None
    if any(v is not None for v in panels.values()):
        # the figure's title is the paper's caption; data and hardware go in its caption file
        fig = confusion_figure(panels, classes, base + table.data_remark, paper=paper_panels)
    return table, fig
