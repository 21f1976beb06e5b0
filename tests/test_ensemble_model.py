"""Ensemble model files (issue 33 item 4): N members in one safetensors file whose
prediction is the weighted mean of the members' class probabilities, per clip; made by
`mefr train --seeds` or by bundling model files; used by `mefr predict` and Predictor."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from mefr import __version__
from mefr._env import opencv_version, package_version
from mefr.cli import main
from mefr.data.flowset import load_flowset, select_channels
from mefr.modelfile import (
    FORMAT_VERSION,
    HEADER_KEY,
    ModelFileError,
    VersionMismatchWarning,
    make_header,
    read_header,
    save_model_file,
)
from mefr.modelmembers import ENSEMBLE_FORMAT_VERSION
from mefr.models.registry import create_model
from mefr.predict import (
    Predictor,
    bundle_model_files,
    ensemble_of,
    folder_frames,
    model_summary,
)
from mefr.predict.pretrained import pretrained_file, pretrained_model
from mefr.predict.results import describe_members
from mefr.preprocess.settings import PreprocessSettings

CLASSES = ["negative", "positive", "surprise"]
#: Small networks (same structure, narrower layers): files of a few hundred kB.
SMALL = {"fr": {"shared_dim": 16, "widths": (2, 2), "detector_hidden": 4,
                "classifier_hidden": 8},
         "off_apexnet": {"filters": (2, 2), "hidden": 8},
         "ststnet": {}}
FLOWSET = Path(__file__).resolve().parents[2] / "shared" / "data" / "megc2019-cde-flow"


def member(seed: int, network: str = "fr", settings: PreprocessSettings | None = None,
           classes: list[str] | None = None, channels: tuple[str, ...] = ("u", "v")
           ) -> tuple[torch.nn.Module, dict]:
    """An untrained network initialised from ``seed`` and its single-model header."""
    model = create_model(network, 3, in_channels=len(channels), **SMALL[network])
    model.init_models([seed])
    model.eval()
    s = settings or PreprocessSettings()
    header = make_header(
        created="2026-01-01T00:00:00+00:00", mefr_version=__version__,
        network={"name": network, "num_classes": 3, "detectors": network.startswith("fr"),
                 "kwargs": {k: v for k, v in model.config.items() if k != "num_classes"}},
        classes=list(classes or CLASSES),
        input={"channels": list(channels), "size": 28, "feature_channels": list(s.channels)},
        preprocess={"source": "raw", "exact": True, "settings": s.to_dict(),
                    "opencv": opencv_version(), "yuface": package_version("yuface")},
        train={"epochs": 1, "evaluated_epoch": 1, "seed": seed}, data={"clips": 7})
    return model, header


def write_member(path: Path, seed: int, network: str = "fr", **kw) -> Path:
    model, header = member(seed, network, **kw)
    return save_model_file(path, model.state_dict(), header)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Three FR seeds and one OFF-ApexNet as single model files, and ensembles of them."""
    d = tmp_path_factory.mktemp("ensemble_files")
    out = {f"fr{s}": write_member(d / f"fr{s}.safetensors", s) for s in range(3)}
    out["off"] = write_member(d / "off.safetensors", 5, "off_apexnet")
    out["fr3"] = bundle_model_files([out["fr0"], out["fr1"], out["fr2"]], d / "fr3.safetensors")
    out["mixed"] = bundle_model_files([out["fr3"], out["off"]], d / "mixed.safetensors")
    return out


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return np.random.default_rng(0).random((5, 2, 28, 28), dtype=np.float32)


def _raw(path: Path, tensors: dict[str, torch.Tensor], header: dict) -> Path:
    """A file written without mefr's checks (tampered or corrupted)."""
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path),
              metadata={HEADER_KEY: json.dumps(header)})
    return path


