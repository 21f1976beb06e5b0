"""The models shipped inside mefr (mefr.predict.pretrained, `mefr predict --model NAME`).

What is checked: the index and the files agree (sha256, size, precision); a damaged file
and an unknown name are refused with clear errors; nothing touches the network; each
card says what its file's metadata says, and its honest figures are the committed run's;
on the flow set (skipped without ../shared), each model reproduces its recorded
training-set accuracy and its stored weights agree with the full-precision ones; the
input contract (layout, range, channel order) holds for the flow set and for mefr's own
pipeline; and the CLI predicts a synthetic clip with a shipped model.
"""

from __future__ import annotations

import itertools
import json
import shutil
import socket
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors import safe_open

from mefr.cli import main
from mefr.data.flowset import FLOWSET_CHANNELS, load_flowset, select_channels
from mefr.data.table import sample_key
from mefr.modelfile import VersionMismatchWarning
from mefr.predict import Predictor, PretrainedError, folder_frames
from mefr.predict import pretrained as pt
from mefr.preprocess.clip import frames_features
from mefr.preprocess.flow import compute_flow, minmax, optical_strain
from mefr.preprocess.settings import PreprocessSettings

REPO = Path(__file__).resolve().parents[1]
FLOWSET = REPO.parent / "shared" / "data" / "megc2019-cde-flow"
NAMES = ("fr-megc2019", "off_apexnet-megc2019")
needs_flowset = pytest.mark.skipif(not FLOWSET.is_dir(),
                                   reason=f"real flow set not found at {FLOWSET}")


