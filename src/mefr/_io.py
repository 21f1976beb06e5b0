"""Files written whole or not at all, errors that name their file, JSON-safe values, locks.

* :func:`atomic_write_text`, :func:`atomic_write_bytes`, :func:`atomic_write` and
  :func:`atomic_file` write to a temporary file in the target's folder, then move it into
  place with ``os.replace`` (atomic on POSIX and Windows): a reader sees the old file or
  the new one, never a part. The file gets the permissions the umask allows
  (``-rw-r--r--`` under the usual ``022``), as ``open()`` would give it, not the
  ``-rw-------`` of :func:`tempfile.mkstemp`.
* Every ``OSError`` of these writes (disk full, read-only folder, no permission) is
  raised as :class:`PathError`, an ``OSError`` whose message starts with the path.
* :func:`to_plain` turns tuples, sets, numpy scalars and arrays, tensors and paths into
  plain Python objects (JSON / YAML safe); :func:`json_default` is the same as a
  ``json.dumps(default=...)`` hook.
* :func:`exclusive_lock` holds a lock file that names its holder (pid, host, start
  time, command); a lock left by a dead process is taken over.

>>> import numpy as np
>>> to_plain({"shape": (2, 3), "mean": np.float32(0.5), 1: np.arange(2)})
{'shape': [2, 3], 'mean': 0.5, '1': [0, 1]}
>>> to_plain([float("nan")], nan_as_none=True)
[None]
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import math
import os
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

try:  # POSIX: the kernel releases the lock of a process that dies
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class PathError(OSError):
    """An I/O error whose message names the file: ``"<path>: cannot write (<reason>)"``."""

    def __init__(self, path: str | os.PathLike, action: str, cause: BaseException) -> None:
        reason = getattr(cause, "strerror", None) or str(cause) or type(cause).__name__
        super().__init__(getattr(cause, "errno", None), f"{path}: cannot {action} ({reason})")
        self.path = Path(path)

    def __str__(self) -> str:
        return str(self.strerror)


def current_umask() -> int:
    """The process's umask (read without changing it where the platform allows)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` to write; moved onto ``path`` when the block ends
    without an error, removed otherwise. OS errors name ``path`` (:class:`PathError`)."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        os.close(fd)
    except OSError as e:
        raise PathError(target, "write", e) from e
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, target)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, PathError):
            raise
        raise PathError(target, "write", e) from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any], *,
                 fsync: bool = False) -> Path:
    """Write ``path`` by ``write(binary_file)``, atomically (see the module docstring);
    ``fsync`` flushes the data to the disk before the file is moved into place."""
    target = Path(path)
    with atomic_file(target) as tmp:
        try:
            with open(tmp, "wb") as f:
                write(f)
                if fsync:
                    f.flush()
                    os.fsync(f.fileno())
        except OSError as e:
            raise PathError(target, "write", e) from e
    return target


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, fsync: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(data), fsync=fsync)


def atomic_write_text(path: str | os.PathLike, text: str, *, encoding: str = "utf-8",
                      fsync: bool = False) -> Path:
    """Write ``text`` to ``path`` atomically, newlines as given (no translation)."""
    return atomic_write_bytes(path, text.encode(encoding), fsync=fsync)


def read_bytes(path: str | os.PathLike, what: str = "read") -> bytes:
    """``path``'s bytes; an OS error names the path (:class:`PathError`)."""
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise PathError(path, what, e) from e


