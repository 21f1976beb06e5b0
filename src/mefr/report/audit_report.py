"""``mefr audit``: the audit of one or more run directories, written beside each other
with the paper's figure for each model (table, JSON, PNG)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mefr.evaluate.audit import AuditResult, audit_json, audit_run
from mefr.models.registry import display_name
from mefr.report.audit_figure import audit_figure
from mefr.report.paper import paper_table

#: Where the paper reports each network on the composite (CDE): the table whose row
#: gives the composite (and, in Table 2, per-database) UF1 / UAR.
_PAPER_ROWS: dict[str, tuple[str, str]] = {
    "fr": ("table2", "FR"),
    "basic_inception": ("table6", "Basic Inception"),
    "fr_fc": ("table1", "FR-fc"),
    "fr_concat": ("table1", "FR-concatenated"),
    "off_apexnet": ("table2", "OFF-ApexNet"),
    "ststnet": ("table2", "STSTNet"),
    "dual_inception": ("table2", "Dual-Inception"),
}


def paper_reference(model: str, protocol: str = "cde") -> dict[str, float] | None:
    """The paper's CDE figures for ``model``: ``{"uf1", "uar", "<db>_uf1", ...}``, or
    None where the paper reports none (other protocols, variants it does not have)."""
    if protocol != "cde" or model not in _PAPER_ROWS:
        return None
    table = paper_table(_PAPER_ROWS[model][0])
    row = _PAPER_ROWS[model][1]
    out: dict[str, float] = {}
    for column in table.columns:
        db, _, metric = column.partition(".")
        value = table.value(row, column)
        if value is None or metric not in ("uf1", "uar"):
            continue
        out[metric if db == "composite" else f"{db}_{metric}"] = float(value)
    return out or None


@dataclass(frozen=True)
class AuditFiles:
    """What :func:`write_audit` wrote: one Markdown and JSON per run, one figure."""

    results: tuple[AuditResult, ...]
    tables: tuple[Path, ...]
    figure: Path


def write_audit(run_dirs: Sequence[str | Path], out: str | Path,
                name: str = "audit", shuffled_draws: int = 20) -> AuditFiles:
    """Audit each run directory; write ``OUT/NAME.md`` (every run's table, with the
    paper's figure as a row), ``OUT/NAME_<run>.json`` and ``OUT/NAME.png``.
    ``shuffled_draws``: label shuffles per seed for the no-signal measurement of
    :func:`~mefr.evaluate.audit.audit_run` (0: none)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for run_dir in run_dirs:
        res = audit_run(run_dir, shuffled_draws=shuffled_draws)
        res.reference = paper_reference(res.model, res.protocol)
        results.append(res)
    parts = [f"# Audit: honest and test-selected (LEAKY) readings of "
             f"{len(results)} run(s)\n"]
    json_paths = []
    for res in results:
        title = f"{display_name(res.model)}: `{res.run_dir}`"
        parts.append(res.markdown(title))
        path = out / f"{name}_{Path(res.run_dir).name}.json"
        path.write_text(audit_json(res))
        json_paths.append(path)
    md = out / f"{name}.md"
    md.write_text("\n".join(parts))
    figure = audit_figure(results, out / f"{name}.png",
                          labels=[display_name(r.model) for r in results])
    return AuditFiles(tuple(results), (md, *json_paths), figure)