def load(name: str) -> Predictor:
    """A shipped model, with the one expected warning (trained on a flow set) checked."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        predictor = Predictor.from_pretrained(name)
    notes = [str(w.message) for w in caught if issubclass(w.category, VersionMismatchWarning)]
    assert all("pre-computed flow set" in n for n in notes), notes
    return predictor


@pytest.fixture(scope="module")
def predictors() -> dict[str, Predictor]:
    return {name: load(name) for name in NAMES}


@pytest.fixture(scope="module")
def flowset():
    if not FLOWSET.is_dir():
        pytest.skip(f"real flow set not found at {FLOWSET}")
    return load_flowset(FLOWSET)


@pytest.fixture(scope="module")
def clip(synthetic_databases, tmp_path_factory) -> dict[str, Path]:
    """One synthetic CASME II clip as a frame folder and as an MJPG video."""
    frames_dir = sorted((synthetic_databases["casme2"] / "CASME2_RAW_selected").glob("*/*"))[0]
    frames = [cv2.imread(str(p)) for p in folder_frames(frames_dir)]
    video = tmp_path_factory.mktemp("video") / "clip.avi"
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25, (w, h))
    for f in frames:
        writer.write(f)
    writer.release()
    return {"folder": frames_dir, "video": video}


def strain_agreement(x: np.ndarray) -> dict[tuple[int, int, int], float]:
    """Mean over images of corr(strain of channels (a, b), channel c), per permutation: the
    identity is highest when the channels are u, v, strain in that order."""
    def corr(p: np.ndarray, q: np.ndarray) -> float:
        p, q = p.ravel() - p.mean(), q.ravel() - q.mean()
        return float((p * q).sum() / np.sqrt((p * p).sum() * (q * q).sum() + 1e-12))

    return {perm: float(np.mean([corr(optical_strain(img[perm[0]], img[perm[1]]), img[perm[2]])
                                 for img in x]))
            for perm in itertools.permutations(range(3))}


# --------------------------------------------------------------------------- the files
def test_index_lists_the_shipped_models_and_their_files():
    index = pt.read_index()
    assert tuple(index) == NAMES == pt.pretrained_names()
    for name, m in index.items():
        assert m.path.is_file() and m.card.is_file() and m.reference.is_file()
        assert m.path.stat().st_size == m.bytes
        assert pt.file_sha256(m.path) == m.sha256
        assert m.dtype in ("float16", "float32")
        with safe_open(str(m.path), framework="pt") as f:
            dtypes = {str(f.get_tensor(k).dtype) for k in f.keys()}
        floats = {d for d in dtypes if "float" in d}
        assert floats == {f"torch.{m.dtype}"}, (name, dtypes)


def test_loaded_weights_are_float32_and_nothing_touches_the_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("a shipped model must load without network access")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    predictor = load("off_apexnet-megc2019")
    assert {p.dtype for p in predictor.model.parameters()} == {torch.float32}
    assert predictor.class_names == ("negative", "positive", "surprise")
    assert predictor.channels == ("u", "v")


def _copy_index(tmp_path: Path, name: str) -> Path:
    entry = pt.pretrained_model(name)
    for f in (entry.path, entry.card, entry.reference):
        shutil.copy(f, tmp_path / f.name)
    pt.write_index([entry], tmp_path)
    return tmp_path / entry.path.name


@pytest.mark.filterwarnings("ignore::mefr.modelfile.VersionMismatchWarning")
def test_a_sha256_mismatch_is_refused(tmp_path, monkeypatch, clip, capsys):
    name = "off_apexnet-megc2019"
    weights = _copy_index(tmp_path, name)
    assert pt.pretrained_file(name, tmp_path) == weights  # an intact copy loads
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01  # one bit of the last weight: still a valid safetensors file
    weights.write_bytes(bytes(data))
    with pytest.raises(PretrainedError, match="sha256 .* does not match .* not loaded"):
        pt.pretrained_file(name, tmp_path)
    monkeypatch.setattr(pt, "PRETRAINED_DIR", tmp_path)
    with pytest.raises(PretrainedError, match="damaged or was altered"):
        Predictor.from_pretrained(name)
    assert main(["predict", "--model", name, str(clip["folder"])]) == 2
    assert "does not match" in capsys.readouterr().err
    weights.unlink()
    with pytest.raises(PretrainedError, match="missing"):
        pt.pretrained_file(name, tmp_path)


def test_an_unknown_name_is_refused_with_the_names(clip, capsys):
    with pytest.raises(PretrainedError) as info:
        Predictor.from_pretrained("fr-megc2020")
    assert all(n in str(info.value) for n in NAMES) and "never downloads" in str(info.value)
    assert main(["predict", "--model", "fr-megc2020", str(clip["folder"])]) == 2
    err = capsys.readouterr().err
    assert "no shipped model named 'fr-megc2020'" in err and all(n in err for n in NAMES)
    assert main(["models", "--card", "nope"]) == 2
    assert "fr-megc2019" in capsys.readouterr().err


# --------------------------------------------------------------------------- the cards
@pytest.mark.parametrize("name", NAMES)
def test_card_says_what_the_metadata_says(name):
    facts = pt.card_facts(name)
    entry = pt.pretrained_model(name)
    card = pt.model_card(name)
    assert card == pt.render_card(facts, entry.bytes)
    header = json.loads(json.dumps(facts))
    assert header["classes"] == ["negative", "positive", "surprise"]
    assert header["recipe"]["preset"] == "cde" and header["recipe"]["seed"] == 0
    assert header["recipe"]["settings"]["lr"] == 1e-4 and header["recipe"]["settings"][
        "epochs"] == header["recipe"]["evaluated_epoch"] == 100
    assert header["input"]["channels"] == ["u", "v"] and header["input"]["shape"] == [2, 28, 28]
    assert header["training_data"]["clips"] == 442 and header["training_data"]["subjects"] == 68
    assert "licence-restricted" in " ".join(header["training_data"]["licence_terms"])
    assert header["weights_dtype"] == entry.dtype
    text = card.lower()
    for words in ("lie-detection", "macro-expressions", "other populations", "min-max",
                  "apex", "libfacedetection", "u, v in that order", "seed 0"):
        assert words in text, words


@pytest.mark.parametrize("name", NAMES)
def test_card_honest_figure_is_the_committed_run(name):
    facts = pt.card_facts(name)
    honest = facts["honest"]
    run = REPO / honest["run"]
    assert honest["run"] == f"results/cde/{facts['network']}"
    metrics = json.loads((run / "metrics.json").read_text())
    assert honest["seeds"] == metrics["seeds"] == list(range(10))
    for m in ("uf1", "uar", "acc"):
        assert honest["composite"][m] == {"mean": metrics["mean"]["composite"][m],
                                          "std": metrics["std"]["composite"][m]}
    for db in ("smic_hs", "casme2", "samm"):
        assert honest["databases"][db]["uf1"]["mean"] == metrics["mean"][db]["uf1"]
    uf1 = metrics["mean"]["composite"]["uf1"], metrics["std"]["composite"]["uf1"]
    assert f"composite UF1 {uf1[0]:.4f} ± {uf1[1]:.4f}" in pt.model_card(name)
    import yaml

    trained = yaml.safe_load((run / "config.yaml").read_text())["train"]
    for key, value in facts["recipe"]["settings"].items():
        assert trained[key] == value, key


def test_models_pretrained_lists_them(capsys):
    assert main(["models", "--pretrained"]) == 0
    out = capsys.readouterr().out
    assert all(n in out for n in NAMES) and "0.7139" in out and "0.6985" in out
    assert main(["models", "--pretrained", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list(NAMES)
    assert main(["models", "--card", "fr-megc2019"]) == 0
    assert capsys.readouterr().out.startswith("# fr-megc2019")


# --------------------------------------------------------------------------- on the flow set
@needs_flowset
@pytest.mark.parametrize("name", NAMES)
def test_training_set_accuracy_is_reproduced(name, predictors, flowset):
    predictor, facts = predictors[name], pt.card_facts(name)
    x = select_channels(flowset.x, flowset.channels, predictor.channels)
    probs, dets = predictor.forward(x)
    y = np.asarray(flowset.table["label"])
    assert int((probs.argmax(1) == y).sum()) == facts["training_set"]["correct"]
    assert (probs.argmax(1) == y).mean() == pytest.approx(facts["training_set"]["accuracy"])
    assert (dets is not None) == (facts["network"] == "fr")


@needs_flowset
@pytest.mark.parametrize("name", NAMES)
def test_stored_weights_agree_with_full_precision(name, predictors, flowset):
    entry, facts = pt.pretrained_model(name), pt.card_facts(name)
    ref = json.loads(entry.reference.read_text())
    assert ref["dtype"] == "float32" and ref["clips"] == list(sample_key(flowset.table))
    predictor = predictors[name]
    probs, _ = predictor.forward(select_channels(flowset.x, flowset.channels, predictor.channels))
    full = np.asarray(ref["probabilities"])
    assert (probs.argmax(1) == full.argmax(1)).all()  # the same class for all 442 clips
    assert np.abs(probs - full).max() <= facts["precision_check"]["tolerance"] == 1e-2


# --------------------------------------------------------------------------- input contract
@needs_flowset
def test_input_contract_on_the_flow_set(flowset, predictors):
    x = flowset.x
    assert x.dtype == np.float32 and x.shape == (442, 3, 28, 28)
    assert flowset.channels == FLOWSET_CHANNELS == ("u", "v", "strain")
    assert np.allclose(x.min(axis=(2, 3)), 0) and np.allclose(x.max(axis=(2, 3)), 1)
    for predictor in predictors.values():
        assert predictor.settings.channels == flowset.channels  # what mefr makes for a clip
        assert predictor.settings.size == 28 and predictor.settings.normalisation == (
            "minmax_per_image")
    agreement = strain_agreement(x)
    assert max(agreement, key=agreement.get) == (0, 1, 2), agreement  # R, G, B = u, v, strain


def test_input_contract_on_a_synthetic_clip(predictors, clip, synthetic_databases):
    for predictor in predictors.values():
        prepared = predictor.prepare(clip["folder"])
        x = prepared.x
        assert x.dtype == np.float32 and x.shape == (3, 28, 28)
        assert predictor.settings.channels == FLOWSET_CHANNELS
        assert np.allclose(x.min(axis=(1, 2)), 0) and np.allclose(x.max(axis=(1, 2)), 1)
        assert np.array_equal(predictor.network_input(x[None])[0], x[:2])  # u, v as trained
        own = frames_features(folder_frames(clip["folder"]), PreprocessSettings(strain=True))
        assert np.array_equal(own.x, x)  # the pipeline's defaults, strain added
    folders = sorted((synthetic_databases["casme2"] / "CASME2_RAW_selected").glob("*/*"))
    x = np.stack([predictors[NAMES[0]].prepare(f).x for f in folders])
    agreement = strain_agreement(x)
    assert max(agreement, key=agreement.get) == (0, 1, 2), agreement


def test_mefr_flow_channel_0_is_horizontal():
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.integers(0, 256, (96, 96)).astype(np.uint8), (0, 0), 2)
    onset = cv2.normalize(texture, None, 0, 255, cv2.NORM_MINMAX)
    apex = np.roll(onset, 2, axis=1)  # the face moves 2 pixels to the right
    raw = compute_flow(onset, apex, size=28, strain=True, normalisation="none")
    inner = raw[:, 6:-6, 6:-6]
    assert inner[0].mean() == pytest.approx(2.0, abs=0.5) and np.abs(inner[1]).mean() < 0.3
    scaled = compute_flow(onset, apex, size=28, strain=True)
    assert np.allclose(scaled, minmax(raw), atol=1e-6)


# --------------------------------------------------------------------------- the CLI
@pytest.mark.filterwarnings("ignore::mefr.modelfile.VersionMismatchWarning")
def test_cli_predicts_a_synthetic_clip_with_a_shipped_model(clip, capsys):
    rc = main(["predict", "--model", "fr-megc2019", str(clip["folder"]), str(clip["video"])])
    out = capsys.readouterr().out
    assert rc == 0, out
    head, *rows = out.strip().splitlines()
    for c in ("negative", "positive", "surprise"):
        assert f"p_{c}" in head and f"d_{c}" in head
    assert len(rows) == 2
    for row in rows:
        fields = row.split()
        assert fields[1] in ("negative", "positive", "surprise")
        probs = [float(v) for v in fields[2:5]]
        dets = [float(v) for v in fields[5:8]]
        assert sum(probs) == pytest.approx(1.0, abs=2e-3) and all(0 <= d <= 1 for d in dets)
    frames = folder_frames(clip["folder"])
    rc = main(["predict", "--model", "off_apexnet-megc2019", "--onset-apex", str(frames[0]),
               str(frames[len(frames) // 2]), "--json"])
    (pred,) = json.loads(capsys.readouterr().out)
    assert rc == 0 and pred["kind"] == "pair" and pred["detector_scores"] is None
    assert pred["predicted"] == max(pred["probabilities"], key=pred["probabilities"].get)
