"""On-disk formats of the synthetic databases: one :class:`~.clips.Layout` per database.

A layout knows how its database names subjects, clips and frames, where the frames go,
and how its annotation file looks (header, spelling, prose rows). Folder and column
names come from the readers' own constants (:mod:`mefr.data.casme2`,
:mod:`mefr.data.samm`, :mod:`mefr.data.smic`...), so a writer and its reader cannot drift
apart. :data:`LAYOUTS` maps each dataset name to its layout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from mefr.data.casme2 import FRAME_DIRS as CASME2_FRAME_DIRS
from mefr.data.casme2 import HEADER as CASME2_HEADER
from mefr.data.casme3 import COLOUR_DIR as CASME3_COLOUR_DIR
from mefr.data.casme3 import FRAME_DIRS as CASME3_FRAME_DIRS
from mefr.data.casme3 import HEADER as CASME3_HEADER
from mefr.data.casme_sq import FRAME_DIRS as CASME_SQ_FRAME_DIRS
from mefr.data.casme_sq import POSITIONS as CASME_SQ_POSITIONS
from mefr.data.fourdme import FRAME_DIRS as FOURDME_FRAME_DIRS
from mefr.data.fourdme import HEADER as FOURDME_HEADER
from mefr.data.mmew import FRAME_DIRS as MMEW_FRAME_DIRS
from mefr.data.mmew import HEADER as MMEW_HEADER
from mefr.data.samm import FRAME_DIRS as SAMM_FRAME_DIRS
from mefr.data.samm import HEADER as SAMM_HEADER
from mefr.data.smic import LABEL_ABBREVIATIONS, VARIANTS
from mefr.data.smic_e import HEADER as SMIC_E_HEADER
from mefr.data.smic_e import SPECS as SMIC_E_SPECS
from mefr.data.smic_e import VARIANTS as SMIC_E_VARIANTS
from mefr.data.synthetic.clips import ClipSpec, Layout, share_videos, write_rows
from mefr.data.synthetic.motion import ACTION_UNITS


class Casme2Layout(Layout):
    """CASME II: ``CASME2-coding-20140508.xlsx`` + ``CASME2_RAW_selected/sub01/EP02_01f/``."""

    dataset = "casme2"
    folder = "casme2"
    frames_dir = CASME2_FRAME_DIRS[0]
    identity = "casme2"
    emotions = (
        "happiness", "surprise", "disgust", "others", "happiness", "surprise", "repression",
        "sadness", "fear",
    )
    onset_range = (1, 300)
    annotation = "CASME2-coding-20140508.xlsx"

    def subject_id(self, s: int) -> str:
        return f"sub{s + 1:02d}"

    def clip_id(self, subject: str, k: int, emotion: str, rng: np.random.Generator) -> str:
        return f"EP{k + 1:02d}_{int(rng.integers(1, 20)):02d}" + ("f" if rng.random() < 0.4 else "")

    def frame_name(self, spec: ClipSpec, number: int) -> str:
        return f"img{number}.jpg"

    def write_annotation(self, db_root: Path, specs: Sequence[ClipSpec]) -> None:
        header = [CASME2_HEADER[f] for f in
                  ("subject", "filename", "onset", "apex", "offset", "action_units", "emotion")]
        write_rows(db_root / self.annotation, "Sheet1", [header] + [
            [int(sp.subject[3:]), sp.clip, sp.onset, sp.apex, sp.offset,
             ACTION_UNITS[sp.pattern], sp.emotion] for sp in specs])


#: SAMM's prose rows above the header row (the real file has about a dozen).
SAMM_PROSE: tuple[str | None, ...] = (
    "SAMM - Spontaneous Actions and Micro-Movements (SYNTHETIC STAND-IN made by mefr)",
    None,
    "FACS coding of the micro-movements of each participant.",
    "Onset, apex and offset are absolute frame numbers of the image sequence.",
    "Duration is offset - onset + 1 frames at 200 fps.",
    None,
    "Inducement Code: the stimulus video that elicited the movement.",
    "Objective Classes: groups of action units (see the SAMM paper).",
    "Estimated Emotion: the emotion estimated by the coders.",
    None,
    "These faces are warped copies of a public photograph; no participant is real.",
    None,
)
#: SAMM's objective class (groups of action units) written for each motion pattern.
SAMM_OBJECTIVE_CLASS: dict[str, int] = {
    "happiness": 1, "surprise": 5, "disgust": 4, "repression": 6, "anger": 2, "sadness": 6,
    "fear": 5, "contempt": 3, "others": 7,
}


class SammLayout(Layout):
    """SAMM: prose rows above the header; greyscale ``SAMM/006/006_1_2/006_05562.jpg``."""

    dataset = "samm"
    folder = "samm"
    frames_dir = SAMM_FRAME_DIRS[0]
    identity = "samm"
    emotions = (
        "Happiness", "Surprise", "Anger", "Other", "Happiness", "Surprise", "Contempt",
        "Disgust", "Fear",
    )
    grey = True
    annotation = "SAMM_Micro_FACS_Codes_v2.xlsx"

    def subject_id(self, s: int) -> str:
        return f"{s + 6:03d}"

    def clip_id(self, subject: str, k: int, emotion: str, rng: np.random.Generator) -> str:
        return f"{subject}_{k // 3 + 1}_{k % 3 + 1}"

    def frame_name(self, spec: ClipSpec, number: int) -> str:
        return f"{spec.subject}_{number:05d}.jpg"

    def write_annotation(self, db_root: Path, specs: Sequence[ClipSpec]) -> None:
        h = SAMM_HEADER
        header = [h["subject"], h["filename"], "Inducement Code", h["onset"], h["apex"],
                  h["offset"], "Duration", "Type", h["action_units"], "Notes", h["emotion"],
                  "Objective Classes"]
        rows = [[sp.subject, sp.clip, int(sp.clip.split("_")[1]), sp.onset, sp.apex,
                 sp.offset, sp.offset - sp.onset + 1, "Micro - 1/2", ACTION_UNITS[sp.pattern],
                 "", sp.emotion, SAMM_OBJECTIVE_CLASS[sp.pattern]] for sp in specs]
        prose = [[line] if line else [] for line in SAMM_PROSE]
        write_rows(db_root / self.annotation, "FACS_Movement_Only", [*prose, header, *rows])


class SmicLayout(Layout):
    """SMIC (one camera): labels in folders, ``SMIC/HS/s1/micro/negative/s1_ne_01/``."""

    identity = "smic"
    emotions = ("negative", "positive", "surprise")
    folder = "smic"

    def __init__(self, dataset: str) -> None:
        self.dataset = dataset
        folder = {v: k for k, v in VARIANTS.items()}[dataset]
        self.frames_dir = f"SMIC/{folder}"
        self.camera = None if folder == "HS" else folder.lower()

    def clip_id(self, subject: str, k: int, emotion: str, rng: np.random.Generator) -> str:
        return f"{subject}_{LABEL_ABBREVIATIONS[emotion]}_{k + 1:02d}"

    def clip_dir(self, db_root: Path, spec: ClipSpec) -> Path:
        label = spec.emotion.strip().lower()
        return db_root / self.frames_dir / spec.subject / "micro" / label / spec.clip

    def frame_name(self, spec: ClipSpec, number: int) -> str:
        return f"image{number:06d}.bmp"


#: CAS(ME)^3's objective class (groups of action units) written for each motion pattern.
OBJECTIVE_CLASS = SAMM_OBJECTIVE_CLASS


class Casme3Layout(Layout):
    """CAS(ME)^3 part A: ``part_A/data/part_A/spNO.1/a/color/{N}.jpg``, two clips per
    video (``a_1190``, ``a_1226``: the readers' names for a repeated ``Filename``)."""

    dataset = "casme3"
    folder = "casme3"
    frames_dir = CASME3_FRAME_DIRS[0]
    identity = "casme3"
    emotions = ("happy", "surprise", "disgust", "Others", "fear", "anger", "sad")
    onset_range = (1, 3000)
    annotation = "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"

    def subject_id(self, s: int) -> str:
        return f"spNO.{s + 1}"

    def clip_id(self, subject: str, k: int, emotion: str, rng: np.random.Generator) -> str:
        return f"{self.video(subject, k)}_{k}"

    def video(self, subject: str, k: int) -> str:
        return "abcdefghijklm"[(k // 2) % 13]

    def clip_dir(self, db_root: Path, spec: ClipSpec) -> Path:
        return db_root / self.frames_dir / spec.subject / spec.filename / CASME3_COLOUR_DIR

    def arrange(self, specs: list[ClipSpec]) -> list[ClipSpec]:
        return share_videos(specs)

    def frame_name(self, spec: ClipSpec, number: int) -> str:
        return f"{number}.jpg"

    def write_annotation(self, db_root: Path, specs: Sequence[ClipSpec]) -> None:
        h = CASME3_HEADER
        header = [h["subject"], h["filename"], h["onset"], h["apex"], h["offset"],
                  h["action_units"], "Objective class", h["emotion"]]
        write_rows(db_root / self.annotation, "Sheet1", [header] + [
            [sp.subject, sp.filename, sp.onset, sp.apex, sp.offset, ACTION_UNITS[sp.pattern],
             OBJECTIVE_CLASS[sp.pattern], sp.emotion] for sp in specs])


#: Video names in CAS(ME)^2's form (stimulus code + name; the last four are made up).
CASME_SQ_VIDEOS: tuple[str, ...] = (
    "0101disgustingteeth", "0401girlcrashing", "0502stimulus", "0503stimulus",
    "0505stimulus", "0507stimulus",
)


class CasmeSqLayout(Layout):
    """CAS(ME)^2: a header-less coding sheet; ``rawpic/s15/15_0401girlcrashing/img1.jpg``
    with two micro-expressions per long video, and one macro-expression row per subject
    (over the frames of its first clip) that a default read leaves out."""

    dataset = "casme_sq"
    folder = "casme_sq"
    frames_dir = CASME_SQ_FRAME_DIRS[0]
    identity = "casme_sq"
    emotions = ("negative", "positive", "surprise", "others", "negative")
    onset_range = (1, 2000)
    annotation = "CAS(ME)^2code_final(Updated).xlsx"

    def subject_id(self, s: int) -> str:
        return f"s{s + 15}"

    def clip_id(self, subject: str, k: int, emotion: str, rng: np.random.Generator) -> str:
        return f"{CASME_SQ_VIDEOS[(k // 2) % len(CASME_SQ_VIDEOS)][4:]}{k // 2 + 1}_{k % 2 + 1}"

    def video(self, subject: str, k: int) -> str:
        number = subject[1:]
        return f"{subject}/{number}_{CASME_SQ_VIDEOS[(k // 2) % len(CASME_SQ_VIDEOS)]}"

    def arrange(self, specs: list[ClipSpec]) -> list[ClipSpec]:
        return share_videos(specs, rename=False)

    def clip_dir(self, db_root: Path, spec: ClipSpec) -> Path:
        return db_root / self.frames_dir / spec.filename

    def frame_name(self, spec: ClipSpec, number: int) -> str:
        return f"img{number}.jpg"

    def write_annotation(self, db_root: Path, specs: Sequence[ClipSpec]) -> None:
        def row(sp: ClipSpec, clip: str, kind: str) -> list[object]:
            cells: dict[str, object] = {
                "subject": int(sp.subject[1:]) - 14, "filename": clip, "onset": sp.onset,
                "apex": sp.apex, "offset": sp.offset, "action_units": ACTION_UNITS[sp.pattern],
                "emotion": sp.emotion, "expression": kind, "estimated_emotion": sp.pattern,
                "duration": sp.offset - sp.onset + 1, "video": sp.filename,
            }
            out: list[object] = [None] * (max(CASME_SQ_POSITIONS.values()) + 1)
            for name, j in CASME_SQ_POSITIONS.items():
                out[j] = cells[name]
            return out

        rows = []
        for sp in specs:
            first = next(s for s in specs if s.subject == sp.subject)
            rows.append(row(sp, sp.clip, "micro-expression"))
            if sp is first:
                rows.append(row(sp, f"{sp.clip}_macro", "macro-expression"))
        write_rows(db_root / self.annotation, "Sheet1", rows)


class MmewLayout(Layout):
    """MMEW: clip folders grouped by emotion, ``Micro_Expression/happiness/S01_01/1.jpg``."""

    dataset = "mmew"
    folder = "mmew"
    frames_dir = MMEW_FRAME_DIRS[0]
    identity = "mmew"
    emotions = ("happiness", "surprise", "disgust", "others", "fear", "anger", "sadness")
    onset_range = (1, 40)
    annotation = "MMEW_Micro_Exp.xlsx"

    def subject_id(self, s: int) -> str:
        return f"S{s + 1:02d}"

    def clip_id(self, subject: str, k: int, emotion: str, rng: np.random.Generator) -> str:
        return f"{subject}_{k + 1:02d}"

    def clip_dir(self, db_root: Path, spec: ClipSpec) -> Path:
        return db_root / self.frames_dir / spec.emotion / spec.clip

    def frame_name(self, spec: ClipSpec, number: int) -> str:
        return f"{number}.jpg"

    def write_annotation(self, db_root: Path, specs: Sequence[ClipSpec]) -> None:
        h = MMEW_HEADER
        header = [h[f] for f in ("subject", "filename", "onset", "apex", "offset",
                                 "action_units", "emotion")] + ["remarks"]
        write_rows(db_root / self.annotation, "Sheet1", [header] + [
            [sp.subject, sp.clip, sp.onset, sp.apex, sp.offset, ACTION_UNITS[sp.pattern],
             sp.emotion, ""] for sp in specs])


#: 4DME's one-hot emotion columns, written after the labelled ones.
FOURDME_ONE_HOT: tuple[str, ...] = ("Positive", "Negative", "Surprise", "Repression", "Others")


class FourDmeLayout(Layout):
    """4DME: greyscale ``gray_micro_crop/S01/S01_ME_01/{N}.jpg``."""

    dataset = "4dme"
    folder = "4dme"
    frames_dir = FOURDME_FRAME_DIRS[0]
    identity = "4dme"
    emotions = ("Positive", "Negative", "Surprise", "Others", "Repression")
    onset_range = (1, 200)
    grey = True
    annotation = "4DME_Labelling_Micro_release v1.xlsx"

    def subject_id(self, s: int) -> str:
        return f"S{s + 1:02d}"

    def clip_id(self, subject: str, k: int, emotion: str, rng: np.random.Generator) -> str:
        return f"{subject}_ME_{k + 1:02d}"

    def frame_name(self, spec: ClipSpec, number: int) -> str:
        return f"{number}.jpg"

    def write_annotation(self, db_root: Path, specs: Sequence[ClipSpec]) -> None:
        h = FOURDME_HEADER
        header = [h[f] for f in ("subject", "filename", "emotion", "onset", "apex", "offset",
                                 "action_units")] + list(FOURDME_ONE_HOT)
        write_rows(db_root / self.annotation, "Sheet1", [header] + [
            [sp.subject, sp.clip, sp.emotion, sp.onset, sp.apex, sp.offset,
             ACTION_UNITS[sp.pattern]] + [int(c == sp.emotion) for c in FOURDME_ONE_HOT]
            for sp in specs])


class SmicELayout(Layout):
    """SMIC-E (one camera): long clips ``SMIC-HS-E/HS/s1/s1_ne_01/image17581039.jpg``;
    HS and VIS rows in sheets of ``SMIC-HS-E_annotation.xlsx``, NIR (filmed with VIS:
    the same clips and frame numbers) in its own file."""

    identity = "smic_e"
    emotions = ("negative", "positive", "surprise")
    folder = "smic_e"
    onset_range = (10_000_000, 20_000_000)

    def __init__(self, dataset: str) -> None:
        self.dataset = dataset
        self.camera_folder = {v: k for k, v in SMIC_E_VARIANTS.items()}[dataset]
        self.frames_dir = SMIC_E_SPECS[self.camera_folder].frame_dirs[0]
        self.camera = None if self.camera_folder == "HS" else self.camera_folder.lower()
        self.plan_as = SMIC_E_VARIANTS["VIS"] if self.camera_folder == "NIR" else ""
        book = "NIR" if self.camera_folder == "NIR" else "HS"
        self.annotation = f"SMIC-{book}-E_annotation.xlsx"

    def clip_id(self, subject: str, k: int, emotion: str, rng: np.random.Generator) -> str:
        return f"{subject}_{LABEL_ABBREVIATIONS[emotion]}_{k + 1:02d}"

    def arrange(self, specs: list[ClipSpec]) -> list[ClipSpec]:
        return [replace(sp, lead=3, tail=3) for sp in specs]

    def frame_name(self, spec: ClipSpec, number: int) -> str:
        return f"image{number:08d}.jpg"

    def write_annotation(self, db_root: Path, specs: Sequence[ClipSpec]) -> None:
        h = SMIC_E_HEADER
        header = [h["subject"], h["filename"], h["onset"], h["offset"], "Duration",
                  h["first_frame"], h["last_frame"], "Total", h["emotion"]]
        rows = [[sp.subject, sp.clip, sp.onset, sp.offset, sp.offset - sp.onset + 1,
                 sp.onset - sp.lead, sp.offset + sp.tail, sp.offset - sp.onset + sp.lead
                 + sp.tail + 1, sp.emotion] for sp in specs]
        write_rows(db_root / self.annotation, self.camera_folder, [header, *rows],
                   keep_other_sheets=True)


#: Every layout, by dataset name (the order :data:`SYNTHETIC_DATABASES` lists).
LAYOUTS: dict[str, Layout] = {
    "casme2": Casme2Layout(),
    "samm": SammLayout(),
    **{d: SmicLayout(d) for d in VARIANTS.values()},
    "casme3": Casme3Layout(),
    "casme_sq": CasmeSqLayout(),
    "mmew": MmewLayout(),
    "4dme": FourDmeLayout(),
    **{d: SmicELayout(d) for d in SMIC_E_VARIANTS.values()},
}
