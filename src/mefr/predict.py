"""Use a trained model: train one on a whole database, save it, predict new clips, explain.

Training (``mefr train``)
    :func:`load_training_data` reads the training clips - raw databases through their
    readers, a label protocol and :func:`mefr.preprocess.build_features`; the synthetic
    databases of :func:`mefr.data.write_synthetic_databases`; or a pre-computed flow set
    - and :func:`train_model` fits one network on all of them with
    :func:`mefr.train.engine.train_group` (one job: every row trains, none is tested).
    The result is a :class:`Predictor`; :meth:`Predictor.save` writes the model file
    (:mod:`mefr.modelfile`: safetensors weights plus a JSON header with everything needed
    to use the model).

Prediction (``mefr predict``)
    :meth:`Predictor.from_file` loads a model file (safetensors only, never a pickle) and
    checks it against this installation (:func:`mefr.modelfile.check_compatibility`).
    :meth:`Predictor.predict` takes clips as

    * a video file (``.mp4``, ``.avi``, ... read with ``cv2.VideoCapture``): the whole
      video is one clip, first frame = onset, last frame = offset;
    * a folder of frames (image files whose names end in the frame number, sorted by it;
      the first is the onset);
    * an ``(onset, apex)`` pair of images (paths or ``uint8`` arrays);
    * a :class:`FramesInput` (frames as paths or arrays, optionally the apex index).

    Each clip is turned into the network input by the *same* code and the *same*
    :class:`~mefr.preprocess.PreprocessSettings` as the training clips (the model file
    holds them): face found on the onset frame (libfacedetection), every frame cropped with
    that box, apex spotted where none is given - by the middle frame when the model's
    apex policy is ``middle``, else by the inter-frame difference of Eq. (1) - and TV-L1
    flow between the onset and apex crops, resized and normalised. All inputs then go
    through the network in batches. A clip that fails (unreadable video, a folder
    without frames, no face, ...) gets a :class:`Prediction` whose ``error`` names the
    input and the reason; the others are predicted.

Explanations (``mefr predict --explain DIR``)
    FR's attention (Eqs. (2)-(3)) acts on the 1024-d shared feature vector, not on the
    image, so it cannot be drawn over the face. What can: the input gradient of each
    class's expression-specific branch - detector k's logit (Eq. (4)) for the FR family,
    the class logit for networks without detectors - ``|d score / d input|`` summed over
    the input channels (u, v [, strain]) and averaged over noisy copies of the input
    (SmoothGrad), upsampled to the face crop. :func:`write_explanation` draws it with the
    onset and apex faces and the flow (HSV colour wheel and arrows).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import platform
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import torch

from mefr.data.flowset import FlowSet
from mefr.data.rawio import IMAGE_SUFFIXES, list_frames
from mefr.data.table import group_key
from mefr.modelfile import (
    ModelFileError,
    check_compatibility,
    load_model_file,
    make_header,
    mefr_version,
    opencv_version,
    package_version,
    save_model_file,
    validate_header,
)
from mefr.models.base import GroupNet
from mefr.models.registry import create_model, is_handcrafted, model_entry
from mefr.preprocess.face import Box, ImageLike, PreprocessError, as_grey, crop
from mefr.preprocess.pipeline import PreprocessSettings, clip_features, frames_features
from mefr.train.config import TrainConfig

#: File suffixes read as videos (anything else that is a file and not an image is tried too).
VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg",
                                   ".wmv", ".webm")
#: Data-source schemes of :func:`load_training_data` besides the dataset names.
EXTRA_SCHEMES: tuple[str, ...] = ("synthetic", "flowset")
#: The databases ``synthetic:DIR`` reads: the synthetic counterpart of the CDE composite.
SYNTHETIC_CDE: tuple[tuple[str, str], ...] = (
    ("casme2", "casme2"), ("samm", "samm"), ("smic_hs", "smic"),
)


# =========================================================================== inputs
@dataclass(frozen=True)
class FramesInput:
    """A clip given as its frames from onset to offset (paths or ``uint8`` arrays).

    ``apex`` is the index of the apex frame (``None``: spotted); ``name`` labels the
    clip in predictions and explanation file names.
    """

    frames: Sequence[ImageLike]
    apex: int | None = None
    name: str = ""


#: What :meth:`Predictor.predict` accepts per clip.
PredictInput = str | os.PathLike | tuple[ImageLike, ImageLike] | FramesInput


@dataclass(frozen=True)
class PreparedClip:
    """A clip turned into network input.

    ``x`` float32 ``(C, size, size)`` with the preprocessing's channels;
    ``apex_index`` the apex position (0 = onset) among ``num_frames`` frames;
    ``apex_frame`` a readable name of it (file name, or ``frame i`` of a video);
    ``onset`` / ``apex`` the two images the flow was computed between (path or array);
    ``box`` the face box on the onset frame.
    """

    name: str
    kind: str
    x: np.ndarray
    apex_index: int
    apex_frame: str
    num_frames: int
    box: Box
    onset: ImageLike
    apex: ImageLike
    notes: tuple[str, ...] = ()


def _describe(item: Any, i: int) -> tuple[str, str]:
    """``(name, kind)`` of an input before it is read (``kind``: video, frames, pair)."""
    if isinstance(item, FramesInput):
        return item.name or f"<frames #{i}>", "frames"
    if isinstance(item, tuple | list) and len(item) == 2:
        names = [str(p) if isinstance(p, str | os.PathLike) else f"<array #{i}>" for p in item]
        return f"{names[0]} + {names[1]}", "pair"
    if isinstance(item, str | os.PathLike):
        p = Path(item)
        return str(p), ("frames" if p.is_dir() else "video")
    return f"<input #{i}>", "unknown"


def read_video(path: str | os.PathLike) -> list[np.ndarray]:
    """All frames of a video file: the first as ``uint8`` BGR (for face detection), the
    others as ``uint8`` grey (all the flow needs; a third of the memory).

    Grey frames are ``cv2.cvtColor(BGR2GRAY)`` of the decoded frames, as the pipeline's own
    conversion, so a video gives the same features as a folder of its frames in a lossless
    format. Raises :class:`~mefr.preprocess.PreprocessError` naming the file when it is
    missing, cannot be opened or has no decodable frame.
    """
    p = Path(path)
    if not p.is_file():
        raise PreprocessError(f"{p}: video file not found", file=str(p))
    cap = cv2.VideoCapture(str(p))
    try:
        if not cap.isOpened():
            raise PreprocessError(
                f"{p}: cannot open the video (not a video, corrupt, or a codec OpenCV lacks)",
                file=str(p),
            )
        frames: list[np.ndarray] = []
        while True:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            frames.append(frame if not frames else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
    finally:
        cap.release()
    if not frames:
        raise PreprocessError(f"{p}: the video has no decodable frame", file=str(p))
    return frames


def folder_frames(folder: str | os.PathLike) -> list[Path]:
    """The frame files of a clip folder sorted by the number at the end of their names.

    Raises :class:`~mefr.preprocess.PreprocessError` when the folder is missing, holds no
    numbered image file, or two files carry the same number.
    """
    p = Path(folder)
    if not p.is_dir():
        raise PreprocessError(f"{p}: frame folder not found", file=str(p))
    frames, dups = list_frames(p)
    if dups:
        raise PreprocessError(
            f"{p}: several files carry frame number(s) {dups[:5]}; cannot order the frames",
            file=str(p),
        )
    if not frames:
        raise PreprocessError(
            f"{p}: no frame files (images {', '.join(sorted(IMAGE_SUFFIXES))} whose names "
            "end in the frame number)",
            file=str(p),
        )
    return [frames[n] for n in sorted(frames)]


def prepare_input(item: PredictInput, settings: PreprocessSettings, name: str = "") -> PreparedClip:
    """Read one input (see the module docstring) and compute its network input with
    ``settings``, as in training. Raises :class:`~mefr.preprocess.PreprocessError`."""
    label, kind = _describe(item, 0)
    name = name or label
    if isinstance(item, FramesInput):
        frames: Sequence[ImageLike] = list(item.frames)
        feats = frames_features(frames, settings, apex=item.apex, source=name)
        apex_frame = _frame_label(frames, feats.apex_index)
    elif kind == "pair":
        onset, apex = item  # type: ignore[misc]
        feats = clip_features(onset, apex, settings)
        frames = [onset, apex]
        apex_frame = _frame_label(frames, 1)
    elif kind == "frames":
        frames = folder_frames(item)  # type: ignore[arg-type]
        feats = frames_features(frames, settings, source=name)
        apex_frame = frames[feats.apex_index].name  # type: ignore[union-attr]
    else:
        p = Path(item)  # type: ignore[arg-type]
        if not p.exists():
            raise PreprocessError(f"{p}: not found (no such video file or frame folder)",
                                  file=str(p))
        if p.suffix.lower() in IMAGE_SUFFIXES:
            raise PreprocessError(
                f"{p}: a single image is not a clip; give a video, a folder of frames or an "
                "onset/apex pair (--onset-apex ONSET APEX)",
                file=str(p),
            )
        frames = read_video(p)
        feats = frames_features(frames, settings, source=name)
        apex_frame = f"frame {feats.apex_index} of {len(frames)}"
    return PreparedClip(
        name=name, kind=kind, x=feats.x, apex_index=feats.apex_index, apex_frame=apex_frame,
        num_frames=len(frames), box=feats.box, onset=frames[0], apex=frames[feats.apex_index],
        notes=feats.notes,
    )


def _frame_label(frames: Sequence[ImageLike], i: int) -> str:
    f = frames[i]
    return str(f) if isinstance(f, str | os.PathLike) else f"frame {i} of {len(frames)}"


# =========================================================================== predictions
@dataclass(frozen=True)
class Prediction:
    """The answer for one input.

    ``predicted`` the class name; ``probabilities`` softmax of the class logits (Eq. (7)),
    by class; ``detector_scores`` sigmoid of the K detectors' logits (Eq. (4)), by class,
    ``None`` for networks without detectors; ``apex_index`` position of the apex frame
    (0 = onset) and ``apex_frame`` its name; ``face_box`` ``(x, y, w, h)`` on the onset
    frame; ``explanation`` the PNG written, if any; ``error`` why the input could not be
    predicted (then the other fields are ``None``).
    """

    input: str
    kind: str
    predicted: str | None = None
    probabilities: dict[str, float] | None = None
    detector_scores: dict[str, float] | None = None
    apex_index: int | None = None
    apex_frame: str | None = None
    num_frames: int | None = None
    face_box: tuple[int, int, int, int] | None = None
    notes: tuple[str, ...] = ()
    explanation: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict of all fields."""
        return {
            "input": self.input,
            "kind": self.kind,
            "predicted": self.predicted,
            "probabilities": self.probabilities,
            "detector_scores": self.detector_scores,
            "apex_index": self.apex_index,
            "apex_frame": self.apex_frame,
            "num_frames": self.num_frames,
            "face_box": list(self.face_box) if self.face_box is not None else None,
            "notes": list(self.notes),
            "explanation": self.explanation,
            "error": self.error,
        }


