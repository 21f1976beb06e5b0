"""Provenance: which code, library versions and hardware produced a result.

One implementation for everything mefr records about where it ran:

* :func:`package_version`, :func:`mefr_version`, :func:`opencv_version` - versions;
* :func:`code_revision` - the git commit of the mefr source in use (``+`` when dirty);
* :func:`environment` - the ``environment`` section of a run's ``config.yaml``;
* :func:`model_environment` - the ``environment`` section of a model file's header;
* :func:`feature_versions` - the versions that determine cached features (part of
  every feature-cache key);
* :func:`describe_environment`, :func:`describe_device` - one short hardware line
  (``NVIDIA H200``, ``CPU (x86_64, 2 cores)``) from those records.

Heavy modules (torch, OpenCV) are imported only by the functions that need them.

>>> describe_device("cuda (NVIDIA H200)")
'NVIDIA H200'
>>> describe_environment({"device": "cpu", "machine": "x86_64", "cpus": 2})
'CPU (x86_64, 2 cores)'
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

#: The distributions whose versions a run's config.yaml records.
RUN_PACKAGES: tuple[str, ...] = ("mefr", "torch", "numpy", "pandas", "scikit-learn")


def package_version(dist: str) -> str | None:
    """The installed version of distribution ``dist`` (``None`` when not installed)."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def mefr_version() -> str:
    """``mefr.__version__``."""
    from mefr import __version__

    return __version__


def opencv_version() -> str:
    """The version of the OpenCV in use (``cv2.__version__``)."""
    import cv2

    return str(cv2.__version__)


@functools.cache
def code_revision() -> str | None:
    """The git commit of the mefr source in use, with ``+`` when ``src/mefr`` has
    uncommitted changes; None when mefr does not run from a git checkout of itself."""
    here = Path(__file__).resolve().parent  # the mefr package folder

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(here), *args], capture_output=True,
                              text=True, timeout=20, check=True).stdout.strip()

    try:
        git("ls-files", "--error-unmatch", "__init__.py")  # tracked here, not a vendored copy
        rev = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".")
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("+" if dirty else "")


def environment(device: str) -> dict[str, Any]:
    """Python, package versions, code revision, platform, CPUs and GPUs of this machine;
    ``device`` is the device the caller asked for (``auto``, ``cpu``, ``cuda:0``...)."""
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "packages": {d: package_version(d) for d in RUN_PACKAGES},
        "code": code_revision(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpus": os.cpu_count(),
        "device": device,
    }
    try:
        import torch

        env["cuda_available"] = bool(torch.cuda.is_available())
        if env["cuda_available"]:
            env["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except ImportError:  # pragma: no cover - torch is a dependency
        env["cuda_available"] = None
    return env


def model_environment() -> dict[str, Any]:
    """The ``environment`` section of a model file's header: python, torch, numpy
    versions and the platform."""
    import numpy as np
    import torch

    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


def feature_versions() -> dict[str, str]:
    """The versions of the code that computes features: mefr, OpenCV, yuface, numpy
    (``"unknown"`` for one that is not installed)."""
    import numpy as np

    return {
        "mefr": mefr_version(),
        "opencv": opencv_version(),
        "yuface": package_version("yuface") or "unknown",
        "numpy": np.__version__,
    }


def describe_environment(env: Mapping[str, Any] | None) -> str:
    """A short hardware line from an :func:`environment` record (a run's config.yaml
    ``environment`` section): the GPU names when it ran on CUDA, else the CPU."""
    env = env or {}
    gpus = env.get("gpus") or []
    device = env.get("device") or ""
    if device.startswith("cuda") or (device == "auto" and gpus):
        return ", ".join(dict.fromkeys(gpus)) or "CUDA GPU"
    cpus = env.get("cpus")
    machine = env.get("machine") or "CPU"
    return f"CPU ({machine}, {cpus} cores)" if cpus else f"CPU ({machine})"


def describe_device(device: str) -> str:
    """The engine's fold ``device`` (``cuda (NVIDIA H200)``, ``cpu (x86_64, 2 cores)``) in
    the words of :func:`describe_environment` (``NVIDIA H200``, ``CPU (x86_64, 2 cores)``)."""
    kind, _, detail = device.partition(" (")
    detail = detail.rstrip(")")
    if kind.startswith("cuda"):
        return detail or "CUDA GPU"
    return f"CPU ({detail})" if detail else "CPU"
