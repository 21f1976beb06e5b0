"""The public face: ``from mefr import ...`` names, lazily imported, each with a running
example (the doctests of :mod:`mefr`, and of :mod:`mefr.model_inputs`)."""

from __future__ import annotations

import doctest
import importlib
import subprocess
import sys

import pytest

import mefr
import mefr.model_inputs

PUBLIC = ["create_model", "list_models", "TrainConfig", "resolve_config", "read_database",
          "load_flowset", "build_features", "protocol_folds", "run_protocol", "Predictor",
          "train_model", "uf1", "uar", "accuracy"]


def test_public_names_are_exported_and_resolve():
    assert sorted(mefr.__all__) == sorted([*PUBLIC, "__version__"])
    for name in PUBLIC:
        obj = getattr(mefr, name)
        assert obj.__name__ == name and obj.__doc__
        assert name in dir(mefr)
    assert mefr.create_model is importlib.import_module("mefr.models.registry").create_model
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        mefr.nothing_here  # noqa: B018


def test_import_mefr_imports_nothing_heavy():
    code = ("import sys, mefr; heavy = [m for m in ('torch', 'pandas', 'numpy', 'cv2') "
            "if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == ""


def test_every_public_name_has_an_example():
    doc = mefr.__doc__ or ""
    for name in PUBLIC:
        assert f"mefr.{name}(" in doc or f"mefr.{name}." in doc, name


def _run_doctests(module) -> doctest.TestResults:
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, module.__name__):
        runner.run(test)
    return runner.summarize(verbose=False)


def test_model_inputs_examples_run():
    result = _run_doctests(mefr.model_inputs)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.slow
def test_public_face_examples_run():
    """The walk-through in ``mefr``'s docstring: a tiny synthetic database read,
    preprocessed, split, evaluated for one epoch, and a model trained, saved, loaded and
    used on a new pair of frames."""
    result = _run_doctests(mefr)
    assert result.attempted > 20 and result.failed == 0
