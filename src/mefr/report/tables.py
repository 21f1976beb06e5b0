"""A table of reproduced numbers beside the paper's, rendered as Markdown, CSV and LaTeX.

One model, :class:`ReportTable`, holds rows of :class:`Cell` objects keyed by column.
A cell keeps the per-seed values of one reproduced number (so mean and sample standard
deviation are computed here, once), the published value, where it came from (the run
directory) and whether it was measured on synthetic databases. The three renderers
(:func:`to_markdown`, :func:`to_csv`, :func:`to_latex`) only format that model.

Conventions
-----------
* "ours" is ``mean ± std`` over seeds (sample standard deviation, ddof=1; no ``±`` with
  one seed); "paper" is the published value (:mod:`mefr.report.paper`).
* A cell measured on synthetic databases is marked ``†`` and the title says
  "(synthetic data)" when every measured cell is synthetic, "(partly synthetic data)"
  when some are: synthetic numbers test the pipeline, they are not comparable to the paper.
  They are never averaged with real ones (:func:`average_cell`), and rows measured only
  on synthetic data go to a table of their own (:attr:`ReportTable.supplement`) when the
  others are real.
* ``exact`` cells (e.g. parameter counts) are computed, not measured over seeds.
* The title is short (paper-ready); ``source`` (data and hardware) and the notes are the
  provenance: the Markdown prints them all, the LaTeX caption only the title and the
  legend, with the provenance as comments beside the table.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mefr.evaluate.metrics import COMPOSITE

#: Status of a cell without a number.
NOT_RUN = "not yet run"
NOT_REPRODUCED = "not reproduced"
#: Status of an average over real and synthetic cells (left empty).
MIXED_DATA = "not averaged: real and synthetic cells"
SYNTHETIC_MARK = "†"


@dataclass(frozen=True)
class Cell:
    """One reproduced number beside the published one.

    Attributes
    ----------
    values : per-seed values (or a single exact value); empty when there is none.
    seeds : the seed of each value (empty for exact values).
    paper : the published value, or None.
    exact : a computed quantity (no spread over seeds).
    synthetic : measured on synthetic databases.
    run_dir : the run directory (or file) the number was read from.
    status : why there is no number (:data:`NOT_RUN`, :data:`NOT_REPRODUCED`, ...).
    pooled : one value scored on the class probabilities of the seeds ``seeds``
        averaged per clip (an ensemble): no spread, and ``n`` counts those seeds.
    """

    values: tuple[float, ...] = ()
    seeds: tuple[int, ...] = ()
    paper: float | None = None
    exact: bool = False
    synthetic: bool = False
    run_dir: str | None = None
    status: str = ""
    pooled: bool = False

    @property
    def n(self) -> int:
        """Number of seeds behind the cell (its values, or the seeds an ensemble pooled)."""
        return len(self.seeds) if self.pooled else len(self.values)

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.values)) if self.values else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation over seeds (ddof=1); None below two values."""
        if self.exact or self.pooled or len(self.values) < 2:
            return None
        return float(np.std(self.values, ddof=1))

    @property
    def measured(self) -> bool:
        return bool(self.values)


@dataclass(frozen=True)
class Column:
    """A reported quantity: its key (shared with the paper's table), header and digits."""

    key: str
    header: str
    digits: int = 4


@dataclass(frozen=True)
class Row:
    """A row: its label and one cell per column key (missing keys render as ``-``)."""

    label: str
    cells: Mapping[str, Cell]
    note: str = ""


