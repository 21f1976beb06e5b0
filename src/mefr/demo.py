"""``mefr demo``: the whole pipeline on the embedded synthetic databases.

1. write small synthetic CASME II, SAMM and SMIC-HS databases in their real on-disk
   formats (or reuse them),
2. read them back with the readers, label them with the CDE protocol (Table 9),
3. detect faces, take the annotated apex (Eq. (1) for SMIC), compute TV-L1 flow, 28x28
   (cached),
4. run the CDE protocol (composite LOSO) with FR and print the UF1 / UAR table.

It runs in a few minutes on two CPU cores. The synthetic classes differ by a brief,
low-amplitude facial motion; they are far easier than real micro-expressions, so the
scores show that the pipeline learns, not how FR compares with other methods.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from mefr.evaluate.runner import RunResult, run_protocol
from mefr.train.config import resolve_config

#: Size of the embedded default: 3 databases x 4 subjects x 6 clips (66 CDE clips).
DEMO_SUBJECTS = 4
DEMO_CLIPS = 6
DEMO_EPOCHS = 30
#: What the default demo leaves on disk, in MB (mostly the synthetic raw frames).
DEMO_DISK_MB = 280


@dataclass(frozen=True)
class DemoResult:
    run: RunResult
    clips: int
    failures: int
    seconds: dict[str, float]


def run_demo(
    out: str | Path = "mefr-demo",
    model: str = "fr",
    epochs: int = DEMO_EPOCHS,
    seeds: str = "0",
    device: str = "auto",
    subjects: int = DEMO_SUBJECTS,
    clips: int = DEMO_CLIPS,
    progress: bool = True,
) -> DemoResult:
    """Synthetic databases -> features -> CDE with ``model``; returns the run's result.

    Everything lands under ``out``: ``databases/`` (the synthetic raw data), ``cache/``
    (the feature store) and ``runs/cde_<model>_<epochs>ep/`` (the run directory). A
    second call reuses all three.
    """
    from mefr.data.synthetic import write_synthetic_databases
    from mefr.predict import load_training_data

    out = Path(out)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    db_root = out / "databases"
    if not any(db_root.glob("**/synthetic_truth.csv")):
        write_synthetic_databases(db_root, subjects=subjects, clips_per_subject=clips)
    seconds["synthetic databases"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    data = load_training_data([f"synthetic:{db_root}"], protocol="cde",
                              cache_dir=out / "cache", progress=progress)
    seconds["faces, apex, TV-L1 flow"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    config = resolve_config("cde", overrides={"model": model, "epochs": epochs})
    fs = data.features
    run = run_protocol(fs, "cde", config, seeds, out / "runs" / f"cde_{model}_{epochs}ep",
                       device=device, progress=progress, data_source=f"synthetic:{db_root}")
    seconds["CDE protocol (LOSO)"] = time.perf_counter() - t0
    return DemoResult(run, len(fs.table), len(getattr(fs, "failures", ())), seconds)
