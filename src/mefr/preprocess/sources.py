"""``SCHEME:PATH`` -> features: the one resolver of data sources.

A data source is written ``SCHEME:PATH`` (only the first ``:`` separates, so
``flowset:C:/data`` is the flow set at ``C:/data``):

* a dataset name (:data:`mefr.data.DATASETS`: ``casme2:ROOT``, ``samm:ROOT``,
  ``smic_hs:ROOT``...) - a raw database as its licensees hold it, read by its reader
  (reader options after ``?``: ``casme2:ROOT?frames=DIR&annotation=FILE``, see
  :mod:`mefr.data.specs`), labelled, then preprocessed by
  :func:`mefr.preprocess.build_features`;
* ``synthetic:DIR`` - the synthetic CASME II, SAMM and SMIC-HS under ``DIR`` (written by
  ``mefr synth DIR``), handled as raw databases;
* ``flowset:PATH`` - a pre-computed composite flow set (its own CDE labels), and any
  scheme added with :func:`register_feature_loader` - feature sources, used as they are.

:func:`load_features` resolves one feature source, :func:`load_sources` any list of
sources (raw databases pooled), :func:`read_sources` reads the raw ones into one sample
table and :func:`labelled_features` turns a sample table into features.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from mefr.data.flowset import FlowSet
    from mefr.preprocess.pipeline import FeatureSet
    from mefr.preprocess.settings import PreprocessSettings

#: Data-source schemes besides the dataset names.
EXTRA_SCHEMES: tuple[str, ...] = ("synthetic", "flowset")
#: The databases ``synthetic:DIR`` reads: the synthetic counterpart of the CDE composite.
SYNTHETIC_CDE: tuple[tuple[str, str], ...] = (
    ("casme2", "casme2"), ("samm", "samm"), ("smic_hs", "smic"),
)

FeatureLoader = Callable[[str], Any]
#: Feature-source scheme -> ``loader(PATH)`` returning a feature set.
FEATURE_LOADERS: dict[str, FeatureLoader] = {}


def split_source(spec: str) -> tuple[str, str]:
    """``"casme2:/data/CASME2"`` -> ``("casme2", "/data/CASME2")``; ``("", "")`` parts
    when ``spec`` has no ``SCHEME:`` prefix or no path."""
    scheme, sep, path = str(spec).partition(":")
    return (scheme, path) if sep else ("", "")


def source_scheme(spec: str) -> str | None:
    """The scheme of ``spec`` (``"flowset"`` for ``flowset:/x``), None without one."""
    return split_source(spec)[0] or None


def parse_source(spec: str) -> tuple[str, Path]:
    """``"casme2:/data/CASME2"`` -> ``("casme2", Path("/data/CASME2"))``; the scheme is a
    dataset name (:data:`mefr.data.DATASETS`), ``synthetic`` or ``flowset``."""
    from mefr.data.table import DATASETS

    scheme, path = split_source(spec)
    known = (*DATASETS, *EXTRA_SCHEMES)
    if not path or scheme not in known:
        raise ValueError(f"data source {spec!r}: expected SCHEME:PATH with SCHEME one of {known}")
    return scheme, Path(path)


def register_feature_loader(scheme: str, loader: FeatureLoader) -> None:
    """Make ``load_features("<scheme>:PATH")`` call ``loader(PATH)``."""
    FEATURE_LOADERS[scheme] = loader


def _load_flowset(path: str) -> FlowSet:
    from mefr.data.flowset import load_flowset

    return load_flowset(path)


register_feature_loader("flowset", _load_flowset)


def load_features(spec: str) -> Any:
    """Load a feature set from ``"<scheme>:PATH"`` (e.g. ``flowset:/data/megc2019-cde-flow``)."""
    scheme, path = split_source(spec)
    if not scheme or not path:
        raise ValueError(
            f"features {spec!r}: expected SCHEME:PATH, schemes {sorted(FEATURE_LOADERS)}"
        )
    if scheme not in FEATURE_LOADERS:
        raise ValueError(
            f"features {spec!r}: no loader for {scheme!r}; known: {sorted(FEATURE_LOADERS)} "
            "(add one with mefr.preprocess.sources.register_feature_loader)"
        )
    return FEATURE_LOADERS[scheme](path)


def synthetic_roots(path: str | os.PathLike) -> dict[str, Path]:
    """``{dataset: root}`` of the synthetic CDE databases under ``path`` (``synthetic:DIR``)."""
    base = Path(path)
    found = {ds: base / sub for ds, sub in SYNTHETIC_CDE
             if (base / sub / "synthetic_truth.csv").is_file()}
    if not found:
        raise ValueError(
            f"synthetic:{base}: no synthetic database there (write one with `mefr synth "
            f"{base}`)"
        )
    return found


def read_database_source(scheme: str, path: str | os.PathLike) -> pd.DataFrame:
    """The sample table of one raw database source ``scheme:path``; ``path`` may carry
    reader options, ``ROOT?frames=DIR&annotation=FILE`` (:mod:`mefr.data.specs`)."""
    try:
        from mefr.data.specs import read_database_spec
    except ImportError:  # pragma: no cover - a mefr.data without database specs
        from mefr.data import read_database

        return read_database(scheme, Path(path))
    return read_database_spec(f"{scheme}:{path}")


def read_databases(roots: Mapping[str, str | os.PathLike]) -> pd.DataFrame:
    """The pooled sample table of ``{dataset: root}`` raw databases."""
    tables = [read_database_source(ds, root) for ds, root in roots.items()]
    if not tables:
        raise ValueError("no database to read")
    return pd.concat(tables, ignore_index=True) if len(tables) > 1 else tables[0]


def read_sources(sources: Sequence[str | tuple[str, Path]]) -> pd.DataFrame:
    """The pooled sample table of raw-database and ``synthetic:`` sources (``SCHEME:PATH``
    strings or :func:`parse_source` pairs)."""
    tables = []
    for spec in sources:
        if isinstance(spec, str):
            scheme, path = parse_source(spec)[0], split_source(spec)[1]  # options kept
        else:
            scheme, path = spec
        if scheme == "synthetic":
            tables += [read_database_source(ds, root)
                       for ds, root in synthetic_roots(path).items()]
        elif scheme in FEATURE_LOADERS:
            raise ValueError(f"{scheme}:{path} holds features, not a database to read")
        else:
            tables.append(read_database_source(scheme, path))
    if not tables:
        raise ValueError("no training data: give at least one data source")
    return pd.concat(tables, ignore_index=True) if len(tables) > 1 else tables[0]


def labelled_features(table: pd.DataFrame, labels: str, settings: PreprocessSettings,
                      cache_dir: str | os.PathLike | None = None, workers: int | None = None,
                      progress: bool = True, what: str = "the data") -> FeatureSet:
    """Label a sample table by the labelling ``labels`` and preprocess its clips
    (``what`` names the data in the error raised when no clip is labelled)."""
    from mefr.data.labels import apply_labelling, labelling_classes
    from mefr.preprocess.pipeline import build_features

    labelled = apply_labelling(table, labels)
    if len(labelled) == 0:
        raise ValueError(f"no clip of {what} is labelled by protocol {labels!r}")
    return build_features(labelled, settings, cache_dir, workers=workers, progress=progress,
                          class_names=labelling_classes(labels))


def is_feature_source(spec: str) -> bool:
    """True for a source that holds features already (``flowset:``, registered loaders)."""
    return split_source(spec)[0] in FEATURE_LOADERS


def load_sources(
    sources: Sequence[str],
    labels: str = "cde",
    settings: PreprocessSettings | None = None,
    cache_dir: str | os.PathLike | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> Any:
    """The features of ``sources`` (``SCHEME:PATH`` strings, see the module docstring).

    Raw databases (several may be given; they are pooled) are labelled by ``labels`` and
    preprocessed with ``settings`` (through the feature cache ``cache_dir`` when given);
    a feature source must be the only source, and a flow set carries CDE labels only.
    Clips that failed preprocessing are listed in the result's ``failures``; it is an
    error when every clip failed.
    """
    from mefr.preprocess.settings import PreprocessSettings

    specs = [parse_source(s) for s in sources]
    if not specs:
        raise ValueError("no training data: give at least one data source")
    if any(scheme in FEATURE_LOADERS for scheme, _ in specs):
        if len(specs) > 1:
            raise ValueError("a flow set is a whole training set: give it as the only source")
        if specs[0][0] == "flowset" and labels != "cde":
            raise ValueError(f"a flow set carries CDE labels; protocol {labels!r} cannot apply")
        return load_features(sources[0])
    fs = labelled_features(read_sources(list(sources)), labels, settings or PreprocessSettings(),
                           cache_dir, workers, progress, what=str(list(sources)))
    if len(fs.table) == 0:
        raise ValueError(f"every clip of {list(sources)} failed preprocessing: "
                         + "; ".join(str(f) for f in fs.failures[:5]))
    return fs