@dataclass(frozen=True)
class ReportTable:
    """A reproduced table of the paper.

    ``title`` is the short title (the synthetic-data remark is added by
    :attr:`full_title`); ``source`` names the data and hardware (``[...]``); ``notes``
    are provenance lines (data source, hardware, protocol, selection, how cells were
    computed). ``supplement`` holds the rows measured only on synthetic databases when
    the others are real, rendered as a second table.
    """

    name: str
    title: str
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)
    source: str = ""
    supplement: ReportTable | None = None

    def cells(self) -> list[Cell]:
        return [r.cells[c.key] for r in self.rows for c in self.columns if c.key in r.cells]

    @property
    def data_kind(self) -> str:
        """``real``, ``synthetic``, ``mixed`` (both) or ``none`` (nothing measured)."""
        measured = [c for c in self.cells() if c.measured and not c.exact]
        if not measured:
            return "none"
        syn = [c.synthetic for c in measured]
        return "synthetic" if all(syn) else ("mixed" if any(syn) else "real")

    @property
    def data_remark(self) -> str:
        """`` (synthetic data)``, `` (partly synthetic data: ...)`` or ``""``."""
        kind = self.data_kind
        if kind == "synthetic":
            return " (synthetic data)"
        if kind == "mixed":
            return f" (partly synthetic data: cells marked {SYNTHETIC_MARK})"
        return ""

    @property
    def full_title(self) -> str:
        """Title, source and data remark (the Markdown heading)."""
        return f"{self.title}{' ' + self.source if self.source else ''}{self.data_remark}"

    def run_dirs(self) -> dict[str, list[str]]:
        """Run directory -> the labels of the rows with a cell read from it."""
        out: dict[str, list[str]] = {}
        for r in self.rows:
            for c in self.columns:
                d = r.cells[c.key].run_dir if c.key in r.cells else None
                if d and r.label not in out.setdefault(d, []):
                    out[d].append(r.label)
        return out


# --------------------------------------------------------------------------- cells
def metric_values(metrics: Mapping[str, Any], database: str, metric: str) -> tuple[
    tuple[float, ...], tuple[int, ...]
]:
    """Per-seed values of ``metric`` for ``database`` from a run's metrics.json.

    Seeds whose value is undefined (``null``) are left out. Raises ``KeyError`` naming
    the database when the run has no such database.
    """
    values, seeds = [], []
    for seed, per_db in metrics["per_seed"].items():
        if database not in per_db:
            raise KeyError(
                f"run of protocol {metrics.get('protocol')!r} has no database {database!r} "
                f"(has {sorted(per_db)})"
            )
        v = per_db[database].get(metric)
        if v is not None:
            values.append(float(v))
            seeds.append(int(seed))
    return tuple(values), tuple(seeds)


def cell_from_metrics(
    metrics: Mapping[str, Any],
    database: str = COMPOSITE,
    metric: str = "uf1",
    paper: float | None = None,
    run_dir: str | None = None,
    synthetic: bool = False,
) -> Cell:
    """The cell of ``metric`` on ``database`` of a run (its metrics.json content)."""
    values, seeds = metric_values(metrics, database, metric)
    return Cell(values=values, seeds=seeds, paper=paper, synthetic=synthetic, run_dir=run_dir)


def difference_cell(a: Cell, b: Cell) -> Cell:
    """``a - b`` paired by seed, over the seeds both have (a model against its control
    trained from the same seeds); the paper's difference where both numbers are
    published; empty unless both cells are measured per seed."""
    paper = a.paper - b.paper if a.paper is not None and b.paper is not None else None
    if not (a.measured and b.measured) or a.exact or b.exact or a.pooled or b.pooled:
        return Cell(paper=paper, status=NOT_RUN)
    pa = dict(zip(a.seeds, a.values, strict=True))
    pb = dict(zip(b.seeds, b.values, strict=True))
    common = sorted(set(pa) & set(pb))
    if not common:
        return Cell(paper=paper, status="no common seed")
    return Cell(values=tuple(pa[s] - pb[s] for s in common), seeds=tuple(common), paper=paper,
                synthetic=a.synthetic or b.synthetic)


