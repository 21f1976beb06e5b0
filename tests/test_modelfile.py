"""The model file (mefr.modelfile): safetensors layout, no pickle, header checks, version rules."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from mefr._env import opencv_version
from mefr.modelcompat import compatibility_issues, version_tuple
from mefr.modelfile import (
    FORMAT_NAME,
    FORMAT_VERSION,
    HEADER_KEY,
    ModelFileError,
    VersionMismatchWarning,
    check_compatibility,
    load_model_file,
    make_header,
    read_header,
    save_model_file,
)
from mefr.models.catalog import MODELS
from mefr.models.registry import create_model

#: safetensors dtype name -> bytes per element.
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
               "U8": 1, "BOOL": 1}


def header_for(name: str = "fr", k: int = 3, **changes) -> dict:
    h = make_header(
        created="2026-01-01T00:00:00+00:00",
        mefr_version="0.1.0",
        network={"name": name, "num_classes": k, "detectors": True, "kwargs": {}},
        classes=[f"c{i}" for i in range(k)],
        input={"channels": ["u", "v"], "size": 28, "feature_channels": ["u", "v"]},
        preprocess={"source": "raw", "settings": {}, "opencv": opencv_version()},
        train={"epochs": 1},
        data={"clips": 0},
    )
    h.update(changes)
    return h


def parse_safetensors(path: Path) -> tuple[dict, int]:
    """The raw JSON header of a safetensors file and the byte count its tensors account for.

    Written from the format's definition (8-byte little-endian header length, JSON header,
    then the tensor bytes at the header's data_offsets), independently of the library.
    """
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    head = json.loads(raw[8:8 + n])
    covered = 8 + n
    for name, entry in head.items():
        if name == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        count = 1
        for d in entry["shape"]:
            count *= d
        assert end - start == count * DTYPE_BYTES[entry["dtype"]], name
        covered = max(covered, 8 + n + end)
    return head, covered


def test_round_trip_keeps_tensors_and_header(tmp_path):
    tensors = {"a": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.ones(4)}
    path = save_model_file(tmp_path / "m.safetensors", tensors, header_for())
    loaded, header = load_model_file(path)
    assert set(loaded) == {"a", "b"}
    assert torch.equal(loaded["a"], tensors["a"]) and torch.equal(loaded["b"], tensors["b"])
    assert header["format"] == FORMAT_NAME and header["format_version"] == FORMAT_VERSION
    assert header == read_header(path)


def test_file_is_pure_safetensors_without_pickle(tmp_path):
    tensors = {"w": torch.randn(3, 5), "i": torch.arange(4)}
    path = save_model_file(tmp_path / "m.safetensors", tensors, header_for())
    head, covered = parse_safetensors(path)
    # every byte of the file is the JSON header or a tensor: there is room for nothing else
    assert covered == path.stat().st_size
    assert json.loads(head["__metadata__"][HEADER_KEY])["format"] == FORMAT_NAME
    assert set(head) == {"__metadata__", "w", "i"}


def test_loading_never_unpickles(tmp_path, monkeypatch):
    path = save_model_file(tmp_path / "m.safetensors", {"w": torch.ones(2)}, header_for())

    def forbidden(*a, **k):
        raise AssertionError("a model file must never be unpickled")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    tensors, _ = load_model_file(path)
    assert torch.equal(tensors["w"], torch.ones(2))
    # a pickle (what torch.save writes) is refused as "not a safetensors file", unread
    bad = tmp_path / "pickled.safetensors"
    bad.write_bytes(pickle.dumps({"w": [1.0, 2.0]}))
    with pytest.raises(ModelFileError, match="not a safetensors file"):
        load_model_file(bad)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"format_version": 99}, "format version 99 is not supported"),
        ({"format_version": 0}, "format version 0 is not supported"),
        ({"format": "other-tool"}, "not a mefr model file"),
        ({"classes": ["a", "b"]}, "does not match 2 class names"),
        ({"input": {"channels": []}}, "input.channels"),
    ],
)
def test_tampered_header_is_refused(tmp_path, change, message):
    path = tmp_path / "m.safetensors"
    save_model_file(path, {"w": torch.ones(2)}, header_for())
    tensors = load_file(str(path))
    tampered = {**read_header(path), **change}
    save_file(tensors, str(path), metadata={HEADER_KEY: json.dumps(tampered)})
    with pytest.raises(ModelFileError, match=message) as info:
        read_header(path)
    assert str(path) in str(info.value)


def test_foreign_and_missing_files_are_refused(tmp_path):
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.ones(2)}, str(foreign), metadata={"producer": "someone else"})
    with pytest.raises(ModelFileError, match="without a 'mefr_model' header"):
        read_header(foreign)
    with pytest.raises(ModelFileError, match="not found"):
        read_header(tmp_path / "nope.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 3)
    with pytest.raises(ModelFileError, match="not a safetensors file"):
        read_header(junk)


def test_an_invalid_header_is_never_written(tmp_path):
    with pytest.raises(ModelFileError):
        save_model_file(tmp_path / "m.safetensors", {"w": torch.ones(1)},
                        {**header_for(), "classes": "abc"})
    assert not list(tmp_path.iterdir())


def test_version_tuple():
    assert version_tuple("5.0.0.93") == (5, 0, 0, 93)
    assert version_tuple("2.13.0+cpu") == (2, 13, 0)
    assert version_tuple(None) == ()


def test_compatibility_rules():
    h = header_for(preprocess={"source": "raw", "settings": {}, "opencv": "5.0.0",
                               "yuface": "0.1.0"})
    same = dict(opencv="5.0.0", yuface="0.1.0", mefr="0.1.0")
    assert compatibility_issues(h, **same) == ([], [])
    errors, notes = compatibility_issues(h, **{**same, "opencv": "4.10.0"})
    assert len(errors) == 1 and "OpenCV 5.0.0" in errors[0] and not notes
    errors, notes = compatibility_issues(h, **{**same, "opencv": "5.0.1"})
    assert not errors and "patch" in notes[0]
    errors, notes = compatibility_issues(h, **{**same, "yuface": "0.2.0"})
    assert not errors and "yuface 0.1.0" in notes[0]
    errors, notes = compatibility_issues(h, **{**same, "mefr": "0.2.0"})
    assert not errors and "mefr 0.1.0" in notes[0]
    errors, _ = compatibility_issues(h, **{**same, "mefr": "1.0.0"})
    assert "major" in errors[0]
    flow = header_for(preprocess={"source": "flowset", "settings": {}, "opencv": "1.0"})
    errors, notes = compatibility_issues(flow, **same)
    assert not errors and "pre-computed flow set" in notes[0]


def test_check_compatibility_raises_or_warns():
    h = header_for(preprocess={"source": "raw", "settings": {}, "opencv": "3.4.0"})
    with pytest.raises(ModelFileError, match="OpenCV 3.4.0"):
        check_compatibility(h, "m.safetensors")
    with pytest.warns(VersionMismatchWarning, match="OpenCV 3.4.0"):
        check_compatibility(h, "m.safetensors", strict=False)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_network_round_trips(tmp_path, name):
    """A network rebuilt from the header's name and kwargs takes the saved weights and
    gives the same outputs."""
    torch.manual_seed(0)
    model = create_model(name, 3)
    model.init_models([1])
    model.eval()
    kwargs = {k: v for k, v in model.config.items() if k != "num_classes"}
    channels = list(MODELS[name].channels)
    h = header_for(name, network={"name": name, "num_classes": 3, "kwargs": kwargs,
                                  "detectors": False},
                   input={"channels": channels, "size": 28, "feature_channels": channels})
    path = save_model_file(tmp_path / f"{name}.safetensors", model.state_dict(), h)
    tensors, header = load_model_file(path)
    net = header["network"]
    again = create_model(net["name"], net["num_classes"], 1, **net["kwargs"])
    again.load_state_dict(tensors, strict=True)
    again.eval()
    c = model.config["in_channels"]
    x = torch.rand(2, c, 28, 28)
    with torch.no_grad():
        assert torch.equal(model(x).logits, again(x).logits)
