"""What dvc.lock records: each stage's dependencies and outputs with their md5, as plain dicts.

The one reader of dvc.lock for the tools that ask which files a pipeline run made or read:
mnist-serve (are the served files the pipeline's? did `evaluate` score them?), mnist-release
(which outputs must be in the remote) and mnist-verify. A folder's md5 ends in `.dir`: DVC's
md5 of its listing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mnist_dvc.errors import ProjectError, describe


class LockError(ProjectError):
    """dvc.lock is missing or cannot be read."""


@dataclass(frozen=True)
class Stage:
    deps: dict[str, str] = field(default_factory=dict)  # path (as in dvc.lock) -> md5
    outs: dict[str, str] = field(default_factory=dict)


def parse(text: str, where: str = "dvc.lock") -> dict[str, Stage]:
    """dvc.lock's text -> {stage name: Stage}; LockError naming `where` if it is not one."""
    try:
        document = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError) as error:
        raise LockError(f"{where}: unreadable ({describe(error)})") from None
    stages = document.get("stages") if isinstance(document, dict) else None
    if not isinstance(stages, dict):
        raise LockError(f"{where}: no stages: not a dvc.lock")
    return {str(name): Stage(_md5s(entry, "deps"), _md5s(entry, "outs"))
            for name, entry in stages.items()}  # fmt: skip


def read(path: Path) -> dict[str, Stage]:
    """The dvc.lock at `path`; LockError if it is missing or unreadable."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise LockError(f"no dvc.lock in {path.parent}") from None
    except OSError as error:
        raise LockError(f"{path}: unreadable ({describe(error)})") from None
    return parse(text, str(path))


def all_outs(stages: dict[str, Stage]) -> dict[str, str]:
    """Every stage's outputs together: path -> md5."""
    return {path: md5 for stage in stages.values() for path, md5 in stage.outs.items()}


def outs_under(stages: dict[str, Stage], folder: str) -> dict[str, str]:
    """The outputs at or under `folder` (the artifact's path, say)."""
    prefix = folder.rstrip("/") + "/"
    return {p: md5 for p, md5 in all_outs(stages).items() if p == folder or p.startswith(prefix)}


def _md5s(entry: object, kind: str) -> dict[str, str]:
    items = entry.get(kind) if isinstance(entry, dict) else None
    return {
        str(item["path"]): str(item["md5"])
        for item in items or []
        if isinstance(item, dict) and isinstance(item.get("path"), str) and item.get("md5")
    }
