"""Reader of SMIC as licensees hold it (Li et al. 2013; Tables 9, 11, 12).

SMIC has no spreadsheet: the folder layout carries the labels::

    ROOT/SMIC/HS/s3/micro/positive/s3_po_11/image000123.bmp ...
                        /negative/... /surprise/...
    (cropped copies: reg_image000123.bmp; VIS and NIR in place of HS)

A clip folder starts at the onset frame and ends at the offset frame; SMIC has **no
apex annotation**, so ``apex`` is <NA> (the seed paper spots it with its Eq. (1)).
Frames are sorted by the number at the end of their names, whatever the prefix.
Subjects are written as the folders are (``s3``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from mefr.data.frames import clip_frames, describe_folder, find_first
from mefr.data.labels import normalize_emotion
from mefr.data.rules import IssueLog, finish_table, require_enough

#: SMIC sub-databases: folder name -> mefr dataset name.
VARIANTS: dict[str, str] = {"HS": "smic_hs", "VIS": "smic_vis", "NIR": "smic_nir"}
#: Label folder -> its abbreviation in clip names (``s3_po_11`` is filed under positive).
LABEL_ABBREVIATIONS: dict[str, str] = {"negative": "ne", "positive": "po", "surprise": "sur"}


def smic_variant(name: str) -> str:
    """The folder name (``HS``, ``VIS``, ``NIR``) of ``hs``, ``smic_hs``, ``HS``..."""
    key = name.strip().upper().removeprefix("SMIC_").removeprefix("SMIC-")
    if key not in VARIANTS:
        raise ValueError(f"unknown SMIC variant {name!r}; use one of {list(VARIANTS)}")
    return key


def natural_key(name: str) -> list[object]:
    """Sort key that orders embedded numbers numerically (``s2`` before ``s10``)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _subdirs(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name))


def label_in_name(clip: str) -> str | None:
    """The label a SMIC clip name carries (``s3_sur_03`` -> ``surprise``), or None."""
    by_abbrev = {v: k for k, v in LABEL_ABBREVIATIONS.items()}
    for token in clip.lower().split("_"):
        if token in by_abbrev:
            return by_abbrev[token]
        if token in LABEL_ABBREVIATIONS:
            return token
    return None


def check_label_in_name(clip: str, label: str, source: Path, row: int | None,
                        log: IssueLog, what: str) -> None:
    """Warn (``label-name-mismatch``) when ``clip``'s name carries another label than
    ``label`` (``what`` says where ``label`` came from)."""
    named = label_in_name(clip)
    if named is not None and normalize_emotion(label) in LABEL_ABBREVIATIONS \
            and named != normalize_emotion(label):
        log.add("label-name-mismatch", source, row, clip,
                f"the clip's name says {named!r} but {what} says {label!r}; kept as {label!r}")


def read_smic(
    root: str | Path,
    variant: str = "HS",
    frames_dir: str | Path | None = None,
    min_kept: float = 0.5,
) -> pd.DataFrame:
    """Read one SMIC sub-database (``HS``, ``VIS`` or ``NIR``) into a sample table.

    Parameters
    ----------
    root : the folder holding ``SMIC/{variant}`` (or ``{variant}`` directly).
    variant : ``HS``, ``VIS`` or ``NIR`` (``smic_hs``... also accepted).
    frames_dir : the variant folder itself, relative to ``root`` or absolute.
    min_kept : the read fails (``too-few-clips``) when it keeps fewer than this fraction
        of the clip folders it finds; it always fails when it keeps none.

    One row per folder ``{subject}/micro/{label}/{clip}``; the emotion is the label
    folder's name (a clip name carrying another label, ``s3_sur_03`` under
    ``negative/``, is kept with a warning); onset/offset are the first/last frame
    numbers and apex is <NA>. ``source`` is the clip folder and ``row`` is <NA>. Folder
    faults follow :data:`mefr.data.rules.BAD_INPUT_RULES`.
    """
    root = Path(root)
    folder = smic_variant(variant)
    dataset = VARIANTS[folder]
    cands = (
        [root / frames_dir]
        if frames_dir is not None
        else [root / "SMIC" / folder, root / folder]
        + ([root] if root.name.upper() == folder else [])
    )
    base = find_first(cands, f"SMIC {folder} folder", "frames-root-not-found")
    log = IssueLog(dataset)
    seen: set[tuple[str, str]] = set()
    rows = []
    found = 0
    for subj in _subdirs(base):
        micro = subj / "micro"
        if not micro.is_dir():
            log.add("smic-no-micro", subj, None, subj.name,
                    f"no 'micro' folder in {subj}; subject skipped")
            continue
        for label_dir in _subdirs(micro):
            emotion = label_dir.name
            for clip_dir in _subdirs(label_dir):
                found += 1
                clip = clip_dir.name
                if (subj.name, clip) in seen:
                    log.add("duplicate-clip", clip_dir, None, clip,
                            f"clip {clip} seen before under another label folder; skipped")
                    continue
                got = clip_frames(clip_dir, None, None, (clip_dir, None, clip), log)
                if got is None:
                    continue
                if normalize_emotion(emotion) is None:
                    log.add("unknown-emotion", clip_dir, None, clip,
                            f"label folder {emotion!r} is not a known emotion; kept as written")
                check_label_in_name(clip, emotion, clip_dir, None, log,
                                    f"its label folder {label_dir.name}/")
                seen.add((subj.name, clip))
                numbers, files = got
                rows.append({"dataset": dataset, "subject": subj.name, "clip": clip,
                             "emotion": emotion, "onset": numbers[0], "apex": None,
                             "offset": numbers[-1], "action_units": "", "frames": files,
                             "frame_numbers": numbers, "source": clip_dir, "row": None})
    require_enough(log, len(rows), found, min_kept,
                   f"clip folders looked for as {base}/{{subject}}/micro/{{label}}/{{clip}}",
                   lambda: describe_folder(base))
    return finish_table(rows, log)