# --------------------------------------------------------------------------- the rule
def test_probabilities_are_the_mean_of_the_members(files, x):
    ensemble = Predictor.from_file(files["fr3"])
    assert ensemble.is_ensemble and len(ensemble.models) == 3
    assert ensemble.weights == pytest.approx([1 / 3] * 3)
    probs, dets = ensemble.forward(x)
    # each member loaded on its own, as its own single model file
    singles = [Predictor.from_file(files[f"fr{s}"]).forward(x) for s in range(3)]
    assert all(not Predictor.from_file(files[f"fr{s}"]).is_ensemble for s in range(3))
    assert np.abs(probs - np.mean([p for p, _ in singles], axis=0)).max() < 1e-6
    assert np.abs(dets - np.mean([d for _, d in singles], axis=0)).max() < 1e-6
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    assert not np.allclose(singles[0][0], singles[1][0])  # the members do differ


def test_each_bundled_file_weighs_the_same(files, x):
    """Bundling an ensemble of 3 FR seeds with one OFF-ApexNet: each file weighs 1/2
    (each FR seed 1/6), the rule of `mefr ensemble` (seeds, then networks)."""
    mixed = Predictor.from_file(files["mixed"])
    assert mixed.weights == pytest.approx([1 / 6, 1 / 6, 1 / 6, 1 / 2])
    assert mixed.networks == ("fr", "fr", "fr", "off_apexnet")
    fr3, _ = Predictor.from_file(files["fr3"]).forward(x)
    off, off_dets = Predictor.from_file(files["off"]).forward(x)
    probs, dets = mixed.forward(x)
    assert np.abs(probs - (fr3 + off) / 2).max() < 1e-6
    assert off_dets is None and dets is None  # a member without detectors: no detector scores
    assert mixed.network == "ensemble of 4 members (fr x3 + off_apexnet)"
    header = read_header(files["mixed"])
    assert [m["file"] for m in header["members"]] == [
        "fr0.safetensors", "fr1.safetensors", "fr2.safetensors", "off.safetensors"]


def test_saliency_is_the_mean_of_the_members(files, x):
    ensemble = Predictor.from_file(files["mixed"])
    maps = ensemble.saliency(x[0], samples=3, seed=4)
    each = [Predictor.from_file(files[n]).saliency(x[0], samples=3, seed=4)
            for n in ("fr0", "fr1", "fr2", "off")]
    want = sum(w * m for w, m in zip(ensemble.weights, each, strict=True))
    assert maps.shape == (3, 28, 28) and np.abs(maps - want).max() < 1e-6 * np.abs(want).max()


# --------------------------------------------------------------------------- the file
def test_round_trip(files, x, tmp_path):
    loaded = Predictor.from_file(files["mixed"])
    again = Predictor.from_file(loaded.save(tmp_path / "again.safetensors"))
    assert again.header == loaded.header
    for a, b in zip(loaded.models, again.models, strict=True):
        for name, t in a.state_dict().items():
            assert torch.equal(t, b.state_dict()[name]), name
    assert np.array_equal(loaded.forward(x)[0], again.forward(x)[0])
    # an ensemble made in memory saves and loads to the same numbers
    memory = ensemble_of([Predictor.from_file(files["fr0"]), Predictor.from_file(files["off"])])
    saved = Predictor.from_file(memory.save(tmp_path / "memory.safetensors"))
    assert np.array_equal(memory.forward(x)[0], saved.forward(x)[0])
    assert [m["file"] for m in saved.header["members"]] == ["fr0.safetensors", "off.safetensors"]


def test_file_layout(files):
    header = read_header(files["fr3"])
    assert header["format_version"] == ENSEMBLE_FORMAT_VERSION == 2
    assert header["ensemble"] == {"rule": "weighted_mean_probabilities"}
    assert [m["header"]["format_version"] for m in header["members"]] == [FORMAT_VERSION] * 3
    assert [m["header"]["train"]["seed"] for m in header["members"]] == [0, 1, 2]
    for key in ("classes", "input", "preprocess"):
        assert header[key] == header["members"][0]["header"][key]
    names = set(load_file(str(files["fr3"])))
    one = set(load_file(str(files["fr0"])))
    assert names == {f"members.{i}.{n}" for i in range(3) for n in one}


