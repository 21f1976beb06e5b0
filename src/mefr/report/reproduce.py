"""Every table and figure of the paper, one command each (``mefr reproduce NAME``).

A target (``table1`` ... ``table8``, ``fig3``, ``fig4``) is a list of cells; each cell
names an *experiment* (a protocol on a data set), a network and a metric, as declared in
:mod:`mefr.report.targets`. :class:`Reproducer` runs every (experiment, network) the
target needs through :func:`mefr.evaluate.runner.run_protocol` into a run directory -
reusing finished runs, resuming partial ones - and renders the target beside the paper's
numbers. The work is split by job:

* :mod:`mefr.report.options` - :class:`ReproduceOptions`, :class:`SyntheticSpec`;
* :mod:`mefr.report.features` - the inputs of the runs (flow set or synthetic databases);
* :mod:`mefr.report.runs` - run references, their directories and outcomes;
* :mod:`mefr.report.build` - a table from its spec and the runs;
* :mod:`mefr.report.notes` - provenance notes; :mod:`mefr.report.fig3`,
  :mod:`mefr.report.fig4` - the figures; :mod:`mefr.report.tables` - rendering.

Data
----
``--data real`` uses the pre-computed MEGC 2019 composite flow set (SMIC-HS 164, CASME II
145, SAMM 133 clips, 3 classes, onset->apex u/v/strain) wherever it can serve: the CDE
protocol (Tables 1, 2, 6, 8, Fig. 3, Fig. 4) and SMIC-HS alone (``loso:smic_hs``,
Tables 5, 7, 8). Everything else runs on synthetic databases
(:mod:`mefr.data.synthetic`, preprocessed by :mod:`mefr.preprocess`) and is marked so:
CDMER (Tables 3, 4; needs SMIC-VIS/NIR and CASME II with its own labels), CASME II and
SAMM alone (4 and 5 classes), Dual-Inception (needs onset->middle-frame flow) and LBP-TOP
(needs the face frames).
``--data synthetic`` runs everything on synthetic databases.

Run directories (see ``results/README.md``)
-------------------------------------------
``<results>/<experiment>/<model>[-<preset>][-e<epochs>]`` on real data and
``<results>/synthetic[/<spec>]/<experiment>/<model>...`` on synthetic data, where
``<experiment>`` is ``cde``, ``loso/smic_hs``, ``loso/casme2_5class``,
``loso/casme2_4class``, ``loso/samm_4class`` or ``cdmer/exp01`` ... ``cdmer/exp12``; the
preset suffix appears only when it differs from the experiment's default preset, the
epochs suffix only when ``--epochs`` changes the preset's epochs, ``<spec>`` only for a
non-default synthetic size. Fig. 4 keeps its split, features and t-SNE in
``<results>/[synthetic/]fig4[...]``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mefr.evaluate.rundir import NOT_RUN
from mefr.report.build import build_table, plan_table
from mefr.report.features import FeatureSource
from mefr.report.fig3 import fig3, plan_fig3
from mefr.report.fig4 import fig4, fig4_done
from mefr.report.figures import save_figure
from mefr.report.options import ReproduceError, ReproduceOptions
from mefr.report.runs import RunOutcome, RunRef, Runs, run_status
from mefr.report.tables import ReportTable, to_caption, write_table
from mefr.report.targets import TABLE_SPECS, TARGETS

__all__ = [
    "Reproducer",
    "reproduce",
    "target_names",
]


logger = logging.getLogger(__name__)


class Reproducer:
    """Runs and renders targets; caches feature sets and run outcomes across targets."""

    def __init__(self, options: ReproduceOptions | None = None) -> None:
        self.options = options or ReproduceOptions()
        self.features = FeatureSource(self.options)
        self.runs = Runs(self.options, self.features)

    def ref(self, experiment: str, model: str, force_synthetic: bool = False,
            preset: str | None = None) -> RunRef:
        """The run of ``model`` under ``experiment`` (under ``preset``, else
        ``--preset``) and its directory."""
        return self.runs.ref(experiment, model, force_synthetic, preset)

    def fig4_dir(self) -> Path:
        """Where Fig. 4 keeps its split, features and t-SNE map."""
        return self.runs.fig4_dir()

    def outcome(self, ref: RunRef) -> RunOutcome:
        """Run (or resume, or reuse) ``ref``; without training, read what is there."""
        return self.runs.outcome(ref)

    def plan(self, name: str) -> list[RunRef]:
        """The runs target ``name`` reads, in order, without duplicates."""
        if name in TABLE_SPECS:
            return plan_table(name, self.runs)
        if name == "fig3":
            return plan_fig3(self.runs)
        if name == "fig4":
            return []
        raise ReproduceError(f"unknown target {name!r}; known: {TARGETS}")

    def table(self, name: str) -> ReportTable:
        """Run what table ``name`` needs and return it beside the paper's numbers."""
        return build_table(name, self.runs)

    def fig3(self) -> tuple[ReportTable, Any]:
        """Fig. 3 (:func:`mefr.report.fig3.fig3`)."""
        return fig3(self.runs)

    def fig4(self) -> tuple[ReportTable, Any]:
        """Fig. 4 (:func:`mefr.report.fig4.fig4`)."""
        return fig4(self.runs)

    def status_lines(self, name: str) -> list[tuple[str, bool]]:
        """``(line, finished)`` for each run target ``name`` reads: its directory, data
        kind, preset and state."""
        out = []
        for ref in self.plan(name):
            status = run_status(ref.run_dir)
            kind = "synthetic" if ref.synthetic else "real"
            out.append((f"{name}: {ref.run_dir} [{kind}, preset {ref.preset}] {status}",
                        status.startswith("complete")))
        if name == "fig4":
            d = self.fig4_dir()
            kind = "synthetic" if self.runs.is_synthetic("cde", "fr") else "real"
            done = fig4_done(d)
            out.append((f"{name}: {d} [{kind}, preset {self.runs.preset_for('cde')}] "
                        f"{'complete' if done else NOT_RUN}", done))
        return out

    def reproduce(self, name: str) -> dict[str, Path]:
        """Run what target ``name`` needs and write ``<out>/<name>.md/.csv/.tex`` (and
        ``.png`` with its ``.caption.txt`` for figures); return the paths written by
        suffix. Without training, a run that is not finished is an error (naming it)
        unless ``allow_missing``. Nothing is printed: the state of each run is logged
        (``mefr.report.reproduce``, INFO) and returned by :meth:`status_lines`."""
        if name not in TARGETS:
            raise ReproduceError(f"unknown target {name!r}; known: {TARGETS} (or 'all')")
        lines = self.status_lines(name)
        for line, _ in lines:
            logger.info("%s", line)
        missing = [line.split(": ", 1)[1] for line, done in lines if not done]
        if missing and not (self.options.train or self.options.allow_missing):
            results = Path(self.options.results).resolve()
            raise ReproduceError(
                f"{name}: {len(missing)} of the {len(lines)} runs it needs are not finished "
                f"under {results}: " + "; ".join(missing) + f". Train them (`mefr reproduce "
                f"{name}` without --no-train), point --results at the folder holding them, "
                "or pass --allow-missing to render the finished ones only")
        out_dir = self.options.out_dir
        if name in TABLE_SPECS:
            return write_table(self.table(name), out_dir)
        table, fig = self.fig3() if name == "fig3" else self.fig4()
        paths = write_table(table, out_dir)
        if fig is not None:
            paths["png"] = save_figure(fig, out_dir / f"{name}.png")
            caption = out_dir / f"{name}.caption.txt"
            caption.write_text(to_caption(table), encoding="utf-8")
            paths["caption"] = caption
        return paths


def target_names(names: str | Sequence[str]) -> list[str]:
    """``"all"`` -> every one of :data:`TARGETS`; a name -> ``[name]``."""
    if isinstance(names, str):
        return list(TARGETS) if names == "all" else [names]
    return list(names)


def reproduce(names: str | Sequence[str], options: ReproduceOptions | None = None
              ) -> dict[str, dict[str, Path]]:
    """Reproduce targets (``"all"`` = every one of :data:`TARGETS`) sharing one
    :class:`Reproducer`; returns ``{target: {suffix: path}}``."""
    rep = Reproducer(options)
    return {n: rep.reproduce(n) for n in target_names(names)}
