"""The training engine: many independent models (folds x seeds) trained at once.

A protocol such as CDE trains one model per (seed, LOSO fold): 680 models for ten
rounds of the composite database. The engine stacks them into groups (see
:mod:`mefr.models.layers`) and trains each group with one forward, one backward and
one fused optimiser step per batch, so the device sees few, large kernels.

The mathematics is that of training each model alone:

* model ``g`` is initialised from its own seed (:func:`job_seed`), its epochs are
  shuffled by its own generator, its dropout masks depend on its seed and step only;
* a group holds only jobs with the same number of steps per epoch, the last batch of
  an epoch is padded and the padding weighted out of the losses (and out of batch
  statistics), so every model sees exactly the batches it would see alone;
* losses are per model and summed, the optimisers (Adam, SGD) act element-wise.

So a job gives the same predictions, to floating-point tolerance, whatever group it
is trained in; ``tests/test_engine.py`` checks this. On CUDA the engine by default uses
TF32 matrix products and autotuned cuDNN kernels, whose rounding depends on the shapes
of a group; a hundred epochs amplify those differences, so a job trained in another
group (e.g. after a resume) can end with different predictions for a few clips (seen:
8 of 2,210). ``deterministic=True`` (``mefr evaluate --deterministic``) turns TF32 and
autotuning off, and each fold file records the choice.

The evaluated model is the one after ``config.epochs`` epochs, or - with
``select_epoch_by="inner_val"`` - the epoch with the best UF1 on subjects held out
from the *training* fold. The test fold is never looked at before the end.

With ``curves=True`` the engine also records, after every epoch, each job's test and
inner-validation class probabilities (float16) and its mean training loss: the
learning curves that ``mefr audit`` reads. Recording them is evaluation only (no
gradient, no random draw), so the evaluated model and its predictions are the same
with and without curves (``tests/test_curves.py``).

A job whose training loss stops being finite is stopped at that epoch with
:class:`TrainingDiverged`; nothing is written for it.
"""

from __future__ import annotations

import math
import os
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mefr.models.base import GroupNet
from mefr.models.registry import create_model, is_handcrafted
from mefr.train.config import TrainConfig
from mefr.train.losses import fr_loss

#: ``on_result(key, probs, info)``: a job's test probabilities and what the engine
#: reports about it (seed, seconds, evaluated epoch, ...), as soon as it is trained.
#: With ``curves=True``, ``info["curves"]`` holds the job's :data:`CURVE_ARRAYS`.
OnResult = Callable[[str, np.ndarray, dict[str, Any]], None]

#: The arrays of a job's learning curves (``info["curves"]``), E = epochs:
#: ``test`` ``(E, T, K)`` float16 test probabilities after each epoch; ``inner_val``
#: ``(E, V, K)`` float16 inner-validation probabilities (V = 0 without inner
#: validation); ``inner_val_index`` ``(V,)`` their rows of ``x``; ``train_loss`` ``(E,)``
#: float32 mean training loss (Eq. 8) of each epoch.
CURVE_ARRAYS: tuple[str, ...] = ("test", "inner_val", "inner_val_index", "train_loss")


class TrainingDiverged(RuntimeError):
    """A job's training loss became NaN or infinite; the job was stopped there."""


@dataclass(frozen=True)
class Job:
    """One model to train: its key, seed, training rows and test rows."""

    key: str
    seed: int
    train_idx: np.ndarray
    test_idx: np.ndarray


@dataclass
class GroupResult:
    """Test-set class probabilities per job key, and optionally the trained models."""

    probs: dict[str, np.ndarray] = field(default_factory=dict)
    models: dict[str, GroupNet] | None = None
    info: dict[str, dict[str, Any]] = field(default_factory=dict)


def job_seed(job: Job) -> int:
    """The seed of a job's model: a stable hash of ``(seed, key)`` (31 bits)."""
    return zlib.crc32(f"{job.seed}|{job.key}".encode()) & 0x7FFFFFFF


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cpu`` / ``cuda`` / ``cuda:N`` as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but torch sees no CUDA device")
    return dev


