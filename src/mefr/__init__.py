"""mefr: facial micro-expression recognition with Feature Refinement (FR).

The data flows one way through the package::

    data (readers -> sample table) -> preprocess (face, apex, flow, feature store)
    -> evaluate.protocols (splits) -> train (engine, losses) -> evaluate (metrics,
    runner) -> report (tables, figures)

with :mod:`mefr.cli` a thin shell over this Python API.
"""

__version__ = "0.1.0"
