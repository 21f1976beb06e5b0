"""A trained network with its preprocessing: load, save, predict, explain.

:class:`Predictor` is built from a model file (:mod:`mefr.modelfile`) or by
:func:`mefr.predict.training.train_model`; :meth:`Predictor.predict` gives one
:class:`~mefr.predict.results.Prediction` per input, a failed input carrying its error.

A predictor may hold an **ensemble** (a model file of format version 2, or
:func:`mefr.predict.ensemble.ensemble_of`): N member networks that share the classes
and the preprocessing. Each clip is preprocessed once; its class probabilities are the
weighted mean of the members' softmax probabilities (:func:`weighted_mean`, the weights
of the file, equal for seeds), its detector scores the weighted mean of the members'
(when every member has detectors), and its saliency the weighted mean of the members'
saliency maps.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
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
    member_label,
    member_tensors,
    save_model_file,
    validate_header,
)
from mefr.modelmembers import is_ensemble, join_members, member_headers, member_weights
from mefr.models.base import GroupNet
from mefr.predict.explain import write_explanation
from mefr.predict.inputs import PredictInput, PreparedClip, describe_input, prepare_input
from mefr.predict.results import Prediction, describe_members, explanation_name, failure
from mefr.preprocess.settings import PreprocessSettings


def _settings_of(header: Mapping[str, Any], source: str) -> PreprocessSettings:
    try:
        return PreprocessSettings.from_dict(header["preprocess"]["settings"])
    except (TypeError, ValueError) as e:
        raise ModelFileError(
            f"{source}: the model's preprocessing settings cannot be used by this mefr ({e})"
        ) from None


def weighted_mean(arrays: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """``sum_i weights[i] * arrays[i]`` (summed in float64, returned in the first array's
    dtype); one array is returned as it is, so a single model's numbers are untouched."""
    if len(arrays) != len(weights) or not arrays:
        raise ValueError(f"{len(arrays)} arrays and {len(weights)} weights")
    if len(arrays) == 1:
        return arrays[0]
    total = sum(float(w) * np.asarray(a, np.float64) for a, w in zip(arrays, weights, strict=True))
    return np.asarray(total, dtype=np.asarray(arrays[0]).dtype)


def load_checked(path: str | os.PathLike, strict: bool = True
                 ) -> tuple[dict[str, Any], list[dict[str, torch.Tensor]], list[GroupNet]]:
    """``(header, tensors of each member, network of each member)`` of a model file after
    every check of :meth:`Predictor.from_file` (one member for a single model)."""
    tensors, header = load_model_file(path)
    source = str(path)
    check_compatibility(header, source, strict=strict, stacklevel=4)  # warn at the caller's
    parts = member_tensors(tensors, header, source)
    nets = [build_network(h, part, f"{source}{member_label(header, i)}")
            for i, (h, part) in enumerate(zip(member_headers(header), parts, strict=True))]
    return header, parts, nets


