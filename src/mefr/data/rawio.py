"""Shared machinery of the raw-database readers (CASME II, SAMM, SMIC).

Real annotation files and frame folders have faults. Each fault a reader meets is a
named rule of :data:`BAD_INPUT_RULES` with a fixed outcome: an error (the file cannot be
read at all), a skipped row, or a kept row with a repaired field. Every skip or repair is
a :class:`ReaderWarning` naming the file, the row and the reason, and is also recorded in
the returned table's ``attrs["issues"]`` (a list of dicts: ``rule``, ``source``, ``row``,
``clip``, ``message``). One bad row never loses the others.

``docs/bad_inputs.md`` lists the rules; :func:`rules_markdown` renders the same table.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mefr.data.labels import normalize_emotion
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
        "row kept with the emotion as written, warning; every label protocol drops it",
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

IMAGE_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"})

_NUMBER_AT_END = re.compile(r"(\d+)$")


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


# ------------------------------------------------------------------ annotation sheets
def normalize_column(name: object) -> str:
    """A column name reduced to lower-case letters and digits (`Onset Frame` -> `onsetframe`)."""
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


def read_sheets(path: Path) -> dict[str, pd.DataFrame]:
    """Every sheet of an .xlsx (or the one table of a .csv) as strings/objects, no header.

    Row ``i`` of each frame is spreadsheet row ``i + 1``; blank rows are kept so that the
    numbers stay right.
    """
    try:
        if path.suffix.lower() == ".csv":
            return {
                path.name: pd.read_csv(
                    path,
                    header=None,
                    dtype=object,
                    keep_default_na=False,
                    skip_blank_lines=False,
                ).replace("", None)
            }
        return pd.read_excel(path, header=None, dtype=object, sheet_name=None, engine="openpyxl")
    except Exception as exc:  # any parser failure becomes one clear error
        raise AnnotationError(
            f"{path}: cannot read the annotation file ({exc}) [unreadable-annotation]"
        ) from exc


def locate_header(
    sheets: dict[str, pd.DataFrame], path: Path, must_have: Sequence[str], max_rows: int = 60
) -> tuple[pd.DataFrame, int]:
    """The sheet and 0-based row index of the first row holding all of ``must_have``.

    ``must_have`` are normalised column names (see :func:`normalize_column`).
    """
    want = {normalize_column(m) for m in must_have}
    for sheet in sheets.values():
        for i in range(min(max_rows, len(sheet))):
            cells = {normalize_column(v) for v in sheet.iloc[i].tolist() if not _blank(v)}
            if want <= cells:
                return sheet, i
    raise AnnotationError(
        f"{path}: no header row with {sorted(must_have)} in the first {max_rows} rows "
        f"of sheet(s) {list(sheets)} [no-header-row]"
    )


def table_below_header(
    sheet: pd.DataFrame,
    header_index: int,
    path: Path,
    required: Sequence[str],
    optional: Sequence[str],
) -> pd.DataFrame:
    """The rows below the header, columns renamed to the normalised names asked for.

    Adds a column ``_row`` with the spreadsheet row number. Raises
    :class:`AnnotationError` listing the missing and the found columns.
    """
    header = sheet.iloc[header_index].tolist()
    found = {normalize_column(h): j for j, h in enumerate(header) if not _blank(h)}
    missing = [c for c in required if normalize_column(c) not in found]
    if missing:
        shown = [str(h) for h in header if not _blank(h)]
        raise AnnotationError(
            f"{path}, row {header_index + 1}: missing column(s) {missing}; "
            f"columns found: {shown} [missing-column]"
        )
    body = sheet.iloc[header_index + 1 :]
    out = pd.DataFrame(index=body.index)
    for name in (*required, *optional):
        key = normalize_column(name)
        out[key] = body.iloc[:, found[key]] if key in found else None
    out["_row"] = body.index + 1
    return out.reset_index(drop=True)


def cell_int(value: object) -> int | None:
    """A whole frame number from a cell (int, integral float, digit string) or None."""
    if _blank(value) or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    text = str(value).strip()
    if re.fullmatch(r"\d+", text):
        return int(text)
    if re.fullmatch(r"\d+\.0*", text):
        return int(float(text))
    return None


def cell_text(value: object) -> str:
    """A cell as stripped text ('' for empty); integral floats lose their '.0'."""
    if _blank(value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _blank(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and pd.isna(value):
        return True
    return isinstance(value, str) and not value.strip()


# ------------------------------------------------------------------ annotated rows
@dataclass(frozen=True)
class Annotated:
    """The fields of one annotation row after the row-level rules."""

    subject: str
    clip: str
    onset: int
    apex: int | None
    offset: int
    action_units: str
    emotion: str
    row: int


def check_row(
    rec: pd.Series, subject: str | None, source: Path, log: IssueLog, seen: set[tuple[str, str]]
) -> Annotated | None:
    """Apply the row-level rules to one annotation row (normalised column names).

    ``subject`` is the subject id the reader derived, or None when it is unusable.
    Returns None when the row is skipped (or blank).
    """
    row = int(rec["_row"])
    clip = cell_text(rec["filename"])
    raw_subject = cell_text(rec["subject"])
    if not clip and not raw_subject:
        return None  # blank-row
    if not clip or subject is None:
        log.add(
            "missing-id",
            source,
            row,
            clip or "?",
            f"subject {raw_subject!r} / filename {clip!r} unusable; row skipped",
        )
        return None
    if (subject, clip) in seen:
        log.add("duplicate-clip", source, row, clip, f"{subject}/{clip} seen before; row skipped")
        return None
    onset, offset = cell_int(rec["onsetframe"]), cell_int(rec["offsetframe"])
    if onset is None or offset is None:
        log.add(
            "bad-onset-offset",
            source,
            row,
            clip,
            f"onset {rec['onsetframe']!r} / offset {rec['offsetframe']!r} not a whole number; "
            "row skipped",
        )
        return None
    if onset > offset:
        log.add(
            "onset-after-offset", source, row, clip, f"onset {onset} > offset {offset}; row skipped"
        )
        return None
    apex = cell_int(rec["apexframe"])
    if apex is None:
        log.add(
            "apex-missing",
            source,
            row,
            clip,
            f"apex cell {rec['apexframe']!r} is not a frame number; apex left missing",
        )
    elif not onset <= apex <= offset:
        log.add(
            "apex-outside",
            source,
            row,
            clip,
            f"apex {apex} outside onset..offset {onset}..{offset}; apex left missing",
        )
        apex = None
    emotion = cell_text(rec["estimatedemotion"])
    if normalize_emotion(emotion) is None:
        log.add(
            "unknown-emotion",
            source,
            row,
            clip,
            f"emotion {emotion!r} is not a known emotion; kept as written "
            "(label protocols drop it)",
        )
    seen.add((subject, clip))
    return Annotated(
        subject=subject,
        clip=clip,
        onset=onset,
        apex=apex,
        offset=offset,
        action_units=cell_text(rec.get("actionunits")),
        emotion=emotion,
        row=row,
    )


# ------------------------------------------------------------------ frame folders
def frame_number(path: Path) -> int | None:
    """The frame number at the end of an image file's stem, or None (non-frame-file)."""
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return None
    m = _NUMBER_AT_END.search(path.stem)
    return int(m.group(1)) if m else None


