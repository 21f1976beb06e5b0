"""The shared reader of "coded" databases: an annotation spreadsheet + clip folders.

CASME II, SAMM, CAS(ME)^3, CAS(ME)^2, MMEW, 4DME and SMIC-E ship a spreadsheet with one
row per clip (subject, filename, onset/apex/offset frame numbers, action units,
emotion) and the frames in one folder per clip (or per video). What differs between
them is data, a :class:`CodedDatabase` spec; :func:`read_coded_database` reads any of
them under the rules of :data:`mefr.data.rules.BAD_INPUT_RULES`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mefr.data.frames import (
    clip_frames,
    describe_folder,
    find_first,
    is_plain_name,
    locate_clip_folder,
)
from mefr.data.labels import normalize_emotion
from mefr.data.rules import AnnotationError, IssueLog, finish_table, require_enough
from mefr.data.sheets import (
    cell_int,
    cell_text,
    find_annotation,
    locate_header,
    prefer_sheets,
    read_sheets,
    resolve_annotation,
    table_below_header,
    table_by_position,
)

#: Spellings of each field's column met in annotation files and their exports, accepted
#: by every coded reader after the database's own (compared ignoring case, spaces and
#: punctuation).
COMMON_SPELLINGS: dict[str, tuple[str, ...]] = {
    "subject": ("Subject", "Sub", "sub_ID", "Subject ID", "Participant"),
    "filename": ("Filename", "File name", "fold_name", "Clip", "Video", "Sample"),
    "onset": ("OnsetFrame", "Onset", "OnsetF", "Onset Frame", "Start Frame"),
    "apex": ("ApexFrame", "Apex", "ApexF", "ApexF1", "Apex Frame"),
    "offset": ("OffsetFrame", "Offset", "OffsetF", "Offset Frame", "End Frame"),
    "action_units": ("Action Units", "AU", "AUs", "Action Unit"),
    "emotion": ("Estimated Emotion", "Emotion", "Label", "Emotion Label"),
    "first_frame": ("FirstF", "First Frame"),
    "last_frame": ("LastF", "Last Frame"),
}


@dataclass(frozen=True)
class Annotated:
    """The fields of one annotation row after the row-level rules.

    ``filename`` is the cell as written (it names the clip's or the video's folder);
    ``clip`` is the clip's id, unique within the subject.
    """

    subject: str
    clip: str
    filename: str
    onset: int
    apex: int | None
    offset: int
    action_units: str
    emotion: str
    row: int


def subject_as_written(value: object) -> str | None:
    """The Subject cell as text (integral floats lose their '.0'), None when empty."""
    return cell_text(value) or None


def by_subject(ann: Annotated, rec: pd.Series) -> tuple[str, ...]:
    """The usual clip folder, ``{subject}/{filename}``."""
    return (ann.subject, ann.filename)


@dataclass(frozen=True)
class CodedDatabase:
    """What one coded database's reader needs to know.

    Attributes
    ----------
    dataset : the mefr dataset name the rows get.
    annotation_patterns : globs of the annotation file in order of preference, searched
        under the root and one folder down.
    frame_dirs : frame folders searched under the root, in order ("." is the root).
    frames_label : what the frame folder is called in error messages.
    header : field -> the column as the database's own file names it. The fields are
        ``subject``, ``filename``, ``onset``, ``offset``, ``emotion`` and, where the
        database has them, ``apex``, ``action_units``, ``first_frame``, ``last_frame``
        (SMIC-E). A database without ``apex`` has no apex annotation.
    spellings : more accepted spellings per field (besides :data:`COMMON_SPELLINGS`).
    positions : for a file without a header row, field -> 0-based column.
    sheets : preferred sheet names, in order (all sheets when the file has none).
    optional : fields whose column may be absent.
    subject_field, subject_of : the field holding the subject, and the subject id (as
        the folders write it) of its cell, or None when unusable.
    clip_path : the clip folder's parts below the frame folder, from the checked row and
        its cells (by field).
    repeated_filenames : rows of one ``filename`` (one video) within a subject are
        distinct clips, told apart as ``{filename}_{onset}``.
    row_checks : more checks of a kept row, ``check(ann, source, log)`` (warnings only).
    """

    dataset: str
    annotation_patterns: tuple[str, ...]
    frame_dirs: tuple[str, ...]
    frames_label: str
    header: Mapping[str, str]
    spellings: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    positions: Mapping[str, int] | None = None
    sheets: tuple[str, ...] = ()
    optional: frozenset[str] = frozenset({"action_units", "first_frame", "last_frame"})
    subject_field: str = "subject"
    subject_of: Callable[[object], str | None] = subject_as_written
    clip_path: Callable[[Annotated, pd.Series], tuple[str, ...]] = by_subject
    repeated_filenames: bool = False
    row_checks: tuple[Callable[[Annotated, Path, IssueLog], None], ...] = ()

    def columns(self, name: str) -> tuple[str, ...]:
        """The accepted spellings of field ``name``'s column, the database's own first."""
        names = (self.header[name], *self.spellings.get(name, ()),
                 *COMMON_SPELLINGS.get(name, ()))
        return tuple(dict.fromkeys(names))


def check_row(
    rec: pd.Series,
    subject: str | None,
    clip: str,
    source: Path,
    log: IssueLog,
    seen: set[tuple[str, str]],
    has_apex: bool = True,
) -> Annotated | None:
    """Apply the row-level rules to one annotation row (columns named by field).

    ``subject`` is the subject id the reader derived (None when unusable) and ``clip``
    the clip id. Returns None when the row is skipped (or blank).
    """
    row = int(rec["_row"])
    filename = cell_text(rec["filename"])
    raw_subject = cell_text(rec["subject"])
    if not filename and not raw_subject:
        return None  # blank-row
    if not filename or subject is None:
        log.add("missing-id", source, row, filename or "?",
                f"subject {raw_subject!r} / filename {filename!r} unusable; row skipped")
        return None
    if (subject, clip) in seen:
        log.add("duplicate-clip", source, row, clip, f"{subject}/{clip} seen before; row skipped")
        return None
    onset, offset = cell_int(rec["onset"]), cell_int(rec["offset"])
    if onset is None or offset is None:
        log.add("bad-onset-offset", source, row, clip,
                f"onset {rec['onset']!r} / offset {rec['offset']!r} not a whole number; "
                "row skipped")
        return None
    if offset == 0 and onset > 0:
        log.add("zero-offset", source, row, clip,
                f"offset 0 after onset {onset} (the offset was not coded); row skipped")
        return None
    if onset > offset:
        log.add("onset-after-offset", source, row, clip,
                f"onset {onset} > offset {offset}; row skipped")
        return None
    first, last = cell_int(rec.get("first_frame")), cell_int(rec.get("last_frame"))
    if first is not None and last is not None and not first <= onset <= offset <= last:
        log.add("outside-video", source, row, clip,
                f"onset..offset {onset}..{offset} not inside the video's {first}..{last}; "
                "row skipped")
        return None
    apex = cell_int(rec["apex"]) if has_apex else None
    if has_apex and apex is None:
        log.add("apex-missing", source, row, clip,
                f"apex cell {rec['apex']!r} is not a frame number; apex left missing")
    elif apex is not None and not onset <= apex <= offset:
        log.add("apex-outside", source, row, clip,
                f"apex {apex} outside onset..offset {onset}..{offset}; apex left missing")
        apex = None
    emotion = cell_text(rec["emotion"])
    if normalize_emotion(emotion) is None:
        log.add("unknown-emotion", source, row, clip,
                f"emotion {emotion!r} is not a known emotion; kept as written "
                "(labellings drop it)")
    seen.add((subject, clip))
    return Annotated(subject=subject, clip=clip, filename=filename, onset=onset, apex=apex,
                     offset=offset, action_units=cell_text(rec.get("action_units")),
                     emotion=emotion, row=row)


def read_annotation(spec: CodedDatabase, path: Path) -> pd.DataFrame:
    """The rows of an annotation file, one column per field of ``spec`` plus ``_row``
    (the spreadsheet row number), blank rows included."""
    sheets = prefer_sheets(read_sheets(path), spec.sheets)
    if spec.positions is not None:
        sheet = next(iter(sheets.values()))
        return table_by_position(sheet, path, spec.positions, f"the {spec.dataset} coding")
    name, i = locate_header(sheets, path, (spec.columns("subject"), spec.columns("filename")))
    columns = {f: spec.columns(f) for f in spec.header}
    required = [f for f in spec.header if f not in spec.optional]
    return table_below_header(sheets[name], i, path, columns, required)


def _clip_ids(spec: CodedDatabase, body: pd.DataFrame, subjects: list[str | None]) -> list[str]:
    names = [cell_text(v) for v in body["filename"]]
    if not spec.repeated_filenames:
        return names
    counts = Counter(zip(subjects, names, strict=True))
    return [f"{n}_{cell_text(on)}" if counts[(s, n)] > 1 else n
            for s, n, on in zip(subjects, names, body["onset"], strict=True)]


def read_coded_database(
    spec: CodedDatabase,
    root: str | Path,
    annotation: str | Path | None = None,
    frames_dir: str | Path | None = None,
    min_kept: float = 0.5,
    select: Callable[[pd.Series], bool] | None = None,
) -> pd.DataFrame:
    """An annotation spreadsheet + clip folders -> sample table.

    Parameters
    ----------
    spec : the database.
    root : the database folder.
    annotation : the annotation file (absolute, or relative to ``root`` or the working
        directory); found under ``root`` when None, a warning naming the others when
        several match.
    frames_dir : the frame folder (relative to ``root``, or absolute); the first of
        ``spec.frame_dirs`` that exists when None.
    min_kept : the read fails (``too-few-clips``) when it keeps fewer than this
        fraction of the annotated rows; it always fails when it keeps none.
    select : rows for which it is False are left out without a warning (CAS(ME)^2's
        macro-expressions); they do not count as annotated.

    Each row is checked (:func:`check_row`) and its frames onset..offset collected
    (:func:`~mefr.data.frames.clip_frames`); faulty rows are skipped or repaired under
    :data:`~mefr.data.rules.BAD_INPUT_RULES`, each with a
    :class:`~mefr.data.rules.ReaderWarning`. ``attrs["annotation"]`` names the file read.
    """
    root = Path(root)
    log = IssueLog(spec.dataset)
    if annotation is not None:
        path = resolve_annotation(root, annotation)
    else:
        path, others = find_annotation(root, spec.annotation_patterns)
        if others:
            log.add("several-annotations", path, None, "",
                    f"{len(others) + 1} annotation files match: using {path.name} (the latest "
                    f"name), not {[str(o) for o in others]}; pass annotation=... to choose")
    frames_root = find_first(
        [root / frames_dir] if frames_dir is not None else [root / d for d in spec.frame_dirs],
        spec.frames_label,
        "frames-root-not-found",
    )
    body = read_annotation(spec, path)
    body = body[[bool(cell_text(s) or cell_text(f))
                 for s, f in zip(body["subject"], body["filename"], strict=True)]]
    if body.empty:
        raise AnnotationError(f"{path}: no annotated row below the header [no-annotation-rows]")
    chosen = body[[select(r) for _, r in body.iterrows()]] if select is not None else body
    subjects = [spec.subject_of(v) for v in chosen[spec.subject_field]]
    clips = _clip_ids(spec, chosen, subjects)
    seen: set[tuple[str, str]] = set()
    rows: list[dict] = []
    lost: list[tuple[str, ...]] = []
    has_apex = "apex" in spec.header
    for (_, rec), subject, clip in zip(chosen.iterrows(), subjects, clips, strict=True):
        ann = check_row(rec, subject, clip, path, log, seen, has_apex)
        if ann is None:
            continue
        parts = spec.clip_path(ann, rec)
        if not all(is_plain_name(p) for p in parts):
            log.add("unsafe-path", path, ann.row, ann.clip,
                    f"clip folder {'/'.join(parts)!r} is not a plain folder name below "
                    f"{frames_root}; row skipped")
            continue
        folder = frames_root.joinpath(*parts)
        got = clip_frames(folder, ann.onset, ann.offset, (path, ann.row, ann.clip), log)
        if got is None:
            if not folder.is_dir():
                lost.append(parts)
            continue
        for check in spec.row_checks:
            check(ann, path, log)
        numbers, files = got
        rows.append({"dataset": spec.dataset, "subject": ann.subject, "clip": ann.clip,
                     "emotion": ann.emotion, "onset": ann.onset, "apex": ann.apex,
                     "offset": ann.offset, "action_units": ann.action_units, "frames": files,
                     "frame_numbers": numbers, "source": path, "row": ann.row})

    def found() -> str:
        hint = locate_clip_folder(root, frames_root, lost[0]) if lost else ""
        return f"{describe_folder(frames_root)} {hint}".strip()

    require_enough(log, len(rows), len(chosen), min_kept,
                   f"annotation {path}, frames looked for under {frames_root}", found)
    table = finish_table(rows, log)
    table.attrs["annotation"] = str(path)
    table.attrs["left_out"] = len(body) - len(chosen)
    return table
