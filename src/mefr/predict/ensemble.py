"""Ensemble model files: combine models into one, bundle model files, describe members.

An ensemble model file (format version 2, laid out in :mod:`mefr.modelfile`) holds N
member networks that share the classes and the preprocessing; a
:class:`~mefr.predict.Predictor` loaded from it preprocesses each clip once and averages
the members' class probabilities with the file's weights, per clip: the rule of
:mod:`mefr.evaluate.ensemble` (one network's seeds, then networks).

* :func:`ensemble_of` combines predictors in memory (``mefr train --seeds`` uses it
  through :func:`mefr.predict.training.train_ensemble`);
* :func:`bundle_model_files` writes one ensemble file from model files (``mefr
  ensemble-model``), keeping each member's stored weights as they are;
* :func:`model_summary` describes a model file and its members (``mefr models --card
  FILE``).

Weights: each combined model (a file, or a predictor) weighs the same, shared equally by
its own members. Bundling N single files (or training N seeds) gives every member 1/N;
bundling an ensemble of 5 FR seeds with one of 3 OFF-ApexNet seeds gives each network
1/2 (each FR seed 1/10, each OFF-ApexNet seed 1/6), as ``mefr ensemble`` averages runs.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from mefr._env import mefr_version, model_environment
from mefr.modelfile import ModelFileError, make_ensemble_header, save_model_file
from mefr.modelmembers import (
    join_members,
    member_files,
    member_headers,
    member_mismatch,
    member_weights,
)
from mefr.predict.predictor import Predictor, load_checked
from mefr.predict.results import describe_members


def combined_weights(weights: Sequence[Sequence[float]]) -> list[float]:
    """The member weights of an ensemble of models whose own member weights are
    ``weights`` (one list per model): every model weighs the same, ``1 / len(weights)``,
    shared among its members as its own weights say."""
    n = len(weights)
    return [float(w) / n for ws in weights for w in ws]


def check_joinable(headers: Sequence[Mapping[str, Any]], sources: Sequence[str]) -> None:
    """Raise :class:`ModelFileError` naming the first model (by its source) that cannot
    join an ensemble with the first one (other classes or preprocessing,
    :func:`mefr.modelmembers.member_mismatch`), or when there are fewer than two members."""
    if sum(len(member_headers(h)) for h in headers) < 2:
        raise ModelFileError("an ensemble needs at least two members; "
                             f"got {', '.join(sources) or 'none'}")
    first = member_headers(headers[0])[0]
    for header, source in zip(headers, sources, strict=True):
        reason = member_mismatch(first, member_headers(header)[0])
        if reason:
            raise ModelFileError(
                f"{source}: cannot join an ensemble with {sources[0]}: {reason} (the "
                "members of an ensemble share the classes and the preprocessing)")


def _ensemble_header(headers: Sequence[Mapping[str, Any]],
                     files: Sequence[str | None]) -> dict[str, Any]:
    """The version-2 header of the members of ``headers`` (each a file's header, single or
    ensemble), a member's ``file`` being its own where it has one, else ``files[i]``."""
    members, origins = [], []
    for header, file in zip(headers, files, strict=True):
        members += member_headers(header)
        origins += [own or file for own in member_files(header)]
    weights = combined_weights([member_weights(h) for h in headers])
    return make_ensemble_header(
        members, weights, origins,
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        mefr_version=mefr_version(), environment=model_environment())


def ensemble_of(predictors: Sequence[Predictor],
                files: Sequence[str | None] | None = None) -> Predictor:
    """One :class:`Predictor` whose prediction is the mean of ``predictors``' (single
    models or ensembles, each weighing the same; see the module docstring). ``files``:
    where each came from, recorded per member (default: their ``source`` when it is a
    file). Raises :class:`ModelFileError` when they disagree on classes or preprocessing."""
    sources = [p.source for p in predictors]
    check_joinable([p.header for p in predictors], sources)
    names = files if files is not None else [
        Path(s).name if not s.startswith("<") else None for s in sources]
    header = _ensemble_header([p.header for p in predictors], names)
    nets = [m for p in predictors for m in p.models]
    return Predictor(nets, header, source="<ensemble>", device=predictors[0].device)


def bundle_model_files(paths: Sequence[str | os.PathLike], out: str | os.PathLike,
                       strict: bool = True) -> Path:
    """Write one ensemble model file ``out`` from model files (single models or
    ensembles; see the module docstring for the weights) and return its path.

    Every file is checked as :meth:`Predictor.from_file` checks it (``strict``: version
    errors refuse it) and the members are stored with the weights each file holds (a
    float16 file stays float16). Raises :class:`ModelFileError` naming the file that
    cannot be read, or whose classes or preprocessing differ from the first file's.
    """
    headers: list[dict[str, Any]] = []
    parts: list[dict[str, torch.Tensor]] = []
    for path in paths:
        header, tensors, _ = load_checked(path, strict=strict)
        headers.append(header)
        parts += tensors
    check_joinable(headers, [str(p) for p in paths])
    header = _ensemble_header(headers, [Path(p).name for p in paths])
    return save_model_file(out, join_members(parts), header)


# --------------------------------------------------------------------------- description
def _member_row(i: int, header: Mapping[str, Any], weight: float, file: str | None) -> str:
    train, data = header.get("train", {}), header.get("data", {})
    epoch = f"{train.get('evaluated_epoch', '?')}/{train.get('epochs', '?')}"
    return (f"{i:>3}  {weight:>6.4f}  {header['network']['name']:<14} "
            f"{train.get('seed', '-')!s:>5}  {epoch:>9}  {data.get('clips', '?')!s:>6}  "
            f"{file or '-'}")


def model_summary(header: Mapping[str, Any], source: str) -> str:
    """A plain-text description of a model file's header: what it is, its classes, input
    and preprocessing, how it combines its members, and one row per member (network,
    seed, evaluated epoch, training clips, the file it was bundled from)."""
    heads, weights = member_headers(header), member_weights(header)
    files = member_files(header)
    inp, pre = header["input"], header["preprocess"]
    settings = pre.get("settings", {})
    kind = describe_members([h["network"]["name"] for h in heads])
    lines = [
        f"model file   {source}",
        f"format       version {header['format_version']}: {kind}",
        f"classes      {', '.join(map(str, header['classes']))}",
        f"input        {', '.join(inp['channels'])} at {inp['size']}x{inp['size']}; "
        f"preprocessing {pre.get('source', '?')} (apex {settings.get('apex_policy', '?')}, "
        f"normalisation {settings.get('normalisation', '?')}, register "
        f"{settings.get('register', 'none')})",
    ]
    if len(heads) > 1:
        lines.append("prediction   the weighted mean of the members' class probabilities "
                     "(softmax), per clip")
    lines += ["members", "  #  weight  network         seed      epoch   clips  file"]
    lines += [_member_row(i, h, w, f)
              for i, (h, w, f) in enumerate(zip(heads, weights, files, strict=True))]
    return "\n".join(lines)