def list_frames(folder: Path) -> tuple[dict[int, Path], list[int]]:
    """Frame number -> file of a clip folder, and the numbers carried by several files."""
    frames: dict[int, Path] = {}
    dups: list[int] = []
    for p in sorted(folder.iterdir()):
        n = frame_number(p) if p.is_file() else None
        if n is None:
            continue
        if n in frames:
            dups.append(n)
        frames[n] = p
    return frames, sorted(set(dups))


def clip_frames(
    folder: Path,
    onset: int | None,
    offset: int | None,
    where: tuple[Path, int | None, str],
    log: IssueLog,
) -> tuple[list[int], list[Path]] | None:
    """The frames of a clip folder from onset to offset (all frames when these are None).

    Applies the folder rules (missing, empty, duplicate numbers, missing frames) and
    returns None when the clip must be skipped. ``where`` = (source, row, clip).
    """
    source, row, clip = where
    if not folder.is_dir():
        log.add(
            "missing-frames-folder", source, row, clip, f"no frame folder {folder}; row skipped"
        )
        return None
    frames, dups = list_frames(folder)
    if not frames:
        log.add(
            "empty-frames-folder", source, row, clip, f"{folder} holds no numbered image; skipped"
        )
        return None
    lo = min(frames) if onset is None else onset
    hi = max(frames) if offset is None else offset
    in_clip = [n for n in dups if lo <= n <= hi]
    if in_clip:
        log.add(
            "duplicate-frame-number",
            source,
            row,
            clip,
            f"{folder}: several files for frame(s) {in_clip[:10]}; skipped",
        )
        return None
    missing = [n for n in range(lo, hi + 1) if n not in frames]
    if missing:
        log.add(
            "frames-missing",
            source,
            row,
            clip,
            f"{folder}: {len(missing)} of frames {lo}..{hi} missing "
            f"(first: {missing[:5]}); skipped",
        )
        return None
    numbers = list(range(lo, hi + 1))
    return numbers, [frames[n] for n in numbers]


