"""Peak memory of ``mefr evaluate`` on the composite flow set and of ``mefr prepare`` on a
synthetic database: the main process, each worker process, and all of them together.

Each command runs as a child of a small wrapper process while this script samples every
process of the tree (``/proc/<pid>/status`` and ``smaps_rollup``, every ``--interval``
seconds):

* **peak RSS** of a process is its ``VmHWM`` (the kernel's high-water mark of its resident
  set, exact whatever the sampling rate); it counts the shared libraries (torch, OpenCV)
  that every process maps, so peaks of several processes do not add up to the machine's
  use;
* **peak RSS together** and **peak PSS together** are the largest sampled sums over the
  processes alive at one moment of their resident set sizes, and of their proportional
  set sizes (shared pages divided among the processes sharing them: the tree's real
  footprint at its busiest moment; a sample, so a peak shorter than the interval can be
  missed);
* **largest process** is the wrapper's ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``
  (the largest peak RSS of any process of the tree, measured by the kernel), a cross-check
  of the sampled ``VmHWM``.

Measured commands (short on purpose: the peak is reached in the first fold or clips):

1. ``mefr evaluate --features flowset:PATH --set epochs=1 --chunk 4 --seeds 0`` (the
   composite CDE flow set, 68 LOSO folds of FR; one epoch each instead of the preset's
   100: each worker holds its chunk's models and the memory-mapped data whatever the
   number of epochs);
2. ``mefr prepare`` of a synthetic CASME II-layout database of ``--clips`` clips
   (``mefr synth``; 640x480 frames as CASME II's camera), default settings, no cache
   beforehand.

Linux only (``/proc``). Usage::

    python benchmarks/memory.py [--flowset ../shared/data/megc2019-cde-flow]
        [--clips 256] [--out benchmarks/results/memory_cpu.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from _common import command_line, cpu_model, emit

#: The wrapper: runs the command, then prints the largest peak RSS (kB) of its tree.
WRAPPER = ("import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
           "print('MAXRSS', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "
           "file=sys.stderr); sys.exit(rc)")
MB = 1024.0  # kB per MB (MiB)


def _status(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` of ``pid`` in kB ({} when it is gone)."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    except (OSError, ValueError):
        return {}
    return out


def _pss(pid: int) -> int:
    """Proportional set size of ``pid`` in kB (0 when unreadable)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            kids += [int(k) for k in (task / "children").read_text().split()]
    except (OSError, ValueError):
        pass
    return kids


def _tree(root: int) -> list[int]:
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += _children(pid)
    return out


def _role(pid: int, main: int) -> str:
    if pid == main:
        return "main"
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "other"
    if "resource_tracker" in cmd:
        return "resource tracker"
    if "spawn_main" in cmd or "multiprocessing" in cmd:
        return "worker"
    return "other"


@dataclass
class Usage:
    """What one measured command used."""

    seconds: float = 0.0
    peaks: dict[int, int] = field(default_factory=dict)  # pid -> VmHWM (kB)
    roles: dict[int, str] = field(default_factory=dict)
    pss_total: int = 0
    rss_total: int = 0
    alive_workers: int = 0  # most worker processes alive at one sample
    largest: int = 0  # getrusage maxrss (kB)
    rc: int = 0

    def by_role(self, role: str) -> list[int]:
        return sorted((self.peaks[p] for p, r in self.roles.items() if r == role),
                      reverse=True)


def measure(cmd: list[str], interval: float, log: Path) -> Usage:
    """Run ``cmd`` under the wrapper and sample its process tree until it ends."""
    use = Usage()
    t0 = time.perf_counter()
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-c", WRAPPER, *cmd], stdout=err, stderr=err)
        main = None
        while proc.poll() is None:
            kids = _children(proc.pid)
            if main is None and kids:
                main = kids[0]
            pss = rss = workers = 0
            for pid in _tree(main) if main is not None else []:
                st = _status(pid)
                if "VmHWM" in st:
                    use.peaks[pid] = max(use.peaks.get(pid, 0), st["VmHWM"])
                    role = use.roles.setdefault(pid, _role(pid, main))
                    workers += role == "worker"
                    pss += _pss(pid)
                    rss += st.get("VmRSS", 0)
            use.pss_total = max(use.pss_total, pss)
            use.rss_total = max(use.rss_total, rss)
            use.alive_workers = max(use.alive_workers, workers)
            time.sleep(interval)
    use.seconds = time.perf_counter() - t0
    use.rc = proc.returncode
    for line in log.read_text().splitlines():
        if line.startswith("MAXRSS "):
            use.largest = int(line.split()[1])
    return use


