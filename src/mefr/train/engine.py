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

import logging
import math
import os
import time
from typing import Any

import numpy as np
import torch

from mefr.models.base import GroupNet
from mefr.models.registry import is_handcrafted
from mefr.train.augment import make_augmenter
from mefr.train.batches import (
    class_weights,
    epoch_batches,
    eval_logits,
    padded,
    predict_tests,
    probs16,
)
from mefr.train.config import TrainConfig
from mefr.train.handcrafted import train_handcrafted
from mefr.train.jobs import (
    GroupResult,
    Job,
    OnResult,
    inner_split,
    job_seed,
    plan_groups,
)
from mefr.train.losses import fr_loss
from mefr.train.runtime import (
    build_network,
    default_max_models,
    device_name,
    progress_bar,
    resolve_device,
    set_cuda_flags,
)
from mefr.train.workers import (
    check_not_bootstrapping,
    spawn_unsafe_reason,
    train_in_processes,
    worker_data,
)

__all__ = [
    "TrainingDiverged",
    "macro_f1_per_model",
    "make_optimizer",
    "train_group",
    "train_one_in_worker",
]

log = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """A job's training loss became NaN or infinite; the job was stopped there."""


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


def train_group(
    x: np.ndarray,
    y: np.ndarray,
    jobs: list[Job],
    config: TrainConfig,
    num_classes: int,
    groups: np.ndarray | None = None,
    device: str = "auto",
    on_result: OnResult | None = None,
    progress: bool = False,
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
    progress : show a progress bar (tqdm, on stderr); off by default, so that the library
        writes nothing unless asked (the CLI asks).
    return_models : keep the trained single models (``GroupResult.models``).
    max_models : models per group (default: as many as fit, see
        :func:`default_max_models`).
    workers : CPU only: jobs trained in parallel processes, each with
        ``cores // workers`` threads (default: one per core when there are several
        jobs). Two single-threaded processes beat one two-threaded one on small ops.
        Where new processes cannot start safely (a script without an ``if __name__ ==
        "__main__":`` guard, code from stdin; :func:`mefr.train.workers.spawn_unsafe_reason`)
        the jobs train in this process, one after another, and a warning is logged.
    deterministic : CUDA only: full-precision matrix products, deterministic cuDNN
        kernels (slower; results independent of how jobs are grouped).
    curves : record each job's learning curves in ``info["curves"]``
        (:data:`mefr.train.jobs.CURVE_ARRAYS`); the predictions are the same either way.

    Raises
    ------
    TrainingDiverged : a job's training loss became non-finite (named, with its epoch).
    WorkerDied : (:mod:`mefr.train.workers`) a worker process ended without a result
        (killed, out of memory).
    """
    if is_handcrafted(config.model):  # no network: a scikit-learn classifier per job
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
            check_not_bootstrapping()
            unsafe = spawn_unsafe_reason()
            if unsafe is None:
                return train_in_processes(x, y, jobs, config, num_classes, groups, on_result,
                                          progress, return_models, n_workers,
                                          train_one_in_worker, curves)
            log.warning("training %d jobs one after another in this process: %s",
                        len(jobs), unsafe)
    if dev.type == "cuda":
        set_cuda_flags(deterministic)
    return _train_here(x, y, jobs, config, num_classes, groups, dev, on_result, progress,
                       return_models, max_models, deterministic, curves)


def _train_here(x: np.ndarray, y: np.ndarray, jobs: list[Job], config: TrainConfig,
                num_classes: int, groups: np.ndarray | None, dev: torch.device,
                on_result: OnResult | None, progress: bool, return_models: bool,
                max_models: int | None, deterministic: bool, curves: bool) -> GroupResult:
    """:func:`train_group` in this process: groups of at most ``max_models`` jobs."""
    inner = config.select_epoch_by == "inner_val"
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
    bar = progress_bar(total, progress, f"training {len(jobs)} model(s) on {dev.type}")
    try:
        for members in plan:
            t0 = time.perf_counter()
            chunk = _train_chunk(
                x_dev, y_dev, [jobs[i] for i in members], [fits[i] for i in members],
                [vals[i] for i in members], config, num_classes, dev, bar, curves,
            )
            seconds = time.perf_counter() - t0
            model, best_epochs, losses, job_curves = chunk
            probs = predict_tests(model, x_dev, [jobs[i].test_idx for i in members])
            for gi, i in enumerate(members):
                key = jobs[i].key
                result.probs[key] = probs[gi]
                result.info[key] = {
                    "seed": job_seed(jobs[i]),
                    "group_size": len(members),
                    "group_seconds": round(seconds, 3),
                    "epochs": config.epochs,
                    "evaluated_epoch": int(best_epochs[gi]),
                    "initial_train_loss": float(losses[0, gi]),
                    "final_train_loss": float(losses[1, gi]),
                    "train_rows": int(len(fits[i])),
                    "inner_val_rows": int(len(vals[i])),
                    "device": device_name(dev),
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


def train_one_in_worker(job: Job, config: TrainConfig, num_classes: int, return_model: bool,
                        curves: bool = False
                        ) -> tuple[str, np.ndarray, dict[str, Any], dict[str, np.ndarray] | None]:
    """What a CPU worker process runs for one job (:mod:`mefr.train.workers`): train it
    here on the worker's data; the model comes back as numpy arrays when asked for."""
    data = worker_data()
    r = train_group(data["x"], data["y"], [job], config, num_classes, groups=data["groups"],
                    device="cpu", progress=False, return_models=return_model, max_models=1,
                    workers=1, curves=curves)
    state = None
    if return_model:
        state = {k: v.numpy() for k, v in r.models[job.key].state_dict().items()}  # type: ignore[index]
    return job.key, r.probs[job.key], r.info[job.key], state


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
    """Train one group of jobs with equal steps per epoch for ``config.epochs`` epochs.

    Returns the group's model (at the evaluated epochs), the evaluated epoch of each
    job, the ``(2, G)`` mean training losses (Eq. 8) of the first and of the last
    epoch, and the jobs' learning curves when ``curves``.
    """
    g = len(jobs)
    seeds = [job_seed(j) for j in jobs]
    model = build_network(config, k, seeds, dev)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(params, config, dev)
    rngs = [np.random.default_rng(s) for s in seeds]
    noise = torch.tensor(seeds, dtype=torch.int64, device=dev)
    y_np = y_dev.cpu().numpy()
    cw = class_weights(y_np, fits, k, config.class_weighting, dev)
    steps = math.ceil(len(fits[0]) / config.batch_size)
    b = config.batch_size

    inner = any(len(v) for v in vals)
    if inner:
        v_idx, v_w = padded(vals)
        v_w_t = torch.from_numpy(v_w).to(dev)
        v_y = y_dev[torch.from_numpy(v_idx).to(dev)]
        best = torch.full((g,), -1.0, device=dev)
        best_epoch = np.zeros(g, dtype=np.int64)
        snapshot = [t.detach().clone() for t in model.state_dict().values()]
    if curves:
        t_idx, _ = padded([np.asarray(j.test_idx, dtype=np.int64) for j in jobs])
        test_curve: list[np.ndarray] = []
        val_curve: list[np.ndarray] = []
        loss_curve: list[np.ndarray] = []
    augment = make_augmenter(config, dev)
    last_loss = first_loss = torch.zeros(g, device=dev)
    for epoch in range(config.epochs):
        model.train()
        idx, w = epoch_batches(rngs, fits, steps, b)
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
        if epoch == 0:
            first_loss = last_loss
        if curves:
            loss_curve.append(last_loss.float().cpu().numpy())
            test_curve.append(probs16(eval_logits(model, x_dev, t_idx)))
        if inner:
            v_logits = eval_logits(model, x_dev, v_idx)
            if curves:
                val_curve.append(probs16(v_logits))
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
    losses = torch.stack([first_loss, last_loss]).cpu().numpy()
    return model, evaluated, losses, job_curves


def _check_finite(epoch_loss: torch.Tensor, jobs: list[Job], epoch: int) -> None:
    """Stop at the first epoch whose training loss is not finite, naming the job."""
    bad = ~torch.isfinite(epoch_loss)
    if bool(bad.any()):
        gi = int(torch.nonzero(bad)[0])
        raise TrainingDiverged(
            f"job {jobs[gi].key}: the training loss became {float(epoch_loss[gi])} at epoch "
            f"{epoch + 1}; the model diverged (try a lower lr). Folds finished before it "
            "are kept.")