def _failure(name: str, kind: str, e: BaseException) -> Prediction:
    reason = str(e) if isinstance(e, PreprocessError) else f"{type(e).__name__}: {e}"
    if name not in reason:
        reason = f"{name}: {reason}"
    return Prediction(input=name, kind=kind, error=reason)


# =========================================================================== predictor
def _settings_of(header: Mapping[str, Any], source: str) -> PreprocessSettings:
    try:
        return PreprocessSettings.from_dict(header["preprocess"]["settings"])
    except (TypeError, ValueError) as e:
        raise ModelFileError(
            f"{source}: the model's preprocessing settings cannot be used by this mefr ({e})"
        ) from None


def _build_network(header: Mapping[str, Any], source: str) -> GroupNet:
    net = header["network"]
    try:
        return create_model(net["name"], int(net["num_classes"]), 1, **net["kwargs"])
    except (TypeError, ValueError) as e:
        raise ModelFileError(f"{source}: cannot build network {net['name']!r} ({e})") from None


class Predictor:
    """A trained network with its preprocessing, ready to predict new clips.

    Build it with :meth:`from_file` (a model file) or :func:`train_model`; ``header`` is
    the model file's header (see :mod:`mefr.modelfile`).
    """

    def __init__(self, model: GroupNet, header: Mapping[str, Any], source: str = "<model>",
                 device: str | torch.device = "cpu") -> None:
        self.header = validate_header(dict(header), source)
        self.source = source
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.settings = _settings_of(self.header, source)
        self.class_names: tuple[str, ...] = tuple(str(c) for c in self.header["classes"])
        self.channels: tuple[str, ...] = tuple(self.header["input"]["channels"])
        missing = [c for c in self.channels if c not in self.settings.channels]
        if missing:
            raise ModelFileError(
                f"{source}: the network reads channels {missing} that the preprocessing "
                f"settings do not make ({self.settings.channels})"
            )
        self._channel_index = [self.settings.channels.index(c) for c in self.channels]

    # -- files ------------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | os.PathLike, strict: bool = True,
                  device: str | torch.device = "cpu") -> Predictor:
        """Load a model file written by :meth:`save` (safetensors only; never unpickles).

        Raises :class:`~mefr.modelfile.ModelFileError` for a foreign or tampered file,
        another format version, weights that do not fit, or (``strict``) a preprocessing
        made with another OpenCV major.minor or mefr major version; warns
        (:class:`~mefr.modelfile.VersionMismatchWarning`) for smaller version differences.
        """
        tensors, header = load_model_file(path)
        source = str(path)
        check_compatibility(header, source, strict=strict)
        model = _build_network(header, source)
        try:
            model.load_state_dict(tensors, strict=True)
        except RuntimeError as e:
            raise ModelFileError(
                f"{source}: the weights do not fit network {header['network']['name']!r}: {e}"
            ) from None
        return cls(model, header, source=source, device=device)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model file (safetensors weights + JSON header) to ``path``."""
        return save_model_file(path, self.model.state_dict(), self.header)

    # -- properties -------------------------------------------------------------------
    @property
    def network(self) -> str:
        return str(self.header["network"]["name"])

    @property
    def has_detectors(self) -> bool:
        """Whether the network has per-class detectors (the FR family)."""
        return bool(self.header["network"].get("detectors", False))

    # -- inputs -----------------------------------------------------------------------
    def prepare(self, item: PredictInput, name: str = "") -> PreparedClip:
        """One input as network input, with this model's preprocessing settings."""
        return prepare_input(item, self.settings, name)

    def network_input(self, x: np.ndarray) -> np.ndarray:
        """Feature array(s) ``(..., C_pre, H, W)`` restricted to the network's channels."""
        return np.ascontiguousarray(np.asarray(x)[..., self._channel_index, :, :], np.float32)

    # -- network ----------------------------------------------------------------------
    @torch.no_grad()
    def forward(self, x: np.ndarray, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray | None]:
        """Class probabilities ``(B, K)`` and detector scores ``(B, K)`` (or None) of
        network inputs ``x`` ``(B, C, H, W)``, in batches of ``batch_size``."""
        self.model.eval()
        probs, dets = [], []
        for s in range(0, len(x), max(1, batch_size)):
            xb = torch.from_numpy(np.ascontiguousarray(x[s:s + batch_size])).to(self.device)
            out = self.model(xb)
            probs.append(torch.softmax(out.logits.float(), dim=-1).cpu().numpy())
            if out.detector_logits is not None:
                dets.append(torch.sigmoid(out.detector_logits.float()).cpu().numpy())
        k = len(self.class_names)
        p = np.concatenate(probs) if probs else np.zeros((0, k), np.float32)
        d = np.concatenate(dets) if dets else None
        return p, d

    def saliency(self, x: np.ndarray, samples: int = 16, noise: float = 0.1,
                 seed: int = 0) -> np.ndarray:
        """Input-gradient saliency of each class's expression-specific branch, ``(K, H, W)``.

        The score of class k is detector k's logit (Eq. (4)) for networks with detectors,
        else the class-k logit. The map is ``|d score / d x|`` summed over the input
        channels; with ``samples > 1`` averaged over ``samples`` copies of ``x`` with
        Gaussian noise of standard deviation ``noise * (max(x) - min(x))`` (SmoothGrad),
        drawn from ``seed``. ``x`` is one network input ``(C, H, W)``.
        """
        self.model.eval()
        dtype = next(self.model.parameters()).dtype
        base = torch.from_numpy(np.ascontiguousarray(x)).to(self.device, dtype)
        n = max(1, int(samples))
        batch = base.unsqueeze(0).repeat(n, 1, 1, 1)
        if n > 1 and noise > 0:
            gen = torch.Generator(device="cpu").manual_seed(seed)
            sigma = float(noise) * float(base.max() - base.min())
            draw = torch.randn(batch.shape, generator=gen, dtype=dtype)
            batch = batch + sigma * draw.to(self.device)
        batch.requires_grad_(True)
        with torch.enable_grad():
            out = self.model(batch)
            scores = out.detector_logits if out.detector_logits is not None else out.logits
            maps = []
            for k in range(scores.shape[-1]):
                (grad,) = torch.autograd.grad(scores[:, k].sum(), batch, retain_graph=True)
                maps.append(grad.abs().sum(dim=1).mean(dim=0))
        return torch.stack(maps).detach().cpu().numpy().astype(np.float32)

    # -- the whole thing --------------------------------------------------------------
    def predict(self, inputs: Iterable[PredictInput], batch_size: int = 64,
                explain_dir: str | os.PathLike | None = None,
                smoothgrad: int = 16) -> list[Prediction]:
        """Predict every input (see the module docstring); one :class:`Prediction` each,
        in order. Inputs that fail get ``error`` set; the others are still predicted.

        ``explain_dir``: also write one explanation PNG per predicted input there
        (:func:`write_explanation`, saliency with ``smoothgrad`` noisy samples).
        """
        items = list(inputs)
        results: list[Prediction | None] = [None] * len(items)
        prepared: list[tuple[int, PreparedClip]] = []
        for i, item in enumerate(items):
            name, kind = _describe(item, i)
            try:
                prepared.append((i, self.prepare(item, name)))
            except Exception as e:  # noqa: BLE001 - one bad input must not lose the others
                results[i] = _failure(name, kind, e)
        if prepared:
            x = self.network_input(np.stack([c.x for _, c in prepared]))
            probs, dets = self.forward(x, batch_size)
            for j, (i, clip) in enumerate(prepared):
                results[i] = self._prediction(clip, probs[j], None if dets is None else dets[j])
        if explain_dir is not None:
            for i, clip in prepared:
                results[i] = self._explain(results[i], clip, Path(explain_dir), i, smoothgrad)
        return [r for r in results if r is not None]

    def _prediction(self, clip: PreparedClip, probs: np.ndarray,
                    dets: np.ndarray | None) -> Prediction:
        names = self.class_names
        return Prediction(
            input=clip.name,
            kind=clip.kind,
            predicted=names[int(np.argmax(probs))],
            probabilities={c: float(p) for c, p in zip(names, probs, strict=True)},
            detector_scores=None if dets is None else {
                c: float(d) for c, d in zip(names, dets, strict=True)},
            apex_index=clip.apex_index,
            apex_frame=clip.apex_frame,
            num_frames=clip.num_frames,
            face_box=clip.box.as_tuple(),
            notes=clip.notes,
        )

    def _explain(self, pred: Prediction | None, clip: PreparedClip, out_dir: Path, i: int,
                 samples: int) -> Prediction | None:
        if pred is None:
            return None
        path = out_dir / explanation_name(i, clip.name)
        try:
            sal = self.saliency(self.network_input(clip.x), samples=samples)
            write_explanation(path, clip, pred, sal, self.settings, self.network,
                              self.has_detectors, self.channels)
        except Exception as e:  # noqa: BLE001 - a failed figure must not lose the prediction
            note = f"explanation not written: {type(e).__name__}: {e}"
            return replace(pred, notes=(*pred.notes, note))
        return replace(pred, explanation=str(path))


