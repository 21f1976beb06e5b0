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

Ensembles (format version 2)
----------------------------
A file can also hold an **ensemble**: N >= 2 members (the same network trained with N
seeds, or networks that share the classes and the preprocessing) whose prediction is the
weighted mean of the members' class probabilities (softmax), per clip. Its header has
``format_version`` 2 (:data:`ENSEMBLE_FORMAT_VERSION`)::

    format          "mefr-model"
    format_version  2
    created, mefr_version, environment   of the writing of the ensemble
    ensemble        {"rule": "weighted_mean_probabilities"}     (:data:`ENSEMBLE_RULE`)
    classes, input, preprocess           member 0's (every member shares them)
    members         [{"weight": w_i, "file": the file it was bundled from or null,
                      "header": the member's complete version-1 header}, ...]

and member i's tensors are its ``state_dict`` under the names ``members.{i}.{name}``.
Every member is checked as a single model file is (its header by the version-1 rules
below, its weights for finiteness and against its network); the members must agree on
the classes and the preprocessing (:func:`member_mismatch`); the weights are positive
and sum to 1. A file is written with the lowest version that holds it: a single model
is still version 1, which every mefr reads; an older mefr refuses an ensemble with
"format version 2 is not supported ... upgrade mefr". The members are separate G = 1
networks rather than one :class:`~mefr.models.base.GroupNet` of G = N, so that members
of different networks fit in one file and each is rebuilt exactly as a single file is.

Reading goes through :func:`safetensors.safe_open` (header) and
:func:`safetensors.torch.load_file` (tensors) only; nothing is unpickled, so a model file
from a stranger cannot run code.

Compatibility rules (:func:`compatibility_issues`)
---------------------------------------------------
Errors (:class:`ModelFileError`; the model is refused):

* not a safetensors file, no ``mefr_model`` metadata, a ``format`` other than
  ``mefr-model``, or a ``format_version`` other than 1 and 2 (:data:`READ_VERSIONS`);
* an ensemble with fewer than 2 or more than :data:`MAX_MEMBERS` members, another rule,
  weights that are not positive or do not sum to 1, members that disagree on the classes
  or the preprocessing, or tensors named for no member;
* header fields missing or of the wrong type; weights that do not fit the network;
* a size out of bounds or inconsistent (:func:`check_sizes`: ``input.size`` and
  ``preprocess.settings.size`` at most :data:`MAX_INPUT_SIDE` and equal, the network's
  ``input_size`` and channel count equal to the input's, every weight of the shape the
  header's network has): checked before anything is allocated;
* weights that are not finite (NaN or infinite: a model that diverged); such weights are
  never written either (:func:`check_finite`);
* preprocessing settings this mefr does not know (made by another mefr's preprocessing);
* *version errors* (:mod:`mefr.modelcompat`; ``strict=False`` turns these into
  warnings): an OpenCV whose major.minor differs from the one the training features
  were made with (TV-L1, image decoding and resizing may change), or another mefr major
  version.

Warnings (:class:`VersionMismatchWarning`; the model is used, predictions may shift a
little): the smaller differences of :mod:`mefr.modelcompat` (another OpenCV patch
release, yuface version or mefr minor version; a model trained on a flow set).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from mefr._io import atomic_file, json_default
from mefr.modelcompat import compatibility_issues
from mefr.modelmembers import (
    ENSEMBLE_FORMAT_VERSION,
    ENSEMBLE_RULE,
    MAX_MEMBERS,
    is_ensemble,
    member_headers,
    member_mismatch,
    split_members,
)
from mefr.models.base import GroupNet
from mefr.models.registry import create_model

FORMAT_NAME = "mefr-model"
#: The format version of a single model (what every mefr reads); an ensemble's is
#: :data:`ENSEMBLE_FORMAT_VERSION` (2).
FORMAT_VERSION = 1
#: The format versions this mefr reads.
READ_VERSIONS = (FORMAT_VERSION, ENSEMBLE_FORMAT_VERSION)
HEADER_KEY = "mefr_model"
#: Header fields an ensemble file must have besides ``format`` and ``format_version``.
ENSEMBLE_FIELDS: dict[str, type] = {"mefr_version": str, "ensemble": dict, "classes": list,
                                    "input": dict, "preprocess": dict, "members": list}
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


def check_compatibility(header: Mapping[str, Any], source: str, strict: bool = True,
                        stacklevel: int = 3) -> None:
    """Raise :class:`ModelFileError` for the version errors of :func:`compatibility_issues`
    (warn instead when ``strict`` is false); warn (:class:`VersionMismatchWarning`, at
    ``stacklevel``) for the rest. An ensemble's members are checked each."""
    errors: list[str] = []
    notes: list[str] = []
    for member in member_headers(header):  # every member of an ensemble, each text once
        found, said = compatibility_issues(member)
        errors += [e for e in found if e not in errors]
        notes += [n for n in said if n not in notes]
    if errors and strict:
        raise ModelFileError(
            f"{source}: incompatible preprocessing: " + "; ".join(errors)
            + " (pass strict=False / --allow-version-mismatch to use it anyway)"
        )
    for text in [*errors, *notes]:
        warnings.warn(f"{source}: {text}", VersionMismatchWarning, stacklevel=stacklevel)


# --------------------------------------------------------------------------- header
def validate_header(header: Any, source: str) -> dict[str, Any]:
    """Check a header: the format name and version, then the fields of a single model
    (version 1) or of an ensemble and every one of its members (version 2)."""
    if not isinstance(header, dict):
        raise ModelFileError(f"{source}: the mefr header is not a JSON object")
    fmt = header.get("format")
    if fmt != FORMAT_NAME:
        raise ModelFileError(
            f"{source}: not a mefr model file (format {fmt!r}, expected {FORMAT_NAME!r})"
        )
    version = header.get("format_version")
    if version == ENSEMBLE_FORMAT_VERSION:
        return _validate_ensemble(header, source)
    if version != FORMAT_VERSION:
        raise ModelFileError(
            f"{source}: model file format version {version!r} is not supported by this mefr "
            f"(it reads versions {', '.join(map(str, READ_VERSIONS))}); "
            + ("upgrade mefr" if isinstance(version, int) and version > max(READ_VERSIONS)
               else "retrain the model with this mefr")
        )
    return _validate_single(header, source)


def _validate_single(header: dict[str, Any], source: str) -> dict[str, Any]:
    """The version-1 rules: required fields, network, classes, input, sizes."""
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


def _validate_ensemble(header: dict[str, Any], source: str) -> dict[str, Any]:
    """The version-2 rules: the ensemble's fields, then every member by the version-1
    rules, their agreement (:func:`member_mismatch`) and their weights."""
    for name, kind in ENSEMBLE_FIELDS.items():
        if not isinstance(header.get(name), kind):
            raise ModelFileError(
                f"{source}: ensemble header field {name!r} is missing or not a JSON "
                f"{kind.__name__}")
    rule = header["ensemble"].get("rule")
    if rule != ENSEMBLE_RULE:
        raise ModelFileError(f"{source}: ensemble rule {rule!r} is not known to this mefr (it "
                             f"knows {ENSEMBLE_RULE!r}); upgrade mefr")
    members = header["members"]
    if not 2 <= len(members) <= MAX_MEMBERS:
        raise ModelFileError(f"{source}: an ensemble holds 2..{MAX_MEMBERS} members, this "
                             f"header lists {len(members)}")
    for i, m in enumerate(members):
        where = f"{source} member {i}"
        if not isinstance(m, dict) or not isinstance(m.get("header"), dict):
            raise ModelFileError(f"{where}: needs a 'header' object")
        if m["header"].get("format_version") != FORMAT_VERSION:
            raise ModelFileError(f"{where}: a member is a single model (format version "
                                 f"{FORMAT_VERSION}), not {m['header'].get('format_version')!r}")
        validate_header(m["header"], where)
        w = m.get("weight")
        if not (isinstance(w, int | float) and not isinstance(w, bool)
                and math.isfinite(w) and w > 0):
            raise ModelFileError(f"{where}: weight {w!r} is not a positive number")
        reason = member_mismatch(members[0]["header"], m["header"])
        if reason:
            raise ModelFileError(f"{where}: {reason} (the members of an ensemble share the "
                                 "classes and the preprocessing)")
    total = math.fsum(m["weight"] for m in members)
    if abs(total - 1.0) > 1e-6:
        raise ModelFileError(f"{source}: the members' weights sum to {total!r}, not 1")
    for key in ("classes", "input", "preprocess"):
        if header[key] != members[0]["header"][key]:
            raise ModelFileError(f"{source}: header {key!r} is not member 0's")
    return header


def member_label(header: Mapping[str, Any], i: int) -> str:
    """``" member 3"`` for member 3 of an ensemble, ``""`` for a single model (appended to
    the file name in messages)."""
    return f" member {i}" if is_ensemble(header) else ""


def member_tensors(tensors: Mapping[str, torch.Tensor], header: Mapping[str, Any],
                   source: str) -> list[dict[str, torch.Tensor]]:
    """The tensors of each member, names without the ``members.{i}.`` prefix
    (``[tensors]`` for a single model); a tensor named for no member is an error."""
    if not is_ensemble(header):
        return [dict(tensors)]
    parts, strays = split_members(tensors, len(header["members"]))
    if strays:
        raise ModelFileError(f"{source}: tensor {strays[0]!r} belongs to none of the "
                             f"{len(parts)} members")
    return parts


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


def make_ensemble_header(members: Sequence[Mapping[str, Any]], weights: Sequence[float],
                         files: Sequence[str | None], **fields: Any) -> dict[str, Any]:
    """The header of an ensemble of the single-model headers ``members`` with their
    ``weights`` and the files they came from (None: trained together), then ``fields``
    (``created``, ``mefr_version``, ...). Shared fields are member 0's."""
    first = members[0]
    listed = [{"weight": float(w), "file": f, "header": dict(h)}
              for h, w, f in zip(members, weights, files, strict=True)]
    return make_header(format_version=ENSEMBLE_FORMAT_VERSION, **fields,
                       ensemble={"rule": ENSEMBLE_RULE}, classes=first["classes"],
                       input=first["input"], preprocess=first["preprocess"], members=listed)


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
    for i, part in enumerate(member_tensors(tensors, head, str(out))):
        check_finite(part, f"{out}{member_label(head, i)}: refusing to save")
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
    for i, part in enumerate(member_tensors(tensors, header, str(path))):
        check_finite(part, f"{path}{member_label(header, i)}")
    return tensors, header
