"""Models shipped inside the mefr package, usable by name and offline.

Where they are
    The folder ``mefr/pretrained/`` of the installed package holds, per model ``NAME``:
    ``NAME.safetensors`` (a model file, :mod:`mefr.modelfile`, whose header also carries
    the model card's facts under ``"pretrained"``), ``NAME.md`` (the model card, made from
    those facts by :func:`render_card`) and ``NAME.fp32.json`` (the class probabilities the
    full-precision weights gave on the training clips, kept to check the stored weights).
    ``index.json`` lists the models with the sha256 of each weights file.

How they are used
    ``Predictor.from_pretrained("fr-megc2019")`` (or ``mefr predict --model fr-megc2019
    CLIP``) calls :func:`pretrained_file`, which finds the name in the index, hashes the
    file and refuses it (:class:`PretrainedError`) when the sha256 differs from the
    index's; then the file is loaded like any model file. Nothing is downloaded, ever: an
    unknown name is an error that lists the shipped names.

How they are made
    ``python scripts/train_pretrained.py`` trains every shipped model from the flow set
    with its recipe and rewrites the weights, the index and the cards (see
    ``docs/pretrained.md``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mefr.modelfile import ModelFileError, read_header

#: The package folder of the shipped models.
PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "pretrained"
#: The index file in :data:`PRETRAINED_DIR`.
INDEX_NAME = "index.json"
INDEX_FORMAT = "mefr-pretrained-index"
INDEX_VERSION = 1
#: The header field of a model file that holds its model card's facts.
CARD_KEY = "pretrained"


class PretrainedError(ModelFileError):
    """A shipped model cannot be used: unknown name, missing file or wrong sha256."""


@dataclass(frozen=True)
class PretrainedModel:
    """One entry of the index: ``name``, the weights ``path``, its expected ``sha256`` and
    size in ``bytes``, the ``card`` and ``reference`` paths, the registry ``network``, the
    stored ``dtype`` of the weights and a one-line ``summary``."""

    name: str
    path: Path
    sha256: str
    bytes: int
    card: Path
    reference: Path
    network: str
    dtype: str
    summary: str


def _root(root: str | os.PathLike | None) -> Path:
    return Path(root) if root is not None else PRETRAINED_DIR


def read_index(root: str | os.PathLike | None = None) -> dict[str, PretrainedModel]:
    """The shipped models by name (empty when the folder holds no index)."""
    folder = _root(root)
    path = folder / INDEX_NAME
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise PretrainedError(f"{path}: cannot read the index of shipped models ({e})") from None
    if data.get("format") != INDEX_FORMAT or data.get("version") != INDEX_VERSION:
        raise PretrainedError(f"{path}: not a version-{INDEX_VERSION} {INDEX_FORMAT} file")
    out = {}
    for name, e in data.get("models", {}).items():
        out[name] = PretrainedModel(
            name=name, path=folder / e["file"], sha256=e["sha256"], bytes=int(e["bytes"]),
            card=folder / e["card"], reference=folder / e["reference"], network=e["network"],
            dtype=e["dtype"], summary=e.get("summary", ""))
    return out


def write_index(models: Sequence[PretrainedModel], root: str | os.PathLike | None = None
                ) -> Path:
    """Write the index of ``models`` (file names relative to the folder) and return it."""
    folder = _root(root)
    entries = {m.name: {"file": m.path.name, "sha256": m.sha256, "bytes": m.bytes,
                        "card": m.card.name, "reference": m.reference.name,
                        "network": m.network, "dtype": m.dtype, "summary": m.summary}
               for m in models}
    path = folder / INDEX_NAME
    text = json.dumps({"format": INDEX_FORMAT, "version": INDEX_VERSION, "models": entries},
                      indent=2)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def pretrained_names(root: str | os.PathLike | None = None) -> tuple[str, ...]:
    """The names of the shipped models, in index order."""
    return tuple(read_index(root))


def pretrained_model(name: str, root: str | os.PathLike | None = None) -> PretrainedModel:
    """The index entry of ``name``; a :class:`PretrainedError` listing the shipped names
    when there is none (nothing is looked up anywhere else)."""
    index = read_index(root)
    if name not in index:
        known = ", ".join(index) or "none (this installation ships no model)"
        raise PretrainedError(
            f"no shipped model named {name!r}; the shipped models are: {known} "
            "(`mefr models --pretrained` lists them; mefr never downloads models)")
    return index[name]


def file_sha256(path: str | os.PathLike) -> str:
    """The hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pretrained_file(name: str, root: str | os.PathLike | None = None) -> Path:
    """The weights file of shipped model ``name`` after checking its sha256 against the
    index; a :class:`PretrainedError` for an unknown name, a missing file or another
    sha256 (a damaged or altered file is never loaded)."""
    entry = pretrained_model(name, root)
    if not entry.path.is_file():
        raise PretrainedError(f"{entry.path}: the weights of shipped model {name!r} are "
                              "missing from this installation (reinstall mefr)")
    found = file_sha256(entry.path)
    if found != entry.sha256:
        raise PretrainedError(
            f"{entry.path}: sha256 {found} does not match {entry.sha256} recorded for shipped "
            f"model {name!r}: the file is damaged or was altered; it is not loaded "
            "(reinstall mefr, or retrain it with scripts/train_pretrained.py)")
    return entry.path