def average_cell(cells: Sequence[Cell], paper: float | None = None) -> Cell:
    """The mean over ``cells`` per seed (the seeds all of them have), e.g. Table 3's
    "Average" column; empty (:data:`NOT_RUN`) unless every cell is measured, and empty
    (:data:`MIXED_DATA`) when real and synthetic cells would be averaged together."""
    if not cells or not all(c.measured and not c.pooled for c in cells):
        return Cell(paper=paper, status=NOT_RUN)
    if len({c.synthetic for c in cells}) > 1:
        return Cell(paper=paper, status=MIXED_DATA)
    common = sorted(set.intersection(*(set(c.seeds) for c in cells)))
    if not common:
        return Cell(paper=paper, status="no common seed")
    per = [{s: v for s, v in zip(c.seeds, c.values, strict=True)} for c in cells]
    values = tuple(float(np.mean([p[s] for p in per])) for s in common)
    syn = any(c.synthetic for c in cells)
    return Cell(values=values, seeds=tuple(common), paper=paper, synthetic=syn)


# --------------------------------------------------------------------------- formatting
def _num(v: float | None, digits: int) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def format_ours(cell: Cell, digits: int = 4, mark: bool = True) -> str:
    """``mean ± std`` (``mean`` with one seed or an exact value), ``-`` with a status."""
    if not cell.measured:
        return "-"
    text = _num(cell.mean, digits)
    if cell.std is not None:
        text += f" ± {_num(cell.std, digits)}"
    if mark and cell.synthetic:
        text += f" {SYNTHETIC_MARK}"
    return text


def _seeds_text(row: Row, columns: Sequence[Column]) -> str:
    ns = sorted({row.cells[c.key].n for c in columns
                 if c.key in row.cells and row.cells[c.key].measured
                 and not row.cells[c.key].exact})
    if not ns:
        statuses = sorted({row.cells[c.key].status for c in columns
                           if c.key in row.cells and row.cells[c.key].status})
        return "; ".join(statuses) or "-"
    return ", ".join(str(n) for n in ns)


def _legend(table: ReportTable) -> list[str]:
    lines = [
        "ours = mean ± sample standard deviation (ddof=1) over the seeds in column "
        "'Seeds' (no ± with one seed; 'Seeds' lists several counts when a row's cells "
        "rest on different numbers of seeds); paper = the published value.",
    ]
    if table.data_kind in ("synthetic", "mixed"):
        lines.append(
            f"{SYNTHETIC_MARK} measured on synthetic databases (mefr.data.synthetic): it tests "
            "the pipeline end to end and is not comparable to the paper's number."
        )
    return lines


def to_markdown(table: ReportTable) -> str:
    """The table as GitHub Markdown: title, ours / paper column pairs, notes, run dirs."""
    head = ["Model"]
    for c in table.columns:
        head += [f"{c.header} ours", f"{c.header} paper"]
    head.append("Seeds")
    lines = [f"### {table.full_title}", "",
             "| " + " | ".join(head) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(head) - 2) + ["---"]) + "|"]
    for r in table.rows:
        cells = [r.label + (f" ({r.note})" if r.note else "")]
        for c in table.columns:
            cell = r.cells.get(c.key, Cell())
            cells += [format_ours(cell, c.digits), _num(cell.paper, c.digits)]
        cells.append(_seeds_text(r, table.columns))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"- {n}" for n in (*_legend(table), *table.notes)]
    runs = table.run_dirs()
    if runs:
        lines += ["", "Run directories:", ""]
        lines += [f"- `{d}`: " + "; ".join(labels) for d, labels in runs.items()]
    text = "\n".join(lines) + "\n"
    return text + ("\n" + to_markdown(table.supplement) if table.supplement else "")


