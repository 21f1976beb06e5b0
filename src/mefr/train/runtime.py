"""Where and how big the engine trains: devices, CUDA flags, memory, networks, progress.

:func:`resolve_device` turns ``auto`` / ``cpu`` / ``cuda[:N]`` into a device;
:func:`set_cuda_flags` sets TF32 and cuDNN autotuning (off with ``deterministic``);
:func:`bytes_per_model` and :func:`default_max_models` size the groups;
:func:`build_network` is the one place the engine builds a network from a
:class:`~mefr.train.config.TrainConfig`, and :func:`load_network` the same network with
trained weights.
"""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from mefr.models.base import GroupNet
from mefr.models.registry import create_model, model_entry
from mefr.train.config import TrainConfig


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cpu`` / ``cuda`` / ``cuda:N`` as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but torch sees no CUDA device")
    return dev


def set_cuda_flags(deterministic: bool) -> None:
    """TF32 matrix products and autotuned cuDNN kernels, or (``deterministic``) full
    precision and deterministic kernels whose results do not depend on the group."""
    torch.backends.cuda.matmul.allow_tf32 = not deterministic
    torch.backends.cudnn.allow_tf32 = not deterministic
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic


def device_name(dev: torch.device) -> str:
    """``"cuda (NVIDIA H200)"`` or ``"cpu (x86_64, 16 cores)"``: the info's ``device``."""
    if dev.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(dev)})"
    return f"cpu ({platform.machine()}, {os.cpu_count()} cores)"


def network_kwargs(config: TrainConfig) -> dict[str, Any]:
    """The constructor arguments of ``config.model``: ``config.model_kwargs``, plus the
    training setting ``dropout`` for networks whose registry entry uses it."""
    kw = dict(config.model_kwargs)
    if model_entry(config.model).uses_dropout:
        kw.setdefault("dropout", config.dropout)
    return kw


def build_network(config: TrainConfig, num_classes: int, seeds: Sequence[int],
                  device: torch.device | str = "cpu") -> GroupNet:
    """A group of ``len(seeds)`` networks of ``config`` on ``device``, model g
    initialised from ``seeds[g]`` on that device (built under ``torch.device("meta")``:
    shapes only)."""
    with torch.device(device):
        return create_model(config.model, num_classes, len(seeds), seed=list(seeds),
                            **network_kwargs(config))


def load_network(config: TrainConfig, num_classes: int, state: Mapping[str, Any],
                 device: torch.device | str = "cpu") -> GroupNet:
    """The G = 1 network of ``config`` holding the weights ``state`` (tensors or arrays by
    name, e.g. a fold's kept weights, :meth:`mefr.evaluate.rundir.RunDir.weights`), on
    ``device`` in eval mode; every weight of the network must be given, and no other."""
    net = build_network(config, num_classes, [0], device)
    net.load_state_dict({n: torch.as_tensor(v) for n, v in state.items()}, strict=True)
    return net.eval()


def bytes_per_model(config: TrainConfig, num_classes: int, in_shape: tuple[int, ...]) -> int:
    """Device memory one model of a group needs while training (an estimate).

    Parameters, gradients and optimiser state, a best-epoch copy for inner
    validation, plus the activations of one batch (measured on a meta-device forward
    as the sum of the outputs' sizes, times 4 for backward buffers).
    """
    m = build_network(config, num_classes, [0], "meta")
    n = sum(p.numel() for p in m.parameters())
    states = 2 if config.optimizer == "adam" else (1 if config.momentum else 0)
    copies = 2 + states + (1 if config.select_epoch_by == "inner_val" else 0)
    per_sample = 4 * (8 * math.prod(in_shape) * 40 + 4 * 1024 * (num_classes + 4))
    return 4 * n * copies + config.batch_size * per_sample


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


class _NoBar:
    def update(self, n: int = 1) -> None: ...
    def close(self) -> None: ...


def progress_bar(total: int, enabled: bool, desc: str) -> Any:
    """A tqdm bar counting model-epochs (stderr), or a silent stand-in when disabled."""
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="model-epoch", smoothing=0.1)
