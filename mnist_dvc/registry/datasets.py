"""Versions of the drawings data set (mnist_dvc/drawings.py) from the feedback spool
(mnist_dvc/spool.py): `mnist-drawings version` writes data/drawings, `dvc add`s it, commits
data/drawings.dvc and tags that commit mnist-drawings@vX.Y.Z with GTO. No model, no GPU and no
network: NumPy, git, DVC and GTO on this machine.

A version is immutable and grows only: the next one is made from the previous version as its tag
names it (read back through DVC, not from the work tree, which could have been edited), its
rows and images kept in order, the spool's new samples appended. Refused in one line, before
anything is written: a version that is not newer than the last one, a spool with nothing new,
uncommitted changes to data/drawings.dvc. A failure after the commit takes the commit back.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import suppress
from pathlib import Path

from mnist_dvc import drawings
from mnist_dvc.atomic import atomic_output
from mnist_dvc.commands import completed, run
from mnist_dvc.drawings import ARTIFACT, Row, tag
from mnist_dvc.params import DrawingsParams
from mnist_dvc.paths import DRAWINGS_DIR
from mnist_dvc.registry.checks import Refused, check_version, git, repo_root
from mnist_dvc.registry.tags import gto_call
from mnist_dvc.spool import Sample, Spool, SpoolError

DVC_FILE = DRAWINGS_DIR.with_name(DRAWINGS_DIR.name + ".dvc")
GITIGNORE = DRAWINGS_DIR.parent / ".gitignore"
ADD_TIMEOUT_S = 600.0


def versions(root: Path) -> list[str]:
    """The registered versions, oldest first."""
    from gto.versions import SemVer

    listed = git(root, "tag", "--list", f"{ARTIFACT}@v*").split()
    found = [tag.partition("@")[2] for tag in listed]
    return sorted((v for v in found if SemVer.is_valid(v)), key=SemVer)


def next_version(latest: str | None) -> str:
    """v1.0.0 first, then the next minor version: a version only ever adds samples."""
    from gto.versions import SemVer

    return "v1.0.0" if latest is None else SemVer(latest).bump_minor().version


def new_samples(spool: Path, known: set[str]) -> tuple[list[Sample], int]:
    """(the spool's samples that no version holds yet, by hash; how many it holds)."""
    try:
        samples = Spool(spool).samples()
    except SpoolError as error:
        raise Refused(str(error)) from None
    return [s for s in samples if s.sha256 not in known], len(samples)


def check_name(version: str) -> None:
    """A version GTO takes that `drawings.version` can name too: vMAJOR.MINOR.PATCH."""
    from pydantic import ValidationError

    check_version(version)
    try:
        DrawingsParams(version=version, train=False)
    except ValidationError:
        raise Refused(
            f"a drawings version is vMAJOR.MINOR.PATCH, which drawings.version can name: "
            f"got {version!r}"
        ) from None


def make_version(spool: Path, version: str | None) -> tuple[str, list[Row]]:
    """Register the next version; (its name, its rows)."""
    from gto.versions import SemVer

    root = repo_root()
    registered = versions(root)
    latest = registered[-1] if registered else None
    version = version or next_version(latest)
    check_name(version)
    if latest is not None and SemVer(version) <= SemVer(latest):
        raise Refused(f"{ARTIFACT} {version} is not newer than the last version, {latest}")
    if git(root, "status", "--porcelain", "--", str(DVC_FILE), str(GITIGNORE)).strip():
        raise Refused(f"{DVC_FILE} or {GITIGNORE} has uncommitted changes: commit or restore them")

    with tempfile.TemporaryDirectory() as scratch:
        rows: list[Row] = []
        images = {}
        if latest is not None:
            previous = Path(scratch) / latest
            try:
                drawings.checkout_version(root, latest, previous)
                rows = drawings.read_rows(previous)
                images = drawings.images_by_hash(previous, rows)
            except drawings.DrawingsError as error:
                raise Refused(str(error).removeprefix("drawings.version: ")) from None
        fresh, held = new_samples(spool, set(images))
        if not fresh:
            since = f"all in {latest}" if latest else "an empty folder"
            raise Refused(f"nothing new in {spool}: {held} samples, {since}")
        rows += [
            Row(s.sha256, s.label, drawings.split_of(s.sha256), version,
                "" if s.prediction is None else str(s.prediction), s.model or "")
            for s in fresh
        ]  # fmt: skip
        images |= {s.sha256: s.image for s in fresh}
        start = git(root, "rev-parse", "HEAD").strip()
        try:
            commit_version(root, version, rows, images, added=len(fresh))
        except BaseException:  # all or nothing: data/drawings and git as they were
            undo(root, start, version)
            raise
    return version, rows


def commit_version(root: Path, version: str, rows: list[Row], images: dict, added: int) -> None:
    """data/drawings written (swapped in whole), `dvc add`ed, committed and tagged."""
    from gto.api import register as gto_register

    with atomic_output(root / DRAWINGS_DIR) as ready:
        ready.mkdir()
        drawings.write(ready, rows, images)
    dvc_add = [sys.executable, "-m", "dvc", "add", "--quiet", str(DRAWINGS_DIR)]
    run(dvc_add, root, error=Refused, name=f"dvc add {DRAWINGS_DIR}", timeout=ADD_TIMEOUT_S)
    message = f"{ARTIFACT} {version}: {len(rows)} samples, {added} new"
    paths = (str(DVC_FILE), str(GITIGNORE))
    git(root, "add", "--", *paths)
    git(root, "commit", "-q", "-m", message, "--", *paths)  # those two files only
    gto_call(gto_register, repo=os.fspath(root), name=ARTIFACT, ref="HEAD", version=version)


def undo(root: Path, start: str, version: str) -> None:
    """Take back what a failed version made: its tag, its commit, data/drawings.dvc and
    data/.gitignore as `start` has them (they were clean), data/drawings as the last version's
    files (or none, before the first)."""
    try:
        exists = ["git", "cat-file", "-e", f"{start}:{DVC_FILE}"]
        had_version = completed(exists, root, timeout=ADD_TIMEOUT_S).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        had_version = True  # then nothing is deleted
    steps = [["git", "tag", "-d", tag(version)], ["git", "reset", "-q", "--keep", start],
             ["git", "checkout", "-q", start, "--", str(GITIGNORE)]]  # fmt: skip
    if had_version:
        steps += [
            ["git", "checkout", "-q", start, "--", str(DVC_FILE)],
            [sys.executable, "-m", "dvc", "checkout", "--quiet", "--force", str(DVC_FILE)],
        ]
    else:
        steps += [["git", "rm", "-q", "--cached", "--ignore-unmatch", "--", str(DVC_FILE)]]
    with suppress(OSError, subprocess.TimeoutExpired):  # the first error is the one to tell
        for argv in steps:
            completed(argv, root, timeout=ADD_TIMEOUT_S)
        if not had_version:
            (root / DVC_FILE).unlink(missing_ok=True)
            shutil.rmtree(root / DRAWINGS_DIR, ignore_errors=True)


def clear(spool: Path, rows: list[Row], version: str) -> int:
    """Remove from the spool every sample that `version` (its `rows`) holds, whichever version
    added it; how many. What arrived since stays."""
    try:
        return Spool(spool).remove({row.sha256 for row in rows})
    except SpoolError as error:
        raise Refused(f"{error} ({ARTIFACT} {version} is made)") from None
