"""mnist_dvc.redact: every URL's credentials out of a text, and nothing else changed."""

from __future__ import annotations

import pytest

from mnist_dvc.redact import redact


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("https://user:hunter2@host/mnist/", "https://user:***@host/mnist/"),
        ("http://u:p%3Aw@127.0.0.1:8080/x.gz", "http://u:***@127.0.0.1:8080/x.gz"),
        ("https://user:p@ss@host/", "https://user:***@host/"),  # the host is after the last @
        ("ftp://user:hunter2@host/", "ftp://user:***@host/"),
        ("npm:https://user:hunter2@host/x.tgz", "npm:https://user:***@host/x.tgz"),
        ("https://ghp_TOKEN@github.com/o/r.git", "https://***@github.com/o/r.git"),
        ("ssh://git@host/r.git", "ssh://git@host/r.git"),  # an account name, not a secret
        ("git@github.com:o/r.git", "git@github.com:o/r.git"),
        ("https://h/x?token=abc&n=1", "https://h/x?token=***&n=1"),
        ("https://b.s3/k?X-Amz-Signature=f00d#x", "https://b.s3/k?X-Amz-Signature=***#x"),
        ("https://h/x?api_key=K", "https://h/x?api_key=***"),
        ("/data/mnist and C:/x", "/data/mnist and C:/x"),
        (
            "git ls-remote https://u:hunter2@h/r.git: fatal: unable to access 'https://h/r.git/'",
            "git ls-remote https://u:***@h/r.git: fatal: unable to access 'https://h/r.git/'",
        ),
        ("use a URL (got 'ftp://u:hunter2@h/x')", "use a URL (got 'ftp://u:***@h/x')"),
    ],
)
def test_credentials_are_hidden_and_nothing_else_changes(text, shown):
    assert redact(text) == shown
    assert redact(shown) == shown  # twice is once


def test_every_url_in_a_text_is_redacted():
    text = "a https://a:one@h1/ (x); b http://b:two@h2:81/y?sig=three"
    assert redact(text) == "a https://a:***@h1/ (x); b http://b:***@h2:81/y?sig=***"
