"""The version rules of a model file: which library versions made it, and what that means here.

A model's predictions depend on the preprocessing that made its training inputs, so a
model file records the versions of mefr, OpenCV and yuface it was made with
(:mod:`mefr.modelfile`). :func:`compatibility_issues` compares them with this
installation:

* **errors** (the model is refused unless the caller allows it): an OpenCV whose
  major.minor differs (TV-L1, image decoding and resizing may change), another mefr
  major version;
* **warnings** (the model is used, predictions may shift a little): another OpenCV patch
  release, another yuface version (face boxes may move by a pixel), another mefr
  minor/patch version, and a model trained on a pre-computed flow set (its preprocessing
  was not mefr's).

Pure functions of the header and the version strings; :func:`mefr.modelfile.check_compatibility`
raises and warns with them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mefr._env import mefr_version, opencv_version, package_version


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
    """``(errors, warnings)`` of using a model file's (single-model) header here (see the
    module docstring).

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
