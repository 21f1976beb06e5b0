"""Head motion: the flow of a moving head, and expressions under head motion, with and
without registration (``PreprocessSettings.register``).

Synthetic clips (:mod:`mefr.data.synthetic`: the astronaut's face varied per subject,
sub-pixel jitter and sensor noise as in ``mefr synth``) get a rigid head drift of a
known size (:func:`mefr.data.synthetic.render_clip`'s ``head``: translation in a random
direction and/or a rotation of random sign about the canvas centre, growing linearly from
the onset; the sizes below are reached at the apex frame). Every clip goes through
:func:`mefr.preprocess.frames_features` with the annotated apex: face on the onset,
crop, optional registration of the apex to the onset, TV-L1, resize to 28x28.

Part 1 - pure head motion (a neutral face): the mean flow magnitude over the 28x28 input
(raw flow, ``normalisation="none"``, pixels of the face crop), and the error of the motion
the registration recovers against the one rendered (displacement of the face box centre,
rotation).

Part 2 - expressions under head motion: three classes (surprise: AU1+2; positive:
AU6+12; negative: AU4+9+10, the synthetic "disgust"), amplitudes 2-3.5 px as in
``mefr synth``. The classifier is a nearest centroid (Euclidean): one centroid per class
from clips of the training subjects recorded with a still head, tested on clips of other
subjects under each head-motion condition. It runs on two feature sets made from the same
flow: the input FR reads (u, v at 28x28, ``minmax_per_image``, the default) and the raw
flow (``normalisation="none"``, pixels). Training and test clips are preprocessed with the
same setting (both registered, or neither). Chance is 1/3.

Usage::

    python benchmarks/head_motion.py [--train-subjects 6] [--test-subjects 4]
        [--clips 2] [--out benchmarks/results/head_motion_cpu.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import sys
import time
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from _common import command_line, cpu_model, emit

from mefr.data.synthetic import head_ramp, make_face, motion_field, render_clip
from mefr.data.synthetic.faces import Face
from mefr.preprocess import PreprocessSettings, Registrar, frames_features
from mefr.preprocess.face import face_box
from mefr.preprocess.flow import minmax
from mefr.preprocess.pipeline import available_cores

CANVAS = (240, 320)  # frame (H, W), as `mefr synth`
N_FRAMES, APEX = 11, 5
CLASSES = ("surprise", "happiness", "disgust")  # synthetic patterns: surprise, positive, negative
#: Head-motion conditions: name -> (translation at the apex in px, rotation in degrees).
CONDITIONS: dict[str, tuple[float, float]] = {
    "still head": (0.0, 0.0),
    "translation 5 px": (5.0, 0.0),
    "rotation 3 deg": (0.0, 3.0),
    "translation 5 px + rotation 3 deg": (5.0, 3.0),
}
PURE_MOTIONS: tuple[tuple[float, float], ...] = ((2.0, 0.0), (5.0, 0.0), (0.0, 3.0),
                                                 (10.0, 5.0))


def _poses(rng: np.random.Generator, translation: float, rotation: float) -> np.ndarray | None:
    """Head poses reaching ``translation`` (random direction) and ``rotation`` (random
    sign) at the apex frame; None for a still head."""
    if translation == 0 and rotation == 0:
        return None
    angle = rng.uniform(0, 2 * math.pi)
    dx, dy = translation * math.cos(angle), translation * math.sin(angle)
    deg = rotation * (1 if rng.random() < 0.5 else -1)
    k = (N_FRAMES - 1) / APEX  # the ramp is linear in the frame index
    return head_ramp(N_FRAMES, dx * k, dy * k, deg * k)


@lru_cache(maxsize=32)
def subject_face(subject: int, seed: int) -> Face:
    return make_face(np.random.default_rng([seed, subject]), CANVAS)


def render(subject: int, clip: int, pattern: str | None, translation: float, rotation: float,
           seed: int = 0) -> tuple[list[np.ndarray], np.ndarray | None]:
    """The frames of one clip and its head poses."""
    face = subject_face(subject, seed)
    rng = np.random.default_rng([seed, subject, clip, CLASSES.index(pattern) if pattern else 9,
                                 int(translation * 10), int(rotation * 10)])
    field = motion_field(face, pattern or "surprise", rng.uniform(2.0, 3.5), rng)
    if pattern is None:
        field = np.zeros_like(field)
    poses = _poses(rng, translation, rotation)
    return render_clip(face, field, N_FRAMES, APEX, rng, head=poses), poses


def true_motion(poses: np.ndarray, centre: tuple[float, float]) -> tuple[float, float, float]:
    """Displacement of ``centre`` and rotation (deg) of the rendered head at the apex."""
    dx, dy, deg = poses[APEX]
    m = cv2.getRotationMatrix2D(((CANVAS[1] - 1) / 2, (CANVAS[0] - 1) / 2), float(deg), 1.0)
    q = m @ np.array([centre[0], centre[1], 1.0]) + (dx, dy)
    return float(q[0] - centre[0]), float(q[1] - centre[1]), float(deg)


def pure_motion(args: argparse.Namespace) -> tuple[list[tuple], dict[str, float]]:
    """Part 1 rows: (translation, rotation, clips, flow none, flow registered, max
    translation error, max rotation error), and the median CPU seconds per clip of each
    setting and of one frame's registration (``register``)."""
    rows, seconds = [], {"none": [], "similarity": [], "register": []}
    warm, _ = render(99, 0, None, 1.0, 0.0, args.seed)  # loads the detector, imports
    for reg in ("none", "similarity"):
        frames_features(warm, PreprocessSettings(register=reg), apex=APEX)
    for translation, rotation in PURE_MOTIONS:
        mags: dict[str, list[float]] = {"none": [], "similarity": []}
        t_err, r_err = [], []
        for s in range(args.pure_clips):
            frames, poses = render(100 + s, 0, None, translation, rotation, args.seed)
            order = ("none", "similarity") if s % 2 == 0 else ("similarity", "none")
            for reg in order:  # alternated, so that neither always runs first
                t0 = time.thread_time()  # CPU time of this thread: steady under load
                f = frames_features(frames, PreprocessSettings(normalisation="none", register=reg),
                                    apex=APEX)
                seconds[reg].append(time.thread_time() - t0)
                mags[reg].append(float(np.hypot(f.x[0], f.x[1]).mean()))
                if f.head_motion is not None:
                    m = f.head_motion
                    dx, dy, deg = true_motion(poses, m.centre)
                    t_err.append(math.hypot(m.dx - dx, m.dy - dy))
                    r_err.append(abs(m.rotation - deg))
            grey = [cv2.cvtColor(frames[i], cv2.COLOR_BGR2GRAY) for i in (0, APEX)]
            t0 = time.thread_time()
            Registrar(grey[0], face_box(frames[0]), "similarity").register(grey[1])
            seconds["register"].append(time.thread_time() - t0)
        rows.append((translation, rotation, args.pure_clips, np.mean(mags["none"]),
                     np.mean(mags["similarity"]), max(t_err), max(r_err)))
    return rows, {k: float(np.median(v)) for k, v in seconds.items()}


