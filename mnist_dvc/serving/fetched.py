"""A registered version of mnist-cnn, downloaded once into a cache folder and served from there
(mnist-serve --rev v1.2.0, or --stage prod; --repo names the repository, a path or a git URL).

The version's commit comes from the repository's GTO tags (mnist_dvc/registry/lookup.py); the
model folder from DVC's own artifact download (what `dvc artifacts get` does), from the DVC
remote that commit names; dvc.lock and metrics.json from git at that commit. The folder is
laid out as a clone is, `<version>/models/` beside `<version>/dvc.lock`, so that GET /model
checks the files against that commit's dvc.lock and shows that commit's test accuracy, as it
does for this repository's own models/.

A version's folder is named by its commit as well, and written under a hidden name, then
renamed: a download cut short is never served, and a version tag moved to another commit is
downloaded again.

The download runs in a child process (this module run as `python -m`), so that it has a
deadline for the whole of it, DOWNLOAD_TIMEOUT_S: DVC's own calls have none, and a remote that
trickles would hold the server's start forever. The repository's URL is shown redacted
everywhere, in /model too: a password in it never leaves this process.
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from mnist_dvc import commands
from mnist_dvc.atomic import atomic_output
from mnist_dvc.errors import StageError, describe
from mnist_dvc.files import MAX_RECORD_BYTES
from mnist_dvc.git_commands import is_url
from mnist_dvc.paths import METRICS, MODEL_JSON, user_cache
from mnist_dvc.redact import redact
from mnist_dvc.registry.checks import Refused
from mnist_dvc.registry.lookup import Registered, find
from mnist_dvc.released import ARTIFACT

GIT_FILES = ("dvc.lock", METRICS.name)  # beside models/, read from git at the version's commit
# The whole download: DVC clones the repository, then fetches the model folder from the remote.
DOWNLOAD_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Fetched:
    model_dir: Path
    registered: Registered
    repo: str
    downloaded: bool  # False: it was in the cache folder already

    def release(self) -> dict:
        """What GET /model says of where the model came from: a repository's URL redacted, a
        local one by its folder's name only (no path of the server's machine)."""
        how = "downloaded" if self.downloaded else "from the cache folder"
        stage = f", the version in stage {self.registered.stage}" if self.registered.stage else ""
        repo = redact(self.repo) if is_url(self.repo) else Path(self.repo).name
        return {
            "version": self.registered.version,
            "stage": self.registered.stage,
            "commit": self.registered.commit,
            "repo": repo,
            "note": f"{ARTIFACT} {self.registered.version}{stage}, {how} from {repo}",
        }


def default_cache() -> Path:
    return user_cache("registry")


def repo_location(repo: str) -> str:
    """A local repository as an absolute path (DVC and git resolve relative ones from their
    own working folder); a URL as it is."""
    if is_url(repo):
        return repo
    path = Path(repo).expanduser().resolve()
    if not path.exists():
        raise StageError(redact(f"--repo {repo}: no such folder"))
    return str(path)


def fetch(repo: str, version: str | None, stage: str | None, cache: Path) -> Fetched:
    """The folder with the version's models/, downloading it first if the cache lacks it."""
    repo = repo_location(repo)
    try:
        registered = find(repo, version=version, stage=stage)
    except Refused as error:
        raise StageError(str(error)) from None
    key = hashlib.sha256(repo.encode()).hexdigest()[:12]
    folder = cache / key / f"{registered.version}-{registered.commit[:12]}"
    model_dir = folder / MODEL_JSON.parent.name
    if folder.is_dir():
        return Fetched(model_dir, registered, repo, downloaded=False)
    with atomic_output(folder) as partial:
        child = [sys.executable, "-m", __name__, repo, registered.version, registered.commit]
        name = f"cannot download {ARTIFACT} {registered.version} from {repo}"
        commands.run(
            [*child, os.fspath(partial)], error=StageError, name=name, timeout=DOWNLOAD_TIMEOUT_S
        )
    return Fetched(model_dir, registered, repo, downloaded=True)


def download(repo: str, version: str, commit: str, into: Path) -> None:
    """The version's model folder and its commit's GIT_FILES into `into` (run in the child)."""
    import dvc.api
    from dvc.repo.artifacts import Artifacts

    into.mkdir(parents=True)
    out = into / MODEL_JSON.parent.name
    Artifacts.get(repo, ARTIFACT, version=version, out=os.fspath(out))
    for name in GIT_FILES:
        try:
            with dvc.api.open(name, repo=repo, rev=commit, mode="rb") as file:
                data = file.read(MAX_RECORD_BYTES + 1)
        except FileNotFoundError:
            continue  # said by GET /model: no dvc.lock, or not evaluated
        if len(data) > MAX_RECORD_BYTES:
            raise StageError(f"{name} at {commit[:12]}: larger than {MAX_RECORD_BYTES:,} bytes")
        (into / name).write_bytes(data)


if __name__ == "__main__":  # the download's child process: one line on stderr if it fails
    try:
        download(*sys.argv[1:4], Path(sys.argv[4]))
    except Exception as error:  # DVC raises many kinds for a remote it cannot reach
        sys.exit(redact(describe(error)))