def explanation_name(i: int, name: str) -> str:
    """``"003_EP02_01f.png"``: the input's position and a file-safe form of its last name part."""
    first = name.split(" + ")[0]
    stem = Path(first.rstrip("/\\")).stem or "input"
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "input"
    return f"{i:03d}_{safe[:60]}.png"


# =========================================================================== training
@dataclass(frozen=True)
class TrainingData:
    """Training clips with their network inputs and a description for the model header.

    ``features``: a :class:`~mefr.data.flowset.FlowSet` (or ``FeatureSet``) with a
    ``label`` column; ``preprocess``: the header's ``preprocess`` section; ``data``: its
    ``data`` section (see :mod:`mefr.modelfile`).
    """

    features: FlowSet
    preprocess: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)


def parse_source(spec: str) -> tuple[str, Path]:
    """``"casme2:/data/CASME2"`` -> ``("casme2", Path("/data/CASME2"))``; the scheme is a
    dataset name (:data:`mefr.data.DATASETS`), ``synthetic`` or ``flowset``."""
    from mefr.data.table import DATASETS

    scheme, sep, path = spec.partition(":")
    known = (*DATASETS, *EXTRA_SCHEMES)
    if not sep or not path or scheme not in known:
        raise ValueError(f"data source {spec!r}: expected SCHEME:PATH with SCHEME one of {known}")
    return scheme, Path(path)


