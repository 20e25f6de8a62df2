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
import sys
import tempfile
from pathlib import Path

from mnist_dvc import drawings
from mnist_dvc.commands import run
from mnist_dvc.drawings import ARTIFACT, Row
from mnist_dvc.git_commands import LOCAL_TIMEOUT_S
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


def make_version(spool: Path, version: str | None) -> tuple[str, list[Row]]:
    """Register the next version; (its name, its rows)."""
    from gto.api import register as gto_register
    from gto.versions import SemVer

    root = repo_root()
    registered = versions(root)
    latest = registered[-1] if registered else None
    version = version or next_version(latest)
    check_version(version)
    if latest is not None and SemVer(version) <= SemVer(latest):
        raise Refused(f"{ARTIFACT} {version} is not newer than the last version, {latest}")
    if git(root, "status", "--porcelain", "--", str(DVC_FILE)).strip():
        raise Refused(f"{DVC_FILE} has uncommitted changes: commit or restore it first")

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
        written = Path(scratch) / "new"
        written.mkdir()
        drawings.write(written, rows, images)
        replace_folder(root / DRAWINGS_DIR, written)

    start = git(root, "rev-parse", "HEAD").strip()
    dvc_add = [sys.executable, "-m", "dvc", "add", "--quiet", str(DRAWINGS_DIR)]
    run(dvc_add, root, error=Refused, name=f"dvc add {DRAWINGS_DIR}", timeout=ADD_TIMEOUT_S)
    added = len(fresh)
    message = f"{ARTIFACT} {version}: {len(rows)} samples, {added} new"
    git(root, "add", "--", str(DVC_FILE), str(GITIGNORE))
    git(root, "commit", "-q", "-m", message, "--", str(DVC_FILE), str(GITIGNORE))
    try:
        gto_call(gto_register, repo=os.fspath(root), name=ARTIFACT, ref="HEAD", version=version)
    except BaseException:
        git(root, "reset", "-q", "--keep", start, timeout=LOCAL_TIMEOUT_S)
        raise
    return version, rows


def replace_folder(final: Path, ready: Path) -> None:
    """Put the folder `ready` where `final` is, by renames on final's file system."""
    final.parent.mkdir(parents=True, exist_ok=True)
    staged = final.with_name(f".{final.name}.partial")
    shutil.rmtree(staged, ignore_errors=True)
    shutil.copytree(ready, staged)
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.rename(final, old)
    os.rename(staged, final)
    shutil.rmtree(old, ignore_errors=True)
