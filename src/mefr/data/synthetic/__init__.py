"""Synthetic micro-expression databases written in the real on-disk formats.

:func:`write_synthetic_databases` writes databases shaped like the real ones (folders,
frame names, spreadsheets with the real headers, SAMM's prose rows above the header,
SMIC's label folders...) that the readers of :mod:`mefr.data` read like the real ones.
They let the whole pipeline run, and be tested, where the licensed databases are not
available.

How a clip is made
------------------
* **Identity** (:mod:`.faces`). Every subject is the face of
  ``skimage.data.astronaut()`` (a public photograph shipping with scikit-image), varied
  per subject; cameras filming the same people (SMIC's HS, VIS and NIR) share subjects.
* **Expression** (:mod:`.motion`). A brief, low-amplitude, class-specific facial
  motion: Gaussian bumps of displacement around facial landmarks (:data:`PATTERNS`,
  named after the FACS action units they imitate), rising (sin^2) from the onset to the
  apex frame and falling (cos^2) back to the offset frame; a few pixels at the apex.
* **Nuisance.** Sub-pixel head jitter and Gaussian sensor noise on every frame.
* **Format** (:mod:`.layouts`). One :class:`~.layouts.Layout` per database writes the
  ids, frame names, folders and annotation file as that database has them.

The true apex and class of every clip go to ``synthetic_truth.csv`` at the root of
each database (:data:`TRUTH_COLUMNS`); the readers ignore that file. The output is a
deterministic function of the arguments (:mod:`.generate`).
"""

from mefr.data.synthetic.clips import ClipSpec, Layout
from mefr.data.synthetic.faces import FACE_BOX, LANDMARKS, Face, camera_variant, make_face
from mefr.data.synthetic.generate import (
    ALL_SYNTHETIC_DATABASES,
    DEFAULT_EMOTIONS,
    SYNTHETIC_DATABASES,
    TRUTH_COLUMNS,
    plan_clips,
    read_truth,
    write_synthetic_databases,
)
from mefr.data.synthetic.layouts import LAYOUTS
from mefr.data.synthetic.motion import (
    ACTION_UNITS,
    CDE_CLASS,
    PATTERNS,
    head_matrix,
    head_ramp,
    intensity_profile,
    motion_field,
    pattern_for,
    render_clip,
)

__all__ = [
    "ACTION_UNITS",
    "ALL_SYNTHETIC_DATABASES",
    "CDE_CLASS",
    "DEFAULT_EMOTIONS",
    "FACE_BOX",
    "LANDMARKS",
    "LAYOUTS",
    "PATTERNS",
    "SYNTHETIC_DATABASES",
    "TRUTH_COLUMNS",
    "ClipSpec",
    "Face",
    "Layout",
    "camera_variant",
    "head_matrix",
    "head_ramp",
    "intensity_profile",
    "make_face",
    "motion_field",
    "pattern_for",
    "plan_clips",
    "read_truth",
    "render_clip",
    "write_synthetic_databases",
]
