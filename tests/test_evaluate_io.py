"""The one-owner helpers under the runner: mefr._io (atomic writes, JSON-safe values,
locks), mefr._env (provenance) and mefr.preprocess.sources (SCHEME:PATH)."""

from __future__ import annotations

import errno
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mefr import _env, _io
from mefr.preprocess import sources


# ----------------------------------------------------------------------------- _io
@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_give_the_permissions_of_the_umask(tmp_path: Path, umask: int,
                                                         mode: int) -> None:
    old = os.umask(umask)
    try:
        assert _io.current_umask() == umask
        _io.atomic_write_text(tmp_path / "a" / "t.txt", "é\r\n")
        _io.atomic_write_bytes(tmp_path / "b.bin", b"\0\1")
        with _io.atomic_file(tmp_path / "c.dat") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "a" / "t.txt").read_bytes() == "é\r\n".encode()  # no newline translation
    for p in (tmp_path / "a" / "t.txt", tmp_path / "b.bin", tmp_path / "c.dat"):
        assert p.stat().st_mode & 0o777 == mode, p


def test_a_failed_write_names_the_path_and_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")

    def write(f):
        f.write(b"new, half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(_io.PathError) as e:
        _io.atomic_write(target, write)
    assert str(e.value) == f"{target}: cannot write (No space left on device)"
    assert isinstance(e.value, OSError) and e.value.errno == errno.ENOSPC
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError, match=re.escape(f"{blocker / 'x.txt'}: cannot write")):
        _io.atomic_write_text(blocker / "x.txt", "")  # its folder is a file


def test_an_interrupted_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    def write(f):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _io.atomic_write(tmp_path / "x", write)
    assert list(tmp_path.iterdir()) == []


def test_to_plain_and_json() -> None:
    value = {"t": (1, 2), "s": {3}, 4: np.float32(0.25), "a": np.arange(3).reshape(1, 3),
             "b": np.bool_(True), "p": Path("/x"), "z": torch.tensor(1.5), "n": float("nan")}
    plain = _io.to_plain(value)
    assert plain["t"] == [1, 2] and plain["s"] == [3] and plain["4"] == 0.25
    assert plain["a"] == [[0, 1, 2]] and plain["b"] is True and plain["p"] == "/x"
    assert plain["z"] == 1.5 and type(plain["4"]) is float and np.isnan(plain["n"])
    assert _io.to_plain([float("nan")], nan_as_none=True) == [None]
    assert json.loads(_io.dumps_json({"x": np.int64(3), "n": float("nan")}, nan_as_none=True)) \
        == {"x": 3, "n": None}
    assert json.dumps({"a": np.float32(0.5)}, default=_io.json_default) == '{"a": 0.5}'
    with pytest.raises(TypeError, match="object is not JSON serialisable"):
        json.dumps({"a": object()}, default=_io.json_default)


def test_exclusive_lock_names_its_holder_and_is_removed(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    with _io.exclusive_lock(path):
        record = json.loads(path.read_text())
        assert record["pid"] == os.getpid() and record["host"]
        holder = _io._holder_of(path.read_text())
        assert holder.describe().startswith(f"pid {os.getpid()} on host {record['host']} since ")
    assert not path.exists()
    assert _io._holder_of("not json") == _io.LockHolder(None, None, None, None)


def test_without_kernel_locks_the_recorded_pid_decides(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_io, "fcntl", None)  # as on Windows or a file system without locks
    path = tmp_path / "x.lock"
    live = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                            stdin=subprocess.PIPE)
    try:
        path.write_text(json.dumps({"pid": live.pid, "host": socket.gethostname()}))
        with pytest.raises(_io.LockHeld, match=f"pid {live.pid} on host"):
            with _io.exclusive_lock(path):
                pass
    finally:
        live.stdin.close()
        live.wait(timeout=60)
    with _io.exclusive_lock(path):  # its holder has ended: taken over
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert not path.exists()


