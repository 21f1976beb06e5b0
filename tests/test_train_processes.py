"""The CPU process pool must never hang: scripts without a main guard, stdin, notebooks,
dead workers (issue 38 item 1).

Each case runs in its own interpreter with a timeout, so a hang fails the test instead of
the suite. The jobs are tiny (a narrow Basic Inception, one epoch).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mefr.train.workers import _has_main_guard, _is_main_guard, spawn_unsafe_reason

TIMEOUT = 240

#: Two jobs on a CPU with two workers; prints one line per run of the top level.
TRAIN = textwrap.dedent("""
    import numpy as np
    from mefr.train.config import TrainConfig
    from mefr.train.engine import train_group
    from mefr.train.jobs import Job
    print("top level ran", flush=True)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 2, 28, 28)).astype(np.float32)
    y = np.arange(24) % 3
    jobs = [Job(f"j{i}", 0, np.arange(12), np.arange(12, 24)) for i in range(2)]
    cfg = TrainConfig(model="basic_inception", epochs=1, batch_size=8,
                      model_kwargs={"hidden": 8, "widths": (2, 2)})
""")
CALL = textwrap.dedent("""
    r = train_group(x, y, jobs, cfg, 3, device="cpu", workers=2, progress=False)
    print("trained", sorted(r.probs), flush=True)
""")


def _run(args: list[str], cwd: Path, stdin: str | None = None
         ) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run([sys.executable, *args], input=stdin, cwd=cwd, text=True,
                              capture_output=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as e:  # the defect: the parent waits forever
        pytest.fail(f"training hung for {TIMEOUT} s: {e.stderr!r}")


def test_a_script_without_a_main_guard_trains_in_process(tmp_path: Path) -> None:
    script = tmp_path / "no_guard.py"
    script.write_text(TRAIN + CALL)
    done = _run([str(script)], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "trained ['j0', 'j1']" in done.stdout
    assert done.stdout.count("top level ran") == 1  # no worker ran the script again
    assert "in this process" in done.stderr and "guard" in done.stderr


def test_code_from_stdin_trains_in_process(tmp_path: Path) -> None:
    done = _run(["-"], tmp_path, stdin=TRAIN + CALL)
    assert done.returncode == 0, done.stderr
    assert "trained ['j0', 'j1']" in done.stdout
    assert "in this process" in done.stderr and "stdin" in done.stderr


def test_notebook_like_exec_uses_worker_processes(tmp_path: Path) -> None:
    """Code executed as a cell (no file behind ``__main__``): workers do not re-run it,
    so spawning is safe and the jobs train in two processes."""
    cell = TRAIN + CALL
    runner = f"exec(compile({cell!r}, '<notebook-cell>', 'exec'), {{'__name__': '__main__'}})"
    done = _run(["-c", runner], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "trained ['j0', 'j1']" in done.stdout
    assert done.stdout.count("top level ran") == 1
    assert "in this process" not in done.stderr


def test_a_guarded_script_still_uses_worker_processes(tmp_path: Path) -> None:
    script = tmp_path / "guarded.py"
    script.write_text(TRAIN + 'if __name__ == "__main__":\n' + textwrap.indent(CALL, "    "))
    done = _run([str(script)], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "trained ['j0', 'j1']" in done.stdout
    assert "in this process" not in done.stderr
    assert done.stdout.count("top level ran") == 3  # the parent and two workers imported it


def test_training_outside_the_guard_of_a_guarded_script_fails_fast(tmp_path: Path) -> None:
    """A script with a guard that still trains at its top level: every worker would run
    the whole training again. The workers refuse and die; the parent says so."""
    script = tmp_path / "half_guarded.py"
    script.write_text(TRAIN + CALL + 'if __name__ == "__main__":\n    pass\n')
    done = _run([str(script)], tmp_path)
    assert done.returncode != 0
    assert "WorkerDied" in done.stderr and "no result" in done.stderr
    assert "outside `if __name__ ==" in done.stderr  # the worker's own explanation


def test_a_worker_killed_mid_run_is_reported(tmp_path: Path) -> None:
    """A worker that dies (killed, out of memory) breaks the pool: the parent raises at
    once, naming the jobs without a result, instead of waiting for them."""
    script = tmp_path / "killed.py"
    script.write_text(TRAIN + textwrap.dedent("""
        import multiprocessing as mp, os, signal
        from mefr.train.workers import WorkerDied

        def kill_workers(key, probs, info):
            for child in mp.active_children():
                os.kill(child.pid, signal.SIGKILL)

        if __name__ == "__main__":
            more = [Job(f"k{i}", 0, np.arange(12), np.arange(12, 24)) for i in range(4)]
            slow = TrainConfig(model="basic_inception", epochs=30, batch_size=4,
                               model_kwargs={"hidden": 8, "widths": (2, 2)})
            try:
                train_group(x, y, more, slow, 3, device="cpu", workers=2, progress=False,
                            on_result=kill_workers)
            except WorkerDied as e:
                print("reported:", e, flush=True)
    """))
    done = _run([str(script)], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "reported: a training worker process ended unexpectedly" in done.stdout
    assert "job(s) have no result" in done.stdout


def test_main_guard_detection(tmp_path: Path) -> None:
    import ast

    guard = ['if __name__ == "__main__":\n    pass\n', "if '__main__' == __name__:\n    pass\n"]
    not_guard = ['if __name__ != "__main__":\n    pass\n', "if x == '__main__':\n    pass\n",
                 'def f():\n    if __name__ == "__main__":\n        pass\n']
    for text in guard:
        assert _is_main_guard(ast.parse(text).body[0]), text
    for text in not_guard:
        assert not any(_is_main_guard(n) for n in ast.parse(text).body), text
    broken = tmp_path / "broken.py"
    broken.write_text("def (:\n")
    assert not _has_main_guard(str(broken), 0.0)
    # pytest's own main module is a package __main__: workers never re-run it
    assert spawn_unsafe_reason() is None
