"""docs/api.md is a walk-through: every Python block runs, in order, in a fresh folder."""

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def _blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_the_walk_through_has_a_block_per_step():
    assert len(_blocks(DOC.read_text())) >= 7


@pytest.mark.slow
def test_every_block_of_the_api_walk_through_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__main__"}
    for i, block in enumerate(_blocks(DOC.read_text())):
        try:
            exec(compile(block, f"docs/api.md block {i + 1}", "exec"), namespace)
        except Exception as e:  # name the block that failed
            raise AssertionError(f"docs/api.md block {i + 1} failed: {e!r}\n{block}") from e
    out = capsys.readouterr().out
    assert "LEAKY" in out and "True" in out
    assert (tmp_path / "runs" / "fr" / "metrics.json").is_file()
