"""Model files with diverged weights or absurd sizes are refused with the model-file error
(issue 37 items 4 and 6), before anything large is allocated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from mefr import __version__
from mefr._env import opencv_version, package_version
from mefr.modelfile import (
    HEADER_KEY,
    MAX_INPUT_SIDE,
    ModelFileError,
    build_network,
    load_model_file,
    make_header,
    save_model_file,
    validate_header,
)
from mefr.models.registry import create_model
from mefr.predict import Predictor
from mefr.preprocess.settings import PreprocessSettings

SMALL = {"shared_dim": 16, "widths": (2, 2), "detector_hidden": 4, "classifier_hidden": 8}


def _model_and_header(**network_kwargs) -> tuple[torch.nn.Module, dict]:
    model = create_model("fr", 3, **SMALL, **network_kwargs).eval()
    kwargs = {k: v for k, v in model.config.items() if k != "num_classes"}
    header = make_header(
        created="2026-01-01T00:00:00+00:00", mefr_version=__version__,
        network={"name": "fr", "num_classes": 3, "detectors": True, "kwargs": kwargs},
        classes=["negative", "positive", "surprise"],
        input={"channels": ["u", "v"], "size": 28, "feature_channels": ["u", "v"]},
        preprocess={"source": "raw", "exact": True, "settings": PreprocessSettings().to_dict(),
                    "opencv": opencv_version(), "yuface": package_version("yuface")},
        train={"epochs": 1}, data={"clips": 0})
    return model, header


def _write_raw(path: Path, tensors: dict[str, torch.Tensor], header: dict) -> Path:
    """A safetensors file with a mefr header, written without mefr's checks (a tampered or
    foreign file)."""
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path),
              metadata={HEADER_KEY: json.dumps(header)})
    return path


def test_a_good_file_round_trips(tmp_path: Path) -> None:
    model, header = _model_and_header()
    path = save_model_file(tmp_path / "m.safetensors", model.state_dict(), header)
    loaded = Predictor.from_file(path)
    x = torch.rand(2, 2, 28, 28)
    with torch.no_grad():
        assert torch.equal(loaded.model(x).logits, model(x).logits)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_neither_saved_nor_loaded(tmp_path: Path, bad: float) -> None:
    model, header = _model_and_header()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["cls_out.weight"][0, 0, 0] = bad
    target = tmp_path / "diverged.safetensors"
    with pytest.raises(ModelFileError, match="refusing to save.*cls_out.weight.*diverged"):
        save_model_file(target, state, header)
    assert not target.exists()
    _write_raw(target, state, header)
    with pytest.raises(ModelFileError, match="cls_out.weight.*diverged"):
        load_model_file(target)
    with pytest.raises(ModelFileError, match="diverged"):
        Predictor.from_file(target)


@pytest.mark.parametrize(("where", "value", "message"), [
    ("shared_dim", 10**9, "cannot build|do not fit"),
    ("shared_dim", 4096, "do not fit"),
    ("shared_dim", -5, "cannot build|do not fit"),
    ("shared_dim", 1e9, "cannot build"),
    ("widths", [200000, 200000], "do not fit"),
    ("input_size", 60000, "input_size"),
    ("in_channels", 3, "in_channels"),
    ("detector_units", 7, "cannot build"),
])
def test_network_sizes_are_checked_against_the_weights(tmp_path: Path, where: str, value,
                                                        message: str) -> None:
    model, header = _model_and_header()
    header["network"]["kwargs"][where] = value
    path = _write_raw(tmp_path / "m.safetensors", model.state_dict(), header)
    with pytest.raises(ModelFileError, match=message):
        Predictor.from_file(path)


@pytest.mark.parametrize(("section", "key", "value", "message"), [
    ("settings", "size", 60000, "preprocess.settings.size"),
    ("settings", "face_size", 10**6, "face_size"),
    ("input", "size", 0, "input.size"),
    ("input", "size", MAX_INPUT_SIDE + 1, "input.size"),
    ("input", "size", 56, "does not match|input.size"),
    ("network", "num_classes", True, "num_classes"),
])
def test_header_sizes_are_bounded_and_consistent(tmp_path: Path, section: str, key: str,
                                                 value, message: str) -> None:
    model, header = _model_and_header()
    if section == "settings":
        header["preprocess"]["settings"][key] = value
    else:
        header[section][key] = value
    path = _write_raw(tmp_path / "m.safetensors", model.state_dict(), header)
    with pytest.raises(ModelFileError, match=message):
        Predictor.from_file(path)
    with pytest.raises(ModelFileError):
        validate_header(header, "h")


def test_absurd_sizes_allocate_nothing(tmp_path: Path) -> None:
    """The checks happen on shapes: under a small address-space cap a 14 GB network
    would be a MemoryError, a refused header is a ModelFileError."""
    import subprocess
    import sys

    model, header = _model_and_header()
    header["network"]["kwargs"]["shared_dim"] = 10**6
    path = _write_raw(tmp_path / "m.safetensors", model.state_dict(), header)
    code = (
        "import resource, sys\n"
        "from mefr.modelfile import ModelFileError, load_model_file, build_network\n"
        "tensors, header = load_model_file(sys.argv[1])\n"
        "resource.setrlimit(resource.RLIMIT_AS, (6 * 2**30, resource.RLIM_INFINITY))\n"
        "try:\n"
        "    build_network(header, tensors, sys.argv[1])\n"
        "except ModelFileError as e:\n"
        "    print('refused:', e)\n")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "refused:" in done.stdout and "do not fit" in done.stdout


def test_build_network_names_the_mismatch(tmp_path: Path) -> None:
    model, header = _model_and_header()
    state = dict(model.state_dict())
    state.pop("cls_out.bias")
    with pytest.raises(ModelFileError, match=r"missing \['cls_out.bias'\]"):
        build_network(header, state, "m")
    state = dict(model.state_dict(), extra=torch.zeros(1))
    with pytest.raises(ModelFileError, match=r"unexpected \['extra'\]"):
        build_network(header, state, "m")