def _row(name: str, use: Usage) -> str:
    main = use.by_role("main")
    workers = use.by_role("worker")
    others = use.by_role("resource tracker") + use.by_role("other")
    shown = (f"{workers[0] / MB:.0f} (median {workers[len(workers) // 2] / MB:.0f})"
             if workers else "none")
    return (f"| {name} | {use.seconds:.0f} | {main[0] / MB:.0f} | {len(workers)}, "
            f"{use.alive_workers} at once | {shown} | {max(others, default=0) / MB:.0f} | "
            f"{use.rss_total / MB:.0f} | {use.pss_total / MB:.0f} | {use.largest / MB:.0f} |")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--flowset", default="../shared/data/megc2019-cde-flow",
                   help="the composite flow set (flowset:PATH)")
    p.add_argument("--clips", type=int, default=256, help="clips of the synthetic database")
    p.add_argument("--frames", type=int, nargs=2, default=(10, 20), metavar=("MIN", "MAX"),
                   help="frames per synthetic clip")
    p.add_argument("--interval", type=float, default=0.5, help="sampling period (s)")
    p.add_argument("--skip-evaluate", action="store_true")
    p.add_argument("--skip-prepare", action="store_true")
    p.add_argument("--out", type=Path, default=None, help="also write the table here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not Path("/proc/self/status").is_file():
        print("benchmarks/memory.py needs Linux's /proc", file=sys.stderr)
        return 2
    mefr = [sys.executable, "-m", "mefr.cli"]
    load = os.getloadavg()[0]
    rows: list[str] = []
    with tempfile.TemporaryDirectory(prefix="mefr-memory-") as tmp:
        base = Path(tmp)
        if not args.skip_evaluate:
            cmd = [*mefr, "evaluate", "--features", f"flowset:{args.flowset}", "--set",
                   "epochs=1", "--chunk", "4", "--seeds", "0", "--device", "cpu",
                   "--run-dir", str(base / "run"), "--no-progress"]
            use = measure(cmd, args.interval, base / "evaluate.log")
            if use.rc != 0:
                print((base / "evaluate.log").read_text(), file=sys.stderr)
                raise SystemExit(f"mefr evaluate failed (exit {use.rc})")
            rows.append(_row("`mefr evaluate` CDE flow set, FR, 68 folds x 1 epoch, "
                             "`--chunk 4`", use))
        if not args.skip_prepare:
            subjects = max(1, args.clips // 16)
            per = -(-args.clips // subjects)
            subprocess.run([*mefr, "synth", str(base / "syn"), "--databases", "casme2",
                            "--subjects", str(subjects), "--clips", str(per), "--frames",
                            *map(str, args.frames), "--size", "480", "640"], check=True,
                           stdout=subprocess.DEVNULL)
            cmd = [*mefr, "prepare", str(base / "syn" / "casme2"), "--database", "casme2",
                   "--cache", str(base / "cache"), "--no-progress"]
            use = measure(cmd, args.interval, base / "prepare.log")
            if use.rc != 0:
                print((base / "prepare.log").read_text(), file=sys.stderr)
                raise SystemExit(f"mefr prepare failed (exit {use.rc})")
            rows.append(_row(f"`mefr prepare` synthetic CASME II, {subjects * per} clips", use))
    lines = [
        "# Peak memory of mefr evaluate and mefr prepare (CPU)",
        "",
        f"- date: {dt.date.today().isoformat()}",
        f"- command: `{command_line()}`",
        f"- CPU: {cpu_model()}, {os.cpu_count()} cores; load average (1 min) before the run "
        f"{load:.2f}; Linux {platform.release()}, Python {platform.python_version()}",
        f"- sampling every {args.interval} s of every process of the command's tree",
        "- `mefr evaluate`: `--features flowset:PATH --set epochs=1 --chunk 4 --seeds 0 "
        "--device cpu`: one epoch per fold is enough for the peak (each worker holds its "
        "chunk's models and the memory-mapped data whatever the number of epochs)",
        f"- `mefr prepare`: `mefr synth --databases casme2 --size 480 640 --frames "
        f"{args.frames[0]} {args.frames[1]}`, then `mefr prepare ... --database casme2 "
        "--cache DIR` with the default settings (all cores, annotated apex)",
        "",
        "*seconds*: wall time of the command (on a shared machine: see the load). "
        "MB = 2^20 bytes. *Peak RSS* of a process is its `VmHWM` (shared libraries counted in "
        "every process); the worker column gives the largest (and the median) over all the "
        "worker processes the command started (a new pool per engine call: `--chunk 4` "
        "starts one per 4 folds); *peak RSS / PSS together* are the largest sampled sums "
        "over the processes alive at once (PSS splits shared pages among their users: the "
        "real footprint); *largest process* is `getrusage(RUSAGE_CHILDREN).ru_maxrss` of "
        "the wrapper (kernel-measured, a cross-check of the largest `VmHWM`).",
        "",
        "| command | seconds | main process peak RSS (MB) | worker processes | worker peak "
        "RSS, largest (MB) | resource tracker (MB) | peak RSS together (MB) | peak PSS "
        "together (MB) | largest process (MB) |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|",
        *rows,
    ]
    emit("\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
