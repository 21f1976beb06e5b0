"""Executors: where the jobs of a protocol run (this process, or a Ray cluster).

An executor is a callable with the signature of :func:`mefr.train.engine.train_group`,
the ``train_fn`` that :func:`mefr.evaluate.runner.run_protocol` calls::

    executor(x, y, jobs, config, num_classes, groups=..., device=..., on_result=...,
             progress=...) -> GroupResult

* :class:`LocalExecutor` is ``train_group`` itself (one process; on a CPU it spreads
  jobs over a pool of processes, on a GPU it trains them in groups).
* :class:`RayExecutor` cuts the jobs (folds x seeds, x configurations when a caller
  puts several in one list) into chunks, runs each chunk as one Ray task that calls
  ``train_group``, and reports every job through ``on_result`` as its task finishes, so
  the runner writes each fold into the run directory as it arrives. The inputs are put
  in Ray's object store once and shared by all tasks. A task that fails is retried
  (Ray's ``max_retries`` for crashed workers and lost nodes, ``retry_exceptions`` for
  errors raised by the training code); one that still fails does not stop the others:
  when all have ended, :class:`ExecutorError` names the job keys that have no result.
  As the run directory is resumable, a rerun then trains only those jobs.

``make_executor("local" | "ray", **options)`` picks one by name (``mefr evaluate
--executor``). Ray is an optional dependency (``pip install 'mefr[ray]'``), imported
only when a Ray executor is used.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from types import ModuleType

    from mefr.train.config import TrainConfig
    from mefr.train.jobs import GroupResult, Job, OnResult

#: Names accepted by :func:`make_executor` (and ``mefr evaluate --executor``).
EXECUTORS: tuple[str, ...] = ("local", "ray")
RAY_MISSING = "the Ray executor needs Ray, which is not installed: pip install 'mefr[ray]'"


class ExecutorError(RuntimeError):
    """Jobs that an executor could not train (after retries).

    Attributes
    ----------
    failed : ``{job key: error message}`` of every job without a result.
    """

    def __init__(self, message: str, failed: Mapping[str, str]) -> None:
        super().__init__(message)
        self.failed = dict(failed)


def import_ray() -> ModuleType:
    """``import ray``, or an ImportError that says how to install it."""
    try:
        import ray
    except ImportError as e:
        raise ImportError(RAY_MISSING) from e
    return ray


def _default_train_fn() -> Callable[..., GroupResult]:
    from mefr.train.engine import train_group

    return train_group


def accepts_keyword(fn: Callable[..., Any], name: str) -> bool:
    """Whether ``fn`` takes the keyword ``name`` (or any keyword): a ``train_fn`` written
    before an option existed is called without it."""
    import inspect

    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _check_keys(jobs: list[Job]) -> None:
    keys = [j.key for j in jobs]
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(f"job keys must be unique; repeated: {dup}")


# ----------------------------------------------------------------------------- local
class LocalExecutor:
    """Train in this process with :func:`~mefr.train.engine.train_group`.

    ``workers`` and ``max_models`` are passed on to ``train_group`` (None: its
    defaults, one process per core on a CPU, as many models per group as fit on a GPU);
    so is ``deterministic`` when True (CUDA: no TF32, deterministic cuDNN kernels).
    """

    name = "local"

    def __init__(self, workers: int | None = None, max_models: int | None = None,
                 train_fn: Callable[..., GroupResult] | None = None,
                 deterministic: bool = False) -> None:
        self.workers = workers
        self.max_models = max_models
        self.train_fn = train_fn
        self.deterministic = bool(deterministic)

    def __call__(self, x: np.ndarray, y: np.ndarray, jobs: list[Job], config: TrainConfig,
                 num_classes: int, groups: np.ndarray | None = None, device: str = "auto",
                 on_result: OnResult | None = None, progress: bool = True,
                 return_models: bool = False, curves: bool = False) -> GroupResult:
        """``train_group(x, y, jobs, ...)``, with this executor's workers and group size
        when they were set (else ``train_group``'s defaults)."""
        fn = self.train_fn or _default_train_fn()
        options: dict[str, Any] = {k: v for k, v in (("max_models", self.max_models),
                                                     ("workers", self.workers)) if v is not None}
        if return_models:
            options["return_models"] = True
        if curves and accepts_keyword(fn, "curves"):
            options["curves"] = True
        if self.deterministic:
            options["deterministic"] = True
        return fn(x, y, jobs, config, num_classes, groups=groups, device=device,
                  on_result=on_result, progress=progress, **options)

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ----------------------------------------------------------------------------- ray
def chunk_jobs(jobs: list[Job], size: int) -> list[list[Job]]:
    """Consecutive chunks of at most ``size`` jobs (one Ray task each)."""
    if size < 1:
        raise ValueError(f"jobs per task must be positive, got {size!r}")
    return [jobs[i:i + size] for i in range(0, len(jobs), size)]


def task_device(device: str, num_gpus: float) -> str:
    """The device a task trains on: its own GPU when it was given one, else the CPU.

    Ray makes a task's GPUs the only visible ones (``cuda`` is the task's first GPU),
    so ``cuda:N`` on the command line cannot name a GPU inside a task.
    """
    if device not in ("auto", "cpu") and not device.startswith("cuda"):
        raise ValueError(f"device {device!r}: expected auto, cpu or cuda[:N]")
    if device.startswith("cuda") and num_gpus <= 0:
        raise ValueError(f"device {device!r} asks for a GPU but the tasks get none "
                         "(num_gpus_per_task = 0)")
    if device == "cpu" and num_gpus > 0:
        raise ValueError(f"device 'cpu' but num_gpus_per_task = {num_gpus}: the GPUs "
                         "would be reserved and left idle")
    return "cuda" if num_gpus > 0 else "cpu"


def _run_task(train_fn: Callable[..., GroupResult], x: np.ndarray, y: np.ndarray,
              groups: np.ndarray | None, jobs: list[Job], config: TrainConfig,
              num_classes: int, device: str, threads: int, return_models: bool,
              max_models: int | None, deterministic: bool = False,
              curves: bool = False) -> GroupResult:
    """The body of one Ray task: train a chunk of jobs in the worker, single process."""
    if device == "cpu":
        import torch

        torch.set_num_threads(threads)
    extra: dict[str, Any] = {"deterministic": True} if deterministic else {}
    if curves:
        extra["curves"] = True
    result = train_fn(x, y, jobs, config, num_classes, groups=groups, device=device,
                      progress=False, return_models=return_models, max_models=max_models,
                      workers=1, **extra)
    node = os.uname().nodename
    for key in result.probs:
        result.info.setdefault(key, {}).update({"executor": "ray", "node": node})
    return result


def _error_text(err: BaseException) -> str:
    """A one-line account of a task's failure (the original exception, not Ray's wrapper)."""
    cause = getattr(err, "cause", None)
    e = cause if isinstance(cause, BaseException) else err
    first = str(e).strip().splitlines()
    return f"{type(e).__name__}: {first[0] if first else ''}".rstrip(": ")


class RayExecutor:
    """Train chunks of jobs as Ray tasks, locally or on a cluster.

    Parameters
    ----------
    address : a Ray cluster to join (``ray.init(address=...)``: ``auto``,
        ``ray://host:10001``, ``host:6379``); None starts a local instance (stopped
        again by :meth:`close`). A process already connected to Ray keeps that
        connection either way. Every node must have mefr (same version) and its
        dependencies installed.
    max_retries : times a failed task is run again, for worker or node failures and for
        exceptions raised while training.
    jobs_per_task : jobs trained by one task. None: one per task on CPUs (the engine
        trains one model at a time on a CPU anyway); on GPUs the jobs spread evenly over
        the GPUs of the cluster, so each GPU trains one large group.
    num_cpus_per_task : CPU cores reserved per task; also its torch threads.
    num_gpus_per_task : GPUs per task (fractions share a GPU between tasks). None: 1
        when ``device`` asks for CUDA, or is ``auto`` and the cluster has GPUs; else 0.
    num_cpus : cores of a local instance started here (None: all of them).
    init_kwargs : more arguments of ``ray.init`` (e.g. ``runtime_env``).
    train_fn : what a task runs on its chunk (default :func:`mefr.train.engine.train_group`;
        it must accept the same arguments).
    deterministic : passed on to ``train_group`` when True (CUDA: no TF32,
        deterministic cuDNN kernels).
    """

    name = "ray"

    def __init__(self, address: str | None = None, max_retries: int = 2,
                 jobs_per_task: int | None = None, num_cpus_per_task: float = 1,
                 num_gpus_per_task: float | None = None, num_cpus: int | None = None,
                 init_kwargs: Mapping[str, Any] | None = None,
                 train_fn: Callable[..., GroupResult] | None = None,
                 deterministic: bool = False) -> None:
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries!r}")
        if jobs_per_task is not None and jobs_per_task < 1:
            raise ValueError(f"jobs_per_task must be positive, got {jobs_per_task!r}")
        if num_cpus_per_task <= 0:
            raise ValueError(f"num_cpus_per_task must be positive, got {num_cpus_per_task!r}")
        if num_gpus_per_task is not None and num_gpus_per_task < 0:
            raise ValueError(f"num_gpus_per_task must be >= 0, got {num_gpus_per_task!r}")
        self.address = address
        self.max_retries = int(max_retries)
        self.jobs_per_task = jobs_per_task
        self.num_cpus_per_task = num_cpus_per_task
        self.num_gpus_per_task = num_gpus_per_task
        self.num_cpus = num_cpus
        self.init_kwargs = dict(init_kwargs or {})
        self.train_fn = train_fn
        self.deterministic = bool(deterministic)
        self._started = False

    # ------------------------------------------------------------------ ray lifecycle
    def connect(self) -> ModuleType:
        """Join the cluster or start a local instance (once); returns the ``ray`` module."""
        ray = import_ray()
        if ray.is_initialized():
            return ray
        kw: dict[str, Any] = {"include_dashboard": False, "logging_level": "WARNING",
                              **self.init_kwargs}
        if self.address is None:
            # a local instance reports nothing to Ray's usage statistics unless asked to
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            kw.setdefault("num_cpus", self.num_cpus)
        else:
            kw["address"] = self.address
        ray.init(**kw)
        self._started = True
        return ray

    def close(self) -> None:
        """Shut down the Ray instance if this executor started it."""
        if self._started:
            import_ray().shutdown()
            self._started = False

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ planning
    def _gpus(self, ray: ModuleType, device: str) -> float:
        if self.num_gpus_per_task is not None:
            return float(self.num_gpus_per_task)
        if device.startswith("cuda"):
            return 1.0
        if device == "auto":
            return 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
        return 0.0

    def _chunk_size(self, ray: ModuleType, n_jobs: int, gpus: float) -> int:
        if self.jobs_per_task is not None:
            return self.jobs_per_task
        if gpus <= 0:
            return 1
        slots = max(1, int(ray.cluster_resources().get("GPU", 0) // gpus))
        return max(1, math.ceil(n_jobs / slots))

    # ------------------------------------------------------------------ training
    def __call__(self, x: np.ndarray, y: np.ndarray, jobs: list[Job], config: TrainConfig,
                 num_classes: int, groups: np.ndarray | None = None, device: str = "auto",
                 on_result: OnResult | None = None, progress: bool = True,
                 return_models: bool = False, max_models: int | None = None,
                 curves: bool = False) -> GroupResult:
        """Train ``jobs`` as Ray tasks; report each job through ``on_result`` on arrival.

        ``progress`` is accepted for the ``train_fn`` signature; tasks train silently
        (the runner's fold bar advances as results arrive). Raises
        :class:`ExecutorError` naming the jobs of tasks that failed after
        ``max_retries`` retries, once every other task has ended and been reported.
        """
        from mefr.train.jobs import GroupResult

        jobs = list(jobs)
        result = GroupResult(models={} if return_models else None)
        if not jobs:
            return result
        _check_keys(jobs)
        ray = self.connect()
        gpus = self._gpus(ray, device)
        dev = task_device(device, gpus)
        chunks = chunk_jobs(jobs, self._chunk_size(ray, len(jobs), gpus))
        remote = ray.remote(_run_task).options(
            num_cpus=self.num_cpus_per_task, num_gpus=gpus, max_retries=self.max_retries,
            retry_exceptions=True,
        )
        shared = [ray.put(np.asarray(x)), ray.put(np.asarray(y)),
                  None if groups is None else ray.put(np.asarray(groups))]
        fn = self.train_fn or _default_train_fn()
        threads = max(1, int(self.num_cpus_per_task))
        pending = {
            remote.remote(fn, *shared, chunk, config, num_classes, dev, threads,
                          return_models, max_models, self.deterministic, curves): chunk
            for chunk in chunks
        }
        failed: dict[str, str] = {}
        first_error: BaseException | None = None
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                chunk = pending.pop(ready[0])
                try:
                    part = ray.get(ready[0])
                except ray.exceptions.RayError as e:
                    first_error = first_error or e
                    failed.update({j.key: _error_text(e) for j in chunk})
                    continue
                _merge(result, part, chunk, on_result)
        finally:
            for ref in pending:  # only left when on_result raised or we were interrupted
                ray.cancel(ref)
        if failed:
            raise ExecutorError(_failure_message(failed, self.max_retries), failed
                                ) from first_error
        return result


def _merge(result: GroupResult, part: GroupResult, chunk: list[Job],
           on_result: OnResult | None) -> None:
    """Add one task's results to ``result`` and report them in job order."""
    for job in chunk:
        if job.key not in part.probs:
            continue  # the runner names jobs without probabilities
        result.probs[job.key] = part.probs[job.key]
        if job.key in part.info:
            result.info[job.key] = part.info[job.key]
        if result.models is not None and part.models and job.key in part.models:
            result.models[job.key] = part.models[job.key]
        if on_result is not None:
            on_result(job.key, part.probs[job.key], part.info.get(job.key, {}))


def _failure_message(failed: Mapping[str, str], retries: int) -> str:
    by_error: dict[str, list[str]] = {}
    for key, err in failed.items():
        by_error.setdefault(err, []).append(key)
    lines = [f"{len(failed)} job(s) failed after {retries} retries (the others finished "
             "and were reported; a rerun of a resumable run trains only these):"]
    lines += [f"  {', '.join(keys)}: {err}" for err, keys in by_error.items()]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- choice
def make_executor(name: str = "local", **options: Any) -> LocalExecutor | RayExecutor:
    """An executor by name: ``local`` (:class:`LocalExecutor`) or ``ray``
    (:class:`RayExecutor`); ``options`` go to its constructor."""
    if name == "local":
        return LocalExecutor(**options)
    if name == "ray":
        return RayExecutor(**options)
    raise ValueError(f"executor {name!r}: expected one of {list(EXECUTORS)}")
