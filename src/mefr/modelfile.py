"""The mefr model file: one ``.safetensors`` file, weights plus a JSON header, never a pickle.

Layout
------
A model file is a plain `safetensors <https://huggingface.co/docs/safetensors>`_ file:
the tensors are the network's ``state_dict`` (a G = 1 model), and the safetensors
metadata (a string -> string map stored in the file's own JSON header) holds one entry,
:data:`HEADER_KEY` (``"mefr_model"``), whose value is the JSON text of the **header**::

    format          "mefr-model"                      (:data:`FORMAT_NAME`)
    format_version  1                                 (:data:`FORMAT_VERSION`)
    created         ISO 8601 time (UTC)
    mefr_version    the mefr that wrote the file
    network         {"name": registry name, "num_classes": K, "kwargs": constructor
                     arguments except num_classes / num_models, "detectors": bool}
    classes         class names in label order
    input           {"channels": network input channels, "size": side,
                     "feature_channels": channels the preprocessing makes}
    preprocess      {"source": "raw" | "flowset", "exact": bool, "settings":
                     PreprocessSettings.to_dict(), "opencv": cv2 version,
                     "yuface": yuface version, "note": text}
    train           TrainConfig.to_dict() plus seed, model seed, device, epochs evaluated,
                    final training loss
    data            {"sources", "protocol", "clips", "subjects", "datasets",
                     "class_counts", "failures", "sha256"}
    environment     python, torch, numpy versions, platform

Reading goes through :func:`safetensors.safe_open` (header) and
:func:`safetensors.torch.load_file` (tensors) only; nothing is unpickled, so a model file
from a stranger cannot run code.

Compatibility rules (:func:`compatibility_issues`)
---------------------------------------------------
Errors (:class:`ModelFileError`; the model is refused):

* not a safetensors file, no ``mefr_model`` metadata, a ``format`` other than
  ``mefr-model``, or a ``format_version`` other than :data:`FORMAT_VERSION`;
* header fields missing or of the wrong type; weights that do not fit the network;
* a size out of bounds or inconsistent (:func:`check_sizes`: ``input.size`` and
  ``preprocess.settings.size`` at most :data:`MAX_INPUT_SIDE` and equal, the network's
  ``input_size`` and channel count equal to the input's, every weight of the shape the
  header's network has): checked before anything is allocated;
* weights that are not finite (NaN or infinite: a model that diverged); such weights are
  never written either (:func:`check_finite`);
* preprocessing settings this mefr does not know (made by another mefr's preprocessing);
* *version errors* (``strict=False`` turns these into warnings): an OpenCV whose
  major.minor differs from the one the training features were made with (TV-L1, image
  decoding and resizing may change), or another mefr major version.

Warnings (:class:`VersionMismatchWarning`; the model is used, predictions may shift a
little): another OpenCV patch release, another yuface version (face boxes may move by
a pixel), another mefr minor/patch version, and a model trained on a pre-computed flow
set (its preprocessing was not mefr's, so raw clips are turned into inputs by mefr's
closest settings, not by the flow set's own tool).
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from mefr._env import mefr_version, opencv_version, package_version
from mefr._io import atomic_file, json_default
from mefr.models.base import GroupNet
from mefr.models.registry import create_model

FORMAT_NAME = "mefr-model"
FORMAT_VERSION = 1
HEADER_KEY = "mefr_model"
#: Header fields every model file must have, with their JSON types.
REQUIRED_FIELDS: dict[str, type] = {
    "format": str,
    "format_version": int,
    "mefr_version": str,
    "network": dict,
    "classes": list,
    "input": dict,
    "preprocess": dict,
    "train": dict,
    "data": dict,
}


#: Largest network input side and face-crop side a header may ask for (pixels).
MAX_INPUT_SIDE = 1024
MAX_FACE_SIDE = 4096
#: Most classes a header may name.
MAX_CLASSES = 1000


class ModelFileError(ValueError):
    """A model file cannot be used: unreadable, foreign, tampered or incompatible."""


class VersionMismatchWarning(UserWarning):
    """A model file was made with other library versions; predictions may shift a little."""


# --------------------------------------------------------------------------- versions
def version_tuple(text: str | None) -> tuple[int, ...]:
    """``"5.0.0.93"`` -> ``(5, 0, 0, 93)``; the leading numeric parts only (``()`` for None)."""
    if not text:
        return ()
    parts = []
    for piece in str(text).split("."):
        m = re.match(r"\d+", piece)
        if not m:
            break
        parts.append(int(m.group()))
    return tuple(parts)


def _pad(v: tuple[int, ...], n: int) -> tuple[int, ...]:
    return (v + (0,) * n)[:n]


def compatibility_issues(
    header: Mapping[str, Any],
    opencv: str | None = None,
    yuface: str | None = None,
    mefr: str | None = None,
) -> tuple[list[str], list[str]]:
    """``(errors, warnings)`` of using a model file's header here (see the module docstring).

    ``opencv``, ``yuface``, ``mefr`` are the versions of this installation (default: the
    installed ones); passing them makes the rules testable.
    """
    here_cv = opencv if opencv is not None else opencv_version()
    here_yu = yuface if yuface is not None else package_version("yuface")
    here_mefr = mefr if mefr is not None else mefr_version()
    errors: list[str] = []
    notes: list[str] = []
    pre = header.get("preprocess", {})
    file_mefr = str(header.get("mefr_version", ""))
    if file_mefr != here_mefr:
        text = f"the model was written by mefr {file_mefr}, this is mefr {here_mefr}"
        if _pad(version_tuple(file_mefr), 1) != _pad(version_tuple(here_mefr), 1):
            errors.append(f"{text} (another major version: its preprocessing may differ)")
        else:
            notes.append(f"{text}; its preprocessing may differ slightly")
    if pre.get("source") == "flowset":
        note = str(pre.get("note") or "").strip()
        notes.append(
            "the model was trained on a pre-computed flow set, not on mefr's preprocessing: "
            "raw clips are turned into inputs with mefr's closest settings"
            + (f" ({note})" if note else "")
        )
        return errors, notes
    file_cv = pre.get("opencv")
    if file_cv and file_cv != here_cv:
        text = f"the training features were made with OpenCV {file_cv}, this is OpenCV {here_cv}"
        if _pad(version_tuple(file_cv), 2) != _pad(version_tuple(here_cv), 2):
            errors.append(f"{text} (TV-L1 flow, decoding and resizing may differ)")
        else:
            notes.append(f"{text} (a patch release apart)")
    file_yu = pre.get("yuface")
    if file_yu and file_yu != here_yu:
        notes.append(
            f"faces were detected with yuface {file_yu} in training, yuface {here_yu} here "
            "(face boxes may move slightly)"
        )
    return errors, notes


def check_compatibility(header: Mapping[str, Any], source: str, strict: bool = True) -> None:
    """Raise :class:`ModelFileError` for the version errors of :func:`compatibility_issues`
    (warn instead when ``strict`` is false); warn (:class:`VersionMismatchWarning`) for
    the rest."""
    errors, notes = compatibility_issues(header)
    if errors and strict:
        raise ModelFileError(
            f"{source}: incompatible preprocessing: " + "; ".join(errors)
            + " (pass strict=False / --allow-version-mismatch to use it anyway)"
        )
    for text in [*errors, *notes]:
        warnings.warn(f"{source}: {text}", VersionMismatchWarning, stacklevel=3)


# --------------------------------------------------------------------------- header
def validate_header(header: Any, source: str) -> dict[str, Any]:
    """Check the format name, the format version and the required fields of a header."""
    if not isinstance(header, dict):
        raise ModelFileError(f"{source}: the mefr header is not a JSON object")
    fmt = header.get("format")
    if fmt != FORMAT_NAME:
        raise ModelFileError(
            f"{source}: not a mefr model file (format {fmt!r}, expected {FORMAT_NAME!r})"
        )
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFileError(
            f"{source}: model file format version {version!r} is not supported by this mefr "
            f"(it reads version {FORMAT_VERSION}); "
            + ("upgrade mefr" if isinstance(version, int) and version > FORMAT_VERSION
               else "retrain the model with this mefr")
        )
    for name, kind in REQUIRED_FIELDS.items():
        if not isinstance(header.get(name), kind):
            raise ModelFileError(
                f"{source}: header field {name!r} is missing or not a JSON {kind.__name__}"
            )
    net, inp = header["network"], header["input"]
    if not isinstance(net.get("name"), str) or not isinstance(net.get("kwargs"), dict):
        raise ModelFileError(f"{source}: header 'network' needs a 'name' and 'kwargs'")
    if not isinstance(net.get("num_classes"), int) or net["num_classes"] != len(header["classes"]):
        raise ModelFileError(
            f"{source}: header 'network.num_classes' {net.get('num_classes')!r} does not match "
            f"{len(header['classes'])} class names"
        )
    if not isinstance(inp.get("channels"), list) or not inp["channels"]:
        raise ModelFileError(f"{source}: header 'input.channels' is missing or empty")
    if not isinstance(header["preprocess"].get("settings"), dict):
        raise ModelFileError(f"{source}: header 'preprocess.settings' is missing")
    check_sizes(header, source)
    return header


def _is_int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def check_sizes(header: Mapping[str, Any], source: str) -> None:
    """Refuse a header whose sizes are out of bounds or disagree with each other.

    ``network.num_classes`` in 1..:data:`MAX_CLASSES`; ``input.size`` in
    1..:data:`MAX_INPUT_SIDE`, equal to ``preprocess.settings.size`` and to the network's
    ``input_size`` where they are given; ``preprocess.settings.face_size`` None or in
    8..:data:`MAX_FACE_SIDE`; the network's ``in_channels`` (where given) the number of
    ``input.channels``. The weights' shapes are checked against the network by
    :func:`build_network`.
    """
    net, inp = header["network"], header["input"]
    settings = header["preprocess"]["settings"]
    kwargs = net["kwargs"]
    if not _is_int(net["num_classes"], 1, MAX_CLASSES):
        raise ModelFileError(f"{source}: header 'network.num_classes' {net['num_classes']!r} "
                             f"is not a class count in 1..{MAX_CLASSES}")
    size = inp.get("size")
    if not _is_int(size, 1, MAX_INPUT_SIDE):
        raise ModelFileError(f"{source}: header 'input.size' {size!r} is not a side in "
                             f"1..{MAX_INPUT_SIDE} pixels")
    for where, value in (("preprocess.settings.size", settings.get("size", size)),
                         ("network.kwargs.input_size", kwargs.get("input_size", size))):
        if value != size:
            raise ModelFileError(f"{source}: header '{where}' {value!r} does not match "
                                 f"'input.size' {size}")
    face = settings.get("face_size")
    if face is not None and not _is_int(face, 8, MAX_FACE_SIDE):
        raise ModelFileError(f"{source}: header 'preprocess.settings.face_size' {face!r} is "
                             f"not None or a side in 8..{MAX_FACE_SIDE} pixels")
    channels = kwargs.get("in_channels", len(inp["channels"]))
    if channels != len(inp["channels"]):
        raise ModelFileError(f"{source}: header 'network.kwargs.in_channels' {channels!r} does "
                             f"not match the {len(inp['channels'])} 'input.channels'")


def check_finite(tensors: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise :class:`ModelFileError` when a floating-point tensor holds NaN or infinity
    (the weights of a model that diverged)."""
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = "NaN" if bool(torch.isnan(t).any()) else "infinite values"
            raise ModelFileError(
                f"{source}: weight {name!r} holds {bad}: the model diverged in training and "
                "cannot predict (retrain it, e.g. with a lower lr)")


