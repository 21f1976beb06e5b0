"""Labellings: named mappings from annotated emotion to class (the seed paper's and others).

A labelling groups the emotions the databases annotate into the classes one experiment
uses and drops the rest. :func:`apply_labelling` applies one to a sample table (see
:mod:`mefr.data.table`) and adds the integer ``label`` and its name ``label_name``.
("Protocol" in mefr means a split, :mod:`mefr.evaluate.protocols`; the older names
``PROTOCOLS``, ``ProtocolError``, ``apply_protocol`` and ``protocol_classes`` remain as
aliases of :data:`LABELLINGS`, :class:`LabellingError`, :func:`apply_labelling` and
:func:`labelling_classes`.)

Labellings (class order = label order)
--------------------------------------
``cde`` (Table 9, MEGC 2019 composite)
    negative = disgust, repression, anger, contempt, fear, sadness; positive = happiness;
    surprise = surprise; ``others`` dropped. Order ``negative, positive, surprise`` (the
    composite CSV's 0, 1, 2). The already grouped names ``negative``, ``positive`` and
    ``surprise`` (SMIC folders, the pre-computed flow set) map to themselves.
``cdmer`` (Table 11)
    negative = disgust, sadness, fear; positive, surprise as in ``cde``; SMIC's grouped
    labels as they are; repression, anger, contempt and others dropped.
``casme2_5class`` (Table 13)
    CASME II's five classes as annotated: happiness, surprise, disgust, repression,
    others (sadness and fear dropped).
``four_class`` (Table 12, CASME II and SAMM)
    negative = disgust, anger, contempt, fear, sadness; positive = happiness;
    surprise = surprise; others = repression + others. Order
    ``negative, positive, surprise, others``.
``casme3_3class``, ``casme3_4class``, ``casme3_7class`` (CAS(ME)^3, Li et al. 2022)
    The settings the CAS(ME)^3 paper and the MEGC challenges use. 7 classes: happiness,
    disgust, fear, anger, sadness, surprise, others. 4 classes: negative = disgust,
    fear, anger, sadness; positive = happiness; surprise; others. 3 classes: the 4
    without others. The 3- and 4-class settings also take already grouped labels
    (``negative``, ``positive``: CAS(ME)^2's emotion classes, 4DME, SMIC).

Counts on the released files
----------------------------
The seed paper's tables imply a CASME II of 256 clips with 64 disgust (247 for five
classes). Every released CASME II coding file (``CASME2-coding-20140508.xlsx`` and
``-20190701.xlsx``) has 255 rows with 63 disgust: one disgust clip fewer. On the 2014
file ``casme2_5class`` therefore keeps 246 clips, ``four_class`` 255 (negative 72) and
``cdmer`` 129 (negative 72), each one fewer than the paper. The 2019 file moves three
clips from sadness to surprise: ``casme2_5class`` keeps 249 (surprise 28) and
``four_class`` has negative 69, surprise 28. ``docs/datasets.md`` lists the counts of
every database.

Spelling
--------
Emotions are compared after :func:`normalize_emotion`: lower-cased, stripped, inner
white space collapsed, then looked up in :data:`EMOTION_ALIASES` (``Other`` -> ``others``,
``happy`` -> ``happiness``, ``angry`` -> ``anger``...). An emotion that is still not one
of :data:`EMOTIONS` is *unknown*: it is reported (dataset, clip, source, row) and the row
is dropped, never guessed into a class.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

#: Every emotion name a database (or a pre-grouped label set) uses, canonical spelling.
EMOTIONS: tuple[str, ...] = (
    "happiness",
    "surprise",
    "disgust",
    "repression",
    "anger",
    "contempt",
    "fear",
    "sadness",
    "others",
    "negative",
    "positive",
)

#: Other spellings met in annotation files -> canonical name (after lower/strip).
EMOTION_ALIASES: dict[str, str] = {
    "other": "others",
    "happy": "happiness",
    "angry": "anger",
    "sad": "sadness",
    "surprised": "surprise",
    "disgusted": "disgust",
    "repressed": "repression",
    "fearful": "fear",
    "afraid": "fear",
    "contemptuous": "contempt",
}


class LabelWarning(UserWarning):
    """A row was dropped by a labelling (unused or unknown emotion)."""


class LabellingError(ValueError):
    """An unknown labelling name, or a table a labelling cannot label."""


@dataclass(frozen=True)
class Labelling:
    """A labelling: class names in label order and the emotions of each class."""

    name: str
    classes: tuple[str, ...]
    groups: Mapping[str, tuple[str, ...]]
    reference: str

    def class_of(self, emotion: str) -> str | None:
        """The class of a canonical emotion name, or None when the labelling drops it."""
        for cls in self.classes:
            if emotion in self.groups[cls]:
                return cls
        return None


LABELLINGS: dict[str, Labelling] = {
    "cde": Labelling(
        name="cde",
        classes=("negative", "positive", "surprise"),
        groups={
            "negative": (
                "negative",
                "disgust",
                "repression",
                "anger",
                "contempt",
                "fear",
                "sadness",
            ),
            "positive": ("positive", "happiness"),
            "surprise": ("surprise",),
        },
        reference="Table 9 (MEGC 2019 composite database evaluation)",
    ),
    "cdmer": Labelling(
        name="cdmer",
        classes=("negative", "positive", "surprise"),
        groups={
            "negative": ("negative", "disgust", "sadness", "fear"),
            "positive": ("positive", "happiness"),
            "surprise": ("surprise",),
        },
        reference="Table 11 (cross-database MER, CASME II and SMIC)",
    ),
    "casme2_5class": Labelling(
        name="casme2_5class",
        classes=("happiness", "surprise", "disgust", "repression", "others"),
        groups={
            "happiness": ("happiness",),
            "surprise": ("surprise",),
            "disgust": ("disgust",),
            "repression": ("repression",),
            "others": ("others",),
        },
        reference="Table 13 (CASME II, 5 classes: 247 clips in the paper, 246 in the coding files)",
    ),
    "four_class": Labelling(
        name="four_class",
        classes=("negative", "positive", "surprise", "others"),
        groups={
            "negative": ("disgust", "anger", "contempt", "fear", "sadness"),
            "positive": ("happiness",),
            "surprise": ("surprise",),
            "others": ("repression", "others"),
        },
        reference="Table 12 (CASME II and SAMM, 4 classes: 256 + 159 clips in the paper)",
    ),
    "casme3_7class": Labelling(
        name="casme3_7class",
        classes=("happiness", "disgust", "fear", "anger", "sadness", "surprise", "others"),
        groups={c: (c,) for c in
                ("happiness", "disgust", "fear", "anger", "sadness", "surprise", "others")},
        reference="CAS(ME)^3 (Li et al. 2022), 7 classes",
    ),
    "casme3_4class": Labelling(
        name="casme3_4class",
        classes=("negative", "positive", "surprise", "others"),
        groups={
            "negative": ("negative", "disgust", "fear", "anger", "sadness"),
            "positive": ("positive", "happiness"),
            "surprise": ("surprise",),
            "others": ("others",),
        },
        reference="CAS(ME)^3 (Li et al. 2022), 4 classes",
    ),
    "casme3_3class": Labelling(
        name="casme3_3class",
        classes=("negative", "positive", "surprise"),
        groups={
            "negative": ("negative", "disgust", "fear", "anger", "sadness"),
            "positive": ("positive", "happiness"),
            "surprise": ("surprise",),
        },
        reference="CAS(ME)^3 (Li et al. 2022), 3 classes",
    ),
}


def get_labelling(name: str) -> Labelling:
    """The :class:`Labelling` called ``name``; a clear error listing the known ones."""
    try:
        return LABELLINGS[name]
    except KeyError:
        raise LabellingError(
            f"unknown labelling {name!r}; known: {sorted(LABELLINGS)}"
        ) from None


def labelling_classes(name: str) -> tuple[str, ...]:
    """The class names of labelling ``name`` in label order (label i = classes[i])."""
    return get_labelling(name).classes


def normalize_emotion(text: object) -> str | None:
    """Canonical emotion name of an annotation cell, or None when it is not known.

    Lower-cases, strips, collapses inner white space and applies
    :data:`EMOTION_ALIASES`; ``None``/NaN/empty give None.
    """
    if text is None or (isinstance(text, float) and pd.isna(text)):
        return None
    key = re.sub(r"\s+", " ", str(text).strip().lower())
    key = EMOTION_ALIASES.get(key, key)
    return key if key in EMOTIONS else None


def apply_labelling(table: pd.DataFrame, name: str) -> pd.DataFrame:
    """Keep the rows labelling ``name`` uses and add ``label`` (int) and ``label_name``.

    The returned table is a copy with a fresh 0..n-1 index; ``emotion`` is left as the
    reader wrote it. Rows whose emotion the labelling does not use are dropped with one
    :class:`LabelWarning` listing the dropped emotions with their counts per dataset;
    rows whose emotion is unknown (see :func:`normalize_emotion`) are dropped with a
    warning naming dataset, clip, source and row of each.
    """
    proto = get_labelling(name)
    if "emotion" not in table.columns:
        raise LabellingError(
            f"labelling {name!r} needs an 'emotion' column; table has {list(table.columns)}"
        )
    canon = [normalize_emotion(e) for e in table["emotion"]]
    classes = [proto.class_of(c) if c is not None else None for c in canon]
    unknown = [i for i, c in enumerate(canon) if c is None]
    if unknown:
        lines = [_describe_row(table.iloc[i]) for i in unknown]
        warnings.warn(
            LabelWarning(
                f"labelling {name!r}: {len(unknown)} row(s) with an unknown emotion dropped "
                f"(known: {', '.join(EMOTIONS)}):\n  " + "\n  ".join(lines)
            ),
            stacklevel=2,
        )
    unused = Counter(
        (str(table.iloc[i].get("dataset", "?")), canon[i])
        for i, cls in enumerate(classes)
        if cls is None and canon[i] is not None
    )
    if unused:
        listing = ", ".join(f"{ds} {emo} x{n}" for (ds, emo), n in sorted(unused.items()))
        warnings.warn(
            LabelWarning(
                f"labelling {name!r} ({proto.reference}) drops emotions it does not use: "
                f"{listing}"
            ),
            stacklevel=2,
        )
    keep = [i for i, cls in enumerate(classes) if cls is not None]
    out = table.iloc[keep].copy().reset_index(drop=True)
    names = [classes[i] for i in keep]
    out["label"] = pd.array([proto.classes.index(c) for c in names], dtype="int64")
    out["label_name"] = pd.Series(names, dtype=object)
    return out


def class_counts(table: pd.DataFrame, name: str) -> dict[str, int]:
    """Clips per class of a labelled table, in the labelling's class order (zeros kept)."""
    counts = Counter(table["label_name"])
    return {c: int(counts.get(c, 0)) for c in labelling_classes(name)}


