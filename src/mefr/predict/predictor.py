"""A trained network with its preprocessing: load, save, predict, explain.

:class:`Predictor` is built from a model file (:mod:`mefr.modelfile`) or by
:func:`mefr.predict.training.train_model`; :meth:`Predictor.predict` gives one
:class:`~mefr.predict.results.Prediction` per input, a failed input carrying its error.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mefr.modelfile import (
    ModelFileError,
    build_network,
    check_compatibility,
    load_model_file,
    save_model_file,
    validate_header,
)
from mefr.models.base import GroupNet
from mefr.predict.explain import write_explanation
from mefr.predict.inputs import PredictInput, PreparedClip, describe_input, prepare_input
from mefr.predict.results import Prediction, explanation_name, failure
from mefr.preprocess.settings import PreprocessSettings


def _settings_of(header: Mapping[str, Any], source: str) -> PreprocessSettings:
    try:
        return PreprocessSettings.from_dict(header["preprocess"]["settings"])
    except (TypeError, ValueError) as e:
        raise ModelFileError(
            f"{source}: the model's preprocessing settings cannot be used by this mefr ({e})"
        ) from None


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
        another format version, sizes out of bounds, weights that do not fit or are not
        finite, or (``strict``) a preprocessing made with another OpenCV major.minor or
        mefr major version; warns
        (:class:`~mefr.modelfile.VersionMismatchWarning`) for smaller version differences.
        """
        tensors, header = load_model_file(path)
        source = str(path)
        check_compatibility(header, source, strict=strict)
        model = build_network(header, tensors, source)
        return cls(model, header, source=source, device=device)

    @classmethod
    def from_pretrained(cls, name: str, strict: bool = True,
                        device: str | torch.device = "cpu") -> Predictor:
        """A model shipped with mefr, by name (``mefr models --pretrained`` lists them).

        Offline: the weights are package files; their sha256 is checked against the
        package's index before they are loaded (:mod:`mefr.predict.pretrained`). An unknown
        name or another sha256 raises :class:`~mefr.predict.pretrained.PretrainedError` (a
        :class:`~mefr.modelfile.ModelFileError`); the rest is :meth:`from_file`.
        """
        from mefr.predict.pretrained import pretrained_file

        return cls.from_file(pretrained_file(name), strict=strict, device=device)

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
            name, kind = describe_input(item, i)
            try:
                prepared.append((i, self.prepare(item, name)))
            except Exception as e:  # noqa: BLE001 - one bad input must not lose the others
                results[i] = failure(name, kind, e)
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
