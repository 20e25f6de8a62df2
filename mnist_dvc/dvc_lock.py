"""What dvc.lock records: each stage's dependencies and outputs with their md5, as plain dicts.

The one reader of dvc.lock for the tools that ask which files a pipeline run made or read:
mnist-serve (are the served files the pipeline's? did `evaluate` score them?), mnist-release
(which outputs must be in the remote) and mnist-verify. A folder's md5 ends in `.dir`: DVC's
md5 of its listing.

Two readings. The lenient one (the default) skips an entry it cannot use: the serving card and
the release ask about some files and say when dvc.lock does not record them. The strict one
(`strict=True`, mnist-verify's, which compares every output of every stage) refuses a lock
whose stages are not mappings, whose deps and outs are not lists of paths or whose params are
not mappings of a params file to its values, and keeps an entry without an md5 (as ""), so
that it counts as changed rather than as absent. Either reads the YAML as DVC writes it (YAML
1.2: `epsilon: 1e-07` is a number) within the bounds of mnist_dvc/documents.py: nesting, and
aliases counted before they are expanded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mnist_dvc import documents
from mnist_dvc.errors import ProjectError, describe
from mnist_dvc.files import read_text_limited
from mnist_dvc.quoting import shorten


class LockError(ProjectError):
    """dvc.lock is missing or cannot be read."""


@dataclass(frozen=True)
class Stage:
    deps: dict[str, str] = field(default_factory=dict)  # path (as in dvc.lock) -> md5
    outs: dict[str, str] = field(default_factory=dict)
    # params file -> the values the stage ran with, as dvc.lock nests them (strict reading only)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)


def parse(text: str | bytes, where: str = "dvc.lock", *, strict: bool = False) -> dict[str, Stage]:
    """dvc.lock's text -> {stage name: Stage}; LockError naming `where` if it is not one (or,
    with `strict`, if a stage or one of its lists of entries is malformed)."""
    try:
        document = documents.load_yaml(text, version="1.2")  # as DVC wrote it
    except documents.DocumentError as error:
        reason = str(error) if strict else f"unreadable ({error})"
        raise LockError(f"{where}: {reason}") from None
    stages = document.get("stages") if isinstance(document, dict) else None
    if not isinstance(stages, dict):
        reason = "not a DVC lock file (no stages)" if strict else "no stages: not a dvc.lock"
        raise LockError(f"{where}: {reason}")
    if not strict:
        return {str(name): Stage(_md5s(entry, "deps"), _md5s(entry, "outs"))
                for name, entry in stages.items()}  # fmt: skip
    if not all(isinstance(entry, dict) for entry in stages.values()):
        raise LockError(f"{where}: a stage is not a mapping")
    # Every stage's outs are checked before any stage's deps: the first fault is the one told.
    outs = {name: _strict_md5s(entry, "outs", name, where) for name, entry in stages.items()}
    deps = {name: _strict_md5s(entry, "deps", name, where) for name, entry in stages.items()}
    params = {name: _strict_params(entry, name, where) for name, entry in stages.items()}
    return {str(name): Stage(deps[name], outs[name], params[name]) for name in stages}


def read(path: Path, *, strict: bool = False, shown: str | None = None) -> dict[str, Stage]:
    """The dvc.lock at `path`; LockError if it is missing, unreadable, not a regular file or
    larger than a dvc.lock can be (mnist_dvc/files.py). Messages name it `shown` (mnist-serve's
    /model names no path of its machine), or by its path."""
    try:
        text = read_text_limited(path)
    except FileNotFoundError:
        raise LockError(f"no {shown}" if shown else f"no dvc.lock in {path.parent}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise LockError(f"{shown or path}: unreadable ({describe(error)})") from None
    return parse(text, shown or str(path), strict=strict)


def all_outs(stages: dict[str, Stage]) -> dict[str, str]:
    """Every stage's outputs together: path -> md5."""
    return {path: md5 for stage in stages.values() for path, md5 in stage.outs.items()}


def outs_under(stages: dict[str, Stage], folder: str) -> dict[str, str]:
    """The outputs at or under `folder` (the artifact's path, say)."""
    prefix = folder.rstrip("/") + "/"
    return {p: md5 for p, md5 in all_outs(stages).items() if p == folder or p.startswith(prefix)}


def _is_path(value: object) -> bool:
    """A path a file system can be asked about: text without a NUL character (YAML can write
    one as "\\0"; os.stat would raise ValueError on it)."""
    return isinstance(value, str) and "\0" not in value


def _md5s(entry: object, kind: str) -> dict[str, str]:
    items = entry.get(kind) if isinstance(entry, dict) else None
    return {
        str(item["path"]): str(item["md5"])
        for item in items or []
        if isinstance(item, dict) and _is_path(item.get("path")) and item.get("md5")
    }


def _strict_md5s(entry: dict, kind: str, stage: object, where: str) -> dict[str, str]:
    items = entry.get(kind) or []
    if not isinstance(items, list) or not all(
        isinstance(item, dict) and _is_path(item.get("path")) for item in items
    ):
        raise LockError(f"{where}: stage {shorten(str(stage))}: {kind} is not a list of paths")
    return {item["path"]: str(item.get("md5", "")) for item in items}


def _strict_params(entry: dict, stage: object, where: str) -> dict[str, dict[str, Any]]:
    params = entry.get("params") or {}
    if not isinstance(params, dict) or not all(
        _is_path(name) and isinstance(values, dict) for name, values in params.items()
    ):
        raise LockError(
            f"{where}: stage {shorten(str(stage))}: params is not a mapping of files to values"
        )
    return params