def build_network(header: Mapping[str, Any], tensors: Mapping[str, torch.Tensor],
                  source: str) -> GroupNet:
    """The network of a validated header with ``tensors`` loaded (a G = 1 model, eval mode).

    The network is first built on the meta device (shapes only, nothing allocated) and
    every weight's shape compared with the header's network, so a header with absurd
    sizes is refused with a :class:`ModelFileError` instead of an allocation.
    """
    net = header["network"]
    name, k, kwargs = net["name"], net["num_classes"], net["kwargs"]
    try:
        with torch.device("meta"):
            shape_only = create_model(name, k, 1, **kwargs)
    except (TypeError, ValueError, RuntimeError, OverflowError) as e:
        raise ModelFileError(f"{source}: cannot build network {name!r} ({e})") from None
    expected = {n: tuple(t.shape) for n, t in shape_only.state_dict().items()}
    found = {n: tuple(t.shape) for n, t in tensors.items()}
    missing, unexpected = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    wrong = [n for n in expected if n in found and found[n] != expected[n]]
    if missing or unexpected or wrong:
        parts = [f"missing {missing[:3]}" if missing else "",
                 f"unexpected {unexpected[:3]}" if unexpected else "",
                 (f"{wrong[0]!r} is {found[wrong[0]]}, the header's network needs "
                  f"{expected[wrong[0]]}") if wrong else ""]
        raise ModelFileError(f"{source}: the weights do not fit network {name!r}: "
                             + "; ".join(p for p in parts if p))
    for what, key, want in (("input.size", "input_size", header["input"]["size"]),
                            ("input.channels", "in_channels", len(header["input"]["channels"]))):
        if shape_only.config.get(key, want) != want:
            raise ModelFileError(f"{source}: network {name!r} reads {key} "
                                 f"{shape_only.config[key]}, the header's {what} says {want}")
    model = create_model(name, k, 1, **kwargs)
    model.load_state_dict(dict(tensors), strict=True)
    return model.eval()


