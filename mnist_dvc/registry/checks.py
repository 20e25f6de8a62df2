"""What a commit must be before it is released, each check one line when it fails: a clean git
tree, a pipeline that `dvc status` calls up to date, and every model file in the default DVC
remote. Cheapest checks first, so that a refusal comes fast. The remote is asked by `dvc data
status` in a child process with a deadline (REMOTE_TIMEOUT_S): DVC's own calls have none."""

from __future__ import annotations

import json
import os
import sys
from functools import partial
from pathlib import Path

from mnist_dvc import commands, documents, dvc_lock, git_commands
from mnist_dvc.errors import ToolError
from mnist_dvc.files import read_text_limited
from mnist_dvc.paths import METRICS
from mnist_dvc.redact import redact
from mnist_dvc.released import ARTIFACT
from mnist_dvc.seed_study import SEED_SPREAD

STAGES = ("dev", "staging", "prod")
GATED_STAGE = "prod"
MAX_VERSION = 64  # characters: v1.2.0-rc.1+build.5 and then some; a git tag name stays short
REMOTE_TIMEOUT_S = 600.0  # listing the model's files in the remote


class Refused(ToolError):
    """Why nothing was tagged, in one line that says what to do."""


git = partial(git_commands.git, error=Refused)  # git(root, *args): its stdout, or Refused


def repo_root() -> Path:
    outside = "not inside a git repository: run this in a clone of the project"
    return git_commands.repo_root(None, error=Refused, outside=outside)


def check_version(version: str) -> None:
    # GTO's own rule ("v" and a SemVer), checked before the slower checks run.
    from gto.versions import SemVer

    if len(version) > MAX_VERSION:
        raise Refused(f"a version has at most {MAX_VERSION} characters, got {len(version)}")
    if not SemVer.is_valid(version):
        raise Refused(f"a version looks like v1.2.0 (SemVer with a leading v), got {version!r}")


def check_stage(stage: str) -> None:
    if stage not in STAGES:
        raise Refused(f"a stage is one of {', '.join(STAGES)}, got {shown(stage)}")


def shown(value: str) -> str:
    """A value as a refusal quotes it: at most MAX_VERSION characters of it."""
    return repr(value if len(value) <= MAX_VERSION else f"{value[:MAX_VERSION]}...")


def check_git_clean(root: Path) -> None:
    # Untracked files count too: a new module that was never committed is not in the version.
    changed = [line[3:] for line in git(root, "status", "--porcelain").splitlines()]
    if changed:
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        raise Refused(
            f"the git work tree has uncommitted changes ({', '.join(changed[:3])}{more}): "
            "commit or stash them, then release"
        )


def artifact_path(root: Path) -> str:
    """The artifact's path from dvc.yaml, as `dvc artifacts get` will read it at the tag."""
    try:
        dvc_yaml = documents.load_yaml(read_text_limited(root / "dvc.yaml"), version="1.2")
        declared = dvc_yaml.get("artifacts") or {}
        return str(declared[ARTIFACT]["path"]).rstrip("/")
    except (OSError, ValueError, AttributeError, KeyError, TypeError):  # ValueError: not YAML
        raise Refused(
            f"dvc.yaml declares no artifact {ARTIFACT} with a path: add it under `artifacts:`"
        ) from None


def model_files(root: Path, path: str) -> dict[str, str]:
    """The model's outputs with the md5 that dvc.lock records: what the tag will stand for."""
    try:
        found = dvc_lock.outs_under(dvc_lock.read(root / "dvc.lock"), path)
    except dvc_lock.LockError:
        raise Refused("no dvc.lock: run `dvc repro` and commit dvc.lock, then release") from None
    if not found:
        raise Refused(f"dvc.lock has no output under {path}/: run `dvc repro`, commit, release")
    return found


def check_pipeline(repo) -> None:
    status = repo.status()
    if status:
        raise Refused(
            f"the pipeline is not up to date (dvc status: {', '.join(sorted(status))} changed): "
            "run `dvc repro` (or `dvc pull` for outputs not fetched) and commit dvc.lock"
        )


