"""What the engine reports per job: the first epoch's training loss beside the last, so a
run that learned nothing can be told (issue 38 item 5); and a library that prints nothing
unless asked (issue 38 item 3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mefr.models.registry import create_model
from mefr.train.config import TrainConfig
from mefr.train.engine import train_group
from mefr.train.jobs import Job, job_seed

SMALL = {"hidden": 16, "widths": (2, 2)}


def _data(n: int = 30) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    y = np.arange(n) % 3
    x = rng.normal(0, 0.5, (n, 2, 28, 28)).astype(np.float32)
    x[y == 1, 0] += 1.0
    return x, y


def test_initial_train_loss_is_the_first_epochs_loss_of_the_initial_model() -> None:
    """With one step per epoch the first epoch's mean loss is the cross-entropy (Eq. 7) of
    the freshly initialised model on all training rows, computed here independently."""
    x, y = _data()
    job = Job("only", 3, np.arange(24), np.arange(24, 30))
    cfg = TrainConfig(model="basic_inception", model_kwargs=SMALL, epochs=3, batch_size=24,
                      lr=1e-2)
    res = train_group(x, y, [job], cfg, 3, device="cpu", workers=1, curves=True)
    info = res.info["only"]
    model = create_model("basic_inception", 3, seed=job_seed(job), **SMALL).train()
    with torch.no_grad():
        logits = model(torch.from_numpy(x[:24])).logits
    expected = F.cross_entropy(logits, torch.from_numpy(y[:24])).item()
    assert info["initial_train_loss"] == pytest.approx(expected, rel=1e-5)
    curve = info["curves"]["train_loss"]
    assert info["initial_train_loss"] == pytest.approx(float(curve[0]), rel=1e-6)
    assert info["final_train_loss"] == pytest.approx(float(curve[-1]), rel=1e-6)
    assert info["final_train_loss"] < info["initial_train_loss"]  # lr 1e-2 does learn


def test_initial_loss_reaches_the_info_through_worker_processes() -> None:
    x, y = _data()
    jobs = [Job(f"j{i}", 0, np.arange(24), np.arange(24, 30)) for i in range(2)]
    cfg = TrainConfig(model="basic_inception", model_kwargs=SMALL, epochs=1, batch_size=8)
    res = train_group(x, y, jobs, cfg, 3, device="cpu", workers=2)
    for j in jobs:
        info = res.info[j.key]
        assert np.isfinite(info["initial_train_loss"])
        assert info["initial_train_loss"] == info["final_train_loss"]  # one epoch


def test_training_prints_nothing_by_default(capfd: pytest.CaptureFixture[str]) -> None:
    x, y = _data()
    job = Job("only", 0, np.arange(24), np.arange(24, 30))
    cfg = TrainConfig(model="basic_inception", model_kwargs=SMALL, epochs=1)
    create_model("fr")
    train_group(x, y, [job], cfg, 3, device="cpu", workers=1)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    train_group(x, y, [job], cfg, 3, device="cpu", workers=1, progress=True)
    assert "model-epoch" in capfd.readouterr().err  # asked for: a progress bar