def inner_split(job: Job, groups: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Split a job's training rows into (fit, inner validation) by subject.

    ``round(fraction * subjects)`` training subjects (at least one, and at least one
    left to fit on) are drawn with the job's seed. Test rows are never involved.
    """
    train = np.asarray(job.train_idx)
    subjects = np.unique(groups[train])
    n_val = min(max(1, round(fraction * len(subjects))), len(subjects) - 1)
    if n_val < 1:
        return train, train[:0]
    rng = np.random.default_rng(job_seed(job) ^ 0x5EED)
    val_subjects = rng.choice(subjects, size=n_val, replace=False)
    is_val = np.isin(groups[train], val_subjects)
    return train[~is_val], train[is_val]


def macro_f1_per_model(pred: torch.Tensor, y: torch.Tensor, w: torch.Tensor,
                       num_classes: int) -> torch.Tensor:
    """UF1 (Eq. 10) of each model, ``(G,)``, from predictions ``(G, T)`` with weights
    ``(G, T)``: the mean F1 over the classes present in the model's truth or prediction,
    as the reported UF1 (:func:`mefr.evaluate.metrics.uf1`) and scikit-learn's
    ``f1_score(average="macro")`` with its default labels.
    """
    yt = torch.nn.functional.one_hot(y, num_classes).to(w.dtype) * w.unsqueeze(-1)
    yp = torch.nn.functional.one_hot(pred, num_classes).to(w.dtype) * w.unsqueeze(-1)
    tp = (yt * yp).sum(1)
    denom = yt.sum(1) + yp.sum(1)
    present = denom > 0
    f1 = torch.where(present, 2 * tp / denom.clamp(min=1e-12), torch.zeros_like(tp))
    return f1.sum(dim=1) / present.sum(dim=1).clamp(min=1)


def make_optimizer(params: list[torch.nn.Parameter], config: TrainConfig,
                   device: torch.device) -> torch.optim.Optimizer:
    """torch's Adam or SGD, fused into one kernel where the device supports it."""
    kw: dict[str, Any] = {"lr": config.lr, "weight_decay": config.weight_decay}
    fused = device.type in ("cuda", "cpu")
    if config.optimizer == "adam":
        return torch.optim.Adam(params, betas=tuple(config.betas), eps=config.eps,
                                fused=fused, **kw)
    return torch.optim.SGD(params, momentum=config.momentum, fused=fused, **kw)


def _model_kwargs(config: TrainConfig, model: str) -> dict[str, Any]:
    kw = dict(config.model_kwargs)
    if model not in ("basic_inception", "dual_inception"):
        kw.setdefault("dropout", config.dropout)
    return kw


def bytes_per_model(config: TrainConfig, num_classes: int, in_shape: tuple[int, ...]) -> int:
    """Device memory one model of a group needs while training (an estimate).

    Parameters, gradients and optimiser state, a best-epoch copy for inner
    validation, plus the activations of one batch (measured on a meta-device forward
    as the sum of the outputs' sizes, times 4 for backward buffers).
    """
    with torch.device("meta"):
        m = create_model(config.model, num_classes, 1, **_model_kwargs(config, config.model))
    n = sum(p.numel() for p in m.parameters())
    states = 2 if config.optimizer == "adam" else (1 if config.momentum else 0)
    copies = 2 + states + (1 if config.select_epoch_by == "inner_val" else 0)
    per_sample = 4 * (8 * math.prod(in_shape) * 40 + 4 * 1024 * (num_classes + 4))
    return 4 * n * copies + config.batch_size * per_sample


def plan_groups(jobs: list[Job], steps: list[int], max_models: int) -> list[list[int]]:
    """Job indices grouped by steps per epoch, each group at most ``max_models`` long."""
    by_steps: dict[int, list[int]] = {}
    for i, s in enumerate(steps):
        by_steps.setdefault(s, []).append(i)
    out: list[list[int]] = []
    for s in sorted(by_steps):
        idx = by_steps[s]
        for start in range(0, len(idx), max_models):
            out.append(idx[start:start + max_models])
    return out


def default_max_models(config: TrainConfig, num_classes: int, in_shape: tuple[int, ...],
                       device: torch.device) -> int:
    """How many models fit in one group: memory-bound on CUDA, one at a time on CPU.

    On a CPU, a group of models is not faster per model than one model at a time
    (measured in benchmarks/train_throughput.py); the CPU gains come from the fused
    optimiser and from running jobs in parallel processes instead.
    """
    if device.type != "cuda":
        return 1
    free, _ = torch.cuda.mem_get_info(device)
    return max(1, int(0.8 * free // bytes_per_model(config, num_classes, in_shape)))


def train_group(
    x: np.ndarray,
    y: np.ndarray,
    jobs: list[Job],
    config: TrainConfig,
    num_classes: int,
    groups: np.ndarray | None = None,
    device: str = "auto",
    on_result: OnResult | None = None,
    progress: bool = True,
    return_models: bool = False,
    max_models: int | None = None,
    workers: int | None = None,
    deterministic: bool = False,
    curves: bool = False,
) -> GroupResult:
    """Train one model per job and predict each job's test rows.

    Parameters
    ----------
    x : float32 ``(N, C, H, W)``, already restricted to ``config.channels``.
    y : int ``(N,)`` class labels in ``0..num_classes-1``.
    jobs : the models to train (see :class:`Job`).
    groups : the LOSO group of each row; needed for ``select_epoch_by="inner_val"``.
    device : ``auto``, ``cpu``, ``cuda``.
    on_result : called with ``(key, probs, info)`` as soon as a job's group has finished
        (``info``: what :attr:`GroupResult.info` holds for the job).
    return_models : keep the trained single models (``GroupResult.models``).
    max_models : models per group (default: as many as fit, see
        :func:`default_max_models`).
    workers : CPU only: jobs trained in parallel processes, each with
        ``cores // workers`` threads (default: one per core when there are several
        jobs). Two single-threaded processes beat one two-threaded one on small ops.
    deterministic : CUDA only: full-precision matrix products, deterministic cuDNN
        kernels (slower; results independent of how jobs are grouped).
    curves : record each job's learning curves in ``info["curves"]``
        (:data:`CURVE_ARRAYS`); the predictions are the same either way.

    Raises
    ------
    TrainingDiverged : a job's training loss became non-finite (named, with its epoch).
    """
    if is_handcrafted(config.model):  # no network: a scikit-learn classifier per job
        from mefr.train.handcrafted import train_handcrafted

        return train_handcrafted(x, y, jobs, config, num_classes, groups=groups,
                                 on_result=on_result, progress=progress,
                                 return_models=return_models)
    if len(jobs) == 0:
        return GroupResult(models={} if return_models else None)
    keys = [j.key for j in jobs]
    if len(set(keys)) != len(keys):
        raise ValueError("job keys must be unique")
    x = np.array(x, dtype=np.float32)  # own, writable copies: torch shares their memory
    y = np.array(y, dtype=np.int64)
    if x.ndim != 4 or len(x) != len(y):
        raise ValueError(f"x must be (N, C, H, W) with N = len(y); got {x.shape} and {y.shape}")
    if y.min() < 0 or y.max() >= num_classes:
        raise ValueError(f"labels must lie in 0..{num_classes - 1}; found {y.min()}..{y.max()}")
    inner = config.select_epoch_by == "inner_val"
    if inner and groups is None:
        raise ValueError("select_epoch_by='inner_val' needs the subject group of each row")
    dev = resolve_device(device)
    if dev.type == "cpu":
        n_workers = workers if workers is not None else min(len(jobs), os.cpu_count() or 1)
        if n_workers > 1 and len(jobs) > 1:
            return _train_in_processes(x, y, jobs, config, num_classes, groups, on_result,
                                       progress, return_models, n_workers, curves)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = not deterministic
        torch.backends.cudnn.allow_tf32 = not deterministic
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic

    fits, vals = [], []
    for j in jobs:
        if inner:
            f, v = inner_split(j, np.asarray(groups), config.inner_val_fraction)
        else:
            f, v = np.asarray(j.train_idx), np.asarray(j.train_idx)[:0]
        if len(f) == 0:
            raise ValueError(f"job {j.key!r} has no training rows")
        fits.append(f.astype(np.int64))
        vals.append(v.astype(np.int64))
    steps = [math.ceil(len(f) / config.batch_size) for f in fits]
    cap = max_models or default_max_models(config, num_classes, x.shape[1:], dev)
    plan = plan_groups(jobs, steps, cap)

    x_dev = torch.from_numpy(x).to(dev)
    y_dev = torch.from_numpy(y).to(dev)
    result = GroupResult(models={} if return_models else None)
    total = len(jobs) * config.epochs
    bar = _progress(total, progress, f"training {len(jobs)} model(s) on {dev.type}")
    try:
        for members in plan:
            t0 = time.perf_counter()
            chunk = _train_chunk(
                x_dev, y_dev, [jobs[i] for i in members], [fits[i] for i in members],
                [vals[i] for i in members], config, num_classes, dev, bar, curves,
            )
            seconds = time.perf_counter() - t0
            model, best_epochs, fit_losses, job_curves = chunk
            probs = _predict(model, x_dev, [jobs[i].test_idx for i in members])
            for gi, i in enumerate(members):
                key = jobs[i].key
                result.probs[key] = probs[gi]
                result.info[key] = {
                    "seed": job_seed(jobs[i]),
                    "group_size": len(members),
                    "group_seconds": round(seconds, 3),
                    "epochs": config.epochs,
                    "evaluated_epoch": int(best_epochs[gi]),
                    "final_train_loss": float(fit_losses[gi]),
                    "train_rows": int(len(fits[i])),
                    "inner_val_rows": int(len(vals[i])),
                    "device": _device_name(dev),
                }
                if dev.type == "cuda":
                    result.info[key]["deterministic"] = bool(deterministic)
                if job_curves is not None:
                    result.info[key]["curves"] = job_curves[gi]
                if return_models:
                    single = model.extract(gi).eval()
                    result.models[key] = single.cpu()  # type: ignore[index]
                if on_result is not None:
                    on_result(key, probs[gi], result.info[key])
            del model
    finally:
        bar.close()
    return result


_WORKER_DATA: dict[str, Any] = {}


def _init_worker(x: np.ndarray, y: np.ndarray, groups: np.ndarray | None, threads: int) -> None:
    torch.set_num_threads(threads)
    _WORKER_DATA.update(x=x, y=y, groups=groups)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True,
                     name="mefr-parent-watch").start()


def _exit_with_parent(parent: int, period: float = 1.0) -> None:
    """End this worker once the process that started it is gone. A run killed from
    outside (``kill``, a lost session) would otherwise leave its workers training folds
    nobody collects, holding the cores; the run resumes from its finished folds."""
    while os.getppid() == parent:
        time.sleep(period)
    os._exit(1)


def _train_one_in_worker(job: Job, config: TrainConfig, num_classes: int, return_model: bool,
                         curves: bool = False
                         ) -> tuple[str, np.ndarray, dict[str, Any], dict[str, np.ndarray] | None]:
    r = train_group(_WORKER_DATA["x"], _WORKER_DATA["y"], [job], config, num_classes,
                    groups=_WORKER_DATA["groups"], device="cpu", progress=False,
                    return_models=return_model, max_models=1, workers=1, curves=curves)
    state = None
    if return_model:
        state = {k: v.numpy() for k, v in r.models[job.key].state_dict().items()}  # type: ignore[index]
    return job.key, r.probs[job.key], r.info[job.key], state


def _train_in_processes(x: np.ndarray, y: np.ndarray, jobs: list[Job], config: TrainConfig,
                        num_classes: int, groups: np.ndarray | None,
                        on_result: OnResult | None, progress: bool,
                        return_models: bool, n_workers: int, curves: bool = False
                        ) -> GroupResult:
    """One job per task on a pool of spawned CPU processes; results stream back.

    The first failure (a diverged job, an error in ``on_result`` such as a full disk)
    cancels the jobs still queued and ends the running ones at once, so it is reported
    without waiting for the rest; what was reported before it is kept by the caller.
    """
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = max(1, (os.cpu_count() or 1) // n_workers)
    result = GroupResult(models={} if return_models else None)
    bar = _progress(len(jobs) * config.epochs, progress,
                    f"training {len(jobs)} model(s) on cpu, {n_workers} processes")
    ctx = mp.get_context("spawn")
    pool = ProcessPoolExecutor(n_workers, mp_context=ctx, initializer=_init_worker,
                               initargs=(x, y, groups, threads))
    finished = False
    try:
        futures = [pool.submit(_train_one_in_worker, j, config, num_classes, return_models,
                               curves)
                   for j in jobs]
        for fut in as_completed(futures):
            key, probs, info, state = fut.result()
            result.probs[key] = probs
            result.info[key] = info
            if state is not None:
                model = create_model(config.model, num_classes, 1,
                                     **_model_kwargs(config, config.model))
                model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
                result.models[key] = model.eval()  # type: ignore[index]
            if on_result is not None:
                on_result(key, probs, info)
            bar.update(config.epochs)
        finished = True
    finally:
        bar.close()
        _shutdown_pool(pool, wait=finished)
    return result


def _shutdown_pool(pool: Any, wait: bool) -> None:
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


def _device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(dev)})"
    import platform

    return f"cpu ({platform.machine()}, {os.cpu_count()} cores)"


class _NoBar:
    def update(self, n: int = 1) -> None: ...
    def close(self) -> None: ...


def _progress(total: int, enabled: bool, desc: str) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="model-epoch", smoothing=0.1)