def make_header(**fields: Any) -> dict[str, Any]:
    """A header with the format fields first, then ``fields`` (JSON-safe copies)."""
    base = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION}
    return json.loads(json.dumps({**base, **fields}, default=json_default))


# --------------------------------------------------------------------------- files
def save_model_file(
    path: str | os.PathLike, tensors: Mapping[str, torch.Tensor], header: Mapping[str, Any]
) -> Path:
    """Write ``tensors`` and ``header`` (see the module docstring) to ``path`` atomically.

    The header is validated first, so a file that could not be read back is never written.
    """
    from safetensors.torch import save_file

    out = Path(path)
    head = validate_header(json.loads(json.dumps(header, default=json_default)), str(out))
    check_finite(tensors, f"{out}: refusing to save")
    flat = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    with atomic_file(out) as tmp:
        save_file(flat, str(tmp), metadata={HEADER_KEY: json.dumps(head, sort_keys=False)})
    return out


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """The validated header of a model file, without loading its weights."""
    from safetensors import safe_open

    p = Path(path)
    if not p.is_file():
        raise ModelFileError(f"{p}: model file not found")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error types
        raise ModelFileError(
            f"{p}: not a safetensors file ({type(e).__name__}: {e}); mefr model files are "
            "safetensors files written by `mefr train`"
        ) from None
    if HEADER_KEY not in meta:
        raise ModelFileError(
            f"{p}: a safetensors file without a {HEADER_KEY!r} header: not a mefr model file"
        )
    try:
        header = json.loads(meta[HEADER_KEY])
    except json.JSONDecodeError as e:
        raise ModelFileError(f"{p}: the {HEADER_KEY!r} header is not valid JSON ({e})") from None
    return validate_header(header, str(p))


def load_model_file(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(tensors, header)`` of a model file (safetensors only; nothing is unpickled)."""
    from safetensors.torch import load_file

    header = read_header(path)
    try:
        tensors = load_file(str(path))
    except Exception as e:  # noqa: BLE001
        raise ModelFileError(f"{path}: cannot read the weights ({type(e).__name__}: {e})") from None
    check_finite(tensors, str(path))
    return tensors, header