def _read_sources(specs: Sequence[tuple[str, Path]]) -> pd.DataFrame:
    from mefr.data import read_database

    tables = []
    for scheme, path in specs:
        if scheme == "synthetic":
            found = [(ds, path / sub) for ds, sub in SYNTHETIC_CDE
                     if (path / sub / "synthetic_truth.csv").is_file()]
            if not found:
                raise ValueError(
                    f"synthetic:{path}: no synthetic database there (write one with `mefr synth "
                    f"{path}`)"
                )
            tables += [read_database(ds, root) for ds, root in found]
        else:
            tables.append(read_database(scheme, path))
    return pd.concat(tables, ignore_index=True) if len(tables) > 1 else tables[0]


def _fingerprint(x: np.ndarray, table: pd.DataFrame) -> str:
    h = hashlib.sha256(np.ascontiguousarray(x, np.float32).tobytes())
    keys = table["dataset"].astype(str) + "/" + table["subject"].astype(str) + "/" + \
        table["clip"].astype(str)
    h.update("\n".join(keys).encode())
    h.update(np.asarray(table["label"], np.int64).tobytes())
    return h.hexdigest()


def describe_data(features: FlowSet, sources: Sequence[str], protocol: str,
                  failures: Sequence[str] = ()) -> dict[str, Any]:
    """The header's ``data`` section: sources, protocol, clip/subject/class counts, hash."""
    table = features.table
    labels = np.asarray(table["label"], np.int64)
    counts = np.bincount(labels, minlength=len(features.class_names))
    return {
        "sources": list(sources),
        "protocol": protocol,
        "clips": int(len(table)),
        "subjects": int(group_key(table).nunique()),
        "datasets": {str(k): int(v) for k, v in
                     table["dataset"].astype(str).value_counts().sort_index().items()},
        "class_counts": {c: int(n) for c, n in zip(features.class_names, counts, strict=True)},
        "failures": len(failures),
        "failed_clips": list(failures)[:50],
        "sha256": _fingerprint(features.x, table),
    }