class Predictor:
    """A trained network (or an ensemble of them) with its preprocessing, ready to predict
    new clips.

    Build it with :meth:`from_file` (a model file) or :func:`train_model`; ``header`` is
    the model file's header (see :mod:`mefr.modelfile`). ``model`` is one network, or
    for an ensemble header (format version 2) the members' networks in the header's
    order.
    """

    def __init__(self, model: GroupNet | Sequence[GroupNet], header: Mapping[str, Any],
                 source: str = "<model>", device: str | torch.device = "cpu") -> None:
        self.header = validate_header(dict(header), source)
        self.source = source
        self.device = torch.device(device)
        nets = [model] if isinstance(model, GroupNet) else list(model)
        #: The single-model header of each member (one for a single model).
        self.member_headers: tuple[dict[str, Any], ...] = tuple(member_headers(self.header))
        if len(nets) != len(self.member_headers):
            raise ValueError(f"{source}: the header lists {len(self.member_headers)} "
                             f"member(s), {len(nets)} network(s) were given")
        #: The members' networks (one for a single model) and their weights (sum 1).
        self.models: tuple[GroupNet, ...] = tuple(m.to(self.device).eval() for m in nets)
        self.weights: tuple[float, ...] = tuple(member_weights(self.header))
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
        """Load a model file written by :meth:`save` (safetensors only; never unpickles):
        a single model or an ensemble (every member checked as a single model is).

        Raises :class:`~mefr.modelfile.ModelFileError` for a foreign or tampered file,
        another format version, sizes out of bounds, weights that do not fit or are not
        finite, or (``strict``) a preprocessing made with another OpenCV major.minor or
        mefr major version; warns
        (:class:`~mefr.modelfile.VersionMismatchWarning`) for smaller version differences.
        """
        header, _, nets = load_checked(path, strict=strict)
        return cls(nets, header, source=str(path), device=device)

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
        """Write the model file (safetensors weights + JSON header) to ``path``; an
        ensemble writes every member (format version 2)."""
        if self.is_ensemble:
            tensors = join_members([m.state_dict() for m in self.models])
            return save_model_file(path, tensors, self.header)
        return save_model_file(path, self.model.state_dict(), self.header)

    # -- properties -------------------------------------------------------------------
    @property
    def is_ensemble(self) -> bool:
        """Whether this is an ensemble of several member networks."""
        return is_ensemble(self.header)

    @property
    def model(self) -> GroupNet:
        """The network of a single model; an ensemble has several (:attr:`models`)."""
        if len(self.models) != 1:
            raise ValueError(f"{self.source} is an ensemble of {len(self.models)} networks: "
                             "use Predictor.models")
        return self.models[0]

    @property
    def networks(self) -> tuple[str, ...]:
        """The registry name of each member's network (one for a single model)."""
        return tuple(str(h["network"]["name"]) for h in self.member_headers)

    @property
    def network(self) -> str:
        """The registry name of the network; for an ensemble, ``"ensemble of 5 members
        (fr x5)"``."""
        return describe_members(self.networks)

    @property
    def has_detectors(self) -> bool:
        """Whether the network (every member of an ensemble) has per-class detectors (the
        FR family)."""
        return all(bool(h["network"].get("detectors", False)) for h in self.member_headers)

    @property
    def _detector_saliency(self) -> bool | None:
        """Whether the saliency scores are detector logits: True, False, None (mixed)."""
        kinds = {bool(h["network"].get("detectors", False)) for h in self.member_headers}
        return kinds.pop() if len(kinds) == 1 else None

    # -- inputs -----------------------------------------------------------------------
    def prepare(self, item: PredictInput, name: str = "") -> PreparedClip:
        """One input as network input, with this model's preprocessing settings."""
        return prepare_input(item, self.settings, name)

    def network_input(self, x: np.ndarray) -> np.ndarray:
        """Feature array(s) ``(..., C_pre, H, W)`` restricted to the network's channels."""
        return np.ascontiguousarray(np.asarray(x)[..., self._channel_index, :, :], np.float32)

    # -- network ----------------------------------------------------------------------
    def forward(self, x: np.ndarray, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray | None]:
        """Class probabilities ``(B, K)`` and detector scores ``(B, K)`` (or None) of
        network inputs ``x`` ``(B, C, H, W)``, in batches of ``batch_size``. An ensemble
        gives the weighted means of its members' (detector scores only when every member
        has detectors)."""
        k = len(self.class_names)
        outs = [_forward(m, x, batch_size, self.device, k) for m in self.models]
        probs = weighted_mean([p for p, _ in outs], self.weights)
        dets = [d for _, d in outs]
        if any(d is None for d in dets):
            return probs, None
        return probs, weighted_mean(dets, self.weights)  # type: ignore[arg-type]

    def saliency(self, x: np.ndarray, samples: int = 16, noise: float = 0.1,
                 seed: int = 0) -> np.ndarray:
        """Input-gradient saliency of each class's expression-specific branch, ``(K, H, W)``.

        The score of class k is detector k's logit (Eq. (4)) for networks with detectors,
        else the class-k logit. The map is ``|d score / d x|`` summed over the input
        channels; with ``samples > 1`` averaged over ``samples`` copies of ``x`` with
        Gaussian noise of standard deviation ``noise * (max(x) - min(x))`` (SmoothGrad),
        drawn from ``seed``. ``x`` is one network input ``(C, H, W)``. An ensemble's map is
        the weighted mean of its members' maps (each member with its own score, the same
        noisy copies).
        """
        maps = [_saliency(m, x, self.device, samples, noise, seed) for m in self.models]
        return weighted_mean(maps, self.weights)

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
        who = {"model": self.network, "members": len(self.models)}
        return [replace(r, **who) for r in results if r is not None]

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
                              self._detector_saliency, self.channels, len(self.models))
        except Exception as e:  # noqa: BLE001 - a failed figure must not lose the prediction
            note = f"explanation not written: {type(e).__name__}: {e}"
            return replace(pred, notes=(*pred.notes, note))
        return replace(pred, explanation=str(path))


@torch.no_grad()
def _forward(model: GroupNet, x: np.ndarray, batch_size: int, device: torch.device,
             k: int) -> tuple[np.ndarray, np.ndarray | None]:
    """One network's class probabilities and detector scores (see :meth:`Predictor.forward`)."""
    model.eval()
    probs, dets = [], []
    for s in range(0, len(x), max(1, batch_size)):
        xb = torch.from_numpy(np.ascontiguousarray(x[s:s + batch_size])).to(device)
        out = model(xb)
        probs.append(torch.softmax(out.logits.float(), dim=-1).cpu().numpy())
        if out.detector_logits is not None:
            dets.append(torch.sigmoid(out.detector_logits.float()).cpu().numpy())
    p = np.concatenate(probs) if probs else np.zeros((0, k), np.float32)
    d = np.concatenate(dets) if dets else None
    return p, d


def _saliency(model: GroupNet, x: np.ndarray, device: torch.device, samples: int,
              noise: float, seed: int) -> np.ndarray:
    """One network's saliency maps ``(K, H, W)`` (see :meth:`Predictor.saliency`)."""
    model.eval()
    dtype = next(model.parameters()).dtype
    base = torch.from_numpy(np.ascontiguousarray(x)).to(device, dtype)
    n = max(1, int(samples))
    batch = base.unsqueeze(0).repeat(n, 1, 1, 1)
    if n > 1 and noise > 0:
        gen = torch.Generator(device="cpu").manual_seed(seed)
        sigma = float(noise) * float(base.max() - base.min())
        draw = torch.randn(batch.shape, generator=gen, dtype=dtype)
        batch = batch + sigma * draw.to(device)
    batch.requires_grad_(True)
    with torch.enable_grad():
        out = model(batch)
        scores = out.detector_logits if out.detector_logits is not None else out.logits
        maps = []
        for c in range(scores.shape[-1]):
            (grad,) = torch.autograd.grad(scores[:, c].sum(), batch, retain_graph=True)
            maps.append(grad.abs().sum(dim=1).mean(dim=0))
    return torch.stack(maps).detach().cpu().numpy().astype(np.float32)
