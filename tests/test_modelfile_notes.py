"""The note of a model trained on a pre-computed flow set reaches the user whole."""

from mefr.modelcompat import compatibility_issues


def _header(note):
    return {"format": {"mefr": "0.1.0"}, "preprocess": {"source": "flowset", "note": note}}


def test_the_flowset_note_keeps_its_closing_parenthesis():
    _, notes = compatibility_issues(_header("28x28, per-image min-max (u, v)"), "5.0.0",
                                    "0.0.3", "0.1.0")
    text = [n for n in notes if "pre-computed flow set" in n][0]
    assert text.endswith("(28x28, per-image min-max (u, v))")


def test_an_empty_note_leaves_no_empty_brackets():
    _, notes = compatibility_issues(_header(""), "5.0.0", "0.0.3", "0.1.0")
    text = [n for n in notes if "pre-computed flow set" in n][0]
    assert text.endswith("closest settings")
