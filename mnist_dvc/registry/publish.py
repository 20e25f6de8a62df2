"""`mnist-release publish`: a local-folder DVC remote copied into a web folder, new files
only and each one whole, so that consumers can `dvc pull` over plain HTTP(S)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from mnist_dvc.atomic import OutputError, atomic_output
from mnist_dvc.errors import describe
from mnist_dvc.redact import redact
from mnist_dvc.registry.checks import Refused, default_remote, repo_root


def remote_folder(root: Path, remote: str | None) -> tuple[str, Path]:
    from dvc.repo import Repo

    with Repo(os.fspath(root)) as repo:
        name = remote or default_remote(repo)[0]
        try:
            url = str(repo.config["remote"][name]["url"])
        except KeyError:
            raise Refused(f"no DVC remote {name!r}: `dvc remote list` shows them") from None
    if "://" in url:
        raise Refused(
            f"remote {name!r} is {redact(url)}, not a local folder: copy it with its own tools "
            "(for S3, `aws s3 sync`), or serve it as it is"
        )
    return name, Path(url)


def new_files(source: Path, dest: Path) -> Iterator[Path]:
    """Files under `source` that `dest` lacks: the remote is content-addressed (the name is the
    md5), so a file already published never changes and is not copied again."""
    for path in sorted(source.rglob("*")):
        if path.is_file() and not (dest / path.relative_to(source)).exists():
            yield path.relative_to(source)


def copy_whole(source: Path, target: Path) -> None:
    """Written beside its final name, synced, then renamed (mnist_dvc/atomic.py): a web server
    never serves half a file, and a copy cut short (full disk, Ctrl-C) is redone by the next
    publish."""
    try:
        with atomic_output(target) as partial:
            shutil.copyfile(source, partial)
    except OutputError as error:
        raise Refused(str(error)) from None
    except OSError as error:  # a folder that takes no files (/proc/self), a file in the way
        where = error.filename or target
        raise Refused(f"cannot publish to {target}: {where}: {describe(error)}") from None


def check_destination(dest: Path) -> None:
    """Refuse a destination that reads as an option (`make publish DEST=--help`) or is not a
    folder, before anything is copied."""
    if str(dest).startswith("-"):
        raise Refused(
            f"a destination folder that starts with '-' reads as an option, got {str(dest)!r}: "
            f"write ./{dest} for a folder of that name"
        )
    if dest.exists() and not dest.is_dir():
        raise Refused(f"{dest} is not a folder: publish to a folder (it is made if missing)")


def publish(dest: Path, remote: str | None) -> int:
    check_destination(dest)
    root = repo_root()
    name, source = remote_folder(root, remote)
    if dest.resolve().is_relative_to(source.resolve()):
        raise Refused(
            f"{dest} is inside remote {name!r} ({source}): publish to a folder outside it"
        )
    if not (source / "files").is_dir():
        raise Refused(f"remote {name!r} ({source}) holds nothing yet: run `dvc push` first")
    copied = 0
    for relative in new_files(source, dest):
        copy_whole(source / relative, dest / relative)
        copied += 1
    print(f"mnist-release: copied {copied} new files from remote {name!r} ({source}) to {dest}")
    print(
        "mnist-release: serve that folder read-only over HTTP(S); consumers then run "
        "`dvc remote add public https://HOST/PATH` (docs/releases.md)"
    )
    return copied