def find_first(candidates: Iterable[Path], what: str, rule: str) -> Path:
    """The first existing path of ``candidates``; an :class:`AnnotationError` otherwise."""
    cands = list(candidates)
    for c in cands:
        if c.exists():
            return c
    raise AnnotationError(f"{what} not found; looked for {[str(c) for c in cands]} [{rule}]")


def find_annotation(root: Path, patterns: Sequence[str]) -> Path:
    """The annotation file under ``root`` (or one level down) matching ``patterns``.

    When several match, the name that sorts last (the latest dated release) wins.
    """
    hits: list[Path] = []
    for pat in patterns:
        hits += sorted(root.glob(pat)) + sorted(root.glob(f"*/{pat}"))
    hits = [h for h in hits if h.is_file() and not h.name.startswith("~$")]
    if not hits:
        raise AnnotationError(
            f"no annotation file matching {list(patterns)} in {root} or its sub-folders; "
            "pass annotation=... [annotation-not-found]"
        )
    return sorted(hits, key=lambda p: p.name)[-1]


@dataclass(frozen=True)
class CodedDatabase:
    """What differs between readers of spreadsheet-coded databases (CASME II, SAMM)."""

    dataset: str
    annotation_patterns: tuple[str, ...]
    frame_dirs: tuple[str, ...]
    frames_label: str
    required_columns: tuple[str, ...]
    optional_columns: tuple[str, ...]
    subject_of: Callable[[object], str | None]


def read_coded_database(
    spec: CodedDatabase,
    root: str | Path,
    annotation: str | Path | None = None,
    frames_dir: str | Path | None = None,
) -> pd.DataFrame:
    """A coding spreadsheet + ``FRAMES/<subject>/<clip>/`` folders -> sample table.

    The header row is found by content; each row is checked (:func:`check_row`) and its
    frames onset..offset collected (:func:`clip_frames`); faulty rows are skipped or
    repaired under :data:`BAD_INPUT_RULES`, each with a :class:`ReaderWarning`.
    """
    root = Path(root)
    path = (
        Path(annotation)
        if annotation is not None
        else find_annotation(root, spec.annotation_patterns)
    )
    frames_root = find_first(
        [root / frames_dir] if frames_dir is not None else [root / d for d in spec.frame_dirs],
        spec.frames_label,
        "frames-root-not-found",
    )
    sheet, header = locate_header(read_sheets(path), path, ("Subject", "Filename"))
    body = table_below_header(sheet, header, path, spec.required_columns,
                              spec.optional_columns)
    log = IssueLog(spec.dataset)
    seen: set[tuple[str, str]] = set()
    rows = []
    for _, rec in body.iterrows():
        ann = check_row(rec, spec.subject_of(rec["subject"]), path, log, seen)
        if ann is None:
            continue
        got = clip_frames(frames_root / ann.subject / ann.clip, ann.onset, ann.offset,
                          (path, ann.row, ann.clip), log)
        if got is None:
            continue
        numbers, files = got
        rows.append(
            {
                "dataset": spec.dataset,
                "subject": ann.subject,
                "clip": ann.clip,
                "emotion": ann.emotion,
                "onset": ann.onset,
                "apex": ann.apex,
                "offset": ann.offset,
                "action_units": ann.action_units,
                "frames": files,
                "frame_numbers": numbers,
                "source": path,
                "row": ann.row,
            }
        )
    return finish_table(rows, log)