def canonical_id(text: str) -> str:
    """An id with the leading zeros of each digit run removed (``s01_ne_01`` -> ``s1_ne_1``).

    Databases and derived lists pad numbers differently (SMIC ``s3_ne_01`` vs. the
    composite list's ``s03_ne_01``); comparing canonical ids matches them.
    """
    return re.sub(r"\d+", lambda m: str(int(m.group())), str(text).strip())


def select_clips(table: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``table`` whose clip is also in ``reference`` (e.g. a flow set's table).

    Clips match on dataset, subject and clip compared by :func:`canonical_id`. Use it to
    restrict a raw-database table to a published clip list (the MEGC 2019 composite of
    Table 9 is 145 of CASME II's clips from 24 subjects, not every disgust/repression
    clip). Reference clips that ``table`` lacks are reported in one :class:`LabelWarning`.
    """

    def keys(df: pd.DataFrame) -> list[tuple[str, str, str]]:
        return [
            (str(d), canonical_id(s), canonical_id(c))
            for d, s, c in zip(df["dataset"], df["subject"], df["clip"], strict=True)
        ]

    ref = set(keys(reference))
    mine = keys(table)
    missing = sorted(ref - set(mine))
    if missing:
        shown = ", ".join("/".join(k) for k in missing[:20])
        more = f" (+{len(missing) - 20} more)" if len(missing) > 20 else ""
        warnings.warn(
            LabelWarning(f"{len(missing)} reference clip(s) not in the table: {shown}{more}"),
            stacklevel=2,
        )
    mask = [k in ref for k in mine]
    return table.loc[mask].copy().reset_index(drop=True)


def _describe_row(row: pd.Series) -> str:
    src = row.get("source") or "<table>"
    r = row.get("row")
    where = f"{src}, row {r}" if r is not None and pd.notna(r) else str(src)
    return (
        f"{row.get('dataset', '?')}/{row.get('subject', '?')}/{row.get('clip', '?')} "
        f"emotion {row.get('emotion')!r} ({where})"
    )


# Older names, kept while other modules move to the new ones.
PROTOCOLS = LABELLINGS
Protocol = Labelling
ProtocolError = LabellingError
get_protocol = get_labelling
protocol_classes = labelling_classes
apply_protocol = apply_labelling
