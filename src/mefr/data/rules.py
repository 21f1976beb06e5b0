"""The bad-input rules of the raw-database readers, and how a read records them.

Real annotation files and frame folders have faults. Each fault a reader meets is a
named rule of :data:`BAD_INPUT_RULES` with a fixed outcome: an error (the file cannot be
read at all), a skipped row, or a kept row with a repaired field. Every skip or repair is
a :class:`ReaderWarning` naming the file, the row and the reason, and is also recorded in
the returned table's ``attrs["issues"]`` (a list of dicts: ``rule``, ``source``, ``row``,
``clip``, ``message``). One bad row never loses the others.

``docs/bad_inputs.md`` lists the rules; :func:`rules_markdown` renders the same table.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mefr.data.table import empty_table, make_table


class ReaderWarning(UserWarning):
    """A raw-database row was skipped or repaired under a documented rule."""


class AnnotationError(ValueError):
    """An annotation file or frame folder cannot be read at all (missing, no header...)."""


@dataclass(frozen=True)
class BadInputRule:
    """One documented fault of the raw databases and what the readers do with it."""

    id: str
    readers: str
    fault: str
    outcome: str


#: The bad-input rules of the readers, in the order ``docs/bad_inputs.md`` lists them.
BAD_INPUT_RULES: tuple[BadInputRule, ...] = (
    BadInputRule(
        "annotation-not-found",
        "CASME II, SAMM",
        "no annotation file given and none found under the root "
        "(`CASME2-coding-*.xlsx`, `SAMM_Micro_FACS_Codes*.xlsx`)",
        "error listing the places searched",
    ),
    BadInputRule(
        "unreadable-annotation",
        "CASME II, SAMM",
        "the annotation file is not a readable .xlsx/.csv",
        "error naming the file and the parser's message",
    ),
    BadInputRule(
        "no-header-row",
        "CASME II, SAMM",
        "no row holding both `Subject` and `Filename` among the first 60 rows of any sheet",
        "error naming the file",
    ),
    BadInputRule(
        "missing-column",
        "CASME II, SAMM",
        "a required column is absent (names are compared ignoring case, spaces and "
        "punctuation, so `Onset Frame` = `OnsetFrame`)",
        "error listing the missing columns and the columns found",
    ),
    BadInputRule(
        "frames-root-not-found",
        "all",
        "the frame folder (`CASME2_RAW_selected`/`Cropped`, `SAMM`, `SMIC/HS`...) is absent",
        "error listing the places searched",
    ),
    BadInputRule(
        "blank-row",
        "CASME II, SAMM",
        "a row with neither subject nor filename (spreadsheet padding, notes below the table)",
        "ignored without a warning",
    ),
    BadInputRule(
        "missing-id",
        "CASME II, SAMM",
        "subject or filename cell empty, or a subject that is not a number / `subNN`",
        "row skipped, warning",
    ),
    BadInputRule(
        "duplicate-clip",
        "all",
        "a subject/filename pair seen before in the same file",
        "second row skipped, warning",
    ),
    BadInputRule(
        "bad-onset-offset",
        "CASME II, SAMM",
        "onset or offset cell empty or not a whole number",
        "row skipped, warning",
    ),
    BadInputRule(
        "onset-after-offset",
        "CASME II, SAMM",
        "onset frame number larger than offset frame number",
        "row skipped, warning",
    ),
    BadInputRule(
        "apex-missing",
        "CASME II, SAMM",
        "apex cell empty, `/` or not a whole number (reported for CASME II sub04 `EP12_01f`)",
        "row kept with apex <NA> (an apex policy fills it later), warning",
    ),
    BadInputRule(
        "apex-outside",
        "CASME II, SAMM",
        "apex frame outside onset..offset",
        "row kept with apex <NA> (an apex policy fills it later), warning",
    ),
    BadInputRule(
        "unknown-emotion",
        "all",
        "emotion not one of the known names after lower-casing and aliases "
        "(`Other` -> `others`...), or empty (reported for CASME II sub24 `EP02_07`)",
        "row kept with the emotion as written, warning; every labelling drops it",
    ),
    BadInputRule(
        "missing-frames-folder",
        "CASME II, SAMM",
        "no folder `{frames root}/{subject}/{filename}` for an annotated clip",
        "row skipped, warning",
    ),
    BadInputRule(
        "empty-frames-folder",
        "all",
        "the clip folder holds no image whose name carries a frame number",
        "row (SMIC: clip folder) skipped, warning",
    ),
    BadInputRule(
        "duplicate-frame-number",
        "all",
        "two image files carry the same frame number (`img5.jpg`, `img05.jpg`)",
        "row skipped, warning",
    ),
    BadInputRule(
        "frames-missing",
        "all",
        "frame numbers absent inside onset..offset (a wrong offset, an incomplete copy); "
        "SMIC: a gap in the numbering",
        "row skipped, warning listing the first missing numbers",
    ),
    BadInputRule(
        "frames-outside-clip",
        "CASME II, SAMM",
        "the folder also holds frames before onset or after offset",
        "those frames are left out of `frames`; no warning",
    ),
    BadInputRule(
        "non-frame-file",
        "all",
        "a file that is not an image (.jpg .jpeg .png .bmp .tif .tiff) or has no number "
        "in its name (`Thumbs.db`)",
        "ignored without a warning",
    ),
    BadInputRule(
        "smic-no-micro",
        "SMIC",
        "a subject folder without a `micro` folder",
        "subject skipped, warning",
    ),
    BadInputRule(
        "undecodable-frame",
        "all",
        "a frame file that does not decode",
        "not checked by the readers (they do not open images); preprocessing reports it",
    ),
)

RULE_IDS: frozenset[str] = frozenset(r.id for r in BAD_INPUT_RULES)


def rules_markdown() -> str:
    """The Markdown table of :data:`BAD_INPUT_RULES` (the one in ``docs/bad_inputs.md``)."""
    lines = ["| rule | readers | bad input | what it gets |", "|---|---|---|---|"]
    for r in BAD_INPUT_RULES:
        lines.append(f"| `{r.id}` | {r.readers} | {r.fault} | {r.outcome} |")
    return "\n".join(lines) + "\n"


@dataclass
class IssueLog:
    """Collects the rule applications of one read; each one is also a warning."""

    dataset: str
    items: list[dict] = field(default_factory=list)

    def add(self, rule: str, source: str | Path, row: int | None, clip: str, message: str) -> None:
        """Record rule ``rule`` for ``clip`` at ``source`` (``row``) and warn."""
        if rule not in RULE_IDS:  # pragma: no cover - a programming error
            raise KeyError(rule)
        where = f"{source}, row {row}" if row is not None else str(source)
        self.items.append(
            {"rule": rule, "source": str(source), "row": row, "clip": clip, "message": message}
        )
        warnings.warn(
            ReaderWarning(f"{where}: {self.dataset} {clip}: {message} [{rule}]"), stacklevel=3
        )


def finish_table(rows: list[dict], log: IssueLog) -> pd.DataFrame:
    """The sample table of ``rows`` with the issues of ``log`` in ``attrs["issues"]``."""
    table = make_table(rows) if rows else empty_table()
    table.attrs["issues"] = list(log.items)
    return table
