"""mnist_dvc/commands.py: which locations git reads as URLs."""

import pytest

from mnist_dvc.commands import is_url


@pytest.mark.parametrize(
    ("location", "url"),
    [
        ("https://github.com/org/repo.git", True),
        ("ssh://git@host/repo", True),
        ("git@github.com:org/repo.git", True),  # scp-like
        ("file:///srv/repo", True),
        ("/srv/repo", False),
        ("../repo", False),
        ("repo", False),
        ("./a:b/repo", False),  # a colon after the first slash is a path
    ],
)
def test_is_url(location, url):
    assert is_url(location) is url