SETTINGS = ("none", "similarity")


def features(subject: int, clip: int, pattern: str, translation: float, rotation: float,
             seed: int) -> dict[tuple[str, str], np.ndarray]:
    """One clip (rendered once) -> {(registration, feature kind): flattened features}.
    ``minmax`` is exactly what ``normalisation="minmax_per_image"`` gives (it is applied
    after the resize, to the raw 28x28 flow)."""
    frames, _ = render(subject, clip, pattern, translation, rotation, seed)
    out = {}
    for reg in SETTINGS:
        raw = frames_features(frames, PreprocessSettings(normalisation="none", register=reg),
                              apex=APEX).x
        out[(reg, "raw")] = raw.ravel()
        out[(reg, "minmax")] = minmax(raw).ravel()
    return out


def accuracy(args: argparse.Namespace) -> list[tuple]:
    """Part 2 rows: (condition, test clips, {(registration, features): accuracy})."""
    train = range(args.train_subjects)
    test = range(args.train_subjects, args.train_subjects + args.test_subjects)
    n_test = len(test) * args.clips * len(CLASSES)
    train_x = {p: [features(s, k, p, 0.0, 0.0, args.seed) for s in train
                   for k in range(args.clips)] for p in CLASSES}
    centroids = {key: np.stack([np.mean([x[key] for x in train_x[p]], axis=0) for p in CLASSES])
                 for key in train_x[CLASSES[0]][0]}
    rows = []
    for cond, (translation, rotation) in CONDITIONS.items():
        right = dict.fromkeys(centroids, 0)
        for ci, p in enumerate(CLASSES):
            for s in test:
                for k in range(args.clips):
                    x = features(s, 10 + k, p, translation, rotation, args.seed)
                    for key, c in centroids.items():
                        right[key] += int(np.argmin(((c - x[key]) ** 2).sum(axis=1)) == ci)
        rows.append((cond, n_test, {key: n / n_test for key, n in right.items()}))
    return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pure-clips", type=int, default=6, help="clips per pure head motion")
    p.add_argument("--train-subjects", type=int, default=6)
    p.add_argument("--test-subjects", type=int, default=4)
    p.add_argument("--clips", type=int, default=2, help="clips per subject and class")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="also write the table here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cv2.setNumThreads(1)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    t0, c0 = time.perf_counter(), time.process_time()
    pure, per_clip = pure_motion(args)
    acc = accuracy(args)
    total, cpu = time.perf_counter() - t0, time.process_time() - c0
    lines = [
        "# Head motion with and without registration (CPU)",
        "",
        f"- date: {dt.date.today().isoformat()}",
        f"- command: `{command_line()}`",
        f"- CPU: {cpu_model()}, {available_cores()} cores available, one OpenCV thread; "
        f"load average (1 min) before the run {load:.2f}; {total:.0f} s wall, {cpu:.0f} s CPU "
        "in all",
        f"- OpenCV {cv2.__version__}, numpy {np.__version__}, Python {platform.python_version()}",
        f"- clips: synthetic, {CANVAS[1]}x{CANVAS[0]} frames, {N_FRAMES} frames, annotated "
        f"apex at frame {APEX}; head drift linear from the onset, the sizes below reached at "
        "the apex (translation in a random direction, rotation of random sign about the "
        "frame centre); registration `similarity` (corners tracked with Lucas-Kanade, "
        "RANSAC fit, one refinement pass; `mefr.preprocess.register`)",
        "",
        "## Pure head motion (neutral face)",
        "",
        "Mean flow magnitude over the 28x28 input, raw flow in pixels of the face crop; "
        "registration error = largest error over the clips of the recovered displacement "
        "of the face box centre and rotation against the rendered head pose (the frames also "
        "carry the synthetic sub-pixel jitter, up to 0.05 px per axis, which is not part of "
        "that pose).",
        "",
        "| head motion at apex | clips | flow, no registration (px) | flow, registered (px) "
        "| displacement error (px) | rotation error (deg) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for t, r, n, none, reg, te, re in pure:
        what = " + ".join(x for x in (f"{t:g} px" if t else "", f"{r:g} deg" if r else "") if x)
        lines.append(f"| {what} | {n} | {none:.3f} | {reg:.3f} | {te:.3f} | {re:.3f} |")
    lines += [
        "",
        "CPU time of the calling thread (OpenCV on one thread; medians over the clips "
        "above): registering one frame to the onset (corners, two tracking and fitting "
        f"passes, warp) {per_clip['register'] * 1e3:.0f} ms; a whole clip (face detection, "
        f"crop, TV-L1, resize) {per_clip['none']:.2f} s without registration, "
        f"{per_clip['similarity']:.2f} s with it (annotated apex: only the apex frame is "
        "registered; Eq. (1) registers every frame). One warm-up clip first, and the two "
        "settings alternate which runs first.",
        "",
        "## Expressions under head motion",
        "",
        "Accuracy of a nearest-centroid classifier, 3 classes (surprise, positive, "
        f"negative); centroids from {args.train_subjects} subjects x {args.clips} clips per "
        f"class with a still head; tested on {args.test_subjects} other subjects x "
        f"{args.clips} clips per class. Chance 0.333. *FR input*: u, v at 28x28 min-max "
        "scaled per image (the default normalisation, which also hides a pure translation: "
        "a constant shift of a channel does not survive the min-max); *raw flow*: the same "
        "flow in pixels.",
        "",
        "| test clips' head motion | test clips | FR input, no registration | FR input, "
        "registered | raw flow, no registration | raw flow, registered |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {c} | {n} | {a[('none', 'minmax')]:.3f} | {a[('similarity', 'minmax')]:.3f} "
              f"| {a[('none', 'raw')]:.3f} | {a[('similarity', 'raw')]:.3f} |"
              for c, n, a in acc]
    emit("\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