def raw_preprocess_section(settings: PreprocessSettings) -> dict[str, Any]:
    """The header's ``preprocess`` section for features made by mefr from raw clips."""
    return {
        "source": "raw",
        "exact": True,
        "settings": settings.to_dict(),
        "channels": list(settings.channels),
        "opencv": opencv_version(),
        "yuface": package_version("yuface"),
        "note": "mefr.preprocess: face on the onset (yuface), apex policy, TV-L1 (OpenCV)",
    }


def load_training_data(
    sources: Sequence[str],
    protocol: str = "cde",
    settings: PreprocessSettings | None = None,
    cache_dir: str | os.PathLike | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> TrainingData:
    """The training clips of ``sources`` (``SCHEME:PATH`` strings, see :func:`parse_source`).

    * ``casme2:ROOT``, ``samm:ROOT``, ``smic_hs:ROOT``... raw databases (several may be
      given; they are pooled), labelled by ``protocol`` and preprocessed with ``settings``
      (through the feature cache ``cache_dir`` when given);
    * ``synthetic:DIR`` the synthetic CASME II, SAMM and SMIC-HS under ``DIR`` (written by
      ``mefr synth DIR``), handled as raw databases;
    * ``flowset:PATH`` a pre-computed composite flow set (alone; CDE labels only). Its
      preprocessing was not mefr's: the model file records mefr's closest settings
      (``minmax_per_image``, the apex policy of ``settings``) and a warning at load time.
    """
    from mefr.data.labels import apply_protocol, protocol_classes

    specs = [parse_source(s) for s in sources]
    if not specs:
        raise ValueError("no training data: give at least one data source")
    s = settings or PreprocessSettings()
    if any(scheme == "flowset" for scheme, _ in specs):
        if len(specs) > 1:
            raise ValueError("a flow set is a whole training set: give it as the only source")
        if protocol != "cde":
            raise ValueError(f"a flow set carries CDE labels; protocol {protocol!r} cannot apply")
        from mefr.data.flowset import load_flowset

        fs = load_flowset(specs[0][1])
        approx = PreprocessSettings(**{**s.to_dict(), "normalisation": "minmax_per_image",
                                       "strain": True})
        pre = {**raw_preprocess_section(approx), "source": "flowset", "exact": False,
               "note": "8-bit u/v/strain images min-max scaled per image by the flow set's own "
                       "tool; mefr computes minmax_per_image TV-L1 flow instead"}
        return TrainingData(fs, pre, describe_data(fs, list(sources), protocol))
    table = apply_protocol(_read_sources(specs), protocol)
    if len(table) == 0:
        raise ValueError(f"no clip of {list(sources)} is labelled by protocol {protocol!r}")
    fs = _build(table, s, cache_dir, workers, progress, protocol_classes(protocol))
    if len(fs.table) == 0:
        raise ValueError(f"every clip of {list(sources)} failed preprocessing: "
                         + "; ".join(str(f) for f in fs.failures[:5]))
    failures = [str(f) for f in getattr(fs, "failures", ())]
    return TrainingData(fs, raw_preprocess_section(s),
                        describe_data(fs, list(sources), protocol, failures))


def _build(table: pd.DataFrame, settings: PreprocessSettings, cache_dir: Any, workers: Any,
           progress: bool, class_names: tuple[str, ...]) -> FlowSet:
    from mefr.preprocess.pipeline import build_features

    return build_features(table, settings, cache_dir, workers=workers, progress=progress,
                          class_names=class_names)


def _environment() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


def _check_channels(config: TrainConfig, feature_channels: Sequence[str]) -> None:
    missing = [c for c in config.channels if c not in feature_channels]
    if missing:
        hint = " (add the strain channel: --strain)" if "strain" in missing else ""
        raise ValueError(
            f"the training config reads channels {list(config.channels)} but the features "
            f"have {list(feature_channels)}{hint}"
        )
    entry = model_entry(config.model)
    wanted = int(config.model_kwargs.get("in_channels", len(entry.channels)))
    if wanted != len(config.channels):
        raise ValueError(
            f"network {config.model!r} reads {wanted} channels, the config gives "
            f"{len(config.channels)} ({list(config.channels)}); set channels accordingly "
            f"(e.g. --set channels=[{','.join(entry.channels)}])"
        )


def train_model(data: TrainingData, config: TrainConfig, seed: int = 0, device: str = "auto",
                progress: bool = True) -> Predictor:
    """Fit one network on every clip of ``data`` and return it as a :class:`Predictor`.

    One :class:`~mefr.train.engine.Job` trains on all rows and tests on none, so the
    model is the one after ``config.epochs`` epochs (or the inner-validation epoch when
    ``config.select_epoch_by == "inner_val"``, which holds out training subjects).
    """
    from mefr.train.engine import Job, resolve_device, train_group

    if is_handcrafted(config.model):
        raise ValueError(f"{config.model!r} is a hand-crafted baseline without a network: it "
                         "has no model file; evaluate it with `mefr evaluate`")
    fs = data.features
    _check_channels(config, fs.channels)
    idx = [list(fs.channels).index(c) for c in config.channels]
    x = np.ascontiguousarray(np.asarray(fs.x)[:, idx], np.float32)
    y = np.array(fs.table["label"], dtype=np.int64)
    k = len(fs.class_names)
    groups = group_key(fs.table).to_numpy(dtype=object)
    job = Job("model", int(seed), np.arange(len(y), dtype=np.int64), np.zeros(0, np.int64))
    result = train_group(x, y, [job], config, k, groups=groups, device=device,
                         progress=progress, return_models=True, workers=1)
    model = result.models["model"].cpu().eval()  # type: ignore[index]
    with torch.no_grad():
        has_det = model(torch.zeros((1, *x.shape[1:]))).detector_logits is not None
    info = result.info["model"]
    header = make_header(
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        mefr_version=mefr_version(),
        network={"name": config.model, "num_classes": k, "detectors": has_det,
                 "kwargs": {n: v for n, v in model.config.items() if n != "num_classes"}},
        classes=list(fs.class_names),
        input={"channels": list(config.channels), "size": int(x.shape[-1]),
               "feature_channels": list(fs.channels)},
        preprocess=data.preprocess,
        train={**config.to_dict(), "seed": int(seed), "model_seed": info["seed"],
               "device": str(resolve_device(device)), "evaluated_epoch": info["evaluated_epoch"],
               "final_train_loss": info["final_train_loss"]},
        data=data.data,
        environment=_environment(),
    )
    return Predictor(model, header, source="<trained>")


# =========================================================================== explanations
def face_crops(clip: PreparedClip, settings: PreprocessSettings) -> tuple[np.ndarray, np.ndarray]:
    """The grey onset and apex face crops the flow was computed between (the pipeline's
    crop: the onset's box on both, resized to ``settings.face_size`` when set)."""

    def one(img: ImageLike, what: str) -> np.ndarray:
        face = crop(as_grey(img, f"{clip.name} <{what}>"), clip.box)
        if settings.face_size is not None:
            side = settings.face_size
            face = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
        return face

    return one(clip.onset, "onset"), one(clip.apex, "apex")


def flow_to_rgb(u: np.ndarray, v: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """HSV colour-wheel coding of a flow field, float RGB ``(H, W, 3)`` in [0, 1]: hue =
    direction (image axes: +x right, +y down; 0 = right, red), value = magnitude
    / ``max_magnitude`` (default: the field's maximum), saturation 1."""
    from matplotlib.colors import hsv_to_rgb

    mag = np.hypot(u, v)
    top = float(max_magnitude) if max_magnitude else float(mag.max())
    hue = (np.arctan2(v, u) % (2 * np.pi)) / (2 * np.pi)
    val = np.clip(mag / top, 0.0, 1.0) if top > 0 else np.zeros_like(mag)
    return hsv_to_rgb(np.stack([hue, np.ones_like(hue), val], axis=-1))


def _colour_wheel(size: int = 101) -> np.ndarray:
    """An RGBA colour wheel in the coding of :func:`flow_to_rgb` (transparent outside)."""
    r = (size - 1) / 2
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    u, v = (xx - r) / r, (yy - r) / r
    rgb = flow_to_rgb(u, v, 1.0)
    alpha = (np.hypot(u, v) <= 1.0).astype(np.float64)
    return np.concatenate([rgb, alpha[..., None]], axis=-1)


def write_explanation(
    path: str | os.PathLike,
    clip: PreparedClip,
    prediction: Prediction,
    saliency: np.ndarray,
    settings: PreprocessSettings,
    network: str = "",
    detectors: bool = True,
    channels: Sequence[str] = ("u", "v"),
) -> Path:
    """Draw one clip's explanation PNG (matplotlib, Agg).

    Top row: the grey onset and apex face crops, the TV-L1 flow between them at the
    crop's resolution as an HSV colour wheel (direction = hue, magnitude = brightness)
    and as arrows over the apex face coloured by magnitude. Bottom row: per class, the
    saliency ``saliency[k]`` (:meth:`Predictor.saliency`, ``(K, h, w)`` on the network
    grid) upsampled to the crop and overlaid on the onset face, one colour scale shared by
    all classes.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import cm
    from matplotlib.colors import Normalize

    from mefr.preprocess.flow import tvl1_flow

    onset, apex = face_crops(clip, settings)
    flow = tvl1_flow(onset, apex)
    u, v = flow[..., 0], flow[..., 1]
    mag = np.hypot(u, v)
    top = max(float(mag.max()), 1e-6)
    k = len(saliency)
    classes = list(prediction.probabilities or {})
    ncols = max(4, k)
    fig, axes = plt.subplots(2, ncols, figsize=(4.2 * ncols, 8.6), squeeze=False)
    h, w = onset.shape

    def face_axes(ax, title: str) -> None:
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("x (px of the face crop)")
        ax.set_ylabel("y (px)")

    for ax, img, what in ((axes[0, 0], onset, "onset"), (axes[0, 1], apex, "apex")):
        im = ax.imshow(img, cmap="gray", vmin=0, vmax=255)
        frame = "frame 0" if what == "onset" else clip.apex_frame
        face_axes(ax, f"{what} face ({Path(frame).name if what == 'apex' else frame})")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="grey level")

    ax = axes[0, 2]
    ax.imshow(flow_to_rgb(u, v, top))
    face_axes(ax, "TV-L1 flow onset -> apex\nhue = direction, brightness = magnitude")
    sm = cm.ScalarMappable(Normalize(0, top), cmap="gray")
    fig.colorbar(sm, ax=ax, fraction=0.046, pad=0.04, label="magnitude (px) = brightness")
    inset = ax.inset_axes((0.60, 0.64, 0.28, 0.28))
    inset.imshow(_colour_wheel())
    inset.axis("off")
    inset.set_title("direction", fontsize=7, pad=1, color="white")
    inset.text(1.0, 0.5, " +x", transform=inset.transAxes, fontsize=7, color="white",
               ha="left", va="center")
    inset.text(0.5, 0.0, "+y", transform=inset.transAxes, fontsize=7, color="white",
               ha="center", va="top")

    ax = axes[0, 3]
    ax.imshow(apex, cmap="gray", vmin=0, vmax=255)
    step = max(1, int(round(max(h, w) / 16)))
    yy, xx = np.mgrid[step // 2:h:step, step // 2:w:step]
    uu, vv, mm = u[yy, xx], v[yy, xx], mag[yy, xx]
    q = ax.quiver(xx, yy, uu, vv, mm, cmap="viridis", norm=Normalize(0, top), angles="xy",
                  scale_units="xy", scale=top / (0.9 * step), width=0.006)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    face_axes(ax, f"flow arrows on the apex face\n(longest arrow = {top:.2f} px)")
    fig.colorbar(q, ax=ax, fraction=0.046, pad=0.04, label="flow magnitude (px)")
    for j in range(4, ncols):
        axes[0, j].axis("off")

    big = [cv2.resize(s, (w, h), interpolation=cv2.INTER_LINEAR) for s in saliency]
    vmax = max(float(max(b.max() for b in big)), 1e-12)
    what = "detector {k} logit" if detectors else "class {k} logit"
    heat = plt.get_cmap("inferno")
    summed = ", ".join(channels)
    for j in range(ncols):
        ax = axes[1, j]
        if j >= k:
            ax.axis("off")
            continue
        name = classes[j] if j < len(classes) else str(j)
        ax.imshow(onset, cmap="gray", vmin=0, vmax=255)
        level = np.clip(big[j] / vmax, 0.0, 1.0)
        rgba = heat(level)
        rgba[..., 3] = 0.15 + 0.7 * level  # weak saliency lets the face show through
        ax.imshow(rgba)
        p = (prediction.probabilities or {}).get(name)
        d = (prediction.detector_scores or {}).get(name)
        scores = f"p={p:.2f}" + (f", detector={d:.2f}" if d is not None else "")
        mark = " (predicted)" if name == prediction.predicted else ""
        face_axes(ax, f"saliency of class '{name}'{mark}\n{scores}")
        fig.colorbar(cm.ScalarMappable(Normalize(0, vmax), heat), ax=ax, fraction=0.046,
                     pad=0.04, label=f"|∂ {what.format(k=j)} / ∂ input|, sum over {summed}")
    apex_text = clip.apex_frame if clip.apex_frame.startswith("frame ") else (
        f"{Path(clip.apex_frame).name} (frame {clip.apex_index} of {clip.num_frames})")
    fig.suptitle(
        f"{prediction.input}\nmodel {network}: predicted '{prediction.predicted}'; apex "
        f"{apex_text}; saliency = SmoothGrad input gradient on the onset face",
        fontsize=11,
    )
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def format_table(predictions: Sequence[Prediction], class_names: Sequence[str]) -> str:
    """A plain-text table of predictions: input, predicted class, probabilities, detector
    scores, apex; failed inputs show their error."""
    width = max([5, *(len(_short(p.input)) for p in predictions)])
    cols = " ".join(f"{'p_' + c[:8]:>10}" for c in class_names)
    dets = " ".join(f"{'d_' + c[:8]:>10}" for c in class_names)
    lines = [f"{'input':<{width}} {'predicted':<11} {cols} {dets} apex"]
    for p in predictions:
        if not p.ok:
            lines.append(f"{_short(p.input):<{width}} error: {p.error}")
            continue
        probs = " ".join(f"{p.probabilities[c]:>10.3f}" for c in class_names)  # type: ignore[index]
        ds = " ".join(
            f"{p.detector_scores[c]:>10.3f}" if p.detector_scores else f"{'-':>10}"
            for c in class_names
        )
        lines.append(f"{_short(p.input):<{width}} {p.predicted:<11} {probs} {ds} "
                     f"{Path(str(p.apex_frame)).name}")
    return "\n".join(lines)


def _short(text: str, n: int = 60) -> str:
    return text if len(text) <= n else "..." + text[-(n - 3):]
