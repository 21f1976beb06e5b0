"""The members of a model file: a single model is one member, an ensemble N of them.

What :mod:`mefr.modelfile` needs to know about the members of an ensemble file (format
version 2, laid out in that module's docstring) without reading a file: which headers
and weights a header lists, how members' tensors are named in the file, and whether a
model can join an ensemble (:func:`member_mismatch`: same classes, same preprocessing,
same network input). Pure functions of headers and tensors.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch

#: The format version of an ensemble file (a single model is version 1).
ENSEMBLE_FORMAT_VERSION = 2
#: How an ensemble combines its members: the weighted mean of their class probabilities.
ENSEMBLE_RULE = "weighted_mean_probabilities"
#: Most members an ensemble file may hold.
MAX_MEMBERS = 1000


def is_ensemble(header: Mapping[str, Any]) -> bool:
    """Whether a (validated) header is an ensemble's (format version 2)."""
    return header.get("format_version") == ENSEMBLE_FORMAT_VERSION


def member_headers(header: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The single-model headers of a file's members: ``[header]`` for a single model."""
    if is_ensemble(header):
        return [m["header"] for m in header["members"]]
    return [dict(header)]


def member_weights(header: Mapping[str, Any]) -> list[float]:
    """The members' weights in the mean of their probabilities: ``[1.0]`` for one model."""
    if is_ensemble(header):
        return [float(m["weight"]) for m in header["members"]]
    return [1.0]


def member_files(header: Mapping[str, Any]) -> list[str | None]:
    """The file each member was bundled from (None: trained into the ensemble, or a single
    model)."""
    if is_ensemble(header):
        return [m.get("file") for m in header["members"]]
    return [None]


def member_mismatch(first: Mapping[str, Any], other: Mapping[str, Any]) -> str | None:
    """Why a model (header ``other``) cannot join an ensemble whose first member has header
    ``first``, or None: other classes, another preprocessing source or other settings,
    another network input (channels or size). Networks, seeds, training and data may
    differ."""
    if list(other["classes"]) != list(first["classes"]):
        return f"its classes {list(other['classes'])} differ from {list(first['classes'])}"
    pa, pb = first["preprocess"], other["preprocess"]
    if pb.get("source") != pa.get("source"):
        return (f"its preprocessing source {pb.get('source')!r} differs from "
                f"{pa.get('source')!r}")
    sa, sb = pa["settings"], pb["settings"]
    diff = sorted(k for k in set(sa) | set(sb) if sa.get(k) != sb.get(k))
    if diff:
        return "its preprocessing settings differ: " + ", ".join(
            f"{k} {sb.get(k)!r} instead of {sa.get(k)!r}" for k in diff[:4])
    ia, ib = first["input"], other["input"]
    if list(ib["channels"]) != list(ia["channels"]) or ib["size"] != ia["size"]:
        return (f"its network input ({', '.join(ib['channels'])} at {ib['size']} px) differs "
                f"from {', '.join(ia['channels'])} at {ia['size']} px")
    return None


def join_members(states: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The tensors of an ensemble file: member i's ``state_dict`` under ``members.{i}.``."""
    return {f"members.{i}.{name}": t for i, s in enumerate(states) for name, t in s.items()}


def split_members(tensors: Mapping[str, torch.Tensor], n: int
                  ) -> tuple[list[dict[str, torch.Tensor]], list[str]]:
    """``(parts, strays)``: the tensors of each of ``n`` members of an ensemble file, names
    without the ``members.{i}.`` prefix, and the names that belong to no member."""
    parts: list[dict[str, torch.Tensor]] = [{} for _ in range(n)]
    strays = []
    for name, t in tensors.items():
        m = _MEMBER_TENSOR.fullmatch(name)
        if m is None or int(m[1]) >= n:
            strays.append(name)
        else:
            parts[int(m[1])][m[2]] = t
    return parts, strays


_MEMBER_TENSOR = re.compile(r"members\.(0|[1-9][0-9]*)\.(.+)")
