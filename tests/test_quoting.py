"""mnist_dvc/quoting.py: a value in a message is short at every level, and redacted."""

from __future__ import annotations

from mnist_dvc.quoting import MAX_QUOTED, quote, shorten


def test_a_quote_is_short_and_redacted():
    assert quote("x" * 10_000).startswith("'xxxx") and len(quote("x" * 10_000)) < 130
    assert quote([[["deep"] * 100] * 100] * 100).count("...") >= 1
    assert len(quote(10**1000)) < 130 and quote(1 << 20_000) == "an int too long to show"
    secret = "https://user:hunter2@host/" + "p" * 5000
    assert "hunter2" not in quote(secret) and "user:***@host" in quote(secret)
    cut = "https://user:" + "hunter2" * 500 + "@host/"
    assert "hunter2" not in quote(cut)


def test_a_name_is_shown_by_its_first_characters():
    assert shorten("params.yaml") == "params.yaml"
    long = "k" * 1000
    assert shorten(long) == f"{long[: MAX_QUOTED - 3]}..." and len(shorten(long)) == MAX_QUOTED
