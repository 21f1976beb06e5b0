"""The provenance of a report: its source (data; hardware), the data / hardware / preset /
training notes, the per-seed timing notes and the subject-bootstrap notes of the
"A minus B" rows, and how well each row's recipe fits its training subjects."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mefr.evaluate.audit import format_loss
from mefr.evaluate.rundir import RunDir
from mefr.report.runs import (
    RunOutcome,
    RunRef,
    Runs,
    describe_run_hardware,
    seed_hardware,
    seed_list,
)
from mefr.report.tables import Row
from mefr.report.targets import TableSpec


def train_text(cfg: dict[str, Any]) -> str:
    """The training settings of a run's config.yaml in one phrase."""
    t = cfg.get("train") or {}
    opt = f"{t.get('optimizer')} lr {t.get('lr')}"
    if t.get("optimizer") == "sgd":
        opt += f" momentum {t.get('momentum')}"
    return (f"{opt}, batch {t.get('batch_size')}, {t.get('epochs')} epochs, "
            f"lambda {t.get('lam')}, epoch selection {t.get('select_epoch_by')}")


def _finished(outcomes: dict[RunRef, RunOutcome], refs: Sequence[RunRef]) -> list[RunOutcome]:
    return [outcomes[r] for r in refs if r in outcomes]


def provenance(refs: Sequence[RunRef], outcomes: dict[RunRef, RunOutcome]) -> str:
    """``[data; hardware]`` of the runs ``refs`` (every machine that trained a seed, once)."""
    data = []
    if any(not r.synthetic for r in refs):
        data.append("MEGC 2019 composite flow set")
    if any(r.synthetic for r in refs):
        data.append("synthetic databases")
    hw: dict[str, None] = {}
    for r in refs:
        o = outcomes.get(r)
        if o is not None and o.config and o.metrics:
            seeds = [int(s) for s in o.metrics.get("seeds", [])]
            for text in seed_hardware(o.ref.run_dir, seeds).values():
                hw.update(dict.fromkeys(text.split(" + ")))
    parts = [" + ".join(data)] if data else []
    if hw:
        # each machine once; the Hardware notes say which run and seed used which
        parts.append(", ".join(hw))
    return f"[{'; '.join(parts)}]" if parts else ""


def run_hardware(out: RunOutcome) -> str:
    """The hardware of a finished run, by seed (see :func:`describe_run_hardware`)."""
    seeds = [int(s) for s in (out.metrics or {}).get("seeds", [])]
    return describe_run_hardware(out.ref.run_dir, seeds)


def _source_name(source: str) -> str:
    """``flowset:/any/where/megc2019-cde-flow`` -> ``flowset megc2019-cde-flow``: the data
    by name, not by the path of the machine that read it."""
    from mefr.preprocess.sources import split_source

    scheme, path = split_source(source)
    return f"{scheme} {Path(path.split(' (')[0]).name}" if scheme else source


def run_notes(refs: Sequence[RunRef], runs: Runs) -> list[str]:
    """Data, hardware, preset, training and selection of the runs ``refs``; the
    unfinished ones."""
    notes: list[str] = []
    outs = _finished(runs.outcomes, refs)
    real = [o for o in outs if not o.ref.synthetic and o.config and o.metrics]
    if real:
        srcs = sorted({_source_name(str(o.config.get("features"))) for o in real})
        notes.append("Real data: the MEGC 2019 composite flow set (SMIC-HS 164, CASME II "
                     f"145, SAMM 133 clips, 3 classes; {', '.join(srcs)}).")
    if any(o.ref.synthetic for o in outs):
        notes.append(f"Synthetic data: {runs.options.synthetic.describe()}.")
    groups: dict[str, dict[str, list[str]]] = {"Hardware": {}, "Preset": {}, "Training": {}}
    for o in outs:
        if o.config and o.metrics:
            where = str(o.ref.run_dir)
            groups["Hardware"].setdefault(run_hardware(o), []).append(where)
            groups["Preset"].setdefault(o.ref.preset, []).append(where)
            groups["Training"].setdefault(train_text(o.config), []).append(where)
    n_runs = sum(len(d) for d in groups["Hardware"].values())
    for label, texts in groups.items():
        for text, dirs in texts.items():
            where = "all runs" if len(dirs) == n_runs else ", ".join(dirs)
            notes.append(f"{label}: {text} ({where}).")
    sel = sorted({o.metrics["selection"] for o in outs if o.metrics})
    notes += [f"Selection: {s}." for s in sel]
    if outs and any(o.metrics for o in outs):
        notes.append("Acc, UF1 and UAR (Eqs. 9-13) are computed once on the pooled "
                     "predictions of all folds of a seed.")
    missing = [str(o.ref.run_dir) for o in outs if o.metrics is None]
    if missing:
        notes.append("Not yet run: " + ", ".join(missing) + ".")
    return notes


