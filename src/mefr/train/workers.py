"""The CPU process pool: jobs trained in parallel spawned processes, results streamed back.

On a CPU, :func:`mefr.train.engine.train_group` spreads its jobs over worker processes
(``spawn``: a fresh interpreter each, so no thread or CUDA state is inherited).
Spawning is only safe when a new process can start without running the caller's code
again; :func:`spawn_unsafe_reason` says when it cannot (a script without an
``if __name__ == "__main__":`` guard, code read from stdin, a daemon process, a process
that is itself being started), and the engine then trains in this process instead.

Workers get the training data through files in a private temporary folder, not through
the pipe that starts them: a worker that dies while starting (for instance because the
main module fails to import in it) can then not leave this process blocked on a full
pipe. A worker that dies at any time breaks the pool, and :class:`WorkerDied` says so at
once instead of waiting.
"""

from __future__ import annotations

import ast
import functools
import logging
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from mefr.train.config import TrainConfig
from mefr.train.jobs import GroupResult, Job, OnResult
from mefr.train.runtime import build_network, progress_bar

log = logging.getLogger(__name__)

#: ``task(job, config, num_classes, return_model, curves) -> (key, probs, info, state)``:
#: what a worker runs for one job (:func:`mefr.train.engine.train_one_in_worker`).
WorkerTask = Callable[..., tuple[str, np.ndarray, dict[str, Any], dict[str, np.ndarray] | None]]

_WORKER_DATA: dict[str, Any] = {}


class WorkerDied(RuntimeError):
    """A training worker process ended without returning its job's result."""


# --------------------------------------------------------------------------- safety
def _is_main_guard(node: ast.stmt) -> bool:
    """Whether ``node`` is ``if __name__ == "__main__":`` (either operand order)."""
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    test = node.test
    if len(test.ops) != 1 or not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    consts = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return len(names) == 1 and len(consts) == 1


@functools.lru_cache(maxsize=32)
def _has_main_guard(path: str, mtime: float) -> bool:
    """Whether the file at ``path`` has a top-level ``if __name__ == "__main__":``."""
    try:
        tree = ast.parse(Path(path).read_bytes(), filename=path)
    except (OSError, SyntaxError, ValueError):
        return False
    return any(_is_main_guard(node) for node in tree.body)


def _main_rerun_path(main: ModuleType) -> str | None:
    """The file a spawned process runs again as its ``__main__``, or None when it runs
    none (as :mod:`multiprocessing.spawn` decides: a package's ``__main__`` run with
    ``-m``, ``python -c``, notebooks and IPython run nothing again)."""
    spec = getattr(main, "__spec__", None)
    name = getattr(spec, "name", None)
    if name is not None:
        if name == "__main__" or name.endswith(".__main__"):
            return None
        return str(getattr(spec, "origin", None) or getattr(main, "__file__", "") or name)
    path = getattr(main, "__file__", None)
    if path is None or Path(str(path)).stem == "ipython":
        return None
    return str(path)


def spawn_unsafe_reason() -> str | None:
    """Why starting worker processes here would fail or run the caller's code again
    (None when it is safe).

    A spawned process first imports the main module again (``__main__.__spec__`` or
    ``__main__.__file__``); that is unsafe when the main module is no importable file
    (code read from stdin), or is a script whose top level is not behind an
    ``if __name__ == "__main__":`` guard (each worker would run the whole script again).
    A daemon process may not start processes, and a process that is itself being
    bootstrapped by :mod:`multiprocessing` (``current_process()._inheriting``) must not.
    """
    proc = mp.current_process()
    if getattr(proc, "_inheriting", False):
        return "this process is itself being started by multiprocessing"
    if proc.daemon:
        return "this is a daemon process, which may not start processes"
    main = sys.modules.get("__main__")
    path = None if main is None else _main_rerun_path(main)
    if path is None:
        return None
    if not os.path.isfile(path):
        return (f"the main module ({path}) is not a file a new process can import (code "
                "read from stdin or typed interactively)")
    if not _has_main_guard(path, os.path.getmtime(path)):
        return (f"the main script {path} has no `if __name__ == \"__main__\":` guard, so "
                "every worker process would run it again")
    return None


def check_not_bootstrapping() -> None:
    """Raise when this process is a worker still importing its parent's main module: a
    script that trains at its top level outside its ``__main__`` guard. Training here
    would repeat the parent's whole run in every worker."""
    if getattr(mp.current_process(), "_inheriting", False):
        raise RuntimeError(
            "mefr was asked to train while this worker process imports its parent's main "
            "module: the script trains at its top level, outside `if __name__ == "
            "\"__main__\":`. Move the training under that guard (or pass workers=1).")


