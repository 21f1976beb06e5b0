"""Planning and writing synthetic databases; the truth file of each.

:func:`plan_clips` draws the clips of one database (ids, emotion, frame numbers,
amplitude); :func:`write_synthetic_databases` renders them (:mod:`.faces`,
:mod:`.motion`) and writes them in their database's format (:mod:`.layouts`). Each clip
draws from its own ``numpy.random.SeedSequence`` child, so the output is a deterministic
function of the arguments and adding a database or a subject leaves the other clips
unchanged.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from mefr.data.synthetic.clips import ClipSpec, Layout
from mefr.data.synthetic.faces import Face, camera_variant, make_face
from mefr.data.synthetic.layouts import LAYOUTS
from mefr.data.synthetic.motion import CDE_CLASS, motion_field, pattern_for, render_clip

#: Every database the generator writes (mefr dataset names, in the order of
#: :data:`mefr.data.table.DATASETS`).
ALL_SYNTHETIC_DATABASES: tuple[str, ...] = tuple(LAYOUTS)
#: The seed paper's databases (CASME II, SAMM, SMIC's three cameras), what the code that
#: reproduces the paper writes; :data:`ALL_SYNTHETIC_DATABASES` adds CAS(ME)^3, CAS(ME)^2,
#: MMEW, 4DME and SMIC-E.
SYNTHETIC_DATABASES: tuple[str, ...] = ("casme2", "samm", "smic_hs", "smic_vis", "smic_nir")

#: Columns of ``synthetic_truth.csv``.
TRUTH_COLUMNS: tuple[str, ...] = (
    "dataset",
    "subject",
    "clip",
    "emotion",
    "pattern",
    "cde_class",
    "onset",
    "apex",
    "offset",
    "amplitude_px",
    "frames_dir",
)

#: Default emotion cycle of each database, spelled as that database spells them.
#: Clip k of subject s gets entry ``(s * clips_per_subject + k) % len(cycle)``.
DEFAULT_EMOTIONS: dict[str, tuple[str, ...]] = {d: lay.emotions for d, lay in LAYOUTS.items()}


def seed_for(seed: int, *keys: str | int) -> np.random.SeedSequence:
    """A SeedSequence fixed by ``seed`` and string/int keys (order-independent of others)."""
    words = [seed]
    for k in keys:
        if isinstance(k, str):
            words.extend(k.encode())
        else:
            words.append(int(k))
        words.append(0xFFFF)
    return np.random.SeedSequence(words)


def plan_clips(
    dataset: str,
    subjects: int,
    clips_per_subject: int,
    frames: tuple[int, int],
    seed: int,
    emotions: Sequence[str] | None = None,
) -> list[ClipSpec]:
    """The clips of one synthetic database (ids, emotion, onset/apex/offset, amplitude)."""
    layout = LAYOUTS[dataset]
    cycle = tuple(emotions) if emotions is not None else layout.emotions
    lo, hi = frames
    if not 3 <= lo <= hi:
        raise ValueError(f"frames must be (min, max) with 3 <= min <= max, got {frames}")
    specs: list[ClipSpec] = []
    for s in range(subjects):
        subject = layout.subject_id(s)
        used: set[str] = set()
        planned: list[ClipSpec] = []
        for k in range(clips_per_subject):
            rng = np.random.default_rng(seed_for(seed, layout.plan_as or dataset, "plan", s, k))
            emotion = cycle[(s * clips_per_subject + k) % len(cycle)]
            pattern = pattern_for(emotion, rng)
            clip = layout.clip_id(subject, k, emotion.strip().lower(), rng)
            while clip in used:
                clip = layout.clip_id(subject, k, emotion.strip().lower(), rng)
            used.add(clip)
            n = int(rng.integers(lo, hi + 1))
            apex_index = int(round(rng.uniform(0.3, 0.6) * (n - 1)))
            onset = int(rng.integers(*layout.onset_range))
            planned.append(
                ClipSpec(
                    dataset=dataset,
                    subject=subject,
                    clip=clip,
                    emotion=emotion,
                    pattern=pattern,
                    onset=onset,
                    apex=onset + apex_index,
                    offset=onset + n - 1,
                    amplitude=float(rng.uniform(2.0, 3.5)),
                    filename=layout.video(subject, k),
                )
            )
        specs += layout.arrange(planned)
    return specs


def _subject_face(layout: Layout, s: int, seed: int, canvas: tuple[int, int]) -> Face:
    face = make_face(np.random.default_rng(seed_for(seed, layout.identity, "identity", s)), canvas)
    if layout.camera is not None:  # another camera filming the same people
        rng = np.random.default_rng(seed_for(seed, layout.dataset, "camera", s))
        face = camera_variant(face, rng, near_infrared=layout.camera == "nir")
    return face


def _write_clip(db_root: Path, layout: Layout, spec: ClipSpec, face: Face, seed: int,
                k: int) -> Path:
    rng = np.random.default_rng(seed_for(seed, spec.dataset, "render", spec.subject, k))
    field = motion_field(face, spec.pattern, spec.amplitude, rng)
    n = spec.offset - spec.onset + 1
    frames = render_clip(face, field, n, spec.apex - spec.onset, rng)
    numbers = list(range(spec.onset, spec.offset + 1))
    if spec.lead or spec.tail:  # neutral frames around the expression (a long video)
        pad_rng = np.random.default_rng(seed_for(seed, spec.dataset, "pad", spec.subject, k))
        pads = render_clip(face, np.zeros_like(field), spec.lead + spec.tail, 0, pad_rng)
        frames = pads[: spec.lead] + frames + pads[spec.lead :]
        numbers = list(range(spec.onset - spec.lead, spec.offset + spec.tail + 1))
    folder = layout.clip_dir(db_root, spec)
    folder.mkdir(parents=True, exist_ok=True)
    for number, img in zip(numbers, frames, strict=True):
        out = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if layout.grey else img
        path = folder / layout.frame_name(spec, number)
        params = [cv2.IMWRITE_JPEG_QUALITY, 95] if path.suffix == ".jpg" else []
        if not cv2.imwrite(str(path), out, params):
            raise OSError(f"cannot write {path}")
    return folder


def _clear_previous(db_root: Path, layout: Layout) -> None:
    """Remove the frames of an earlier synthetic run; refuse to touch anything else."""
    frames_root = db_root / layout.frames_dir
    if not frames_root.exists():
        return
    if not (db_root / "synthetic_truth.csv").is_file():
        raise FileExistsError(
            f"{frames_root} exists and {db_root} holds no synthetic_truth.csv: "
            "not a synthetic database, refusing to overwrite it"
        )
    shutil.rmtree(frames_root)


def write_synthetic_databases(
    root: str | Path,
    databases: Sequence[str] = ("casme2", "samm", "smic_hs"),
    subjects: int = 4,
    clips_per_subject: int = 6,
    frames: tuple[int, int] = (30, 60),
    size: tuple[int, int] = (240, 320),
    seed: int = 0,
    emotions: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Path]:
    """Write synthetic databases in the real on-disk formats; return each one's root.

    Parameters
    ----------
    root : output folder; each database goes to its own folder (``root/casme2``,
        ``root/samm``, ``root/casme3``...); the cameras of SMIC share ``root/smic``
        (``SMIC/{HS,VIS,NIR}``) and those of SMIC-E ``root/smic_e``.
    databases : any of :data:`ALL_SYNTHETIC_DATABASES`.
    subjects : subjects per database (SMIC VIS/NIR reuse the first ones of HS).
    clips_per_subject : clips per subject.
    frames : (min, max) frames per clip, inclusive.
    size : canvas (height, width) in pixels; the face is about 0.83 of the height.
    seed : the output is a deterministic function of all arguments.
    emotions : optional emotion cycle per database (spelled as that database spells
        them) replacing :data:`DEFAULT_EMOTIONS`.

    An earlier synthetic database of the same name under ``root`` is replaced; a folder
    there that is not one (no ``synthetic_truth.csv``) raises :class:`FileExistsError`.

    Returns ``{dataset: path}``, the path to pass to that dataset's reader
    (:func:`mefr.data.read_database`). Each path holds ``synthetic_truth.csv`` with the
    true apex and pattern of its clips (:data:`TRUTH_COLUMNS`; SMIC's and SMIC-E's list
    all three cameras, told apart by ``dataset``).
    """
    root = Path(root)
    unknown = [d for d in databases if d not in ALL_SYNTHETIC_DATABASES]
    if unknown:
        raise ValueError(
            f"unknown synthetic database(s) {unknown}; choose from {ALL_SYNTHETIC_DATABASES}"
        )
    if subjects < 1 or clips_per_subject < 1:
        raise ValueError("subjects and clips_per_subject must be at least 1")
    out: dict[str, Path] = {}
    truth: dict[Path, list[dict]] = {}
    for dataset in databases:
        layout = LAYOUTS[dataset]
        db_root = root / layout.folder
        _clear_previous(db_root, layout)
        db_root.mkdir(parents=True, exist_ok=True)
        cycle = emotions.get(dataset) if emotions else None
        specs = plan_clips(dataset, subjects, clips_per_subject, frames, seed, cycle)
        faces: dict[str, Face] = {}
        for k, spec in enumerate(specs):
            if spec.subject not in faces:
                faces[spec.subject] = _subject_face(layout, len(faces), seed, size)
            folder = _write_clip(db_root, layout, spec, faces[spec.subject], seed, k)
            truth.setdefault(db_root, []).append(
                {
                    "dataset": dataset,
                    "subject": spec.subject,
                    "clip": spec.clip,
                    "emotion": spec.emotion,
                    "pattern": spec.pattern,
                    "cde_class": CDE_CLASS[spec.pattern],
                    "onset": spec.onset,
                    "apex": spec.apex,
                    "offset": spec.offset,
                    "amplitude_px": round(spec.amplitude, 3),
                    "frames_dir": folder.relative_to(db_root).as_posix(),
                }
            )
        layout.write_annotation(db_root, specs)
        out[dataset] = db_root
    for db_root, rows in truth.items():
        new = pd.DataFrame(rows, columns=list(TRUTH_COLUMNS))
        old = db_root / "synthetic_truth.csv"
        if old.is_file():  # keep the truth of databases sharing this root (SMIC's cameras)
            kept = read_truth(old)
            new = pd.concat([kept[~kept["dataset"].isin(databases)], new], ignore_index=True)
        new.to_csv(old, index=False)
    return out


def read_truth(path: str | Path) -> pd.DataFrame:
    """``synthetic_truth.csv`` of a database root (or the file itself), ids as strings."""
    p = Path(path)
    if p.is_dir():
        p = p / "synthetic_truth.csv"
    return pd.read_csv(
        p, dtype={"subject": str, "clip": str, "cde_class": str}, keep_default_na=False
    )
