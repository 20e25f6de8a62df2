"""release.yaml: which release of mnist-cnn a commit is, so that its model card can say so.

`make release` (mnist_dvc/registry/) writes it in a release commit of its own, then tags that
commit: a version tag names a commit, and a commit cannot contain its own tag, so the version
goes in first (as `npm version` does with package.json). The md5s tie the release to the
model's files: a later commit with a retrained model keeps the file but is no longer that
release, and its card says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mnist_dvc import documents
from mnist_dvc.errors import StageError, describe
from mnist_dvc.files import read_text_limited
from mnist_dvc.paths import RELEASE

ARTIFACT = "mnist-cnn"  # the artifact's name in dvc.yaml and in its GTO tags

HEADER = """\
# The release of mnist-cnn this commit is, written by `make release` in a commit of its own
# (README.md, "Releases"). The model card, reports/model.md, names it while the model's files
# still have these md5s. Stages move later without a commit: `gto show` lists today's.
"""


@dataclass(frozen=True)
class Release:
    version: str | None = None  # v1.2.0
    stage: str | None = None  # the stage assigned at release
    files: dict[str, str] = field(default_factory=dict)  # path -> md5 (as in dvc.lock)

    def names(self, files: dict[str, str]) -> bool:
        """Whether this release is of the model whose files (some or all) have these md5s."""
        return self.version is not None and all(self.files.get(p) == m for p, m in files.items())

    def describe(self, files: dict[str, str]) -> str:
        """One line for the model card of the model whose files have these md5s."""
        if self.names(files):
            stage = f", assigned to stage **{self.stage}** at release" if self.stage else ""
            return (
                f"Release **{ARTIFACT} {self.version}**{stage}. Stages move without a commit: "
                f"`gto show {ARTIFACT}` lists today's."
            )
        if self.version is not None:
            return (
                f"Not a release: the model's files differ from {ARTIFACT} {self.version}, "
                "the last release on this branch."
            )
        return f"Not a release: `make release VERSION=v1.0.0` registers {ARTIFACT} versions."


def read_release(path: Path = RELEASE) -> Release:
    try:
        data = documents.load_yaml(read_text_limited(path))
    except FileNotFoundError:
        return Release()
    except documents.DocumentError as error:  # before UnicodeDecodeError: both ValueErrors
        raise StageError(f"{path}: {error}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise StageError(f"{path}: {describe(error)}") from None
    data = {} if data is None else data
    if not (isinstance(data, dict) and _well_formed(data)):
        raise StageError(
            f"{path}: expected `version`, `stage` and `files` (path: md5) as `make release` "
            "writes them; `git checkout` it from the release commit"
        )
    return Release(data.get("version"), data.get("stage"), dict(data.get("files") or {}))


def _well_formed(data: dict) -> bool:
    files = data.get("files") or {}
    return (
        isinstance(data.get("version"), str | None)
        and isinstance(data.get("stage"), str | None)
        and isinstance(files, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in files.items())
    )


def write_release(release: Release, path: Path = RELEASE) -> None:
    body = {"version": release.version, "stage": release.stage, "files": release.files}
    path.write_text(HEADER + yaml.safe_dump(body, sort_keys=False))