def _epoch_batches(rngs: list[np.random.Generator], fits: list[np.ndarray], steps: int,
                   batch: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled row indices ``(G, steps*batch)`` and their 0/1 weights (padding = 0)."""
    g = len(fits)
    idx = np.zeros((g, steps * batch), dtype=np.int64)
    w = np.zeros((g, steps * batch), dtype=np.float32)
    for i, (rng, f) in enumerate(zip(rngs, fits, strict=True)):
        idx[i, : len(f)] = rng.permutation(f)
        w[i, : len(f)] = 1.0
    return idx, w


def _class_weights(y: np.ndarray, fits: list[np.ndarray], k: int, mode: str,
                   dev: torch.device) -> torch.Tensor | None:
    if mode == "none":
        return None
    rows = []
    for f in fits:
        counts = np.bincount(y[f], minlength=k).astype(np.float64)
        wts = np.where(counts > 0, len(f) / (k * np.maximum(counts, 1)), 0.0)
        rows.append(wts)
    return torch.tensor(np.stack(rows), dtype=torch.float32, device=dev)


def _padded(index_lists: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    t = max(1, max(len(i) for i in index_lists))
    idx = np.zeros((len(index_lists), t), dtype=np.int64)
    w = np.zeros((len(index_lists), t), dtype=np.float32)
    for g, i in enumerate(index_lists):
        idx[g, : len(i)] = i
        w[g, : len(i)] = 1.0
    return idx, w


def _iter_slices(n: int, size: int) -> Iterator[slice]:
    for s in range(0, n, size):
        yield slice(s, min(n, s + size))


@torch.no_grad()
def _logits(model: GroupNet, x_dev: torch.Tensor, idx: np.ndarray, batch: int = 256
            ) -> torch.Tensor:
    """Eval-mode logits ``(G, T, K)`` of rows ``idx`` ``(G, T)``, in slices of T."""
    model.eval()
    idx_t = torch.from_numpy(idx).to(x_dev.device)
    outs = [model(x_dev[idx_t[:, sl]]).logits for sl in _iter_slices(idx.shape[1], batch)]
    return torch.cat(outs, dim=1)


def _predict(model: GroupNet, x_dev: torch.Tensor, tests: list[np.ndarray]) -> list[np.ndarray]:
    idx, _ = _padded([np.asarray(t, dtype=np.int64) for t in tests])
    probs = torch.softmax(_logits(model, x_dev, idx).float(), dim=-1).cpu().numpy()
    return [probs[g, : len(t)] for g, t in enumerate(tests)]


def _train_chunk(
    x_dev: torch.Tensor,
    y_dev: torch.Tensor,
    jobs: list[Job],
    fits: list[np.ndarray],
    vals: list[np.ndarray],
    config: TrainConfig,
    k: int,
    dev: torch.device,
    bar: Any,
    curves: bool = False,
) -> tuple[GroupNet, np.ndarray, np.ndarray, list[dict[str, np.ndarray]] | None]:
    g = len(jobs)
    seeds = [job_seed(j) for j in jobs]
    model = create_model(config.model, k, g, **_model_kwargs(config, config.model)).to(dev)
    model.init_models(seeds)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(params, config, dev)
    rngs = [np.random.default_rng(s) for s in seeds]
    noise = torch.tensor(seeds, dtype=torch.int64, device=dev)
    y_np = y_dev.cpu().numpy()
    cw = _class_weights(y_np, fits, k, config.class_weighting, dev)
    steps = math.ceil(len(fits[0]) / config.batch_size)
    b = config.batch_size

    inner = any(len(v) for v in vals)
    if inner:
        v_idx, v_w = _padded(vals)
        v_w_t = torch.from_numpy(v_w).to(dev)
        v_y = y_dev[torch.from_numpy(v_idx).to(dev)]
        best = torch.full((g,), -1.0, device=dev)
        best_epoch = np.zeros(g, dtype=np.int64)
        snapshot = [t.detach().clone() for t in model.state_dict().values()]
    if curves:
        t_idx, _ = _padded([np.asarray(j.test_idx, dtype=np.int64) for j in jobs])
        test_curve: list[np.ndarray] = []
        val_curve: list[np.ndarray] = []
        loss_curve: list[np.ndarray] = []
    augment = _augmenter(config, dev)
    last_loss = torch.zeros(g, device=dev)
    for epoch in range(config.epochs):
        model.train()
        idx, w = _epoch_batches(rngs, fits, steps, b)
        idx_t = torch.from_numpy(idx).to(dev)
        w_t = torch.from_numpy(w).to(dev)
        epoch_loss = torch.zeros(g, device=dev)
        for s in range(steps):
            sl = slice(s * b, (s + 1) * b)
            bi, bw = idx_t[:, sl], w_t[:, sl]
            model.set_noise(noise, epoch * steps + s)
            xb = x_dev[bi] if augment is None else augment(x_dev[bi], rngs)
            # a batch without padding needs no per-sample weights (fused batch norm)
            out = model(xb, None if w[:, sl].all() else bw)
            loss = fr_loss(out, y_dev[bi], bw, config.lam, cw, config.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            opt.step()
            epoch_loss += loss.detach()
        last_loss = epoch_loss / steps
        _check_finite(last_loss, jobs, epoch)
        if curves:
            loss_curve.append(last_loss.float().cpu().numpy())
            test_curve.append(_probs16(_logits(model, x_dev, t_idx)))
        if inner:
            v_logits = _logits(model, x_dev, v_idx)
            if curves:
                val_curve.append(_probs16(v_logits))
            pred = v_logits.argmax(-1)
            score = macro_f1_per_model(pred, v_y, v_w_t, k)
            better = score > best
            if bool(better.any()):
                best = torch.where(better, score, best)
                best_epoch[better.cpu().numpy()] = epoch + 1
                for snap, cur in zip(snapshot, model.state_dict().values(), strict=True):
                    sv, cv = snap.view(g, -1), cur.view(g, -1)
                    sv[better] = cv[better]
        bar.update(g)
    model.set_noise(None)
    if inner:
        with torch.no_grad():
            for snap, cur in zip(snapshot, model.state_dict().values(), strict=True):
                cur.copy_(snap)
        evaluated = best_epoch
    else:
        evaluated = np.full(g, config.epochs)
    job_curves = None
    if curves:
        test_all = np.stack(test_curve, axis=1)  # (G, E, T, K)
        loss_all = np.stack(loss_curve, axis=1)  # (G, E)
        val_all = np.stack(val_curve, axis=1) if inner else None
        job_curves = []
        for gi, job in enumerate(jobs):
            v = vals[gi]
            job_curves.append({
                "test": test_all[gi, :, : len(job.test_idx)],
                "inner_val": (val_all[gi, :, : len(v)] if val_all is not None
                              else np.zeros((config.epochs, 0, k), dtype=np.float16)),
                "inner_val_index": np.asarray(v, dtype=np.int64),
                "train_loss": loss_all[gi].astype(np.float32),
            })
    return model, evaluated, last_loss.cpu().numpy(), job_curves


def _probs16(logits: torch.Tensor) -> np.ndarray:
    """Class probabilities ``(G, T, K)`` of logits, as float16 on the host."""
    return torch.softmax(logits.float(), dim=-1).cpu().numpy().astype(np.float16)


def _check_finite(epoch_loss: torch.Tensor, jobs: list[Job], epoch: int) -> None:
    """Stop at the first epoch whose training loss is not finite, naming the job."""
    bad = ~torch.isfinite(epoch_loss)
    if bool(bad.any()):
        gi = int(torch.nonzero(bad)[0])
        raise TrainingDiverged(
            f"job {jobs[gi].key}: the training loss became {float(epoch_loss[gi])} at epoch "
            f"{epoch + 1}; the model diverged (try a lower lr). Folds finished before it "
            "are kept.")


def _augmenter(config: TrainConfig, dev: torch.device
               ) -> Callable[[torch.Tensor, list[np.random.Generator]], torch.Tensor] | None:
    """The training-side augmentation of ``config`` (None when it asks for none).

    Draws come from each job's own generator, so a job is augmented the same way
    whatever group it trains in. A horizontal flip mirrors every channel and negates
    the horizontal flow u; on flow min-max scaled to 0..1 per image (the flow set's
    and mefr's preprocessing), negating u is ``1 - u``.
    """
    flip, shift = config.augment_flip, config.augment_shift
    if not flip and shift == 0:
        return None
    u_channel = config.channels.index("u") if "u" in config.channels else None

    def apply(xb: torch.Tensor, rngs: list[np.random.Generator]) -> torch.Tensor:
        g, n = xb.shape[:2]
        if flip:
            mask = np.stack([rng.random(n) < 0.5 for rng in rngs])
            xb = flip_flow(xb, torch.from_numpy(mask).to(dev), u_channel)
        if shift:
            offsets = np.stack([rng.integers(-shift, shift + 1, size=(n, 2)) for rng in rngs])
            xb = shift_images(xb, torch.from_numpy(offsets).to(dev), shift)
        return xb

    return apply


def flip_flow(x: torch.Tensor, mask: torch.Tensor, u_channel: int | None) -> torch.Tensor:
    """Mirror the images of ``x`` ``(G, B, C, H, W)`` where ``mask`` ``(G, B)`` is true.

    A mirrored face moves the other way horizontally, so the u channel (min-max scaled
    to 0..1) becomes ``1 - u`` after mirroring; v and strain are only mirrored.
    """
    flipped = torch.flip(x, dims=(-1,))
    if u_channel is not None:
        flipped = flipped.clone()
        flipped[:, :, u_channel] = 1.0 - flipped[:, :, u_channel]
    m = mask.view(*mask.shape, 1, 1, 1)
    return torch.where(m, flipped, x)


def shift_images(x: torch.Tensor, offsets: torch.Tensor, pad: int) -> torch.Tensor:
    """Shift each image of ``x`` ``(G, B, C, H, W)`` by ``offsets`` ``(G, B, 2)`` pixels
    (dy, dx, each in ``-pad..pad``), repeating the edge pixels into the gap."""
    g, b, c, h, w = x.shape
    flat = x.reshape(g * b, c, h, w)
    padded = torch.nn.functional.pad(flat, (pad, pad, pad, pad), mode="replicate")
    off = offsets.reshape(g * b, 2).to(torch.int64)
    rows = (pad - off[:, 0:1]) + torch.arange(h, device=x.device)  # (N, H)
    cols = (pad - off[:, 1:2]) + torch.arange(w, device=x.device)  # (N, W)
    n_idx = torch.arange(g * b, device=x.device).view(-1, 1, 1, 1)
    c_idx = torch.arange(c, device=x.device).view(1, -1, 1, 1)
    out = padded[n_idx, c_idx, rows.view(-1, 1, h, 1), cols.view(-1, 1, 1, w)]
    return out.reshape(g, b, c, h, w)
