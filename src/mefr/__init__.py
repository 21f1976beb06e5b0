"""mefr: facial micro-expression recognition with Feature Refinement (FR).

The data flows one way through the package::

    data (readers -> sample table) -> preprocess (face, apex, flow, feature store)
    -> evaluate.protocols (splits) -> train (engine, losses) -> evaluate (metrics,
    runner) -> report (tables, figures)

with :mod:`mefr.cli` a thin shell over this Python API. The names below are the public
face; each is imported from its module on first use, so ``import mefr`` stays instant.

Networks (:mod:`mefr.models.registry`)
    :func:`list_models` - the registered names; :func:`create_model` - a network by name.

    >>> import mefr
    >>> "fr" in mefr.list_models() and "lbptop_svm" in mefr.list_models()
    True
    >>> model = mefr.create_model("fr", num_classes=3)
    >>> model.num_models
    1

Training settings (:mod:`mefr.train.config`)
    :class:`TrainConfig` - every setting; :func:`resolve_config` - a preset, a YAML
    file and ``key=value`` overrides resolved into one.

    >>> mefr.TrainConfig(epochs=5).epochs
    5
    >>> config = mefr.resolve_config("cde", overrides={"model": "basic_inception"})
    >>> config.optimizer, config.lr, config.epochs
    ('adam', 0.0001, 100)

Data (:mod:`mefr.data`, :mod:`mefr.preprocess`)
    :func:`read_database` - a raw database as a sample table; :func:`load_flowset` - a
    pre-computed flow set (the MEGC 2019 composite); :func:`build_features` - faces,
    apex and TV-L1 flow of a sample table (cached when given a folder).

    >>> import tempfile, warnings
    >>> from pathlib import Path
    >>> from mefr.data import write_synthetic_databases
    >>> from mefr.data.labels import apply_labelling, labelling_classes
    >>> tmp = Path(tempfile.mkdtemp())
    >>> roots = write_synthetic_databases(tmp / "db", databases=("casme2",), subjects=3,
    ...                                   clips_per_subject=2, frames=(8, 10), size=(96, 128))
    >>> table = mefr.read_database("casme2", roots["casme2"])
    >>> len(table), sorted(table["subject"].unique())
    (6, ['sub01', 'sub02', 'sub03'])
    >>> with warnings.catch_warnings():  # "others" is not a CDE class: a LabelWarning
    ...     warnings.simplefilter("ignore")
    ...     labelled = apply_labelling(table, "cde")
    >>> features = mefr.build_features(labelled, cache_dir=None, workers=1, progress=False,
    ...                                class_names=labelling_classes("cde"))
    >>> features.x.shape, features.channels
    ((5, 2, 28, 28), ('u', 'v'))
    >>> flows = mefr.load_flowset(tmp / "no-flow-set-here")  # the folder of the MEGC 2019 CSV
    Traceback (most recent call last):
    ...
    mefr.data.flowset.FlowSetError: ...combined_3_class2_for_optical_flow.csv: label CSV not found

Evaluation (:mod:`mefr.evaluate`)
    :func:`protocol_folds` - the named folds of a protocol; :func:`run_protocol` - a
    protocol over seeds into a resumable run directory; :func:`uf1`, :func:`uar`,
    :func:`accuracy` - Eqs. (10), (11), (9).

    >>> [fold.name for fold in mefr.protocol_folds(features.table, "loso")]
    ['casme2/sub01', 'casme2/sub02', 'casme2/sub03']
    >>> quick = mefr.resolve_config("fast", overrides={"model": "basic_inception",
    ...                                                "epochs": 1})
    >>> import contextlib, io
    >>> with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")  # one epoch learns nothing: a RunWarning
    ...     result = mefr.run_protocol(features, "loso", quick, seeds=0, run_dir=tmp / "run",
    ...                                device="cpu", progress=False)
    >>> sorted(result.metrics["per_seed"]["0"]), len(result.predictions)
    (['casme2', 'composite'], 5)
    >>> y_true, y_pred = [0, 0, 1, 2], [0, 1, 1, 2]  # classes inferred, as scikit-learn
    >>> mefr.accuracy(y_true, y_pred), mefr.uar(y_true, y_pred)
    (0.75, 0.8333333333333334)
    >>> round(mefr.uf1(y_true, y_pred), 4), round(mefr.uf1(y_true, y_pred, num_classes=4), 4)
    (0.7778, 0.7778)

Models for new clips (:mod:`mefr.predict`)
    :func:`train_model` - one network on every clip of the training data;
    :class:`Predictor` - a model file's network with its preprocessing.

    >>> from mefr.predict import load_training_data
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     data = load_training_data([f"casme2:{roots['casme2']}"], "cde", workers=1,
    ...                               progress=False)
    ...     predictor = mefr.train_model(data, quick, device="cpu", progress=False)
    >>> path = predictor.save(tmp / "model.safetensors")
    >>> loaded = mefr.Predictor.from_file(path)
    >>> loaded.class_names
    ('negative', 'positive', 'surprise')
    >>> frames = sorted((roots["casme2"] / "CASME2_RAW_selected" / "sub01").rglob("*.jpg"))
    >>> prediction = loaded.predict([(frames[0], frames[3])])[0]
    >>> prediction.ok, sorted(prediction.probabilities)
    (True, ['negative', 'positive', 'surprise'])
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> the module it is imported from on first use.
_PUBLIC: dict[str, str] = {
    "create_model": "mefr.models.registry",
    "list_models": "mefr.models.registry",
    "TrainConfig": "mefr.train.config",
    "resolve_config": "mefr.train.config",
    "read_database": "mefr.data",
    "load_flowset": "mefr.data.flowset",
    "build_features": "mefr.preprocess",
    "protocol_folds": "mefr.evaluate.protocols",
    "run_protocol": "mefr.evaluate.runner",
    "Predictor": "mefr.predict",
    "train_model": "mefr.predict",
    "uf1": "mefr.evaluate.metrics",
    "uar": "mefr.evaluate.metrics",
    "accuracy": "mefr.evaluate.metrics",
}

__all__ = [
    "Predictor",
    "TrainConfig",
    "__version__",
    "accuracy",
    "build_features",
    "create_model",
    "list_models",
    "load_flowset",
    "protocol_folds",
    "read_database",
    "resolve_config",
    "run_protocol",
    "train_model",
    "uar",
    "uf1",
]

if TYPE_CHECKING:
    from mefr.data import read_database
    from mefr.data.flowset import load_flowset
    from mefr.evaluate.metrics import accuracy, uar, uf1
    from mefr.evaluate.protocols import protocol_folds
    from mefr.evaluate.runner import run_protocol
    from mefr.models.registry import create_model, list_models
    from mefr.predict import Predictor, train_model
    from mefr.preprocess import build_features
    from mefr.train.config import TrainConfig, resolve_config


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use (PEP 562)."""
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'mefr' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
