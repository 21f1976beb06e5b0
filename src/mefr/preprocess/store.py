"""An on-disk cache of per-clip features, shared by every protocol and run.

An entry is keyed by a SHA-256 of everything that determines the features:

- the clip's frame files (resolved path, size in bytes, modification time in ns), so an
  edited or replaced frame misses the cache;
- the clip's onset/apex/offset numbers and the preprocessing settings (any JSON-able
  mapping, e.g. ``PreprocessSettings.to_dict()``);
- the versions of mefr, OpenCV, yuface and numpy (:func:`environment_versions`).

Each entry is two files under ``root/<key[:2]>/``: ``<key>.npy`` (the float32 array) and
``<key>.json`` (its metadata: apex index, face box, notes, shape...). Both are written to
a temporary file in the same folder and moved into place with ``os.replace`` (atomic on
POSIX and Windows), the JSON last; an entry counts only when the JSON exists, names the
key and the array loads with the recorded shape. A write interrupted at any point thus
leaves either the old entry, or no entry (a miss), never a corrupt one.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from mefr._env import feature_versions
from mefr._io import atomic_write, atomic_write_bytes


def environment_versions() -> dict[str, str]:
    """The versions of the code that computes features (part of every cache key)."""
    return feature_versions()


def file_fingerprint(paths: Iterable[str | os.PathLike]) -> list[list]:
    """``[resolved path, size, mtime_ns]`` for each file (``-1, -1`` for a missing one)."""
    out = []
    for p in paths:
        path = Path(p)
        try:
            st = path.stat()
            out.append([str(path.resolve()), st.st_size, st.st_mtime_ns])
        except OSError:
            out.append([str(path.absolute()), -1, -1])
    return out


def cache_key(files: Iterable[str | os.PathLike], params: Mapping) -> str:
    """The key of the features of a clip: SHA-256 (hex) of its files' fingerprints, the
    JSON-able ``params`` (settings, annotations) and :func:`environment_versions`."""
    payload = {
        "files": file_fingerprint(files),
        "params": params,
        "versions": environment_versions(),
    }
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


class FeatureStore:
    """Per-clip feature cache in a folder (see the module docstring)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def paths(self, key: str) -> tuple[Path, Path]:
        """The ``.npy`` and ``.json`` files of an entry."""
        folder = self.root / key[:2]
        return folder / f"{key}.npy", folder / f"{key}.json"

    def load(self, key: str) -> tuple[np.ndarray, dict] | None:
        """The array and metadata of an entry, or ``None`` when absent or incomplete."""
        npy, meta_path = self.paths(key)
        try:
            meta = json.loads(meta_path.read_text())
            x = np.load(npy, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        if not isinstance(meta, dict):  # e.g. `null`: a damaged entry counts as absent
            return None
        if meta.get("key") != key or list(x.shape) != meta.get("shape"):
            return None
        return x, meta

    def __contains__(self, key: str) -> bool:
        return self.load(key) is not None

    def save(self, key: str, x: np.ndarray, meta: Mapping) -> None:
        """Store ``x`` and ``meta`` (JSON-able) under ``key``, atomically."""
        npy, meta_path = self.paths(key)
        arr = np.ascontiguousarray(x)
        record = {**meta, "key": key, "shape": list(arr.shape), "dtype": str(arr.dtype)}
        text = json.dumps(record, indent=1, sort_keys=True, default=str).encode()
        atomic_write(npy, lambda f: np.save(f, arr, allow_pickle=False), fsync=True)
        atomic_write_bytes(meta_path, text, fsync=True)

    def keys(self) -> list[str]:
        """The keys of the complete-looking entries (those with a JSON file)."""
        return sorted(p.stem for p in self.root.glob("*/*.json"))
