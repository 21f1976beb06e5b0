"""The ``mefr`` command: a thin shell over the Python API.

:mod:`mefr.cli.parser` builds the parser and runs a command; each command group is one
module (:mod:`~mefr.cli.data`: synth, prepare, detect, flow; :mod:`~mefr.cli.models`:
models, train, predict; :mod:`~mefr.cli.evaluate`: evaluate, compare;
:mod:`~mefr.cli.report`: reproduce; :mod:`~mefr.cli.demo`: demo) that declares its
options and calls the library. No computation lives here.
"""

from mefr.cli.parser import build_parser, main

__all__ = ["build_parser", "main"]