# ----------------------------------------------------------------------------- _env
def test_environment_describes_this_machine() -> None:
    env = _env.environment("cpu")
    assert env["device"] == "cpu" and env["cpus"] == os.cpu_count()
    assert env["packages"]["numpy"] == np.__version__ and env["packages"]["torch"]
    rev = _env.code_revision()
    assert rev is None or re.fullmatch(r"[0-9a-f]{12}\+?", rev)
    assert _env.model_environment()["torch"] == torch.__version__
    versions = _env.feature_versions()
    assert set(versions) == {"mefr", "opencv", "yuface", "numpy"}
    assert versions["mefr"] == _env.mefr_version() and _env.package_version("no-such-dist") is None


@pytest.mark.parametrize(("env", "line"), [
    ({"device": "cuda", "gpus": ["NVIDIA H200", "NVIDIA H200"]}, "NVIDIA H200"),
    ({"device": "auto", "gpus": ["A", "B"]}, "A, B"),
    ({"device": "cuda:0"}, "CUDA GPU"),
    ({"device": "auto", "machine": "arm64", "cpus": 8}, "CPU (arm64, 8 cores)"),
    ({"device": "cpu", "machine": "x86_64"}, "CPU (x86_64)"),
    ({}, "CPU (CPU)"),
    (None, "CPU (CPU)"),
])
def test_describe_environment(env, line) -> None:
    assert _env.describe_environment(env) == line


@pytest.mark.parametrize(("device", "line"), [
    ("cuda (NVIDIA H200)", "NVIDIA H200"), ("cuda:1", "CUDA GPU"),
    ("cpu (x86_64, 2 cores)", "CPU (x86_64, 2 cores)"), ("cpu", "CPU"),
    ("cpu (scikit-learn)", "CPU (scikit-learn)"),
])
def test_describe_device(device, line) -> None:
    assert _env.describe_device(device) == line


# ----------------------------------------------------------------------------- sources
def test_a_source_is_split_at_its_first_colon() -> None:
    assert sources.split_source("flowset:C:/x") == ("flowset", "C:/x")
    assert sources.split_source("/plain/path") == ("", "")
    assert sources.source_scheme("casme2:/d?frames=raw") == "casme2"
    assert sources.source_scheme("nothing") is None
    assert sources.parse_source("samm:/d/SAMM") == ("samm", Path("/d/SAMM"))
    assert sources.is_feature_source("flowset:/x") and not sources.is_feature_source("samm:/x")
    for bad in ("nope:/x", "samm:", "samm"):
        with pytest.raises(ValueError, match="expected SCHEME:PATH"):
            sources.parse_source(bad)


def test_feature_loaders_and_their_errors(tmp_path: Path) -> None:
    sources.register_feature_loader("io_test", lambda path: ("loaded", path))
    try:
        assert sources.load_features("io_test:/a:b") == ("loaded", "/a:b")
        with pytest.raises(ValueError, match="no loader for 'nope'"):
            sources.load_features("nope:/x")
        with pytest.raises(ValueError, match="expected SCHEME:PATH"):
            sources.load_features("/x")
    finally:
        del sources.FEATURE_LOADERS["io_test"]
    with pytest.raises(ValueError, match="give it as the only source"):
        sources.load_sources([f"flowset:{tmp_path}", f"samm:{tmp_path}"])
    with pytest.raises(ValueError, match="carries CDE labels"):
        sources.load_sources([f"flowset:{tmp_path}"], labels="cdmer")
    with pytest.raises(ValueError, match="no synthetic database there"):
        sources.read_sources([f"synthetic:{tmp_path}"])
    with pytest.raises(ValueError, match="holds features, not a database"):
        sources.read_sources([f"flowset:{tmp_path}"])
    with pytest.raises(ValueError, match="at least one data source"):
        sources.load_sources([])


def test_raw_sources_are_read_pooled_and_labelled(synthetic_databases) -> None:
    roots = {d: synthetic_databases[d] for d in ("casme2", "samm")}
    table = sources.read_sources([f"{d}:{r}" for d, r in roots.items()])
    assert sorted(set(table["dataset"])) == ["casme2", "samm"]
    assert table.equals(sources.read_databases(roots))
    one = sources.read_sources([f"casme2:{roots['casme2']}"])
    assert len(one) == (table["dataset"] == "casme2").sum()