def to_frame(table: ReportTable) -> pd.DataFrame:
    """Tidy rows: one per (row, column) with ours mean / std / seeds, paper, data, run
    (the supplement's rows after the table's, with the same ``table`` name)."""
    records = []
    for r in table.rows + (table.supplement.rows if table.supplement else ()):
        for c in table.columns:
            cell = r.cells.get(c.key, Cell())
            records.append({
                "table": table.name,
                "row": r.label,
                "column": c.key,
                "header": c.header,
                "ours_mean": cell.mean,
                "ours_std": cell.std,
                "n_seeds": None if cell.exact else cell.n,
                "seeds": " ".join(str(s) for s in cell.seeds),
                "paper": cell.paper,
                "data": ("synthetic" if cell.synthetic else "real") if cell.measured else "",
                "status": cell.status,
                "run_dir": cell.run_dir or "",
            })
    return pd.DataFrame.from_records(records)


def to_csv(table: ReportTable) -> str:
    """The tidy form of :func:`to_frame` as CSV."""
    buf = io.StringIO()
    to_frame(table).to_csv(buf, index=False)
    return buf.getvalue()


_LATEX_ESCAPES = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "±": r"$\pm$", SYNTHETIC_MARK: r"$^\dagger$", "→": r"$\rightarrow$",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX specials (and write ±, †, → as math)."""
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text).replace("->", r"$\rightarrow$")


def latex_caption(table: ReportTable) -> str:
    """The short caption: title, data remark and a one-line legend."""
    legend = "Ours: mean ± s.d. over seeds (column Seeds); paper: the published value."
    if table.data_kind in ("synthetic", "mixed"):
        legend += f" {SYNTHETIC_MARK}: synthetic databases, not comparable with the paper."
    return f"{table.title}{table.data_remark}. {legend}"


def to_latex(table: ReportTable, label: str | None = None) -> str:
    """A booktabs ``table`` with a short caption (:func:`latex_caption`) and a label; the
    provenance (source, legend, notes) follows as ``%`` comments."""
    cols = table.columns
    spec = "l" + "rr" * len(cols) + "l"
    top = ["Model"] + [rf"\multicolumn{{2}}{{c}}{{{latex_escape(c.header)}}}" for c in cols]
    top.append("Seeds")
    sub = [""] + ["ours", "paper"] * len(cols) + [""]
    rules = "".join(rf"\cmidrule(lr){{{2 + 2 * i}-{3 + 2 * i}}}" for i in range(len(cols)))
    body = []
    for r in table.rows:
        cells = [latex_escape(r.label + (f" ({r.note})" if r.note else ""))]
        for c in cols:
            cell = r.cells.get(c.key, Cell())
            cells += [latex_escape(format_ours(cell, c.digits)), _num(cell.paper, c.digits)]
        cells.append(latex_escape(_seeds_text(r, cols)))
        body.append(" & ".join(cells) + r" \\")
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        rf"\caption{{{latex_escape(latex_caption(table))}}}",
        rf"\label{{tab:mefr-{label or table.name}}}",
        rf"\resizebox{{\linewidth}}{{!}}{{\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(top) + r" \\",
        rules,
        " & ".join(sub) + r" \\",
        r"\midrule",
        *body,
        r"\bottomrule",
        r"\end{tabular}}",
        r"\end{table}",
    ]
    provenance = [table.source] if table.source else []
    lines += [f"% {latex_escape(' '.join(line.split()))}" for line in
              (*provenance, *_legend(table), *table.notes)]
    text = "\n".join(lines) + "\n"
    if table.supplement:
        text += "\n" + to_latex(table.supplement, f"{table.name}-synthetic")
    return text


def to_caption(table: ReportTable) -> str:
    """The caption file of a figure: its full title (with data and hardware), the legend
    and every note, one paragraph each."""
    return "\n\n".join([table.full_title, *_legend(table), *table.notes]) + "\n"


def write_table(table: ReportTable, out_dir: str | Path) -> dict[str, Path]:
    """Write ``<out_dir>/<name>.md``, ``.csv`` and ``.tex``; return the paths by suffix."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for suffix, render in (("md", to_markdown), ("csv", to_csv), ("tex", to_latex)):
        p = out / f"{table.name}.{suffix}"
        p.write_text(render(table), encoding="utf-8")
        paths[suffix] = p
    return paths