def card_facts(name: str, root: str | os.PathLike | None = None) -> dict[str, Any]:
    """The model card's facts of shipped model ``name``, read from its file's header."""
    header = read_header(pretrained_model(name, root).path)
    facts = header.get(CARD_KEY)
    if not isinstance(facts, dict):
        raise PretrainedError(f"shipped model {name!r}: its header has no {CARD_KEY!r} section")
    return facts


def model_card(name: str, root: str | os.PathLike | None = None) -> str:
    """The Markdown model card of shipped model ``name``."""
    return pretrained_model(name, root).card.read_text(encoding="utf-8")


def is_shipped_name(text: str, root: str | os.PathLike | None = None) -> bool:
    """Whether ``mefr predict --model TEXT`` means a shipped model: a shipped name, or
    anything that is not an existing file (then the error lists the shipped names)."""
    return text in read_index(root) or not Path(text).is_file()


def listing(as_json: bool = False, root: str | os.PathLike | None = None) -> str:
    """The shipped models as a table (``mefr models --pretrained``) or as JSON: name,
    network, parameters, stored precision, file size, training-set accuracy and the
    honest CDE figures of the same network and recipe."""
    rows = []
    for name, m in read_index(root).items():
        f = card_facts(name, root)
        comp = f["honest"]["composite"]
        rows.append({"name": name, "network": m.network, "parameters": f["parameters"],
                     "dtype": m.dtype, "bytes": m.bytes, "sha256": m.sha256,
                     "classes": f["classes"], "train_accuracy": f["training_set"]["accuracy"],
                     "honest_uf1": comp["uf1"], "honest_uar": comp["uar"],
                     "honest_run": f["honest"]["run"], "card": str(m.card),
                     "summary": m.summary})
    if as_json:
        return json.dumps(rows, indent=2)
    if not rows:
        return "no shipped models in this installation"
    lines = [f"{'name':<22} {'network':<12} {'parameters':>11} {'weights':>13} "
             f"{'train Acc':>9}  honest CDE UF1 / UAR (mean ± std over seeds)"]
    for r in rows:
        u, a = r["honest_uf1"], r["honest_uar"]
        weights = f"{r['dtype']} {r['bytes'] / 1e6:.1f} MB"
        lines.append(f"{r['name']:<22} {r['network']:<12} {r['parameters']:>11,} {weights:>13} "
                     f"{r['train_accuracy']:>9.4f}  {_pm(u)} / {_pm(a)}")
    lines.append("use: mefr predict --model NAME CLIP; card: mefr models --card NAME")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the card
def _pm(stat: Mapping[str, Any]) -> str:
    std = stat.get("std")
    return f"{stat['mean']:.4f}" + (f" ± {std:.4f}" if std is not None else "")


def _cost(recipe: Mapping[str, Any]) -> str:
    threads, seconds = recipe.get("torch_threads"), recipe.get("seconds")
    parts = ([f"{threads} torch thread{'s' if threads != 1 else ''}"] if threads else []) + (
        [f"{seconds / 60:.0f} min"] if seconds else [])
    return f" ({', '.join(parts)})" if parts else ""


def _settings_line(recipe: Mapping[str, Any]) -> str:
    s = recipe["settings"]
    return (f"{s['optimizer'].capitalize()} lr {s['lr']:g}, batch {s['batch_size']}, "
            f"{s['epochs']} epochs, lambda {s['lam']}, dropout {s['dropout']}, class "
            f"weighting {s['class_weighting']}, epoch selection {s['select_epoch_by']} (the "
            f"model after epoch {recipe['evaluated_epoch']} is shipped)")


