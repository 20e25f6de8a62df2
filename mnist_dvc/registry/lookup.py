"""Which commit a registered version is, and which version a stage holds, read from any git
repository's tags with one `git ls-remote` (no clone): what a consumer needs before it
downloads a version (mnist-serve --rev / --stage).

GTO's tags: `mnist-cnn@v1.2.0` on a release commit, `mnist-cnn#prod#N` on the same commit when
the version is assigned the stage. N counts up per artifact, across stages, so a stage's
highest N is its newest assignment: the one `dvc artifacts get --stage` picks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mnist_dvc.git_commands import ls_remote
from mnist_dvc.quoting import shorten
from mnist_dvc.redact import redact
from mnist_dvc.registry.checks import Refused
from mnist_dvc.released import ARTIFACT

_TAG = re.compile(
    rf"^refs/tags/{re.escape(ARTIFACT)}(?:@(?P<version>[^#^]+)|#(?P<stage>[^#]+)#(?P<n>\d+))"
    r"\^\{\}$"
)


@dataclass(frozen=True)
class Registered:
    version: str
    commit: str
    stage: str | None  # the stage asked for, which this version holds


def peeled_tags(repo: str) -> dict[str, str]:
    """{tag ref: commit} of the repository's annotated tags (GTO makes only those)."""
    return ls_remote(repo, "--tags", error=Refused, name=f"git ls-remote {repo}")


def find(repo: str, version: str | None = None, stage: str | None = None) -> Registered:
    """The version asked for, or the one `stage` holds now; Refused in one line if none (the
    repository's URL in it redacted)."""
    versions: dict[str, str] = {}  # version -> commit
    stages: list[tuple[int, str]] = []  # (N, commit) of the stage asked for
    for ref, commit in peeled_tags(repo).items():
        found = _TAG.match(ref)
        if found is None:
            continue
        if found["version"]:
            versions[found["version"]] = commit
        elif found["stage"] == stage:
            stages.append((int(found["n"]), commit))
    shown = redact(repo)
    if stage is None:
        if version not in versions:
            raise Refused(f"{ARTIFACT} {shorten(str(version))} is not registered in {shown}: "
                          f"{_listing(versions)}")  # fmt: skip
        return Registered(version, versions[version], None)
    if not stages:
        raise Refused(f"no version of {ARTIFACT} is in stage {shorten(stage)} in {shown}: "
                      f"{_listing(versions)}")  # fmt: skip
    commit = max(stages)[1]
    named = sorted(v for v, c in versions.items() if c == commit)
    if not named:
        raise Refused(f"stage {stage} of {ARTIFACT} in {shown} is on {commit[:7]}, which no "
                      "version tag names")  # fmt: skip
    return Registered(named[-1], commit, stage)


def _listing(versions: dict[str, str]) -> str:
    if not versions:
        return "it has no versions (`make release VERSION=v1.0.0` registers one)"
    return f"its versions are {', '.join(sorted(versions))}"
