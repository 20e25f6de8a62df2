"""Versions and stages as GTO's git tags: `mnist-cnn@v1.2.0` names a release commit,
`mnist-cnn#prod#N` assigns a stage (the newest such tag wins, as `dvc artifacts get --stage`
reads it). `register` makes the release commit first (release.yaml and the model card), then
the tags, and undoes all of it if any step fails."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

from mnist_dvc.commands import completed, run
from mnist_dvc.git_commands import LOCAL_TIMEOUT_S
from mnist_dvc.paths import RELEASE
from mnist_dvc.registry.checks import (
    GATED_STAGE,
    Refused,
    check_git_clean,
    check_no_regression,
    check_release,
    check_stage,
    check_version,
    git,
    repo_root,
)
from mnist_dvc.released import ARTIFACT, Release, write_release


def gto_call(function, **kwargs):
    """A gto API call whose refusals (version exists, not registered, ...) become Refused."""
    from gto.exceptions import GTOException

    try:
        return function(**kwargs)
    except GTOException as error:
        raise Refused(str(error).strip().splitlines()[0].rstrip(".")) from None


def version_commit(root: Path, version: str) -> str | None:
    tag = f"refs/tags/{ARTIFACT}@{version}^{{commit}}"
    try:
        return git(root, "rev-parse", "--verify", "--quiet", tag).strip() or None
    except Refused:  # no such tag (git says nothing and exits 1)
        return None


def newest_stage_tag(root: Path, stage: str) -> tuple[str, int] | None:
    """The commit and time of the stage's newest tag: what `dvc artifacts get --stage` picks.
    (Read from git: GTO's `which` prefers the highest version, not the newest tag, and DVC's
    API reads each old commit's config, which a `--local` remote added since can break.)"""
    line = git(root, "for-each-ref", "--sort=-taggerdate", "--count=1",
               "--format=%(*objectname) %(taggerdate:unix)",
               f"refs/tags/{ARTIFACT}#{stage}#*").strip()  # fmt: skip
    if not line:
        return None
    commit, when = line.split()
    return commit, int(when)


def assign(root: Path, version: str, stage: str) -> str:
    """Tag `version` with `stage`; the stage's newest tag wins, so this also moves it back."""
    from gto.api import assign as gto_assign

    target = version_commit(root, version)
    if target is None:
        raise Refused(f"{ARTIFACT} {version} is not registered: `gto show` lists the versions")
    newest = newest_stage_tag(root, stage)
    if newest is not None:
        if newest[0] == target:
            raise Refused(f"{ARTIFACT} {version} is already in stage {stage}: nothing to do")
        # DVC orders a stage's tags by their time in whole seconds: two in one second would
        # tie, and the older could win.
        time.sleep(max(0.0, newest[1] + 1 - time.time()))
    # force: GTO refuses a version that held this stage before (a roll-back) without it.
    event = gto_call(
        gto_assign, repo=os.fspath(root), name=ARTIFACT, stage=stage, version=version, force=True
    )
    return event.ref


def commit_release(root: Path, release: Release) -> None:
    """The release commit on top of HEAD: release.yaml names the version and the report stage
    writes it into the model card; the model's files stay as checked. (A version tag names a
    commit, and a commit cannot contain its own tag, so the name goes in first.) Nothing to
    commit when HEAD already is this release's commit (a release cut short, run again)."""
    from mnist_dvc.paths import REPORT, REPORT_CONFUSION

    write_release(release, root / RELEASE)
    repro = [sys.executable, "-m", "dvc", "repro", "report"]
    run(repro, root, error=Refused, name="dvc repro report (the model card)")
    git(root, "add", str(RELEASE), "dvc.lock", str(REPORT), str(REPORT_CONFUSION))
    if git(root, "diff", "--cached", "--name-only").strip():
        stage = f" (stage {release.stage})" if release.stage else ""
        git(root, "commit", "-q", "-m", f"Release {ARTIFACT} {release.version}{stage}")
    check_git_clean(root)


def register(version: str, stage: str | None) -> list[str]:
    from gto.api import register as gto_register

    check_version(version)
    if stage is not None:
        check_stage(stage)
    root = repo_root()
    files = check_release(root)
    if version_commit(root, version) is not None:
        raise Refused(f"{ARTIFACT} {version} exists: `gto show` lists the versions")
    here = git(root, "tag", "--points-at", "HEAD", "--list", f"{ARTIFACT}@*").split()
    if here:
        raise Refused(
            f"HEAD is already the release commit of {here[0].replace('@', ' ')}: "
            "`make promote` gives it a stage; a new version needs a new commit"
        )
    start = git(root, "rev-parse", "HEAD").strip()
    tags: list[str] = []
    try:
        commit_release(root, Release(version, stage, files))
        event = gto_call(gto_register, repo=os.fspath(root), name=ARTIFACT, ref="HEAD",
                         version=version)  # fmt: skip
        tags.append(event.ref)
        if stage is not None:
            tags.append(assign(root, version, stage))
    except BaseException:  # all or nothing: the tree was clean, so put it back as it was
        undo(root, start, [f"{ARTIFACT}@{version}", *tags[1:]])  # the version was new
        raise
    commit = git(root, "rev-parse", "--short", "HEAD").strip()
    print(f"mnist-release: registered {ARTIFACT} {version} at {commit} (tag {tags[0]}), a release "
          f"commit on {start[:7]} whose model card names it")  # fmt: skip
    for name, md5 in files.items():
        print(f"mnist-release:   {name} md5 {md5}")
    if stage is not None:
        print(f"mnist-release: {ARTIFACT} {version} is now in stage {stage} (tag {tags[1]})")
    return tags


def undo(root: Path, start: str, tags: list[str]) -> None:
    """Delete the tags a failed release made and reset the branch to `start`, without
    masking the error that made it fail."""
    with suppress(OSError, subprocess.TimeoutExpired):  # the first error is the one to tell
        for tag in tags:
            completed(["git", "tag", "-d", tag], root, timeout=LOCAL_TIMEOUT_S)
        completed(["git", "reset", "-q", "--hard", start], root, timeout=LOCAL_TIMEOUT_S)


def promote(version: str, stage: str, allow_regression: bool = False) -> list[str]:
    """Move `stage` to `version`; into prod only a model that does not score below prod's by
    more than the seed spread (checks.check_no_regression), unless `allow_regression`."""
    check_version(version)
    check_stage(stage)
    root = repo_root()
    if stage == GATED_STAGE and not allow_regression:
        target, newest = version_commit(root, version), newest_stage_tag(root, stage)
        if target is not None and newest is not None and newest[0] != target:
            held = git(root, "tag", "--points-at", newest[0], "--list", f"{ARTIFACT}@*").split()
            prod = held[0].partition("@")[2] if held else newest[0][:7]
            check_no_regression(root, version, target, (prod, newest[0]))
    tag = assign(root, version, stage)
    print(f"mnist-release: {ARTIFACT} {version} is now in stage {stage} (tag {tag})")
    return [tag]
