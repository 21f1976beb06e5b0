"""Training configuration: presets, YAML files, overrides, and the network's inputs."""

from pathlib import Path

import pytest

from mefr.train.config import PRESETS, TrainConfig, parse_override, resolve_config


def test_preset_then_file_then_overrides(tmp_path: Path) -> None:
    f = tmp_path / "train.yaml"
    f.write_text("train:\n  lr: 0.002\n  epochs: 7\n  optimizer: sgd\n")
    cfg = resolve_config("paper_single", f, ["epochs=3", "betas=[0.8, 0.9]"])
    assert cfg.optimizer == "sgd" and cfg.lr == 0.002  # the file beats the preset
    assert cfg.epochs == 3  # the override beats the file
    assert cfg.momentum == PRESETS["paper_single"]["momentum"]  # untouched preset value
    assert cfg.betas == (0.8, 0.9)


def test_channels_follow_the_network_unless_set() -> None:
    assert resolve_config("cde", None, ["model=ststnet"]).channels == ("u", "v", "strain")
    assert resolve_config("cde", None, ["model=fr"]).channels == ("u", "v")
    assert resolve_config("cde").channels == ("u", "v")
    cfg = resolve_config("cde", None, ["model=ststnet", "channels=[u, v]"])
    assert cfg.channels == ("u", "v")
    # the comma-separated spelling of the command line, not one channel per character
    assert resolve_config("cde", None, ["channels=v, strain"]).channels == ("v", "strain")
    assert resolve_config("cde", None, ["betas=0.5,0.9"]).betas == (0.5, 0.9)


def test_round_trip_through_a_dict() -> None:
    cfg = resolve_config("cde", None, {"model": "basic_inception", "lam": 0.5})
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(("over", "message"), [
    (["optimiser=adam"], "unknown training settings"),
    (["optimizer=rmsprop"], "optimizer must be"),
    (["epochs=0"], "epochs must be positive"),
    (["dropout=1.0"], "dropout must be in"),
    (["inner_val_fraction=0"], r"inner_val_fraction must be in \(0, 1\)"),
    (["inner_val_fraction=1.5"], r"inner_val_fraction must be in \(0, 1\)"),
    (["betas=[0.9]"], "betas must be two numbers"),
    (["betas=[0.9, fast]"], "betas must be a number"),
    (["model=resnet"], "resnet"),
])
def test_bad_settings_are_named(over: list[str], message: str) -> None:
    with pytest.raises((ValueError, KeyError), match=message):
        resolve_config("cde", None, over)


def test_bad_preset_and_override_syntax() -> None:
    with pytest.raises(ValueError, match="unknown preset"):
        resolve_config("best")
    with pytest.raises(ValueError, match="key=value"):
        parse_override("lr")
    assert parse_override("lr=0.001") == ("lr", 0.001)


def test_numbers_in_yaml_1_1_spelling(tmp_path: Path) -> None:
    """YAML 1.1 reads ``1e-3`` as a string; settings still get the number."""
    f = tmp_path / "train.yaml"
    f.write_text("lr: 1e-3\neps: 1E-7\nepochs: '20'\n")
    cfg = resolve_config("cde", f, ["weight_decay=5e-4"])
    assert (cfg.lr, cfg.eps, cfg.epochs, cfg.weight_decay) == (0.001, 1e-7, 20, 0.0005)
    with pytest.raises(ValueError, match="lr must be a number"):
        resolve_config("cde", None, ["lr=fast"])
    with pytest.raises(ValueError, match="epochs must be a whole number"):
        resolve_config("cde", None, ["epochs=2.5"])