def test_a_single_model_file_is_unchanged(files, x):
    """A single model is still written as format version 1 without ensemble fields, and
    predicts through the one network exactly as that network does."""
    header = read_header(files["fr0"])
    assert header["format_version"] == FORMAT_VERSION == 1
    assert "members" not in header and "ensemble" not in header
    single = Predictor.from_file(files["fr0"])
    assert single.networks == ("fr",) and single.network == "fr" and single.weights == (1.0,)
    with torch.no_grad():
        logits = single.model(torch.from_numpy(x)).logits
    assert np.array_equal(single.forward(x)[0], torch.softmax(logits, -1).numpy())


def test_shipped_models_load_as_single_models():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", VersionMismatchWarning)  # trained on a flow set
        fr = Predictor.from_pretrained("fr-megc2019")
    assert not fr.is_ensemble and len(fr.models) == 1 and fr.model is fr.models[0]
    assert read_header(pretrained_file("fr-megc2019"))["format_version"] == 1


@pytest.mark.skipif(not FLOWSET.is_dir(), reason=f"real flow set not found at {FLOWSET}")
def test_ensemble_of_the_shipped_models_on_the_flow_set(tmp_path):
    names = ("fr-megc2019", "off_apexnet-megc2019")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", VersionMismatchWarning)
        path = bundle_model_files([pretrained_file(n) for n in names], tmp_path / "e.safetensors")
        ensemble = Predictor.from_file(path)
        singles = [Predictor.from_pretrained(n) for n in names]
    # float16 members stay float16: the file is about the size of the two files
    assert path.stat().st_size < 1.01 * sum(pretrained_model(n).bytes for n in names)
    flows = load_flowset(FLOWSET)
    x = select_channels(flows.x, flows.channels, ensemble.channels)
    probs, dets = ensemble.forward(x)
    mean = np.mean([p.forward(x)[0] for p in singles], axis=0)
    assert np.abs(probs - mean).max() < 1e-6 and dets is None
    refs = [np.asarray(json.loads(pretrained_model(n).reference.read_text())["probabilities"])
            for n in names]
    assert np.abs(probs - np.mean(refs, axis=0)).max() <= 1e-2


# --------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("change, message", [
    ({"classes": ["neg", "pos", "sur"]}, "classes"),
    ({"settings": PreprocessSettings(apex_policy="middle")}, "apex_policy 'middle'"),
    ({"settings": PreprocessSettings(strain=True), "channels": ("u", "v", "strain")},
     "preprocessing settings differ"),
])
def test_bundling_refuses_mismatched_members(files, tmp_path, change, message):
    network = "ststnet" if "channels" in change else "fr"
    other = write_member(tmp_path / "other.safetensors", 9, network, **change)
    out = tmp_path / "e.safetensors"
    with pytest.raises(ModelFileError, match=message) as info:
        bundle_model_files([files["fr0"], other], out)
    text = str(info.value)
    assert text.startswith(str(other)) and str(files["fr0"]) in text
    assert "share the classes and the preprocessing" in text
    assert not out.exists()
    with pytest.raises(ModelFileError, match="at least two members"):
        bundle_model_files([files["fr0"]], out)


def test_a_corrupted_member_is_refused(files, tmp_path):
    tensors, header = load_file(str(files["fr3"])), read_header(files["fr3"])
    name = next(n for n in tensors if n.startswith("members.1.") and "weight" in n)
    tensors[name] = torch.full_like(tensors[name], float("nan"))
    bad = _raw(tmp_path / "nan.safetensors", tensors, header)
    with pytest.raises(ModelFileError, match=r"nan.safetensors member 1: weight .* holds NaN"):
        Predictor.from_file(bad)
    with pytest.raises(ModelFileError, match="member 1: refusing to save"):
        save_model_file(tmp_path / "never.safetensors", tensors, header)
    assert not (tmp_path / "never.safetensors").exists()
    with pytest.raises(ModelFileError, match="holds NaN"):
        bundle_model_files([files["fr0"], bad], tmp_path / "e.safetensors")


