"""Head-motion compensation (mefr.preprocess.register, PreprocessSettings.register).

Synthetic clips with a known rigid head motion (mefr.data.synthetic.render_clip's ``head``)
check that the motion recovered is the one rendered, that the flow of a pure head motion
vanishes with registration (and not without), and that the flow of an expression under
head motion comes back to the flow of the expression alone.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from mefr.data.synthetic import head_ramp, make_face, motion_field, render_clip
from mefr.data.table import make_table
from mefr.preprocess import (
    PreprocessSettings,
    Registrar,
    RegistrationError,
    build_features,
    frames_features,
)
from mefr.preprocess.face import face_box
from mefr.preprocess.pipeline import _task_of

CANVAS = (160, 200)  # (H, W)
N, APEX = 9, 4
#: Head drift at the last frame: dx, dy (pixels), rotation (degrees, counter-clockwise).
DRIFT = (6.0, -4.0, 4.0)


def _clip(pattern: str | None, head: bool, seed: int = 0) -> list[np.ndarray]:
    """Frames of one clip: ``pattern``'s expression (None: a neutral face), with or without
    the head drift :data:`DRIFT`; no sub-pixel jitter, so the rendered motion is exact."""
    rng = np.random.default_rng(seed)
    face = make_face(rng, CANVAS)
    field = motion_field(face, pattern or "surprise", 3.0, rng)
    if pattern is None:
        field = np.zeros_like(field)
    poses = head_ramp(N, *DRIFT) if head else None
    return render_clip(face, field, N, APEX, np.random.default_rng(seed + 100), jitter_px=0.0,
                       head=poses)


def _true_motion(frame: int, centre: tuple[float, float]) -> tuple[float, float, float]:
    """The rendered head motion of ``frame``, written out by hand: displacement of
    ``centre`` (x, y) and the rotation (degrees, counter-clockwise on screen)."""
    f = frame / (N - 1)
    dx, dy, deg = (f * v for v in DRIFT)
    cx, cy = (CANVAS[1] - 1) / 2.0, (CANVAS[0] - 1) / 2.0  # the canvas centre: render_clip's
    a = math.radians(deg)
    # counter-clockwise on screen (y down): x' = cos*x + sin*y, y' = -sin*x + cos*y
    px, py = centre[0] - cx, centre[1] - cy
    qx = math.cos(a) * px + math.sin(a) * py + cx + dx
    qy = -math.sin(a) * px + math.cos(a) * py + cy + dy
    return qx - centre[0], qy - centre[1], deg


def _grey(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)


@pytest.fixture(scope="module")
def clips() -> dict[str, list[np.ndarray]]:
    return {
        "head": _clip(None, head=True),
        "expr": _clip("happiness", head=False, seed=1),
        "expr+head": _clip("happiness", head=True, seed=1),
    }


def _raw(register: str) -> PreprocessSettings:
    return PreprocessSettings(normalisation="none", register=register)


@pytest.mark.parametrize("kind", ["similarity", "affine"])
def test_recovered_motion_matches_the_rendered_one(clips, kind: str) -> None:
    frames = clips["head"]
    box = face_box(frames[0])
    reg = Registrar(_grey(frames[0]), box, kind)
    for t in (2, APEX, N - 1):
        m = reg.estimate(_grey(frames[t]))
        dx, dy, deg = _true_motion(t, reg.centre)
        assert m.dx == pytest.approx(dx, abs=0.05), (t, m.describe())  # pixels
        assert m.dy == pytest.approx(dy, abs=0.05), (t, m.describe())
        assert m.rotation == pytest.approx(deg, abs=0.05), (t, m.describe())  # degrees
        assert m.scale == pytest.approx(1.0, abs=0.002)
    again = reg.estimate(_grey(frames[APEX]))
    assert again == reg.estimate(_grey(frames[APEX]))  # deterministic (RANSAC is seeded)


def test_pure_head_motion_gives_no_flow_with_registration(clips) -> None:
    frames = clips["head"]
    plain = frames_features(frames, _raw("none"), apex=APEX)
    registered = frames_features(frames, _raw("similarity"), apex=APEX)
    magnitude = {k: float(np.hypot(f.x[0], f.x[1]).mean())
                 for k, f in (("none", plain), ("similarity", registered))}
    t = math.hypot(*_true_motion(APEX, registered.head_motion.centre)[:2])
    assert magnitude["none"] > 0.5 * t > 1.0  # the flow is the head's motion
    assert magnitude["similarity"] < 0.15  # pixels: next to nothing left
    assert plain.head_motion is None
    m = registered.head_motion
    assert (m.dx, m.dy) == pytest.approx(_true_motion(APEX, m.centre)[:2], abs=0.15)


def test_expression_under_head_motion_comes_back_to_the_expression_alone(clips) -> None:
    alone = frames_features(clips["expr"], _raw("none"), apex=APEX).x[:2]
    moved = frames_features(clips["expr+head"], _raw("none"), apex=APEX).x[:2]
    registered = frames_features(clips["expr+head"], _raw("similarity"), apex=APEX).x[:2]

    def rel(a: np.ndarray) -> float:
        return float(np.linalg.norm(a - alone) / np.linalg.norm(alone))

    def cosine(a: np.ndarray) -> float:
        return float((a * alone).sum() / (np.linalg.norm(a) * np.linalg.norm(alone)))

    assert rel(moved) > 1.0 and cosine(moved) < 0.7  # head motion swamps the expression
    assert rel(registered) < 0.3 and cosine(registered) > 0.95


def test_eq1_apex_spotting_sees_registered_frames(clips) -> None:
    # Under a head drift, Eq. (1) picks the last frame (the largest head motion); with
    # registration it finds the expression's apex again.
    diff = PreprocessSettings(apex_policy="diff")
    assert frames_features(clips["expr+head"], diff).apex_index == N - 1
    registered = PreprocessSettings(apex_policy="diff", register="similarity")
    assert frames_features(clips["expr+head"], registered).apex_index == APEX


def test_settings_register_field_and_cache_key(tmp_path) -> None:
    assert PreprocessSettings().register == "none"
    assert "register" not in PreprocessSettings().to_dict()  # old cache keys and headers
    s = PreprocessSettings(register="affine")
    assert s.to_dict()["register"] == "affine"
    assert PreprocessSettings.from_dict(s.to_dict()) == s
    with pytest.raises(ValueError, match="unknown registration 'rigid'"):
        PreprocessSettings(register="rigid")
    frame = tmp_path / "img1.jpg"
    frame.write_bytes(b"x")
    row = {"dataset": "casme2", "subject": "1", "clip": "c", "emotion": "happiness",
           "onset": 1, "apex": 1, "offset": 1, "frames": (str(frame),), "frame_numbers": (1,)}
    table = make_table([row]).to_dict("records")[0]
    keys = {r: _task_of(0, table, PreprocessSettings(register=r), None).key
            for r in ("none", "similarity", "affine")}
    assert len(set(keys.values())) == 3  # a changed setting never reuses cached features


def test_build_features_reports_head_motion_and_caches_it(clips, tmp_path) -> None:
    folder = tmp_path / "sub01" / "EP01"
    folder.mkdir(parents=True)
    paths = []
    for i, img in enumerate(clips["head"]):
        p = folder / f"img{i + 1}.png"
        cv2.imwrite(str(p), img)
        paths.append(str(p))
    table = make_table([{"dataset": "casme2", "subject": "sub01", "clip": "EP01",
                         "emotion": "happiness", "onset": 1, "apex": APEX + 1, "offset": N,
                         "frames": tuple(paths), "frame_numbers": tuple(range(1, N + 1))}])
    s = PreprocessSettings(register="similarity")
    first = build_features(table, s, cache_dir=tmp_path / "cache", workers=1, progress=False)
    again = build_features(table, s, cache_dir=tmp_path / "cache", workers=1, progress=False)
    assert (first.computed, again.cached) == (1, 1)
    for fs in (first, again):
        r = fs.table.iloc[0]
        dx, dy, deg = _true_motion(APEX, (r["face_box"][0] + r["face_box"][2] / 2,
                                          r["face_box"][1] + r["face_box"][3] / 2))
        assert float(r["head_dx"]) == pytest.approx(dx, abs=0.2)
        assert float(r["head_dy"]) == pytest.approx(dy, abs=0.2)
        assert float(r["head_rotation"]) == pytest.approx(deg, abs=0.1)
        assert r["preprocess_notes"] == ""  # head motion is data, not a warning
    plain = build_features(table, PreprocessSettings(), workers=1, progress=False)
    assert "head_dx" not in plain.table.columns


def test_unregistrable_frame_fails_the_clip_with_a_reason() -> None:
    flat = [np.full((60, 80), 128, np.uint8)] * 3
    with pytest.raises(RegistrationError, match="cannot register to the onset: only 0 corner"):
        frames_features(flat, PreprocessSettings(face="none", register="similarity"), apex=1)
    with pytest.raises(ValueError, match="not 'none'"):
        Registrar(flat[0], None, "none")


def test_cli_and_predict_carry_the_setting(clips) -> None:
    import argparse

    from mefr.cli.common import add_preprocess_options, settings_from_args
    from mefr.predict.inputs import FramesInput, prepare_input

    p = argparse.ArgumentParser()
    add_preprocess_options(p)
    assert settings_from_args(p.parse_args([]), "fr").register == "none"
    s = settings_from_args(p.parse_args(["--register", "similarity"]), "fr")
    assert s.register == "similarity"
    clip = prepare_input(FramesInput(clips["head"], apex=APEX), s, name="moving head")
    assert any(n.startswith("onset->apex head motion (similarity): dx +") for n in clip.notes)


def test_mefr_predict_register_overrides_the_model_files_setting(clips, tmp_path, capsys) -> None:
    import json

    from mefr.cli import main

    folder = tmp_path / "moving_head"
    folder.mkdir()
    for i, img in enumerate(clips["head"]):
        cv2.imwrite(str(folder / f"img{i + 1:03d}.png"), img)
    base = ["predict", "--model", "fr-megc2019", "--json", str(folder)]
    assert main(base) == 0
    plain = json.loads(capsys.readouterr().out)[0]
    assert not any("head motion" in n for n in plain["notes"])  # the model's own: none
    assert main([*base, "--register", "similarity"]) == 0
    out = capsys.readouterr()
    registered = json.loads(out.out)[0]
    assert "inputs registered with 'similarity'" in out.err
    assert any(n.startswith("onset->apex head motion (similarity)") for n in registered["notes"])
