"""What the benchmark scripts share: the hardware line, the command line, a group's
training step, and printing / saving the Markdown report."""

from __future__ import annotations

import os
import platform
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from mefr.models.registry import create_model
from mefr.train.losses import fr_loss


def cpu_model() -> str:
    """The CPU model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def hardware(device: torch.device) -> str:
    """CPU (and GPU) of this run, with the torch and Python versions."""
    desc = f"CPU: {cpu_model()}, {os.cpu_count()} cores"
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        desc += f"; GPU: {p.name}, {p.total_memory / 2**30:.0f} GiB"
    return desc + f"; torch {torch.__version__}; Python {sys.version.split()[0]}"


def command_line() -> str:
    """How this script was started, quoted for a shell."""
    return "python " + " ".join(shlex.quote(a) for a in sys.argv)


def emit(text: str, out: Path | None) -> None:
    """Print the report and, with ``out``, save it there."""
    text = text.rstrip("\n") + "\n"
    print(text, end="")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)


def group_train_step(model_name: str, g: int, device: torch.device, batch: int = 32,
                     **model_kwargs: object) -> Callable[[], None]:
    """One fused-Adam training step of ``g`` models on random full batches, as a closure."""
    model = create_model(model_name, 3, g, **model_kwargs).to(device)
    model.init_models(list(range(g)))
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)
    x = torch.rand(g, batch, 2, 28, 28, device=device)
    y = torch.randint(0, 3, (g, batch), device=device)
    w = torch.ones(g, batch, device=device)

    def step() -> None:
        loss = fr_loss(model(x, w), y, w).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step
