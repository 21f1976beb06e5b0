"""What prediction gives back: one :class:`Prediction` per input, and a text table of them.

A failed input carries its error in :attr:`Prediction.error`; :func:`format_table` is the
plain-text table ``mefr predict`` prints; :func:`explanation_name` names an input's
explanation figure.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mefr.preprocess.face import PreprocessError


@dataclass(frozen=True)
class Prediction:
    """The answer for one input.

    ``predicted`` the class name; ``probabilities`` softmax of the class logits (Eq. (7)),
    by class; ``detector_scores`` sigmoid of the K detectors' logits (Eq. (4)), by class,
    ``None`` for networks without detectors; ``apex_index`` position of the apex frame
    (0 = onset) and ``apex_frame`` its name; ``face_box`` ``(x, y, w, h)`` on the onset
    frame; ``explanation`` the PNG written, if any; ``error`` why the input could not be
    predicted (then the other fields are ``None``); ``model`` what answered (the network,
    or ``"ensemble of 5 members (fr x5)"``) and ``members`` how many networks (more than
    one: an ensemble, whose probabilities and detector scores are the weighted means of
    its members').
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
    model: str | None = None
    members: int = 1

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
            "model": self.model,
            "members": self.members,
        }


def describe_members(networks: Sequence[str]) -> str:
    """``"fr"`` for one network; ``"ensemble of 5 members (fr x5)"`` or ``"ensemble of 3
    members (fr x2 + off_apexnet)"`` for several (networks in order of first appearance)."""
    if len(networks) == 1:
        return str(networks[0])
    counts = {n: list(networks).count(n) for n in dict.fromkeys(networks)}
    parts = " + ".join(n if c == 1 else f"{n} x{c}" for n, c in counts.items())
    return f"ensemble of {len(networks)} members ({parts})"


def failure(name: str, kind: str, e: BaseException) -> Prediction:
    """The :class:`Prediction` of an input that failed with ``e`` (its error names it)."""
    reason = str(e) if isinstance(e, PreprocessError) else f"{type(e).__name__}: {e}"
    if name not in reason:
        reason = f"{name}: {reason}"
    return Prediction(input=name, kind=kind, error=reason)


def explanation_name(i: int, name: str) -> str:
    """``"003_EP02_01f.png"``: the input's position and a file-safe form of its last name part."""
    first = name.split(" + ")[0]
    stem = Path(first.rstrip("/\\")).stem or "input"
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "input"
    return f"{i:03d}_{safe[:60]}.png"


def format_table(predictions: Sequence[Prediction], class_names: Sequence[str]) -> str:
    """A plain-text table of predictions: input, predicted class, probabilities, detector
    scores, apex; failed inputs show their error. An ensemble's table starts with a line
    that names it and its members."""
    width = max([5, *(len(_short(p.input)) for p in predictions)])
    cols = " ".join(f"{'p_' + c[:8]:>10}" for c in class_names)
    dets = " ".join(f"{'d_' + c[:8]:>10}" for c in class_names)
    lines = [f"model: {p.model}; p_ and d_ are the weighted means of the {p.members} "
             "members' probabilities and detector scores"
             for p in predictions[:1] if p.members > 1]
    lines.append(f"{'input':<{width}} {'predicted':<11} {cols} {dets} apex")
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