def _tamper(header: dict, what: str) -> dict:
    h = json.loads(json.dumps(header))
    if what == "weights":
        h["members"][0]["weight"] = 0.5
    elif what == "negative":
        h["members"][0]["weight"], h["members"][1]["weight"] = -1 / 3, 1.0
    elif what == "rule":
        h["ensemble"]["rule"] = "median"
    elif what == "one member":
        h["members"] = h["members"][:1]
        h["members"][0]["weight"] = 1.0
    elif what == "classes":
        h["members"][2]["header"]["classes"] = ["a", "b", "c"]
    elif what == "top":
        h["input"]["channels"] = ["v", "u"]
    elif what == "nested":
        h["members"][1]["header"] = json.loads(json.dumps(header))
    return h


@pytest.mark.parametrize("what, message", [
    ("weights", "weights sum to"), ("negative", "not a positive number"),
    ("rule", "ensemble rule 'median' is not known"), ("one member", "2..1000 members"),
    ("classes", "member 2: its classes"), ("top", "'input' is not member 0's"),
    ("nested", "member 1: a member is a single model"),
])
def test_tampered_ensemble_headers_are_refused(files, tmp_path, what, message):
    tensors, header = load_file(str(files["fr3"])), read_header(files["fr3"])
    path = _raw(tmp_path / "t.safetensors", tensors, _tamper(header, what))
    with pytest.raises(ModelFileError, match=message):
        Predictor.from_file(path)


def test_version_rules_apply_to_every_member(files, tmp_path):
    tensors, header = load_file(str(files["fr3"])), read_header(files["fr3"])
    header["members"][2]["header"]["preprocess"]["opencv"] = "3.1.0"
    path = _raw(tmp_path / "old_cv.safetensors", tensors, header)
    with pytest.raises(ModelFileError, match="OpenCV 3.1.0"):
        Predictor.from_file(path)
    with pytest.warns(VersionMismatchWarning, match="OpenCV 3.1.0"):
        assert len(Predictor.from_file(path, strict=False).models) == 3
    with pytest.raises(ModelFileError, match="OpenCV 3.1.0"):
        bundle_model_files([files["fr0"], path], tmp_path / "e.safetensors")


def test_tensors_of_no_member_and_misfits_are_refused(files, tmp_path):
    tensors, header = load_file(str(files["fr3"])), read_header(files["fr3"])
    stray = _raw(tmp_path / "stray.safetensors", {**tensors, "members.3.x": torch.ones(1)},
                 header)
    with pytest.raises(ModelFileError, match="'members.3.x' belongs to none of the 3"):
        Predictor.from_file(stray)
    off = load_file(str(files["off"]))
    swapped = {**{k: v for k, v in tensors.items() if not k.startswith("members.2.")},
               **{f"members.2.{k}": v for k, v in off.items()}}
    misfit = _raw(tmp_path / "misfit.safetensors", swapped, header)
    with pytest.raises(ModelFileError, match="misfit.safetensors member 2: the weights do not fit"):
        Predictor.from_file(misfit)


