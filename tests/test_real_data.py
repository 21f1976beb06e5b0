"""FR really learns on the real MEGC 2019 composite flows (skipped without ../shared)."""

from pathlib import Path

import numpy as np
import pytest

from mefr.data.flowset import load_flowset
from mefr.data.table import group_key
from mefr.evaluate.metrics import score
from mefr.train.config import TrainConfig
from mefr.train.engine import train_group
from mefr.train.jobs import Job

FLOWSET = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "megc2019-cde-flow"
pytestmark = [
    pytest.mark.real_data,
    pytest.mark.skipif(not FLOWSET.is_dir(), reason=f"real flow set not found at {FLOWSET}"),
]


def test_flowset_matches_table_9():
    fs = load_flowset(FLOWSET)
    counts = fs.table.groupby("dataset")["label"].value_counts().unstack().loc[
        ["smic_hs", "casme2", "samm"]].to_numpy()
    assert counts.tolist() == [[70, 51, 43], [88, 32, 25], [92, 26, 15]]
    assert group_key(fs.table).nunique() == 68
    assert fs.x.shape == (442, 3, 28, 28)
    # every image and channel was min-max scaled to 0..255
    assert np.allclose(fs.x.min(axis=(2, 3)), 0) and np.allclose(fs.x.max(axis=(2, 3)), 1)


def test_fr_learns_above_chance_on_held_out_subjects():
    """Train FR on 58 subjects, test on 10 unseen ones: UAR well above 1/3."""
    fs = load_flowset(FLOWSET)
    groups = group_key(fs.table).to_numpy()
    y = fs.table["label"].to_numpy()
    rng = np.random.default_rng(0)
    held_out = rng.choice(np.unique(groups), size=10, replace=False)
    test = np.flatnonzero(np.isin(groups, held_out))
    train = np.flatnonzero(~np.isin(groups, held_out))
    cfg = TrainConfig(model="fr", optimizer="adam", lr=1e-3, epochs=20, batch_size=32)
    res = train_group(fs.select_channels(("u", "v")), y, [Job("held-out", 0, train, test)], cfg,
                      3, workers=1, progress=False)
    pred = res.probs["held-out"].argmax(1)
    s = score(y[test], pred, 3)
    assert s.uar > 0.45, f"UAR {s.uar:.3f} on {len(test)} held-out clips"
    assert len(set(pred)) > 1  # not collapsed to one class
