"""The numbers the README and results/README.md quote agree with the committed results.

The runs on real data are trained over several sessions and their numbers are copied
into the two READMEs by hand; these tests fail when a quoted number goes stale. Every
comparison reads the committed file itself (``metrics.json``, the rendered recipes
table, the audit), never a number written into the test.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
SCORE = re.compile(r"^(-?\d\.\d{4})(?: ± (\d\.\d{4}))?$")
SEEDS = re.compile(r"^\d+(?:-\d+)?(?:, ?\d+(?:-\d+)?)*$")
RUN_CELL = re.compile(r"^`([\w./-]+)`$")


def _cells(line: str) -> list[str] | None:
    """The cells of a markdown table row, or None when ``line`` is not one."""
    line = line.strip()
    if not (line.startswith("|") and line.endswith("|")):
        return None
    return [cell.strip() for cell in line[1:-1].split("|")]


def _rows(lines: list[str]) -> list[list[str]]:
    """The table rows among ``lines`` (header and rule rows included)."""
    return [cells for cells in map(_cells, lines) if cells is not None]


def _table_rows(path: Path) -> list[list[str]]:
    """Every markdown table row in ``path``."""
    return _rows(path.read_text(encoding="utf-8").splitlines())


def _scores(cells: list[str]) -> list[tuple[float, float | None]]:
    """The ``mean`` or ``mean ± std`` cells of a row, in order."""
    found = []
    for cell in cells:
        match = SCORE.match(cell)
        if match:
            std = float(match.group(2)) if match.group(2) is not None else None
            found.append((float(match.group(1)), std))
    return found


def _seed_list(text: str) -> list[int]:
    seeds: list[int] = []
    for part in text.replace(" ", "").split(","):
        first, _, last = part.partition("-")
        seeds.extend(range(int(first), int(last or first) + 1))
    return seeds


def _run_rows(readme: Path, base: Path) -> list[tuple[Path, list[str]]]:
    """Rows of ``readme`` that name a run directory (one holding metrics.json)."""
    found = []
    for cells in _table_rows(readme):
        for cell in cells:
            match = RUN_CELL.match(cell)
            if match and (base / match.group(1) / "metrics.json").is_file():
                found.append((base / match.group(1), cells))
                break
    return found


README_RUN_TABLES = [
    (ROOT / "README.md", ROOT),
    (RESULTS / "README.md", RESULTS),
]


@pytest.mark.parametrize(
    ("readme", "base"), README_RUN_TABLES, ids=["README.md", "results/README.md"]
)
def test_quoted_run_scores_match_metrics_json(readme: Path, base: Path) -> None:
    rows = _run_rows(readme, base)
    assert len(rows) >= 6, f"{readme}: expected the table of runs on real data"
    for run_dir, cells in rows:
        metrics = json.loads((run_dir / "metrics.json").read_text())
        where = f"{readme.relative_to(ROOT)}, row of {run_dir.relative_to(ROOT)}"
        seed_cells = [cell for cell in cells if SEEDS.match(cell)]
        assert seed_cells, f"{where}: no seeds cell"
        assert _seed_list(seed_cells[0]) == metrics["seeds"], where
        scores = _scores(cells)
        assert len(scores) >= 2, f"{where}: no UF1 / UAR cells"
        for (mean, std), key in zip(scores[:2], ("uf1", "uar"), strict=True):
            assert mean == round(metrics["mean"]["composite"][key], 4), f"{where}: {key}"
            expected_std = (metrics.get("std") or {}).get("composite", {}).get(key)
            if expected_std is None:
                assert std is None, f"{where}: {key} has a ± with one seed"
            else:
                assert std == round(expected_std, 4), f"{where}: {key} std"


def _section_rows(path: Path, heading: str) -> list[list[str]]:
    """Table rows of ``path`` between the line containing ``heading`` and the next heading."""
    text = path.read_text(encoding="utf-8")
    start = text.index(heading)
    rest = text[start + len(heading) :]
    end = re.search(r"^#", rest, flags=re.MULTILINE)
    section = rest[: end.start()] if end else rest
    return _rows(section.splitlines())


def _readme_table_after(marker: str) -> list[list[str]]:
    """The first markdown table after ``marker`` in the README, header and rule dropped."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if marker in line)
    table: list[list[str]] = []
    for cells in map(_cells, lines[start:]):
        if cells is not None:
            table.append(cells)
        elif table:
            break
    return table[2:]


def test_readme_recipes_table_matches_rendered_recipes() -> None:
    rendered = _table_rows(RESULTS / "report" / "recipes.md")
    header = rendered[0]
    uf1, uar = header.index("Composite UF1 ours"), header.index("Composite UAR ours")
    pairs = {(row[uf1], row[uar]) for row in rendered[2:] if len(row) == len(header)}
    quoted = [
        row
        for row in _readme_table_after("FR and Basic Inception under both recipes")
        if not row[0].startswith("*")
    ]
    assert len(quoted) == 8
    for row in quoted:
        assert (row[1], row[2]) in pairs, f"README recipes row {row[0]!r} is not in recipes.md"


def test_readme_audit_table_matches_the_committed_audit() -> None:
    audit_md = RESULTS / "audit" / "audit_cde_paper_adam.md"
    rendered = _section_rows(audit_md, "### FR: `results/cde/fr-paper_adam`")
    header = rendered[0]
    cols = [header.index(f"Composite {m}") for m in ("UF1", "UAR", "Acc")]
    triples = {tuple(row[c] for c in cols) for row in rendered[2:]}
    quoted = [
        row
        for row in _readme_table_after("The audit of FR under `paper_adam`")
        if row[1] in ("honest", "**LEAKY**")
    ]
    assert len(quoted) == 6
    for row in quoted:
        assert tuple(row[3:6]) in triples, f"README audit row {row[0]!r} is not in {audit_md.name}"
    metrics = json.loads((RESULTS / "cde" / "fr-paper_adam" / "metrics.json").read_text())
    assert f"seeds {metrics['seeds']}" in audit_md.read_text(encoding="utf-8"), (
        f"{audit_md.name} was not rendered from the committed seeds of fr-paper_adam"
    )


