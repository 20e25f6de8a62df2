"""mnist_dvc/git_commands.py: which locations git reads as URLs; the repository a folder is in,
in the caller's own words when it is in none; a remote's refs from one `git ls-remote`, read
by the one parser of its lines."""

from __future__ import annotations

import pytest

from mnist_dvc.errors import ToolError
from mnist_dvc.git_commands import is_url, listed_refs, ls_remote, repo_root
from tests.helpers import sh


class Refusal(ToolError):
    """A caller's own error class: what repo_root and ls_remote must raise."""


@pytest.fixture
def repo(tmp_path):
    """A git repository with one commit on main, tagged v1 (annotated) and v0 (light)."""
    folder = tmp_path / "repo"
    (folder / "sub").mkdir(parents=True)
    sh("git", "init", "-q", "-b", "main", cwd=folder)
    sh("git", "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q",
       "--allow-empty", "-m", "one", cwd=folder)  # fmt: skip
    sh("git", "-c", "user.email=t@example.com", "-c", "user.name=t", "tag", "-a", "v1", "-m",
       "v1", cwd=folder)  # fmt: skip
    sh("git", "tag", "v0", cwd=folder)
    return folder


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


def test_repo_root_is_the_top_folder_from_any_folder_inside(repo):
    top = repo_root(repo / "sub", error=Refusal, outside="unused")
    assert top.resolve() == repo.resolve()


def test_outside_a_repository_the_callers_own_error_and_words(tmp_path):
    with pytest.raises(Refusal, match=r"^run this in a clone$"):
        repo_root(tmp_path, error=Refusal, outside="run this in a clone")


def test_ls_remote_lists_refs_with_their_objects(repo):
    head = sh("git", "rev-parse", "HEAD", cwd=repo).stdout.strip()
    refs = ls_remote(str(repo), error=Refusal, name="unused")
    assert refs["refs/heads/main"] == head
    assert refs["refs/tags/v1^{}"] == head  # an annotated tag, peeled
    assert set(ls_remote(str(repo), "--tags", error=Refusal, name="unused")) == {
        "refs/tags/v0",
        "refs/tags/v1",
        "refs/tags/v1^{}",
    }


def test_ls_remote_failure_is_the_callers_one_line(tmp_path):
    with pytest.raises(Refusal) as failed:
        ls_remote(str(tmp_path / "none"), error=Refusal, name="cannot reach the remote")
    message = str(failed.value)
    assert message.startswith("cannot reach the remote: ") and "\n" not in message


def test_listed_refs_keeps_only_ref_lines():
    sha1, sha256 = "a" * 40, "b" * 64
    listing = (
        "warning: redirecting to https://example.com/team.git/\n"
        f"{sha1}\trefs/heads/main\n"
        f"{sha256}\trefs/exps/ab/cd/exp-1\n"
        "\n"
        f"{'c' * 39}\trefs/heads/short\n"
    )
    assert listed_refs(listing) == {"refs/heads/main": sha1, "refs/exps/ab/cd/exp-1": sha256}
