"""The paper's published numbers, as data (Zhou et al., *Feature refinement*, Tables 1-8, Fig. 3).

Every table is a :class:`PaperTable`: its rows (approach names as the paper prints them)
map column keys to values. Column keys are shared with :mod:`mefr.report.reproduce`, so
a reproduced cell and the published one line up by key:

* ``"<database>.<metric>"``: database ``composite``, ``smic_hs``, ``casme2``, ``samm`` or a
  single-database variant (``casme2_5class``, ``casme2_4class``, ``samm_4class``), metric
  ``uf1``, ``uar``, ``acc``, ``params_m`` (learnable parameters in millions) or ``et_s``
  (execution time in seconds);
* ``"exp<NN>.<metric>"``: CDMER experiment NN of Table 10 (Tables 3, 4), and
  ``"average.<metric>"`` the paper's average over the experiments / databases.

``None`` is a dash in the paper (not reported). Values marked ``*`` in Table 5 (cited by
the paper from its reference [31]) are kept as numbers; :data:`TABLE5_CITED` lists them.
Numbers were copied from the paper's text; ``tests/test_report.py`` checks them against
it when ``/work/shared`` (``../shared``) is present, and checks the identities between
tables (Table 6 = Table 1, Table 8 = Tables 3-5) everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

Value = float | None


@dataclass(frozen=True)
class PaperTable:
    """One published table: ``rows[row][column] -> value`` (``None`` = not reported)."""

    name: str
    reference: str
    caption: str
    columns: tuple[str, ...]
    rows: Mapping[str, Mapping[str, Value]]
    notes: tuple[str, ...] = field(default_factory=tuple)

    def value(self, row: str | None, column: str) -> Value:
        """The published value of (row, column); ``None`` when absent or not reported."""
        if row is None or row not in self.rows:
            return None
        return self.rows[row].get(column)


def _rows(columns: Sequence[str], values: Mapping[str, Sequence[Value]]) -> dict[str, dict]:
    """``{row: (v1, v2, ...)}`` -> ``{row: {column: v}}``, checking every row's length."""
    out: dict[str, dict[str, Value]] = {}
    for name, vals in values.items():
        if len(vals) != len(columns):
            raise ValueError(f"paper row {name!r}: {len(vals)} values for {len(columns)} columns")
        out[name] = dict(zip(columns, vals, strict=True))
    return out


def _exp_columns(numbers: Sequence[int], metrics: Sequence[str]) -> tuple[str, ...]:
    return tuple(f"exp{n:02d}.{m}" for n in numbers for m in metrics) + tuple(
        f"average.{m}" for m in metrics
    )


_T1_COLS = ("composite.uf1", "composite.uar")
#: Table 1: ablations on the CDE composite, (a) backbone, (b) strategy, (c) fusion.
TABLE1 = PaperTable(
    name="table1",
    reference="Table 1",
    caption="Ablation models on the composite database (CDE protocol), UF1 / UAR",
    columns=_T1_COLS,
    rows=_rows(
        _T1_COLS,
        {
            "Dual-Inception": (0.7322, 0.7278),  # (a)
            "Basic Inception": (0.7360, 0.7391),  # (a)
            "FR-fc": (0.7377, 0.7443),  # (b)
            "FR": (0.7838, 0.7832),  # (b) and (c)
            "FR-concatenated": (0.7632, 0.7727),  # (c)
        },
    ),
    notes=("(a) Dual-Inception vs Basic Inception; (b) FR-fc vs FR; (c) FR-concatenated vs FR",),
)