def timing_notes(spec: TableSpec, rows: Sequence[Row]) -> list[str]:
    """Per-seed ET of every timed cell with several seeds: a wall-clock time depends on
    what else the machine ran, so the spread of an ET cell is not the model's."""
    notes = []
    for col in spec.columns:
        if col.metric != "et_s":
            continue
        for r in rows:
            c = r.cells.get(col.key)
            if c is None or len(c.values) < 2:
                continue
            per_seed = ", ".join(f"seed {s} {v:.1f} s"
                                 for s, v in zip(c.seeds, c.values, strict=True))
            notes.append(f"ET per seed, {r.label}, {col.header.removesuffix(' ET (s)')} "
                         f"({c.run_dir}): {per_seed}. Wall-clock seconds on the hardware "
                         "listed; a seed that shared the machine with another run is "
                         "slower, so the spread measures machine load, not the model.")
    return notes


def bootstrap_notes(compared: Sequence[tuple[str, str, Row, Row]]) -> list[str]:
    """For each difference ``(label A, label B, row A, row B)`` whose two runs have
    predictions: the subject-bootstrap interval of the composite difference
    (:mod:`mefr.evaluate.compare`)."""
    from mefr.evaluate.compare import compare_runs
    from mefr.evaluate.metrics import COMPOSITE

    notes = []
    for a, b, ra, rb in compared:
        key = next(iter(ra.cells))
        ca, cb = ra.cells[key], rb.cells.get(key)
        if cb is None or not (ca.measured and cb.measured) or ca.synthetic != cb.synthetic:
            continue
        dirs = [Path(c.run_dir) for c in (ca, cb) if c.run_dir]
        if len(dirs) != 2 or not all(RunDir(d).predictions_path.is_file() for d in dirs):
            continue
        try:
            found = compare_runs(*dirs, databases=(COMPOSITE,), replicates=2000)
        except ValueError:  # runs on other clips or seeds: nothing to pair
            continue
        parts = [f"{r.metric.upper()} {r.difference:+.4f} [{r.low:+.4f}, {r.high:+.4f}], "
                 f"ahead in {100 * r.share_a_better:.0f}% of draws" for r in found]
        seeds = ",".join(str(v) for v in found[0].seeds)
        notes.append(f"{a} minus {b}, composite, 95% interval of a paired bootstrap over "
                     f"the {found[0].subjects} subjects ({found[0].replicates} draws, seeds "
                     f"{seeds}; `mefr compare {dirs[0]} {dirs[1]}`): " + "; ".join(parts)
                     + ". It measures how much the difference depends on which subjects "
                     "were recorded; the paired-by-seed row measures training noise.")
    return notes


def fit_notes(rows: Sequence[tuple[str, RunRef]], runs: Runs) -> list[str]:
    """For each ``(row label, run)`` with finished seeds: the median training loss after
    the last epoch over the folds of those seeds (fold JSONs' ``final_train_loss``), and
    each seed's median. Near zero: the recipe fits the training subjects; far from it:
    the network is under-fit, whatever it scores on the test subjects."""
    notes = []
    for label, ref in rows:
        metrics = runs.outcome(ref).metrics
        if not metrics:
            continue
        run = RunDir(ref.run_dir)
        losses = {int(s): found for s in metrics.get("seeds", [])
                  if (found := [float(i["final_train_loss"]) for i in run.fold_infos(int(s))
                                if isinstance((i or {}).get("final_train_loss"), int | float)])}
        if not losses:
            continue
        every = [v for s in sorted(losses) for v in losses[s]]
        text = (f"{label}: training loss after the last epoch, median "
                f"{format_loss(float(np.median(every)))} over the {len(every)} folds of "
                f"{seed_list(sorted(losses))}")
        if len(losses) > 1:
            text += " (per seed " + ", ".join(format_loss(float(np.median(losses[s])))
                                               for s in sorted(losses)) + ")"
        notes.append(text + ".")
    if notes:
        notes.insert(0, "How well each recipe fits the training subjects: the mean training "
                        "loss of the last epoch (Eq. 8, lambda * L_prop + L_cls; L_cls alone "
                        "for a network without detectors), near 0 when fitted, far from 0 "
                        "when under-fit, whatever the test score:")
    return notes
