"""Issue 37, item 1: frame ranges are bounded by the folder, not by the frame numbers.

One stray camera-named file in a SMIC clip folder (``IMG_20190101123000.jpg`` beside
``image004792.bmp``) or one mistyped OffsetFrame (293000000) used to make the readers
list every number of the span: a ``MemoryError`` that lost the whole database. The read
runs here in a child process under a 1.5 GB address-space limit, so that the old
behaviour fails the test (and cannot take the machine's memory) instead of hanging it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from openpyxl import Workbook

LIMIT_BYTES = 1536 * 2**20
CHILD = """
import resource, sys, warnings
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
from mefr.data import read_database
warnings.simplefilter("ignore")
table = read_database(sys.argv[1], sys.argv[2])
print(",".join(table["clip"]))
for issue in table.attrs["issues"]:
    print(issue["rule"], issue["row"], issue["message"])
"""


def read_in_child(dataset: str, root: Path) -> list[str]:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", CHILD.format(limit=LIMIT_BYTES), dataset, str(root)],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.splitlines()


def touch(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        (folder / n).write_bytes(b"")


def test_a_stray_camera_file_costs_one_smic_clip(tmp_path):
    hs = tmp_path / "SMIC" / "HS" / "s1" / "micro"
    touch(hs / "negative" / "s1_ne_01",
          [f"image{n:06d}.bmp" for n in range(4792, 4802)] + ["IMG_20190101123000.jpg"])
    touch(hs / "positive" / "s1_po_02", [f"image{n:06d}.bmp" for n in range(100, 110)])
    out = read_in_child("smic_hs", tmp_path)
    assert out[0] == "s1_po_02"
    [issue] = out[1:]
    assert issue.startswith("frame-span-too-long None ")
    assert "frames 4792..20190101123000" in issue and "11 numbered image(s)" in issue
    assert "IMG_20190101123000.jpg" in issue


def test_a_mistyped_offset_costs_one_row(tmp_path):
    wb = Workbook()
    wb.active.append(["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame",
                      "Estimated Emotion"])
    wb.active.append([1, "EP01_01", 10, 11, 12, "happiness"])
    wb.active.append([1, "EP02_01", 10, 11, 293000000, "happiness"])
    wb.active.append([1, "EP03_01", 10, 11, 12, "surprise"])
    wb.save(tmp_path / "CASME2-coding-20140508.xlsx")
    for clip in ("EP01_01", "EP02_01", "EP03_01"):
        touch(tmp_path / "CASME2_RAW_selected" / "sub01" / clip,
              [f"img{n}.jpg" for n in range(10, 13)])
    out = read_in_child("casme2", tmp_path)
    assert out[0] == "EP01_01,EP03_01"
    [issue] = out[1:]
    assert issue.startswith("frame-span-too-long 3 ") and "span 292999991 frames" in issue


def test_missing_frames_are_counted_not_listed(tmp_path):
    """A gap inside a plausible span is still ``frames-missing``, with its first numbers
    (computed from the files present: the same answer as listing the span)."""
    import warnings

    from mefr.data.frames import _first_gaps, clip_frames
    from mefr.data.rules import IssueLog

    touch(tmp_path / "clip", [f"img{n}.jpg" for n in (1, 2, 5, 6, 7, 9)])
    log = IssueLog("casme2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert clip_frames(tmp_path / "clip", 1, 10, (tmp_path, 2, "clip"), log) is None
    [item] = log.items
    assert item["rule"] == "frames-missing"
    assert "4 of frames 1..10 missing (first: [3, 4, 8, 10])" in item["message"]
    present = [1, 2, 5, 6, 7, 9]
    for lo, hi in [(1, 10), (0, 12), (2, 7), (3, 4)]:
        listed = [n for n in range(lo, hi + 1) if n not in present][:5]
        assert _first_gaps([n for n in present if lo <= n <= hi], lo, hi) == listed
