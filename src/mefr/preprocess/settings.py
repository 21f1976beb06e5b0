"""Preprocessing settings: everything that decides the features of a clip.

:class:`PreprocessSettings` is what ``mefr prepare``, ``train``, ``evaluate`` and
``predict`` (through the model file's header) pass to :mod:`mefr.preprocess.pipeline`;
all of it enters the feature cache key (:mod:`mefr.preprocess.store`). ``docs/own_data.md``
lists every setting with its default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

from mefr.preprocess.apex import check_policy
from mefr.preprocess.flow import FLOW_CHANNELS, STRAIN_CHANNELS, check_normalisation
from mefr.preprocess.register import check_registration

#: Face modes: ``detect`` (libfacedetection on the onset) or ``none`` (use whole frames,
#: e.g. for databases' pre-cropped releases).
FACE_MODES: tuple[str, ...] = ("detect", "none")
#: What a clip becomes: ``flow`` (network input) or ``lbptop`` (hand-crafted baseline).
DESCRIPTORS: tuple[str, ...] = ("flow", "lbptop")
#: The channel name of LBP-TOP features.
LBPTOP_CHANNELS: tuple[str, ...] = ("lbptop",)
#: Table columns added with registration -> the :meth:`HeadMotion.to_dict` key they hold:
#: the apex's displacement (pixels of the frame), rotation (degrees) and scale change.
HEAD_COLUMNS: dict[str, str] = {
    "head_dx": "dx", "head_dy": "dy", "head_rotation": "rotation_deg", "head_scale": "scale",
}


@dataclass(frozen=True)
class PreprocessSettings:
    """Everything that decides the features of a clip (all of it enters the cache key).

    Attributes
    ----------
    apex_policy : ``annotated`` (the table's apex; Eq. (1) where it is missing), ``diff``
        (Eq. (1) everywhere) or ``middle`` (the middle frame, the Dual-Inception ablation).
    face : ``detect`` (crop the face found on the onset frame) or ``none`` (whole frames).
    margin : added on each side of the face box, as a fraction of its width / height.
    square : make the face box square (grow its shorter side) before the margin.
    face_conf : libfacedetection's score threshold in [0, 1].
    face_size : resize the face crops to ``face_size x face_size`` before apex spotting
        and flow (``None``: native resolution, as the paper).
    size : side of the network input (28 in the paper).
    strain : add the optical strain channel (STSTNet's third input).
    normalisation : see :data:`mefr.preprocess.flow.NORMALISATIONS`.
    scale : the divisor of the ``global_scale`` normalisation.
    descriptor : ``flow`` (the onset->apex TV-L1 flow, the networks' input) or ``lbptop``
        (the LBP-TOP histograms of the face crops from onset to offset, for the
        hand-crafted baseline; :mod:`mefr.preprocess.lbptop`; channel ``lbptop``, ``x`` of
        shape ``(1, 1, D)``; ``size``, ``strain`` and the normalisation do not apply).
    lbp_grid, lbp_radius : LBP-TOP's ``grid x grid`` spatial blocks and its radius.
    register : head-motion compensation (:mod:`mefr.preprocess.register`): ``none`` (the
        paper: no registration), ``similarity`` (rotation, scale and translation) or
        ``affine``: every frame after the onset is registered to the onset frame before it
        is cropped; the motion found for the apex goes to ``ClipFeatures.head_motion`` and
        the table's ``head_*`` columns.
    """

    apex_policy: str = "annotated"
    face: str = "detect"
    margin: float = 0.0
    square: bool = False
    face_conf: float = 0.5
    face_size: int | None = None
    size: int = 28
    strain: bool = False
    normalisation: str = "minmax_per_image"
    scale: float = 1.0
    descriptor: str = "flow"
    lbp_grid: int = 5
    lbp_radius: int = 1
    register: str = "none"

    def __post_init__(self) -> None:
        check_registration(self.register)
        if self.descriptor not in DESCRIPTORS:
            raise ValueError(f"unknown descriptor {self.descriptor!r} (expected one of "
                             f"{DESCRIPTORS})")
        if self.lbp_grid < 1 or self.lbp_radius < 1:
            raise ValueError(f"lbp_grid and lbp_radius must be positive, got {self.lbp_grid} "
                             f"and {self.lbp_radius}")
        check_policy(self.apex_policy)
        check_normalisation(self.normalisation)
        if self.face not in FACE_MODES:
            raise ValueError(f"unknown face mode {self.face!r} (expected one of {FACE_MODES})")
        if not -0.5 < self.margin:
            raise ValueError(f"margin must be > -0.5, got {self.margin}")
        if not 0.0 <= self.face_conf <= 1.0:
            raise ValueError(f"face_conf must lie in [0, 1], got {self.face_conf}")
        if self.size < 1:
            raise ValueError(f"size must be >= 1, got {self.size}")
        if self.face_size is not None and self.face_size < 8:
            raise ValueError(f"face_size must be >= 8 (or None), got {self.face_size}")
        if self.scale <= 0:
            raise ValueError(f"scale must be positive, got {self.scale}")

    @property
    def channels(self) -> tuple[str, ...]:
        """Channel names of the features: ``("u", "v")``, ``("u", "v", "strain")`` or
        ``("lbptop",)``."""
        if self.descriptor == "lbptop":
            return LBPTOP_CHANNELS
        return STRAIN_CHANNELS if self.strain else FLOW_CHANNELS

    def to_dict(self) -> dict:
        """All settings; the LBP-TOP ones only with ``descriptor="lbptop"`` and
        ``register`` only when it is not ``none`` (so features made without them keep the
        cache keys and model-file headers they had before these settings existed)."""
        d = asdict(self)
        if self.descriptor == "flow":
            for name in ("descriptor", "lbp_grid", "lbp_radius"):
                del d[name]
        if self.register == "none":
            del d["register"]
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> PreprocessSettings:
        """Settings from a mapping (e.g. a YAML section); unknown keys are an error."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown preprocessing settings {unknown} (known: {sorted(names)})")
        return cls(**dict(d))
