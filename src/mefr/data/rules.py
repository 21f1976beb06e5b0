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
from collections import Counter
from collections.abc import Callable
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


#: Who applies a rule: "sheets" is every reader of an annotation spreadsheet (CASME II,
#: SAMM, CAS(ME)^3, CAS(ME)^2, MMEW, 4DME, SMIC-E); "all" adds SMIC (folders only).
SHEETS = "sheets"

#: The bad-input rules of the readers, in the order ``docs/bad_inputs.md`` lists them.
BAD_INPUT_RULES: tuple[BadInputRule, ...] = (
    BadInputRule(
        "annotation-not-found",
        SHEETS,
        "no annotation file given and none found under the root or one folder down "
        "(`CASME2-coding-*.xlsx`, `SAMM_Micro_FACS_Codes*.xlsx`...; Excel lock files "
        "`~$*.xlsx` are never taken), or the file given does not exist",
        "error listing the places searched",
    ),
    BadInputRule(
        "several-annotations",
        SHEETS,
        "several annotation files of the same kind under the root (CASME II's "
        "`CASME2-coding-20140508.xlsx` and `-20190701.xlsx`, which label three clips "
        "differently)",
        "the name that sorts last (the latest release) is used, warning naming it and the "
        "others; pass `annotation=` (`?annotation=FILE`) to choose",
    ),
    BadInputRule(
        "unreadable-annotation",
        SHEETS,
        "the annotation file is not a readable .xlsx/.csv",
        "error naming the file and the parser's message",
    ),
    BadInputRule(
        "no-header-row",
        SHEETS,
        "no row holding a subject and a filename column (any accepted spelling) among the "
        "first 60 rows of any sheet",
        "error naming the file",
    ),
    BadInputRule(
        "missing-column",
        SHEETS,
        "a required column is absent. Names are compared ignoring case, spaces and "
        "punctuation, and common spellings are accepted (`Onset`, `OnsetF`, `Onset Frame` "
        "for the onset; `Emotion`, `Label` for `Estimated Emotion`...)",
        "error listing the missing columns, the spellings accepted and the columns found",
    ),
    BadInputRule(
        "no-annotation-rows",
        SHEETS,
        "the annotation file has a header row but no row below it",
        "error naming the file",
    ),
    BadInputRule(
        "frames-root-not-found",
        "all",
        "the frame folder (`CASME2_RAW_selected`/`Cropped`, `SAMM`, `SMIC/HS`...) is absent",
        "error listing the places searched",
    ),
    BadInputRule(
        "too-few-clips",
        "all",
        "a read that keeps no clip, or fewer than half of the annotated rows (a frame "
        "folder one level deeper than expected, the wrong frame folder or annotation file)",
        "error saying where the frames were looked for, what that folder holds, and a "
        "hint (`found CASME2_RAW_selected/ inside CASME2_RAW_selected/: pass "
        "frames_dir=...`); `min_kept=0` accepts a partial copy",
    ),
    BadInputRule(
        "blank-row",
        SHEETS,
        "a row with neither subject nor filename (spreadsheet padding, notes below the table)",
        "ignored without a warning",
    ),
    BadInputRule(
        "missing-id",
        SHEETS,
        "subject or filename cell empty, or a subject the database does not write that way "
        "(CASME II: a number or `subNN`; SAMM: a number)",
        "row skipped, warning",
    ),
    BadInputRule(
        "unsafe-path",
        SHEETS,
        "a subject, filename or folder cell that is not a plain folder name (`../x`, `/x`, "
        "`a\\b`, `..`), which would read frames outside the frame folder",
        "row skipped, warning; nothing outside the frame folder is read",
    ),
    BadInputRule(
        "duplicate-clip",
        "all",
        "a subject/clip pair seen before in the same file (CAS(ME)^3 and CAS(ME)^2: several "
        "rows of one video are distinct clips `{filename}_{onset}`; only the same onset "
        "twice is a duplicate)",
        "second row skipped, warning",
    ),
    BadInputRule(
        "bad-onset-offset",
        SHEETS,
        "onset or offset cell empty or not a whole number",
        "row skipped, warning",
    ),
    BadInputRule(
        "zero-offset",
        SHEETS,
        "an offset cell holding 0 after a positive onset (CAS(ME)^2 writes 0 where the "
        "offset was not coded)",
        "row skipped, warning (the offset is not guessed)",
    ),
    BadInputRule(
        "onset-after-offset",
        SHEETS,
        "onset frame number larger than offset frame number",
        "row skipped, warning",
    ),
    BadInputRule(
        "outside-video",
        "SMIC-E",
        "onset..offset not inside the video's `FirstF`..`LastF`",
        "row skipped, warning",
    ),
    BadInputRule(
        "apex-missing",
        SHEETS,
        "apex cell empty, `/` or not a whole number (reported for CASME II sub04 `EP12_01f`); "
        "databases without an apex column (SMIC-E) get <NA> without a warning",
        "row kept with apex <NA> (an apex policy fills it later), warning",
    ),
    BadInputRule(
        "apex-outside",
        SHEETS,
        "apex frame outside onset..offset",
        "row kept with apex <NA> (an apex policy fills it later), warning",
    ),
    BadInputRule(
        "unknown-emotion",
        "all",
        "emotion not one of the known names after lower-casing and aliases "
        "(`Other` -> `others`, `happy` -> `happiness`...), or empty (reported for CASME II "
        "sub24 `EP02_07`), or several emotions in one cell",
        "row kept with the emotion as written, warning; every labelling drops it",
    ),
    BadInputRule(
        "label-name-mismatch",
        "SMIC, SMIC-E",
        "the label in a clip's name (`s3_sur_03`) is not its label folder (`negative/`) or "
        "its `Emotion` cell",
        "row kept with the folder's (SMIC-E: the cell's) label, warning",
    ),
    BadInputRule(
        "missing-frames-folder",
        SHEETS,
        "no clip folder (`{frames root}/{subject}/{filename}`, or the database's own "
        "layout) for an annotated clip",
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
        "frame-span-too-long",
        "all",
        "onset..offset (SMIC: the numbers in the folder) spans more than twice as many "
        "frames as the folder holds numbered images: a mistyped offset (293000000), a stray "
        "camera-named file (`IMG_20190101123000.jpg` beside `image004792.bmp`)",
        "row skipped, warning naming the span, the folder's image count (and the outlying "
        "file); the span is never listed, so memory stays bounded by the folder",
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
        SHEETS,
        "the folder also holds frames before onset or after offset (SMIC-E, CAS(ME)^3 and "
        "CAS(ME)^2 folders hold whole videos)",
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
        """Record rule ``rule`` for ``clip`` ('' for the whole file) at ``source`` (``row``)
        and warn."""
        if rule not in RULE_IDS:  # pragma: no cover - a programming error
            raise KeyError(rule)
        where = f"{source}, row {row}" if row is not None else str(source)
        self.items.append(
            {"rule": rule, "source": str(source), "row": row, "clip": clip, "message": message}
        )
        who = f"{self.dataset} {clip}" if clip else self.dataset
        warnings.warn(ReaderWarning(f"{where}: {who}: {message} [{rule}]"), stacklevel=3)

    def counts(self) -> Counter[str]:
        """How often each rule was applied."""
        return Counter(i["rule"] for i in self.items)


def require_enough(log: IssueLog, kept: int, annotated: int, min_kept: float,
                   looked: str, found: Callable[[], str]) -> None:
    """Raise :class:`AnnotationError` (``too-few-clips``) when a read kept no clip, or
    fewer than ``min_kept`` of the ``annotated`` rows.

    ``looked`` says where the frames were looked for; ``found()`` (called only on
    failure) what is there, and a hint. The message also counts the rules that cost
    the rows.
    """
    if kept > 0 and kept >= min_kept * annotated:
        return
    lost = ", ".join(f"{rule} x{n}" for rule, n in sorted(log.counts().items())) or "none"
    partial = " Pass min_kept=0 to accept a partial copy." if kept else ""
    raise AnnotationError(
        f"{log.dataset}: {kept} of {annotated} annotated clip(s) kept (rules applied: {lost}); "
        f"{looked}. {found()}{partial} [too-few-clips]"
    )


def finish_table(rows: list[dict], log: IssueLog) -> pd.DataFrame:
    """The sample table of ``rows`` with the issues of ``log`` in ``attrs["issues"]``."""
    table = make_table(rows) if rows else empty_table()
    table.attrs["issues"] = list(log.items)
    return table
