"""Training a model file and predicting new clips (mefr.predict, `mefr train`, `mefr predict`)."""

from __future__ import annotations

import colorsys
import json
import pickle
import re
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from mefr.cli import main
from mefr.data import read_database
from mefr.data.labels import protocol_classes
from mefr.data.synthetic import read_truth, write_synthetic_databases
from mefr.modelfile import HEADER_KEY, ModelFileError, VersionMismatchWarning, read_header
from mefr.predict import (
    FramesInput,
    Predictor,
    explanation_name,
    flow_to_rgb,
    load_training_data,
    train_model,
)
from mefr.preprocess.settings import PreprocessSettings
from mefr.preprocess.sources import parse_source
from mefr.train.config import resolve_config

#: A small FR (same structure, narrower layers) so that training takes a second or two.
SMALL = {"shared_dim": 64, "detector_hidden": 16, "classifier_hidden": 32}


@pytest.fixture(scope="module")
def feature_cache(tmp_path_factory) -> Path:
    """A feature cache shared by the API and the CLI training (preprocessing runs once)."""
    return tmp_path_factory.mktemp("feature_cache")


@pytest.fixture(scope="module")
def trained(synthetic_databases, feature_cache):
    """A model trained, through the API `mefr train` uses, on the synthetic CDE databases."""
    root = synthetic_databases["casme2"].parent
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # protocol drops, apex fallbacks: tested elsewhere
        data = load_training_data([f"synthetic:{root}"], "cde", PreprocessSettings(),
                                  cache_dir=feature_cache, workers=1, progress=False)
        config = resolve_config("fast", None, {"epochs": 5, "model_kwargs": SMALL})
        predictor = train_model(data, config, seed=0, device="cpu", progress=False)
    return predictor, data


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    """Clips of a synthetic CASME II the model never saw (other seed: other faces)."""
    root = tmp_path_factory.mktemp("held_out")
    paths = write_synthetic_databases(root, databases=("casme2",), subjects=1,
                                      clips_per_subject=2, frames=(10, 14), size=(120, 160),
                                      seed=41)
    return read_database("casme2", paths["casme2"]), read_truth(paths["casme2"])