# ----------------------------------------------------------------------------- JSON
def to_plain(obj: Any, nan_as_none: bool = False) -> Any:
    """``obj`` with tuples / sets / arrays as lists, numpy and torch scalars as Python
    numbers, paths as strings and mapping keys as strings; other objects unchanged.
    ``nan_as_none`` writes NaN floats as None (JSON ``null``)."""
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v, nan_as_none) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [to_plain(v, nan_as_none) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or type(obj) in (str, int, bool):
        return obj
    if hasattr(obj, "tolist") and hasattr(obj, "dtype"):  # numpy / torch arrays, scalars
        return to_plain(obj.tolist(), nan_as_none)
    if hasattr(obj, "item") and not isinstance(obj, str | int | float):
        return to_plain(obj.item(), nan_as_none)
    if isinstance(obj, float):
        return None if nan_as_none and math.isnan(obj) else float(obj)
    if isinstance(obj, int):  # subclasses (enums): the plain value
        return int(obj)
    if isinstance(obj, str):
        return str(obj)
    return obj


def json_default(obj: Any) -> Any:
    """A ``json.dumps(default=...)`` hook: :func:`to_plain`'s conversions, else
    ``TypeError``."""
    plain = to_plain(obj)
    if plain is obj:
        raise TypeError(f"{type(obj).__name__} is not JSON serialisable")
    return plain


def dumps_json(obj: Any, indent: int | None = 2, nan_as_none: bool = False) -> str:
    """``obj`` as JSON text (through :func:`to_plain`), ending with a newline."""
    return json.dumps(to_plain(obj, nan_as_none), indent=indent, default=str) + "\n"


# ----------------------------------------------------------------------------- locks
@dataclass(frozen=True)
class LockHolder:
    """Who holds a lock file: process id, host name, start time (UTC), command line."""

    pid: int | None
    host: str | None
    started: str | None
    command: str | None

    def describe(self) -> str:
        """``"pid 123 on host lab1 since 2026-01-01T10:00:00+00:00 (mefr evaluate ...)"``."""
        text = f"pid {self.pid} on host {self.host} since {self.started}"
        return text + (f" ({self.command})" if self.command else "")


class LockHeld(RuntimeError):
    """Another live process holds the lock file."""

    def __init__(self, path: Path, holder: LockHolder) -> None:
        super().__init__(f"{path} is held by {holder.describe()}")
        self.path = path
        self.holder = holder


def _holder_of(text: str) -> LockHolder:
    try:
        d = json.loads(text)
    except ValueError:
        d = None
    if not isinstance(d, dict):
        return LockHolder(None, None, None, None)
    pid = d.get("pid")
    return LockHolder(int(pid) if isinstance(pid, int) else None, d.get("host"),
                      d.get("started"), d.get("command"))


def _alive(pid: int | None) -> bool:
    if pid is None or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by another user
        return True
    return True


def _me() -> bytes:
    record = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
              "command": " ".join(sys.argv)[:500]}
    return json.dumps(record).encode()


def _read_holder(fd: int) -> LockHolder:
    os.lseek(fd, 0, os.SEEK_SET)
    return _holder_of(os.read(fd, 4096).decode("utf-8", "replace"))


def _kernel_lock(fd: int) -> bool | None:
    """Take the kernel's lock on ``fd``: True, False when another process holds it, None
    where there are no such locks (Windows, some network file systems: then the recorded
    pid decides)."""
    if fcntl is None:  # pragma: no cover - Windows
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as e:
        if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
            raise
        return None
    return True


def _acquire(path: Path) -> int:
    """Open and lock ``path``; the returned descriptor holds the lock."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        locked = _kernel_lock(fd)
        if locked is None:  # no kernel lock: a live process of this host recorded holds it
            holder = _read_holder(fd)
            locked = not (holder.host == socket.gethostname() and holder.pid != os.getpid()
                          and _alive(holder.pid))
        if not locked:
            holder = _read_holder(fd)
            os.close(fd)
            raise LockHeld(path, holder)
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:  # not a file its holder removed while we opened it
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, _me())
            return fd
        os.close(fd)


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike) -> Iterator[Path]:
    """Hold the lock file ``path`` for the block; removed at the end.

    Raises :class:`LockHeld` (naming pid, host, start time and command) when a live
    process holds it. A lock file left by a process that died is taken over (the kernel
    released its lock). OS errors name the path (:class:`PathError`).
    """
    target = Path(path)
    try:
        fd = _acquire(target)
    except OSError as e:
        raise PathError(target, "create the lock file", e) from e
    try:
        yield target
    finally:
        with contextlib.suppress(OSError):
            os.unlink(target)  # while still holding it: a waiter retries on a fresh file
        os.close(fd)
