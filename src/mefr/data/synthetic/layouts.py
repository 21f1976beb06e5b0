"""On-disk formats of the synthetic databases: one :class:`Layout` per database.

A layout knows how its database names subjects, clips and frames, where the frames go,
and how its annotation file looks (header, spelling, prose rows). Folder and column
names come from the readers' own constants (:mod:`mefr.data.casme2`,
:mod:`mefr.data.samm`, :mod:`mefr.data.smic`...), so a writer and its reader cannot drift
apart. :data:`LAYOUTS` maps each dataset name to its layout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mefr.data.casme2 import FRAME_DIRS as CASME2_FRAME_DIRS
from mefr.data.casme2 import HEADER as CASME2_HEADER
from mefr.data.samm import FRAME_DIRS as SAMM_FRAME_DIRS
from mefr.data.samm import HEADER as SAMM_HEADER
from mefr.data.smic import LABEL_ABBREVIATIONS, VARIANTS
from mefr.data.synthetic.motion import ACTION_UNITS


@dataclass(frozen=True)
class ClipSpec:
    """One synthetic clip: who, what, and where its frames lie in absolute numbers."""

    dataset: str
    subject: str
    clip: str
    emotion: str
    pattern: str
    onset: int
    apex: int
    offset: int
    amplitude: float


def _workbook():  # openpyxl is only needed by the writers of spreadsheets
    from openpyxl import Workbook

    return Workbook()


class Layout:
    """How one database lies on disk. Subclasses override what differs.

    Attributes
    ----------
    dataset : the mefr dataset name.
    folder : the database root, relative to the generator's output folder.
    frames_dir : the frame folder, relative to the database root.
    identity : databases with the same identity share subjects' faces (SMIC's cameras).
    emotions : the default emotion cycle, spelled as the database spells them.
    camera : None for the camera that defines the identity's faces; ``"vis"`` or
        ``"nir"`` for another camera filming the same people (gain, offset; NIR grey).
    onset_range : onset frame numbers are drawn from ``[lo, hi)``.
    grey : frames are written greyscale.
    """

    dataset: str = ""
    folder: str = ""
    frames_dir: str = ""
    identity: str = ""
    emotions: tuple[str, ...] = ()
    camera: str | None = None
    onset_range: tuple[int, int] = (1000, 6000)
    grey: bool = False

    def subject_id(self, s: int) -> str:
        """The id of the ``s``-th subject (0-based)."""
        return f"s{s + 1}"

    def clip_id(self, subject: str, k: int, emotion: str, rng: np.random.Generator) -> str:
        """The id of clip ``k`` of ``subject``; may draw from ``rng``."""
        raise NotImplementedError

    def clip_dir(self, db_root: Path, spec: ClipSpec) -> Path:
        """The folder of the clip's frames."""
        return db_root / self.frames_dir / spec.subject / spec.clip

    def frame_name(self, spec: ClipSpec, number: int) -> str:
        """The file name of frame ``number`` of the clip."""
        raise NotImplementedError

    def write_annotation(self, db_root: Path, specs: Sequence[ClipSpec]) -> None:
        """Write the annotation file of ``specs`` under ``db_root`` (none by default)."""


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
        h = CASME2_HEADER
        wb = _workbook()
        ws = wb.active
        ws.title = "Sheet1"
        ws.append([h[f] for f in ("subject", "filename", "onset", "apex", "offset",
                                  "action_units", "emotion")])
        for sp in specs:
            ws.append([int(sp.subject[3:]), sp.clip, sp.onset, sp.apex, sp.offset,
                       ACTION_UNITS[sp.pattern], sp.emotion])
        wb.save(db_root / self.annotation)


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
        wb = _workbook()
        ws = wb.active
        ws.title = "FACS_Movement_Only"
        for line in SAMM_PROSE:
            ws.append([line] if line else [])
        ws.append([h["subject"], h["filename"], "Inducement Code", h["onset"], h["apex"],
                   h["offset"], "Duration", "Type", h["action_units"], "Notes", h["emotion"],
                   "Objective Classes"])
        for sp in specs:
            ws.append([sp.subject, sp.clip, int(sp.clip.split("_")[1]), sp.onset, sp.apex,
                       sp.offset, sp.offset - sp.onset + 1, "Micro - 1/2",
                       ACTION_UNITS[sp.pattern], "", sp.emotion,
                       SAMM_OBJECTIVE_CLASS[sp.pattern]])
        wb.save(db_root / self.annotation)


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


#: Every layout, by dataset name (the order :data:`SYNTHETIC_DATABASES` lists).
LAYOUTS: dict[str, Layout] = {
    "casme2": Casme2Layout(),
    "samm": SammLayout(),
    **{d: SmicLayout(d) for d in VARIANTS.values()},
}