def test_readme_audit_names_the_audited_seeds() -> None:
    metrics = json.loads((RESULTS / "cde" / "fr-paper_adam" / "metrics.json").read_text())
    n = len(metrics["seeds"])
    quoted = _readme_table_after("The audit of FR under `paper_adam`")
    assert any(row[0] == f"ensemble of the {n} seeds" for row in quoted)


def test_results_readme_audit_rows_are_rendered_rows() -> None:
    """An audit table copied into results/README.md is a table some audit rendered."""
    rendered = {
        tuple(row) for audit in (RESULTS / "audit").glob("*.md") for row in _table_rows(audit)
    }
    copied = [
        row
        for row in _table_rows(RESULTS / "README.md")
        if len(row) > 3 and row[1] in ("honest", "**LEAKY**")
    ]
    assert copied, "results/README.md quotes no audit table"
    for row in copied:
        assert tuple(row) in rendered, f"results/README.md audit row {row[0]!r} is not rendered"


# ----------------------------------------------------------------------------- prose
QUOTED = re.compile(r"(?<![\d.])[+-]?\d+\.\d{3,4}(?!\d)")
DECIMAL = re.compile(r"[+-]?\d+\.\d+")
#: The prose whose numbers move as seeds land: (file, heading, where the prose stops).
ANSWER_PROSE = [
    (ROOT / "README.md", "## Why FR falls short of the paper, in short",
     "FR and Basic Inception under both recipes"),
    (RESULTS / "README.md", "## Why FR falls short of the paper", None),
]


def _composite_numbers(path: Path, every_column: bool = False) -> set[float]:
    """Every number of a rendered result outside its tables (notes, sentences), and in
    its tables the composite columns only (``Composite ...``, ``UF1``, ``UAR``, ``Acc``),
    or every column with ``every_column``."""
    found: set[float] = set()
    header: list[str] | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        cells = _cells(line)
        if cells is None:
            header = None
            found.update(float(x) for x in DECIMAL.findall(line))
        elif header is None:
            header = cells
        else:
            for head, cell in zip(header, cells, strict=False):
                if every_column or head.startswith("Composite") or head in ("UF1", "UAR",
                                                                           "Acc"):
                    found.update(float(x) for x in DECIMAL.findall(cell))
    return found


def _committed_numbers() -> set[float]:
    """The composite numbers of every committed real-data result (rendered tables,
    ensembles, run metrics), every number of the audits and of the recipes table (the
    answer quotes their per-database columns too), and the recipe pilot's numbers in
    docs/training_settings.md."""
    pool: set[float] = set()
    cited = {RESULTS / "report" / "recipes.md", *RESULTS.glob("audit/*.md")}
    for path in RESULTS.rglob("*.md"):
        if path.name != "README.md" and "synthetic" not in path.parts:
            pool |= _composite_numbers(path, every_column=path in cited)
    for path in RESULTS.glob("*/*/metrics.json"):
        metrics = json.loads(path.read_text())
        for key in ("mean", "std"):
            values = ((metrics.get(key) or {}).get("composite") or {}).values()
            pool.update(float(v) for v in values if isinstance(v, int | float))
    pool.update(float(x) for x in
                DECIMAL.findall((ROOT / "docs" / "training_settings.md").read_text()))
    return pool


def _paragraphs(path: Path, heading: str, stop: str | None) -> list[str]:
    """The prose paragraphs (tables left out) of ``path`` from ``heading`` to the next
    heading or ``stop``."""
    text = path.read_text(encoding="utf-8")
    rest = text[text.index(heading) + len(heading):]
    end = re.search(r"^#", rest, flags=re.MULTILINE)
    section = rest[: end.start()] if end else rest
    if stop is not None:
        section = section[: section.index(stop)]
    prose = "\n".join(line for line in section.splitlines() if _cells(line) is None)
    return [p for p in re.split(r"\n\s*\n", prose) if p.strip()]


def _traced(quoted: str, pool: set[float], paragraph: str) -> bool:
    """A quoted number is traced when a committed number rounds to it, or when it is the
    difference of two numbers quoted in the same paragraph (a gap spelt out)."""
    places = len(quoted.split(".")[1])
    value = round(abs(float(quoted)), places)
    if any(round(abs(v), places) == value for v in pool):
        return True
    near = [abs(float(x)) for x in DECIMAL.findall(paragraph)]
    return any(round(abs(a - b), places) == value for a in near for b in near)


@pytest.mark.parametrize(("path", "heading", "stop"), ANSWER_PROSE,
                         ids=["README.md", "results/README.md"])
def test_every_number_in_the_answer_is_a_committed_one(path: Path, heading: str,
                                                      stop: str | None) -> None:
    """The prose that answers "why FR falls short" quotes numbers by hand (three or four
    places): each must round from a committed result's composite number, or be the gap
    between two numbers of its paragraph. A number left stale when a seed lands fails."""
    pool = _committed_numbers()
    assert len(pool) > 100, "expected the committed results"
    stale = [f"{q} in: {' '.join(p.split())[:120]}"
             for p in _paragraphs(path, heading, stop) for q in QUOTED.findall(p)
             if not _traced(q, pool, p)]
    assert not stale, f"{path.relative_to(ROOT)}: numbers not found in results/:\n" + \
        "\n".join(stale)
