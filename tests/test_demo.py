"""`mefr demo` end to end on a tiny synthetic set (the README's first command)."""

from mefr.cli import main


def test_demo_runs_the_whole_pipeline(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--epochs", "1", "--no-progress"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "| fr |" in text and "Composite UF1" in text
    run = next((out / "runs").iterdir())
    assert (run / "metrics.json").is_file() and (run / "predictions.csv").is_file()
    assert any((out / "databases").glob("**/synthetic_truth.csv"))
    # a second call reuses databases, features and the finished run
    assert main(args) == 0
    assert "nothing to do" in capsys.readouterr().out