_T2_COLS = tuple(
    f"{d}.{m}" for d in ("composite", "smic_hs", "casme2", "samm") for m in ("uf1", "uar")
)
#: Table 2: CDE protocol, composite and per-database UF1 / UAR.
TABLE2 = PaperTable(
    name="table2",
    reference="Table 2",
    caption="CDE protocol: composite and per-database UF1 / UAR",
    columns=_T2_COLS,
    rows=_rows(
        _T2_COLS,
        {
            "LBP-TOP": (0.5882, 0.5785, 0.2000, 0.5280, 0.7026, 0.7429, 0.3954, 0.4102),
            "Bi-WOOF": (0.6296, 0.6227, 0.5727, 0.5829, 0.7805, 0.8026, 0.5211, 0.5139),
            "AlexNet": (0.6933, 0.7154, 0.6201, 0.6373, 0.7994, 0.8312, 0.6104, 0.6642),
            "GoogLeNet": (0.5573, 0.6049, 0.5123, 0.5511, 0.5989, 0.6414, 0.5124, 0.5992),
            "VGG16": (0.6425, 0.6516, 0.5800, 0.5964, 0.8166, 0.8202, 0.4870, 0.4793),
            "CapsuleNet": (0.6520, 0.6506, 0.5820, 0.5877, 0.7068, 0.7018, 0.6209, 0.5989),
            "OFF-ApexNet": (0.7196, 0.7096, 0.6817, 0.6695, 0.8764, 0.8681, 0.5409, 0.5392),
            "Dual-Inception": (0.7322, 0.7278, 0.6645, 0.6726, 0.8621, 0.8560, 0.5868, 0.5663),
            "STSTNet": (0.7353, 0.7605, 0.6801, 0.7013, 0.8382, 0.8686, 0.6588, 0.6810),
            "EMR": (0.7885, 0.7824, 0.7461, 0.7530, 0.8293, 0.8209, 0.7754, 0.7152),
            "FR": (0.7838, 0.7832, 0.7011, 0.7083, 0.8915, 0.8873, 0.7372, 0.7155),
        },
    ),
    notes=("Handcrafted: LBP-TOP, Bi-WOOF; the other rows are deep networks",),
)

_T3_COLS = _exp_columns(range(1, 7), ("uf1", "acc"))
#: Table 3: CDMER Type-I (SMIC cameras), UF1 / Acc; FR row and its average.
TABLE3 = PaperTable(
    name="table3",
    reference="Table 3",
    caption="CDMER Type-I tasks (Exp.1-6), UF1 / Acc",
    columns=_T3_COLS,
    rows=_rows(
        _T3_COLS,
        {
            "FR": (0.7065, 0.7149, 0.5971, 0.5968, 0.5335, 0.5673, 0.5137, 0.5200,
                   0.7934, 0.7910, 0.7921, 0.7921, 0.6561, 0.6636),
        },
    ),
    notes=("Only the FR row is kept; the handcrafted and C3D rows are cited by the paper "
           "from its reference [43]",),
)

_T4_COLS = _exp_columns(range(7, 13), ("uf1", "acc"))
#: Table 4: CDMER Type-II (CASME II <-> SMIC), UF1 / Acc; FR row and its average.
TABLE4 = PaperTable(
    name="table4",
    reference="Table 4",
    caption="CDMER Type-II tasks (Exp.7-12), UF1 / Acc",
    columns=_T4_COLS,
    rows=_rows(
        _T4_COLS,
        {
            "FR": (0.4670, 0.4905, 0.4883, 0.5380, 0.5678, 0.6101, 0.5929, 0.6019,
                   0.4399, 0.4823, 0.5963, 0.6081, 0.5254, 0.5552),
        },
    ),
    notes=TABLE3.notes,
)

_T5_COLS = ("smic_hs.acc", "casme2_5class.acc", "casme2_4class.acc", "samm_4class.acc",
            "average.acc")
#: Table 5: single-database LOSO, Acc; the deep-learning rows and FR.
TABLE5 = PaperTable(
    name="table5",
    reference="Table 5",
    caption="Single-database LOSO, Acc (SMIC-HS 3 classes, CASME II 5 and 4 classes, "
    "SAMM 4 classes)",
    columns=_T5_COLS,
    rows=_rows(
        _T5_COLS,
        {
            "Image-based CNN": (0.3120, None, 0.4440, 0.4360, 0.3973),
            "3D-FCNN": (0.5549, 0.5911, None, None, 0.5730),
            "CNN + LSTM": (None, 0.6098, None, None, 0.6098),
            "STRCN-A": (0.4810, None, 0.4710, 0.4880, 0.4800),
            "STRCN-G": (0.5760, None, 0.6210, 0.6420, 0.6130),
            "FR": (0.5790, 0.6285, 0.6838, 0.6013, 0.6232),
        },
    ),
    notes=("Only the deep-learning rows and FR are kept (handcrafted rows omitted)",),
)
#: Table 5 cells the paper marks ``*`` (taken from its reference [31]).
TABLE5_CITED: tuple[tuple[str, str], ...] = (
    ("Image-based CNN", "smic_hs.acc"),
    ("Image-based CNN", "casme2_4class.acc"),
    ("Image-based CNN", "samm_4class.acc"),
)