def default_remote(repo) -> tuple[str, str]:
    name = repo.config["core"].get("remote")
    if not name:
        raise Refused("no default DVC remote: `dvc remote add -d NAME URL`, commit, `dvc push`")
    return name, redact(str(repo.config["remote"][name]["url"]))  # for messages only


def check_in_remote(repo, path: str) -> None:
    """Every file of the model is in the default remote, as a consumer of the tag needs it.
    DVC reports an unreachable HTTP remote as files missing, so the message says both."""
    name, url = default_remote(repo)
    listing = [sys.executable, "-m", "dvc", "data", "status", "--granular", "--not-in-remote",
               "--json", path]  # fmt: skip
    unchecked = f"cannot check the default remote {name!r} ({url})"
    output = commands.run(listing, Path(repo.root_dir), error=Refused, name=unchecked,
                          timeout=REMOTE_TIMEOUT_S)  # fmt: skip
    try:
        status = json.loads(output)
    except ValueError:
        raise Refused(f"{unchecked}: dvc data status printed no JSON") from None
    missing = sorted(entry.replace(os.sep, "/") for entry in status.get("not_in_remote", []))
    if missing:
        more = f" and {len(missing) - 2} more" if len(missing) > 2 else ""
        raise Refused(
            f"{', '.join(missing[:2])}{more} not in the default remote {name!r} ({url}), or it "
            "cannot be reached: run `dvc push`, then release"
        )


def check_release(root: Path) -> dict[str, str]:
    """All the reasons not to release HEAD, cheapest first; the model's files when none."""
    from dvc.repo import Repo

    check_git_clean(root)
    path = artifact_path(root)
    files = model_files(root, path)
    with Repo(os.fspath(root)) as repo:
        check_pipeline(repo)
        check_in_remote(repo, path)
    return files


def metrics_at(root: Path, commit: str, whose: str) -> dict:
    """The metrics.json committed at `commit` (`whose`, for messages) as a JSON object: bounded
    and strict (documents.py), or Refused."""
    try:
        document = documents.load_json(git(root, "show", f"{commit}:{METRICS}"))
    except (Refused, ValueError) as error:  # no such file at that commit, not JSON
        raise Refused(f"{whose} {METRICS} cannot be read ({error}): the gate has nothing to "
                      "compare") from None  # fmt: skip
    if not isinstance(document, dict):
        raise Refused(f"{whose} {METRICS} is not a JSON object: the gate has nothing to compare")
    return document


def check_no_regression(root: Path, version: str, commit: str, prod: tuple[str, str]) -> None:
    """Refuse a model (`version` at `commit`) that scores more than the seed spread below the
    prod model (`prod`: its version and commit) on a metric prod's metrics.json holds."""
    prod_version, prod_commit = prod
    old = metrics_at(root, prod_commit, f"prod's {prod_version}:")
    new = metrics_at(root, commit, f"{ARTIFACT} {version}'s")
    for metric, spread in SEED_SPREAD.items():
        a, b = new.get(metric), old.get(metric)
        if not _score(b):  # a prod model scored before this metric existed
            continue
        if not _score(a):
            raise Refused(
                f"{ARTIFACT} {version}'s {METRICS} has no {metric} (a number from 0 to 1) to "
                f"compare with prod's {prod_version}: evaluate it (`dvc repro evaluate`), release "
                "it again"
            )
        if a < b - spread:
            raise Refused(
                f"{ARTIFACT} {version} scores {metric} {a:.4f}, {b - a:.4f} below prod's "
                f"{prod_version} ({b:.4f}): more than the seed spread, {spread}; to roll back "
                "on purpose, --allow-regression (make promote ... FORCE=1)"
            )


def _score(value: object) -> bool:
    """A score: a number from 0 to 1 (not NaN, not a boolean)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1