def render_card(facts: Mapping[str, Any], file_bytes: int) -> str:
    """The Markdown model card of a shipped model from its facts (the header's
    ``"pretrained"`` section) and the size of its weights file, so that the card and the
    file's metadata say the same."""
    f = facts
    data, recipe, inp = f["training_data"], f["recipe"], f["input"]
    train, honest, check = f["training_set"], f["honest"], f["precision_check"]
    comp = honest["composite"]
    sets = ", ".join(f"{k} {v}" for k, v in data["datasets"].items())
    counts = ", ".join(f"{k} {v}" for k, v in data["class_counts"].items())
    per_db = "; ".join(f"{db} UF1 {v['uf1']['mean']:.4f}, UAR {v['uar']['mean']:.4f}"
                       for db, v in honest["databases"].items())
    lines = [
        f"# {f['name']}: {f['title']}",
        "",
        f"{f['summary']}",
        "",
        "| | |",
        "|---|---|",
        f"| network | `{f['network']}` ({f['display']}), {f['parameters']:,} parameters |",
        f"| classes | {', '.join(f'{i} {c}' for i, c in enumerate(f['classes']))} |",
        f"| weights | {f['weights_dtype']} safetensors, {file_bytes:,} bytes "
        "(sha256 in `index.json`, checked on every load) |",
        f"| training-set accuracy | {train['accuracy']:.4f} ({train['correct']} of "
        f"{train['clips']} clips; UF1 {train['uf1']:.4f}) |",
        f"| honest expected accuracy | composite UF1 {_pm(comp['uf1'])}, UAR "
        f"{_pm(comp['uar'])}, Acc {_pm(comp['acc'])} ({honest['protocol_text']}) |",
        "",
        "## Use",
        "",
        "```",
        f"mefr predict --model {f['name']} clip.mp4            # a video",
        f"mefr predict --model {f['name']} FRAMES/             # a folder of numbered frames",
        f"mefr predict --model {f['name']} --onset-apex ONSET.png APEX.png",
        "```",
        "",
        f"In Python: `Predictor.from_pretrained({f['name']!r}).predict([...])`. "
        "Offline: the weights are part of the installed package.",
        "",
        "## Training data",
        "",
        f"{data['description']} Source: `{data['source']}`; {data['clips']} clips, "
        f"{data['subjects']} subjects ({sets}); classes {counts}. Feature fingerprint "
        f"(sha256 of the inputs and the table) `{data['sha256']}`.",
        "",
        "Licence terms, as the flow set's README states them:",
        "",
        *[line for t in data["licence_terms"] for line in (f"> {t}", "")],
        data["licence_note"],
        "",
        "## Recipe",
        "",
        f"Preset `{recipe['preset']}`: {_settings_line(recipe)}. Seed {recipe['seed']}, "
        f"trained on {recipe['device']}{_cost(recipe)} with torch {recipe['torch']}; final "
        "training loss "
        f"{recipe['final_train_loss']:.4f}. Every clip of the flow set is a training clip; "
        "none is held out.",
        "",
        f"Retrain: `{recipe['retrain']}`",
        "",
        "## Input it expects",
        "",
        *[f"- {item}" for item in inp["contract"]],
        "",
        "## Accuracy",
        "",
        f"- **On its own training clips**: Acc {train['accuracy']:.4f}, UF1 {train['uf1']:.4f}, "
        f"UAR {train['uar']:.4f}. These clips were seen in training; this says the file "
        "works, not how well the model generalises.",
        f"- **Honest expected accuracy** ({honest['run']}, {len(honest['seeds'])} seeds "
        f"{honest['seeds'][0]}-{honest['seeds'][-1]}, mean ± sample std over seeds): "
        f"composite UF1 {_pm(comp['uf1'])}, UAR {_pm(comp['uar'])}, Acc {_pm(comp['acc'])}; "
        f"{per_db}. {honest['protocol_text']}. {honest['selection']}.",
        f"- **Half precision**: the {check['stored']} weights give the class of the "
        f"{check['reference_dtype']} weights on {check['same_class']} of {check['clips']} "
        f"training clips, probabilities within {check['max_abs_diff']:.2e} (tolerance "
        f"{check['tolerance']:g}); {check['decision']}.",
        "",
        "## What it is not for",
        "",
        *[f"- {item}" for item in f["not_for"]],
        "",
    ]
    return "\n".join(lines)
