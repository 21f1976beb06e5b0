"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def synthetic_databases(tmp_path_factory) -> dict[str, Path]:
    """A tiny synthetic CASME II, SAMM and SMIC (HS, VIS, NIR) written once per session.

    2 subjects x 4 clips x 10-14 frames per database at 120x160 pixels. Returns
    ``{dataset: root}`` as :func:`mefr.data.synthetic.write_synthetic_databases` does.
    """
    from mefr.data.synthetic import SYNTHETIC_DATABASES, write_synthetic_databases

    root = tmp_path_factory.mktemp("synthetic")
    return write_synthetic_databases(
        root,
        databases=SYNTHETIC_DATABASES,
        subjects=2,
        clips_per_subject=4,
        frames=(10, 14),
        size=(120, 160),
        seed=3,
    )