def write_avi(path: Path, frames: list[np.ndarray]) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def decode_video(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = []
    ok, frame = cap.read()
    while ok:
        out.append(frame)
        ok, frame = cap.read()
    cap.release()
    return out


def clip_folder(row) -> Path:
    return Path(row["frames"][0]).parent


# --------------------------------------------------------------------------- 1. three forms
def test_same_clip_as_video_folder_and_pair_gives_the_same_answer(trained, held_out, tmp_path):
    predictor, _ = trained
    table, truth = held_out
    row = table.iloc[0]
    frames = [cv2.imread(p) for p in row["frames"]]
    video = write_avi(tmp_path / "clip.avi", frames)
    decoded = decode_video(video)  # the clip's pixels as the video holds them (MJPG is lossy)
    assert len(decoded) == len(frames)
    folder = tmp_path / "frames"
    folder.mkdir()
    first = 8  # numbers 8, 9, 10, ...: sorted by number, not by name ("10" < "8")
    for t, img in enumerate(decoded):
        cv2.imwrite(str(folder / f"f{first + t}.png"), img)  # lossless: the same pixels
    vid, fol = predictor.predict([video, folder])
    assert vid.ok and fol.ok, (vid.error, fol.error)
    assert vid.kind == "video" and fol.kind == "frames"
    assert vid.apex_index == fol.apex_index
    assert fol.apex_frame == f"f{first + fol.apex_index}.png"
    true_apex = int(truth.set_index("clip").loc[row["clip"], "apex"]) - int(row["onset"])
    assert abs(vid.apex_index - true_apex) <= 1  # Eq. (1) finds the synthetic apex
    onset, apex = folder / f"f{first}.png", folder / f"f{first + vid.apex_index}.png"
    (pair,) = predictor.predict([(onset, apex)])
    assert pair.ok and pair.kind == "pair"
    for other in (fol, pair):
        assert other.predicted == vid.predicted
        for c in predictor.class_names:
            assert other.probabilities[c] == pytest.approx(vid.probabilities[c], abs=1e-5)
            assert other.detector_scores[c] == pytest.approx(vid.detector_scores[c], abs=1e-5)
    assert sum(vid.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert vid.face_box == fol.face_box == pair.face_box
    # the tolerance is meaningful: another clip's probabilities differ by far more
    (other,) = predictor.predict([clip_folder(table.iloc[1])])
    diff = max(abs(other.probabilities[c] - vid.probabilities[c]) for c in predictor.class_names)
    assert diff > 1e-3


def test_inputs_get_exactly_the_training_features(trained):
    """A clip given to the predictor gets bit-for-bit the input it had in training, with
    the annotated apex (CASME II) and with the apex spotted by Eq. (1) (SMIC)."""
    predictor, data = trained
    table, x = data.features.table, data.features.x
    casme = int(np.flatnonzero(table["dataset"] == "casme2")[0])
    row = table.iloc[casme]
    apex = list(row["frame_numbers"]).index(int(row["apex_used"]))
    clip = predictor.prepare(FramesInput(list(row["frames"]), apex=apex))
    np.testing.assert_array_equal(clip.x, x[casme])
    smic = int(np.flatnonzero(table["dataset"] == "smic_hs")[0])
    row = table.iloc[smic]
    clip = predictor.prepare(clip_folder(row))
    np.testing.assert_array_equal(clip.x, x[smic])
    assert row["frame_numbers"][clip.apex_index] == int(row["apex_used"])
    # the batched prediction is the network applied to exactly these inputs
    (pred,) = predictor.predict([clip_folder(row)])
    with torch.no_grad():
        logits = predictor.model(torch.from_numpy(x[smic:smic + 1])).logits[0]
    expected = torch.softmax(logits, -1).numpy()
    got = np.array([pred.probabilities[c] for c in predictor.class_names])
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_frames_input_of_arrays_matches_the_folder(trained, held_out):
    predictor, _ = trained
    table, _ = held_out
    row = table.iloc[1]
    arrays = [cv2.imread(p) for p in row["frames"]]
    a, b = predictor.predict([FramesInput(arrays, name="arrays"), clip_folder(row)])
    assert a.input == "arrays" and a.apex_index == b.apex_index
    assert a.probabilities == pytest.approx(b.probabilities, abs=1e-6)


# --------------------------------------------------------------------------- 2. model file
def test_model_file_round_trip(trained, held_out, tmp_path, monkeypatch):
    predictor, data = trained
    table, _ = held_out
    path = predictor.save(tmp_path / "model.safetensors")
    inputs = [clip_folder(table.iloc[0]), clip_folder(table.iloc[1])]

    def forbidden(*a, **k):
        raise AssertionError("loading a model file must not unpickle")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    loaded = Predictor.from_file(path)
    for a, b in zip(predictor.predict(inputs), loaded.predict(inputs), strict=True):
        assert a.ok and a.predicted == b.predicted
        assert a.probabilities == b.probabilities  # identical, not merely close
        assert a.detector_scores == b.detector_scores
    for name, t in predictor.model.state_dict().items():
        assert torch.equal(t, loaded.model.state_dict()[name]), name

    header = read_header(path)
    labels = data.features.table["label"].to_numpy()
    assert header["classes"] == list(protocol_classes("cde"))
    assert header["network"]["name"] == "fr" and header["network"]["detectors"] is True
    assert header["network"]["kwargs"]["shared_dim"] == SMALL["shared_dim"]
    assert header["input"]["channels"] == ["u", "v"]
    assert header["preprocess"]["settings"] == PreprocessSettings().to_dict()
    assert header["preprocess"]["opencv"] == cv2.__version__
    assert header["train"]["epochs"] == 5 and header["train"]["optimizer"] == "adam"
    assert header["data"]["clips"] == len(labels)
    assert list(header["data"]["class_counts"].values()) == np.bincount(labels).tolist()
    assert set(header["data"]["datasets"]) == {"casme2", "samm", "smic_hs"}


def _rewrite(path: Path, out: Path, **changes) -> Path:
    header = {**read_header(path), **changes}
    save_file(load_file(str(path)), str(out), metadata={HEADER_KEY: json.dumps(header)})
    return out


def test_tampered_or_incompatible_model_files(trained, held_out, tmp_path):
    predictor, _ = trained
    path = predictor.save(tmp_path / "model.safetensors")
    bad = _rewrite(path, tmp_path / "v9.safetensors", format_version=9)
    with pytest.raises(ModelFileError, match="format version 9 is not supported"):
        Predictor.from_file(bad)
    pre = {**read_header(path)["preprocess"], "opencv": "3.1.0"}
    old_cv = _rewrite(path, tmp_path / "cv3.safetensors", preprocess=pre)
    with pytest.raises(ModelFileError, match="OpenCV 3.1.0"):
        Predictor.from_file(old_cv)
    with pytest.warns(VersionMismatchWarning, match="OpenCV 3.1.0"):
        lenient = Predictor.from_file(old_cv, strict=False)
    assert lenient.predict([clip_folder(held_out[0].iloc[0])])[0].ok
    net = {**read_header(path)["network"], "kwargs": {**SMALL, "shared_dim": 32}}
    misfit = _rewrite(path, tmp_path / "misfit.safetensors", network=net)
    with pytest.raises(ModelFileError, match="do not fit"):
        Predictor.from_file(misfit)
    pre = {**read_header(path)["preprocess"],
           "settings": {**PreprocessSettings().to_dict(), "denoise": 3}}
    unknown = _rewrite(path, tmp_path / "unknown.safetensors", preprocess=pre)
    with pytest.raises(ModelFileError, match="denoise"):
        Predictor.from_file(unknown)


# --------------------------------------------------------------------------- 3. bad inputs
def test_bad_inputs_get_errors_and_the_others_are_predicted(trained, held_out, tmp_path):
    predictor, _ = trained
    good = clip_folder(held_out[0].iloc[0])
    corrupt = tmp_path / "corrupt.avi"
    corrupt.write_bytes(b"not a video at all" * 50)
    empty = tmp_path / "empty"
    empty.mkdir()
    flat = np.full((120, 160, 3), 128, np.uint8)
    cv2.imwrite(str(tmp_path / "wall0.png"), flat)
    cv2.imwrite(str(tmp_path / "wall1.png"), flat)
    no_face = (tmp_path / "wall0.png", tmp_path / "wall1.png")
    missing = tmp_path / "missing.mp4"
    image = tmp_path / "wall0.png"
    inputs = [corrupt, good, empty, no_face, missing, image]
    preds = predictor.predict(inputs)
    assert [p.ok for p in preds] == [False, True, False, False, False, False]
    assert preds[1].predicted in predictor.class_names
    assert sum(preds[1].probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    for p, item, why in [
        (preds[0], corrupt, "cannot open the video|no decodable frame"),
        (preds[2], empty, "no frame files"),
        (preds[3], no_face[0], "no face found"),
        (preds[4], missing, "not found"),
        (preds[5], image, "a single image is not a clip"),
    ]:
        assert str(item) in p.error
        assert p.predicted is None and p.probabilities is None
        assert re.search(why, p.error), p.error


# --------------------------------------------------------------------------- 4. explanations
def test_explanation_png_is_written(trained, held_out, tmp_path):
    predictor, _ = trained
    folder = clip_folder(held_out[0].iloc[0])
    (pred,) = predictor.predict([folder], explain_dir=tmp_path / "explain", smoothgrad=4)
    assert pred.explanation == str(tmp_path / "explain" / explanation_name(0, str(folder)))
    img = cv2.imread(pred.explanation)
    assert img is not None and img.shape[0] > 400 and img.shape[1] > 800
    assert img.std() > 10  # not a blank canvas


def test_saliency_is_the_input_gradient(trained):
    """samples=1 gives |d detector_k / d x| summed over channels: checked against central
    finite differences of a float64 copy of the network."""
    predictor, _ = trained
    double = Predictor(predictor.model.double(), predictor.header)
    try:
        rng = np.random.default_rng(0)
        x = rng.random((2, 28, 28))
        sal = double.saliency(x, samples=1)
        assert sal.shape == (3, 28, 28) and (sal >= 0).all()

        def det(z: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return double.model(torch.from_numpy(z[None])).detector_logits[0].numpy()

        eps = 1e-6
        for i, j in [(5, 7), (14, 14), (20, 3)]:
            fd = np.zeros(3)
            for c in range(2):
                up, down = x.copy(), x.copy()
                up[c, i, j] += eps
                down[c, i, j] -= eps
                fd += np.abs((det(up) - det(down)) / (2 * eps))
            np.testing.assert_allclose(sal[:, i, j], fd, rtol=1e-4, atol=1e-9)
    finally:
        predictor.model.float()


def test_smoothgrad_is_deterministic_and_differs_from_plain_gradient(trained):
    predictor, data = trained
    x = predictor.network_input(data.features.x[0])
    a, b = predictor.saliency(x, samples=8, seed=3), predictor.saliency(x, samples=8, seed=3)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, predictor.saliency(x, samples=1))


def test_flow_colour_coding():
    u = np.array([[1.0, 0.0, -1.0, 0.5]])
    v = np.array([[0.0, 1.0, 0.0, 0.0]])
    rgb = flow_to_rgb(u, v, max_magnitude=1.0)
    expected = [colorsys.hsv_to_rgb(h, 1.0, val) for h, val in
                [(0.0, 1.0), (0.25, 1.0), (0.5, 1.0), (0.0, 0.5)]]  # right, down, left, half
    np.testing.assert_allclose(rgb[0], expected, atol=1e-6)


def test_parse_source():
    assert parse_source("casme2:/d/CASME2") == ("casme2", Path("/d/CASME2"))
    assert parse_source("flowset:C:/x") == ("flowset", Path("C:/x"))
    with pytest.raises(ValueError, match="SCHEME:PATH"):
        parse_source("nosuchdb:/d")


def test_training_checks_channels(trained):
    _, data = trained
    config = resolve_config("fast", None, {"model": "ststnet", "channels": ["u", "v"]})
    with pytest.raises(ValueError, match="reads 3 channels"):
        train_model(data, config, device="cpu", progress=False)
    config = resolve_config("fast", None, {"model": "ststnet"})  # its own u, v, strain
    assert config.channels == ("u", "v", "strain")
    with pytest.raises(ValueError, match="--strain"):
        train_model(data, config, device="cpu", progress=False)


def test_training_on_a_flow_set_is_marked_inexact(tmp_path, held_out):
    """A model fit on a pre-computed flow set records that its preprocessing was not
    mefr's, and warns when it is loaded; it still predicts raw clips (with u, v)."""
    from mefr.data.flowset import DEFAULT_CSV, DEFAULT_IMAGE_DIR

    images = tmp_path / DEFAULT_IMAGE_DIR
    images.mkdir()
    rng = np.random.default_rng(0)
    rows = ["dataset,sub,filename_o,label"]
    for i in range(6):
        sub, clip = f"sub0{i % 3 + 1}", f"EP0{i}_01"
        rows.append(f"casme2,{sub},{clip},{i % 3}")
        cv2.imwrite(str(images / f"{sub}_{clip}.png"),
                    rng.integers(0, 256, (28, 28, 3), dtype=np.uint8))
    (tmp_path / DEFAULT_CSV).write_text("\n".join(rows) + "\n")
    data = load_training_data([f"flowset:{tmp_path}"], "cde")
    assert data.preprocess["source"] == "flowset" and data.preprocess["exact"] is False
    assert data.data["class_counts"] == {"negative": 2, "positive": 2, "surprise": 2}
    config = resolve_config("fast", None, {"epochs": 1, "model_kwargs": SMALL})
    path = train_model(data, config, device="cpu", progress=False).save(tmp_path / "m.st")
    with pytest.warns(VersionMismatchWarning, match="pre-computed flow set"):
        loaded = Predictor.from_file(path)
    assert loaded.settings.normalisation == "minmax_per_image"
    assert loaded.predict([clip_folder(held_out[0].iloc[0])])[0].ok
    with pytest.raises(ValueError, match="only source"):
        load_training_data([f"flowset:{tmp_path}", f"flowset:{tmp_path}"])


# --------------------------------------------------------------------------- CLI
def test_cli_train_and_predict(synthetic_databases, feature_cache, held_out, tmp_path, capsys):
    root = synthetic_databases["casme2"].parent
    model = tmp_path / "m.safetensors"
    rc = main(["train", "--data", f"synthetic:{root}", "--out", str(model), "--preset", "fast",
               "--set", "epochs=1", "--set",
               "model_kwargs={shared_dim: 16, detector_hidden: 8, classifier_hidden: 8}",
               "--cache", str(feature_cache), "--workers", "1", "--device", "cpu",
               "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0 and model.is_file()
    assert "negative" in out and "clips" in out
    folder = clip_folder(held_out[0].iloc[0])
    frames = sorted(folder.iterdir(), key=lambda p: int(p.stem[3:]))
    rc = main(["predict", str(model), str(folder), "--onset-apex", str(frames[0]),
               str(frames[4]), "--json", "--explain", str(tmp_path / "ex"), "--smoothgrad", "2"])
    preds = json.loads(capsys.readouterr().out)
    assert rc == 0 and len(preds) == 2
    assert [p["kind"] for p in preds] == ["frames", "pair"]
    assert all(Path(p["explanation"]).is_file() for p in preds)
    assert set(preds[0]["probabilities"]) == set(protocol_classes("cde"))
    rc = main(["predict", str(model), str(folder), str(tmp_path / "nothing.avi")])
    table = capsys.readouterr().out
    assert rc == 1 and "error" in table and "nothing.avi" in table
    (tmp_path / "fake.safetensors").write_bytes(b"\x00" * 16)
    assert main(["predict", str(tmp_path / "fake.safetensors"), str(folder)]) == 2
    assert "not a safetensors file" in capsys.readouterr().err