# --------------------------------------------------------------------------- predict, CLI
def test_predict_and_explain_with_an_ensemble_file(files, synthetic_databases, tmp_path,
                                                   capsys):
    folder = sorted((synthetic_databases["casme2"] / "CASME2_RAW_selected").glob("*/*"))[0]
    frames = folder_frames(folder)
    rc = main(["predict", str(files["fr3"]), str(folder), "--onset-apex", str(frames[0]),
               str(frames[4]), "--json", "--explain", str(tmp_path / "ex"), "--smoothgrad", "2"])
    preds = json.loads(capsys.readouterr().out)
    assert rc == 0 and len(preds) == 2
    assert all(p["members"] == 3 and p["model"] == "ensemble of 3 members (fr x3)"
               for p in preds)
    assert all(Path(p["explanation"]).is_file() for p in preds)
    # the same clip through the members one by one: the mean of their probabilities
    alone = [Predictor.from_file(files[f"fr{s}"]).predict([folder])[0] for s in range(3)]
    assert all(p.members == 1 and p.model == "fr" for p in alone)
    for c in CLASSES:
        mean = np.mean([p.probabilities[c] for p in alone])
        assert preds[0]["probabilities"][c] == pytest.approx(mean, abs=1e-6)
    assert main(["predict", str(files["fr3"]), str(folder)]) == 0
    table = capsys.readouterr().out
    assert table.startswith("model: ensemble of 3 members (fr x3); p_ and d_ are the "
                            "weighted means of the 3 members'")


def test_cli_bundles_and_describes(files, tmp_path, capsys):
    out = tmp_path / "cli.safetensors"
    assert main(["ensemble-model", str(files["fr0"]), str(files["off"]), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "ensemble of 2 members (fr + off_apexnet)" in printed and out.is_file()
    assert main(["models", "--card", str(out)]) == 0
    card = capsys.readouterr().out
    assert card == model_summary(read_header(out), str(out)) + "\n"
    rows = card.split("members\n", 1)[1].splitlines()[1:]
    assert [r.split()[:3] for r in rows] == [["0", "0.5000", "fr"], ["1", "0.5000", "off_apexnet"]]
    assert rows[0].endswith("fr0.safetensors") and rows[1].endswith("off.safetensors")
    other = write_member(tmp_path / "five.safetensors", 1, classes=["a", "b", "c"])
    assert main(["ensemble-model", str(files["fr0"]), str(other), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "five.safetensors" in err and "classes" in err


def test_describe_members():
    assert describe_members(["fr"]) == "fr"
    assert describe_members(["fr", "fr"]) == "ensemble of 2 members (fr x2)"
    assert describe_members(["fr", "ststnet", "fr"]) == "ensemble of 3 members (fr x2 + ststnet)"


# --------------------------------------------------------------------------- training
@pytest.mark.filterwarnings("ignore::mefr.data.labels.LabelWarning")  # tested elsewhere
@pytest.mark.filterwarnings("ignore::mefr.preprocess.apex.ApexFallbackWarning")
def test_train_seeds_writes_an_ensemble(synthetic_databases, tmp_path, capsys):
    root = synthetic_databases["casme2"].parent
    common = ["--data", f"synthetic:{root}", "--preset", "fast", "--set", "epochs=1", "--set",
              "model_kwargs={shared_dim: 16, detector_hidden: 8, classifier_hidden: 8}",
              "--cache", str(tmp_path / "cache"), "--workers", "1", "--device", "cpu",
              "--no-progress"]
    ensemble, single = tmp_path / "e.safetensors", tmp_path / "s1.safetensors"
    assert main(["train", *common, "--seeds", "0-1", "--out", str(ensemble)]) == 0
    out = capsys.readouterr().out
    assert "ensemble of 2 members (fr x2)" in out and "seed 0" in out and "seed 1" in out
    header = read_header(ensemble)
    assert header["format_version"] == 2
    assert [m["header"]["train"]["seed"] for m in header["members"]] == [0, 1]
    assert [m["weight"] for m in header["members"]] == [0.5, 0.5]
    assert [m["file"] for m in header["members"]] == [None, None]
    # member 1 is the model `mefr train --seed 1` writes
    assert main(["train", *common, "--seed", "1", "--out", str(single)]) == 0
    capsys.readouterr()
    assert read_header(single)["format_version"] == 1
    members, alone = load_file(str(ensemble)), load_file(str(single))
    for name, t in alone.items():
        assert torch.equal(members[f"members.1.{name}"], t), name
    with pytest.raises(SystemExit):  # --seed and --seeds together
        main(["train", *common, "--seed", "1", "--seeds", "0-1", "--out", str(single)])
