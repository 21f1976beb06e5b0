"""What each of the paper's tables holds: experiments, columns, rows, notes.

Declarative only: an :class:`Experiment` is a protocol on a data set (one run directory
per network); a :class:`TableSpec` lists the columns (metric, experiment, database) and
rows (network, row of the paper's table, :mod:`mefr.report.paper`) of one target of
``mefr reproduce``. :class:`mefr.report.reproduce.Reproducer` runs and renders them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from mefr.evaluate.metrics import COMPOSITE
from mefr.evaluate.protocols import CDMER_EXPERIMENTS
from mefr.evaluate.summary import DISPLAY_NAMES, METRIC_NAMES
from mefr.model_inputs import flowset_serves

#: The training preset of every run of the reports unless ``--preset`` says otherwise:
#: mefr's one recipe (Adam 1e-4, batch 32, 100 epochs, lambda 0.85), the one
#: results/README.md reports.
DEFAULT_PRESET = "cde"
#: What ``mefr reproduce NAME`` accepts (besides ``all``).
TARGETS: tuple[str, ...] = (
    "table1", "table2", "table3", "table4", "table5", "table6", "table7", "table8",
    "fig3", "fig4", "recipes",
)
#: The recipe FR was found to need (Adam at the paper's lr 1e-3, the epoch chosen on
#: held-out training subjects; docs/training_settings.md), compared with
#: :data:`DEFAULT_PRESET` by the target ``recipes``.
FITTING_PRESET = "paper_adam"


# =========================================================================== experiments
@dataclass(frozen=True)
class Experiment:
    """A protocol on a data set: what one run directory evaluates.

    ``protocol`` is the runner's (:data:`mefr.evaluate.protocols.PROTOCOLS`), ``labels``
    the label protocol (:mod:`mefr.data.labels`), ``databases`` the synthetic databases
    it needs, ``real`` whether the composite flow set can serve it. ``paper_preset`` is
    the training preset of Section 6 of the paper for it (CDE: mefr's ``cde``; CDMER
    and single databases: ``paper_single``, which does not train on SMIC-HS); its run
    directories carry no preset suffix, those of any other preset ``-<preset>``. The
    reports train every experiment with :data:`DEFAULT_PRESET` unless told otherwise.
    """

    key: str
    protocol: str
    labels: str
    databases: tuple[str, ...]
    real: bool
    paper_preset: str
    description: str


_CDMER_DBS = ("smic_hs", "smic_vis", "smic_nir", "casme2")


def _experiments() -> dict[str, Experiment]:
    exps = [
        Experiment("cde", "cde", "cde", ("casme2", "samm", "smic_hs"), True, "cde",
                   "CDE: LOSO over the composite of SMIC-HS, CASME II and SAMM (3 classes)"),
        Experiment("loso/smic_hs", "loso:smic_hs", "cde", ("smic_hs",), True, "paper_single",
                   "LOSO on SMIC-HS alone (3 classes)"),
        Experiment("loso/casme2_5class", "loso:casme2", "casme2_5class", ("casme2",), False,
                   "paper_single", "LOSO on CASME II alone, 5 classes"),
        Experiment("loso/casme2_4class", "loso:casme2", "four_class", ("casme2", "samm"),
                   False, "paper_single", "LOSO on CASME II alone, 4 classes"),
        Experiment("loso/samm_4class", "loso:samm", "four_class", ("casme2", "samm"), False,
                   "paper_single", "LOSO on SAMM alone, 4 classes"),
    ]
    for e in CDMER_EXPERIMENTS:
        exps.append(Experiment(
            f"cdmer/exp{e.number:02d}", f"cdmer:{e.number}", "cdmer", _CDMER_DBS, False,
            "paper_single",
            f"CDMER Exp.{e.number}: {DISPLAY_NAMES[e.source]} -> {DISPLAY_NAMES[e.target]}"))
    return {e.key: e for e in exps}


#: Every experiment a target may need, by key (also its run-directory path).
EXPERIMENTS: dict[str, Experiment] = _experiments()


# =========================================================================== targets
@dataclass(frozen=True)
class ColumnSpec:
    """A column: its key (as in :mod:`mefr.report.paper`), header and what it reads.

    ``metric`` is ``acc``/``uf1``/``uar`` (from metrics.json), ``params_m`` (exact
    parameter count in millions), ``et_s`` (training seconds per fold) or ``average``
    (per-seed mean of the columns ``average_of``). ``experiment`` / ``database``
    override the row's.
    """

    key: str
    header: str
    metric: str
    experiment: str | None = None
    database: str | None = None
    average_of: tuple[str, ...] = ()


@dataclass(frozen=True)
class RowSpec:
    """A row: a network (``None``: a paper-only row) and its row in the paper's table.

    ``synthetic=True`` forces synthetic data (a control row); ``dedupe`` drops the row
    when it reads exactly the runs of an earlier row; ``preset`` trains the row's runs
    with that recipe whatever ``--preset`` says (a table comparing recipes);
    ``ensemble=True`` scores the run's seeds as one ensemble (class probabilities
    averaged per clip, :func:`mefr.evaluate.ensemble.ensemble_of_runs`) instead of
    each seed alone.
    """

    label: str
    model: str | None
    paper: str | None
    experiment: str | None = None
    database: str | None = None
    note: str = ""
    synthetic: bool = False
    dedupe: bool = False
    preset: str | None = None
    ensemble: bool = False


@dataclass(frozen=True)
class TableSpec:
    """A reproducible table: its paper table, columns, rows and caption notes."""

    name: str
    title: str
    columns: tuple[ColumnSpec, ...]
    rows: tuple[RowSpec, ...]
    notes: tuple[str, ...] = ()
    #: (label of row A, label of row B): a row "A - B" of per-seed paired differences
    differences: tuple[tuple[str, str], ...] = ()
    #: a note per row on how well its recipe fits the training subjects (the median
    #: training loss after the last epoch, :func:`mefr.report.notes.fit_notes`)
    fit_notes: bool = False


def _db_cols(dbs: Sequence[str], metrics: Sequence[str]) -> tuple[ColumnSpec, ...]:
    return tuple(ColumnSpec(f"{d}.{m}", f"{DISPLAY_NAMES[d]} {METRIC_NAMES[m]}", m, database=d)
                 for d in dbs for m in metrics)


def _cdmer_cols(numbers: Sequence[int]) -> tuple[ColumnSpec, ...]:
    cols = []
    for n in numbers:
        e = CDMER_EXPERIMENTS[n - 1]
        for m, h in (("uf1", "UF1"), ("acc", "Acc")):
            cols.append(ColumnSpec(f"exp{n:02d}.{m}", f"Exp.{n} {e.name} {h}", m,
                                   experiment=f"cdmer/exp{n:02d}", database=COMPOSITE))
    for m, h in (("uf1", "UF1"), ("acc", "Acc")):
        cols.append(ColumnSpec(f"average.{m}", f"Average {h}", "average",
                               average_of=tuple(f"exp{n:02d}.{m}" for n in numbers)))
    return tuple(cols)


def _paper_rows(names: Sequence[str]) -> tuple[RowSpec, ...]:
    return tuple(RowSpec(n, None, n) for n in names)


_SINGLE = (("smic_hs", "loso/smic_hs", "SMIC-HS"),
           ("casme2_5class", "loso/casme2_5class", "CASME II (5 classes)"),
           ("casme2_4class", "loso/casme2_4class", "CASME II (4 classes)"),
           ("samm_4class", "loso/samm_4class", "SAMM (4 classes)"))
_LBPTOP_NOTE = ("LBP-TOP (mefr's lbptop_svm: LBP-TOP_{8,8,8,1,1,1} histograms of 5x5 face "
                "blocks from onset to offset, standardised, linear SVM with C = 1) needs the "
                "face frames, which the composite flow set lacks: with --data real it runs on "
                "synthetic databases.")
_DUAL_NOTE = ("Dual-Inception needs onset->middle-frame flow, which the composite flow set "
              "(onset->apex) lacks: with --data real it runs on synthetic databases, beside "
              "a Basic Inception on the same synthetic data (the row marked 'same data as "
              "Dual-Inception').")
DIFFERENCE_NOTE = ("'A minus B' rows: per seed, A's score minus B's on the seeds both runs "
                   "have (both trained from the same seeds on the same folds), then mean ± "
                   "std of those differences; paper = the difference of the published "
                   "values.")
_CDMER_NOTE = ("mefr's CDMER trains on all of the source database and tests on all of the "
               "target (Table 10); the paper's Table 11 mentions five-fold cross validation. "
               "SMIC-VIS/NIR and CASME II with CDMER labels are not in the composite flow "
               "set: these columns run on synthetic databases until the raw databases are "
               "prepared.")

_STSTNET_CODE_NOTE = ("For comparison, STSTNet's authors' public code on the same flows, "
                      "its model after the last epoch (no test-fold selection), scores "
                      "composite UF1 0.7209, UAR 0.725: a figure from outside mefr, not "
                      "reproduced here.")


def ensemble_row(row: RowSpec) -> RowSpec:
    """The row that scores ``row``'s runs as one ensemble of their seeds, labelled
    "<label>, ensemble of its seeds" and compared with the same published value."""
    return replace(row, label=f"{row.label}, ensemble of its seeds", note="",
                   dedupe=False, ensemble=True)


def _with_ensembles(*rows: RowSpec) -> tuple[RowSpec, ...]:
    """``rows``, each network's row followed by its :func:`ensemble_row`. Paper-only rows,
    control rows and the rows of networks whose inputs the composite flow set lacks (they
    run on synthetic databases, :func:`mefr.model_inputs.flowset_serves`) stand alone."""
    out: list[RowSpec] = []
    for r in rows:
        out.append(r)
        if r.model is not None and not r.synthetic and flowset_serves(r.model):
            out.append(ensemble_row(r))
    return tuple(out)


def _recipe_rows() -> tuple[RowSpec, ...]:
    return _with_ensembles(*(
        RowSpec(f"{label} ({preset})", model, label, "cde", preset=preset)
        for label, model in (("FR", "fr"), ("Basic Inception", "basic_inception"))
        for preset in (FITTING_PRESET, DEFAULT_PRESET)))


ENSEMBLE_NOTE = ("Rows 'ensemble of its seeds': one score of the run's seeds together, their "
                 "class probabilities averaged per clip (each seed's model was chosen "
                 "without the test fold, so the ensemble is honest); 'Seeds' counts the "
                 "seeds averaged, and there is no ±. An ensemble of N seeds is N models per "
                 "fold, not the single model the paper reports.")


TABLE_SPECS: dict[str, TableSpec] = {
    "table1": TableSpec(
        "table1", "ablations on the CDE composite",
        _db_cols([COMPOSITE], ["uf1", "uar"]),
        _with_ensembles(
            RowSpec("Dual-Inception", "dual_inception", "Dual-Inception", "cde", note="a"),
            RowSpec("Basic Inception", "basic_inception", "Basic Inception", "cde", note="a"),
            RowSpec("Basic Inception", "basic_inception", "Basic Inception", "cde",
                    note="a, same data as Dual-Inception", synthetic=True, dedupe=True),
            RowSpec("FR-fc", "fr_fc", "FR-fc", "cde", note="b"),
            RowSpec("FR-concatenated", "fr_concat", "FR-concatenated", "cde", note="c"),
            RowSpec("FR", "fr", "FR", "cde", note="b, c"),
        ),
        ("(a) backbone: Dual-Inception vs Basic Inception; (b) strategy: FR-fc vs FR; "
         "(c) fusion: FR-concatenated vs FR.", _DUAL_NOTE, ENSEMBLE_NOTE),
        differences=(("FR", "Basic Inception"), ("FR", "FR-fc"), ("FR", "FR-concatenated")),
    ),
    "table2": TableSpec(
        "table2", "CDE protocol, composite and per-database UF1 / UAR",
        _db_cols([COMPOSITE, "smic_hs", "casme2", "samm"], ["uf1", "uar"]),
        _with_ensembles(
            RowSpec("LBP-TOP", "lbptop_svm", "LBP-TOP", "cde"),
            *_paper_rows(["Bi-WOOF", "AlexNet", "GoogLeNet", "VGG16", "CapsuleNet"]),
            RowSpec("OFF-ApexNet", "off_apexnet", "OFF-ApexNet", "cde"),
            RowSpec("Dual-Inception", "dual_inception", "Dual-Inception", "cde"),
            RowSpec("STSTNet", "ststnet", "STSTNet", "cde"),
            RowSpec("EMR", None, "EMR"),
            RowSpec("FR", "fr", "FR", "cde"),
        ),
        ("Per-database scores are the pooled CDE predictions restricted to that database.",
         "Rows without a network in mefr are the paper's numbers only.", _DUAL_NOTE,
         _LBPTOP_NOTE, ENSEMBLE_NOTE),
        differences=(("FR", "OFF-ApexNet"), ("FR", "STSTNet")),
    ),
    "table3": TableSpec("table3", "CDMER Type-I tasks, UF1 / Acc", _cdmer_cols(range(1, 7)),
                        (RowSpec("FR", "fr", "FR"),), (_CDMER_NOTE,)),
    "table4": TableSpec("table4", "CDMER Type-II tasks, UF1 / Acc",
                        _cdmer_cols(range(7, 13)), (RowSpec("FR", "fr", "FR"),),
                        (_CDMER_NOTE,)),
    "table5": TableSpec(
        "table5", "single-database LOSO, Acc",
        tuple(ColumnSpec(f"{k}.acc", h, "acc", experiment=e, database=COMPOSITE)
              for k, e, h in _SINGLE)
        + (ColumnSpec("average.acc", "Average", "average",
                      average_of=tuple(f"{k}.acc" for k, _, _ in _SINGLE)),),
        (*_paper_rows(["Image-based CNN", "3D-FCNN", "CNN + LSTM", "STRCN-A", "STRCN-G"]),
         RowSpec("FR", "fr", "FR")),
        ("SMIC-HS runs on the composite flow set restricted to SMIC-HS (loso:smic_hs); "
         "CASME II and SAMM with 4 / 5 classes are not in the flow set: with --data real "
         "they run on synthetic databases until the raw databases are prepared.",
         "Rows other than FR are the paper's numbers only (Image-based CNN's are cited by "
         "the paper from its reference [31])."),
    ),
    "table6": TableSpec(
        "table6", "Basic Inception vs FR on the CDE composite",
        _db_cols([COMPOSITE], ["uf1", "uar"]),
        _with_ensembles(RowSpec("Basic Inception", "basic_inception", "Basic Inception", "cde"),
                        RowSpec("FR", "fr", "FR", "cde")),
        (ENSEMBLE_NOTE,),
        differences=(("FR", "Basic Inception"),),
    ),
    "table7": TableSpec(
        "table7", "accuracy, parameters and execution time, single databases",
        tuple(
            ColumnSpec(f"{k}.{m}", f"{h} {mh}", m, experiment=e, database=COMPOSITE)
            for k, e, h in (s for s in _SINGLE if s[0] != "casme2_5class")
            for m, mh in (("acc", "Acc"), ("params_m", "Params (M)"), ("et_s", "ET (s)"))
        ),
        (RowSpec("Basic Inception", "basic_inception", "Basic Inception"),
         RowSpec("FR", "fr", "FR")),
        ("Params (M): exact learnable parameters (weights and biases) of mefr's networks, "
         "from mefr.models.registry.model_specs (FR with one-unit detectors), K = 3 for "
         "SMIC-HS and 4 for CASME II / SAMM.",
         "ET (s): mean training seconds per LOSO fold, the engine's group_seconds / "
         "group_size from folds/seed<k>/<fold>.json (testing takes milliseconds and is not "
         "included), on the hardware listed; the paper's ET is its average training + "
         "testing time."),
    ),
    "table8": TableSpec(
        "table8", "FR on SMIC-HS under the three protocols, Acc",
        (ColumnSpec("acc", "SMIC-HS Acc", "acc"),),
        (RowSpec("CDE", "fr", "CDE", "cde", "smic_hs", note="LOSO"),
         RowSpec("CDMER Exp.2: V->H", "fr", "CDMER Exp.2: V->H", "cdmer/exp02", COMPOSITE,
                 note="source -> target"),
         RowSpec("CDMER Exp.4: N->H", "fr", "CDMER Exp.4: N->H", "cdmer/exp04", COMPOSITE,
                 note="source -> target"),
         RowSpec("CDMER Exp.7: C->H", "fr", "CDMER Exp.7: C->H", "cdmer/exp07", COMPOSITE,
                 note="source -> target"),
         RowSpec("Single database", "fr", "Single database", "loso/smic_hs", COMPOSITE,
                 note="LOSO")),
        ("The CDE row is the SMIC-HS part of the pooled CDE predictions.", _CDMER_NOTE),
    ),
    "recipes": TableSpec(
        "recipes", "FR and Basic Inception under two training recipes, CDE composite and "
        "per database",
        _db_cols([COMPOSITE, "smic_hs", "casme2", "samm"], ["uf1", "uar"]),
        _recipe_rows(),
        (f"Recipes: {FITTING_PRESET} (Adam, lr 1e-3, the epoch of each fold chosen on "
         f"held-out training subjects) and {DEFAULT_PRESET} (Adam, lr 1e-4, the model "
         "after the last epoch); both 100 epochs, batch 32, lambda 0.85 "
         "(docs/training_settings.md). Every row trains with its own recipe whatever "
         "--preset says.",
         "Per-database scores are the pooled CDE predictions restricted to that database; "
         "the paper reports Basic Inception on the composite only.",
         ENSEMBLE_NOTE, _STSTNET_CODE_NOTE),
        differences=((f"FR ({FITTING_PRESET})", f"Basic Inception ({FITTING_PRESET})"),
                     (f"FR ({FITTING_PRESET})", f"FR ({DEFAULT_PRESET})"),
                     (f"Basic Inception ({FITTING_PRESET})",
                      f"Basic Inception ({DEFAULT_PRESET})")),
        fit_notes=True,
    ),
}
