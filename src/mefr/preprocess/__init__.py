"""Preprocessing: a sample table -> network inputs (the paper's Sections 3.1 and 4.2).

``face`` (libfacedetection crop on the onset frame), ``apex`` (annotated / Eq. (1) /
middle frame), ``register`` (optional head-motion compensation: frames registered to the
onset), ``flow`` (TV-L1, optical strain, resize, normalisation), ``settings``
(:class:`PreprocessSettings`), ``clip`` (one clip -> features), ``store`` (the on-disk
feature cache) and ``pipeline`` (a table -> :class:`FeatureSet`, in parallel).
"""

from mefr.preprocess.apex import APEX_POLICIES, ApexFallbackWarning, ClipError, spot_apex
from mefr.preprocess.clip import ClipFeatures, clip_features, frames_features
from mefr.preprocess.face import (
    Box,
    FaceNotFoundError,
    FrameReadError,
    PreprocessError,
    detect_faces,
    face_box,
)
from mefr.preprocess.flow import NORMALISATIONS, compute_flow, optical_strain
from mefr.preprocess.pipeline import ClipFailure, FeatureSet, build_features
from mefr.preprocess.register import (
    REGISTRATIONS,
    HeadMotion,
    Registrar,
    RegistrationError,
    register_pair,
)
from mefr.preprocess.settings import PreprocessSettings
from mefr.preprocess.store import FeatureStore

__all__ = [
    "APEX_POLICIES",
    "NORMALISATIONS",
    "REGISTRATIONS",
    "ApexFallbackWarning",
    "Box",
    "ClipError",
    "ClipFailure",
    "ClipFeatures",
    "FaceNotFoundError",
    "FeatureSet",
    "FeatureStore",
    "FrameReadError",
    "HeadMotion",
    "PreprocessError",
    "PreprocessSettings",
    "Registrar",
    "RegistrationError",
    "build_features",
    "clip_features",
    "compute_flow",
    "detect_faces",
    "face_box",
    "frames_features",
    "optical_strain",
    "register_pair",
    "spot_apex",
]