# --------------------------------------------------------------------------- workers
def _load(value: np.ndarray | str | None) -> np.ndarray | None:
    if isinstance(value, str):
        if value.endswith(".pkl.npy"):  # object arrays (subject names) cannot be mapped
            return np.load(value, allow_pickle=True)
        return np.load(value, mmap_mode="r")
    return value


def _init_worker(x: np.ndarray | str, y: np.ndarray | str, groups: np.ndarray | str | None,
                 threads: int) -> None:
    """Worker initialiser: the data (arrays, or ``.npy`` paths), torch threads, and a
    watch that ends the worker with its parent."""
    torch.set_num_threads(threads)
    _WORKER_DATA.update(x=_load(x), y=_load(y), groups=_load(groups))
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True,
                     name="mefr-parent-watch").start()


def worker_data() -> dict[str, Any]:
    """The training data of this worker (``x``, ``y``, ``groups``), set by its initialiser."""
    return _WORKER_DATA


def _exit_with_parent(parent: int, period: float = 1.0) -> None:
    """End this worker once the process that started it is gone. A run killed from
    outside (``kill``, a lost session) would otherwise leave its workers training folds
    nobody collects, holding the cores; the run resumes from its finished folds."""
    while os.getppid() == parent:
        time.sleep(period)
    os._exit(1)


def _write_data(folder: str, x: np.ndarray, y: np.ndarray, groups: np.ndarray | None
                ) -> tuple[str, str, str | None]:
    """Save the training data for the workers; ``.npy`` files they memory-map."""
    paths = [os.path.join(folder, "x.npy"), os.path.join(folder, "y.npy")]
    np.save(paths[0], x)
    np.save(paths[1], y)
    g_path = None
    if groups is not None:
        g = np.asarray(groups)
        g_path = os.path.join(folder, "groups.pkl.npy" if g.dtype == object else "groups.npy")
        np.save(g_path, g, allow_pickle=g.dtype == object)  # our own file, read back by us
    return paths[0], paths[1], g_path


def train_in_processes(x: np.ndarray, y: np.ndarray, jobs: list[Job], config: TrainConfig,
                       num_classes: int, groups: np.ndarray | None,
                       on_result: OnResult | None, progress: bool, return_models: bool,
                       n_workers: int, task: WorkerTask, curves: bool = False
                       ) -> GroupResult:
    """One job per ``task`` on a pool of spawned CPU processes; results stream back.

    The first failure (a diverged job, an error in ``on_result`` such as a full disk, a
    worker that died) cancels the jobs still queued and ends the running ones at once,
    so it is reported without waiting for the rest; what was reported before it is kept
    by the caller.

    Raises
    ------
    WorkerDied : a worker process ended (killed, out of memory, failed to start).
    """
    threads = max(1, (os.cpu_count() or 1) // n_workers)
    result = GroupResult(models={} if return_models else None)
    bar = progress_bar(len(jobs) * config.epochs, progress,
                       f"training {len(jobs)} model(s) on cpu, {n_workers} processes")
    folder = tempfile.mkdtemp(prefix="mefr-workers-")
    pool: ProcessPoolExecutor | None = None
    finished = False
    try:
        pool = ProcessPoolExecutor(n_workers, mp_context=mp.get_context("spawn"),
                                   initializer=_init_worker,
                                   initargs=(*_write_data(folder, x, y, groups), threads))
        futures = {pool.submit(task, j, config, num_classes, return_models, curves): j.key
                   for j in jobs}
        for fut in as_completed(futures):
            try:
                key, probs, info, state = fut.result()
            except BrokenProcessPool:
                missing = sorted(set(futures.values()) - set(result.probs))
                raise WorkerDied(
                    f"a training worker process ended unexpectedly (killed, out of memory, "
                    f"or it could not start); {len(missing)} job(s) have no result, e.g. "
                    f"{missing[0]!r}. Results reported before it are kept; rerun to train "
                    "the rest, or pass workers=1 to train in this process.") from None
            result.probs[key] = probs
            result.info[key] = info
            if state is not None:
                model = build_network(config, num_classes, [0])
                model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
                result.models[key] = model.eval()  # type: ignore[index]
            if on_result is not None:
                on_result(key, probs, info)
            bar.update(config.epochs)
        finished = True
    finally:
        bar.close()
        if pool is not None:
            shutdown_pool(pool, wait=finished)
        shutil.rmtree(folder, ignore_errors=True)
    return result


def shutdown_pool(pool: Any, wait: bool) -> None:
    """Close a process pool; after a failure, cancel what is queued and end the workers
    now instead of waiting for every queued job to train."""
    if wait:
        pool.shutdown(wait=True)
        return
    procs = list((getattr(pool, "_processes", None) or {}).values())  # before shutdown drops them
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    for proc in procs:
        proc.join(timeout=5)