_T6_COLS = _T1_COLS
#: Table 6: Basic Inception vs FR on the composite (CDE), UF1 / UAR.
TABLE6 = PaperTable(
    name="table6",
    reference="Table 6",
    caption="Basic Inception vs FR on the composite database (CDE protocol)",
    columns=_T6_COLS,
    rows=_rows(_T6_COLS, {"Basic Inception": (0.7360, 0.7391), "FR": (0.7838, 0.7832)}),
)

_T7_COLS = tuple(
    f"{d}.{m}" for d in ("smic_hs", "casme2_4class", "samm_4class")
    for m in ("acc", "params_m", "et_s")
)
#: Table 7: Acc, learnable parameters (millions) and execution time (s), single databases.
TABLE7 = PaperTable(
    name="table7",
    reference="Table 7",
    caption="Accuracy, learnable parameters (millions) and execution time (s, average "
    "training + testing time on single-database evaluation)",
    columns=_T7_COLS,
    rows=_rows(
        _T7_COLS,
        {
            "Basic Inception": (0.5612, 6.4803, 15.0610, 0.6601, 6.4813, 32.9442,
                                0.5783, 6.4813, 18.5792),
            "FR": (0.5790, 10.2418, 15.5559, 0.6838, 11.4231, 36.7728,
                   0.6013, 11.4231, 20.6564),
        },
    ),
)

_T8_COLS = ("acc",)
#: Table 8: SMIC-HS accuracy of FR under the three protocols.
TABLE8 = PaperTable(
    name="table8",
    reference="Table 8",
    caption="Accuracy of FR on SMIC-HS under the CDE, CDMER and single-database protocols",
    columns=_T8_COLS,
    rows=_rows(
        _T8_COLS,
        {
            "CDE": (0.6951,),
            "CDMER Exp.2: V->H": (0.5968,),
            "CDMER Exp.4: N->H": (0.5200,),
            "CDMER Exp.7: C->H": (0.4905,),
            "Single database": (0.5790,),
        },
    ),
    notes=("The paper's validation rules: CDE LOSO, CDMER 5-fold, single database LOSO",),
)

#: Not a table of the paper: FR (Table 2, composite and per database) and Basic
#: Inception (Table 6, composite only) side by side, for ``mefr reproduce recipes``,
#: which trains both networks under more than one recipe. Its values are Table 2's and
#: Table 6's rows, read from them.
RECIPES = PaperTable(
    name="recipes",
    reference="Tables 2 and 6",
    caption="FR (Table 2) and Basic Inception (Table 6) on the CDE composite",
    columns=_T2_COLS,
    rows={"FR": dict(TABLE2.rows["FR"]),
          "Basic Inception": {c: TABLE6.value("Basic Inception", c) for c in _T2_COLS}},
)

#: Every published table by name (and :data:`RECIPES`, which reads two of them).
PAPER_TABLES: dict[str, PaperTable] = {
    t.name: t for t in (TABLE1, TABLE2, TABLE3, TABLE4, TABLE5, TABLE6, TABLE7, TABLE8,
                        RECIPES)
}

#: Fig. 3 class order (rows = true class, columns = predicted class).
FIG3_CLASSES: tuple[str, ...] = ("negative", "positive", "surprise")
#: Fig. 3: row-normalised confusion matrices (%) on the CDE composite.
FIG3_CONFUSION: dict[str, np.ndarray] = {
    "basic_inception": np.array(
        [[80.40, 14.80, 4.80], [28.44, 64.22, 7.34], [14.46, 8.43, 77.11]]
    ),
    "fr": np.array([[83.60, 13.60, 2.80], [24.77, 70.64, 4.59], [12.05, 7.23, 80.72]]),
}
#: Fig. 4: the paper's split of the composite for the t-SNE (34 random training subjects,
#: 282 training samples; the other subjects' samples are plotted).
FIG4_SPLIT: dict[str, int] = {"train_subjects": 34, "train_samples": 282, "subjects": 68,
                              "samples": 442}


def paper_table(name: str) -> PaperTable:
    """The published table ``name`` (``table1`` ... ``table8``)."""
    if name not in PAPER_TABLES:
        raise KeyError(f"no published table {name!r}; known: {sorted(PAPER_TABLES)}")
    return PAPER_TABLES[name]
