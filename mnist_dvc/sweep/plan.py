"""A sweep's plan, and what the repository must be for it, checked before anything runs: a git
and DVC repository whose HEAD is on the git remote the tasks clone, with a DVC remote for them to
pull the data from and push their results to. The plan lists the grid's experiments and those
already on the git remote (a sweep run again skips them).

Each refusal is a SweepError: one line that says what to do.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnist_dvc.errors import ToolError
from mnist_dvc.git_commands import git, git_ok, is_url, ls_remote, repo_root
from mnist_dvc.sweep.grid import Experiment, GridError, expand
from mnist_dvc.sweep.task import exp_ref


class SweepError(ToolError):
    """Something the user can fix before a sweep starts. The message is one line."""


class UsageError(SweepError):
    """Bad command-line input (exit status 2, as argparse's own)."""

    exit_status = 2


@dataclass(frozen=True)
class Plan:
    repo: Path
    git_url: str
    commit: str
    experiments: list[Experiment]
    existing: set[str]  # names already on the git remote


def make_plan(cwd: Path, git_remote: str, options: list[str], targets: tuple[str, ...]) -> Plan:
    repo = dvc_repo_root(cwd)
    git_url = remote_url(repo, git_remote)
    commit = git(repo, "rev-parse", "HEAD", error=SweepError)
    try:
        experiments = expand(options, commit, targets)
    except GridError as error:
        raise UsageError(str(error)) from None
    refs = remote_refs(repo, git_remote)
    require_pushed(repo, commit, refs, git_remote)
    if git(repo, "status", "--porcelain", "--untracked-files=no", error=SweepError):
        print(
            f"mnist-sweep: note: uncommitted changes are not part of the sweep; it runs commit "
            f"{commit[:7]} as {git_remote} has it",
            file=sys.stderr,
        )
    prefix = exp_ref(commit, "")
    existing = {ref.removeprefix(prefix) for ref in refs if ref.startswith(prefix)}
    return Plan(repo, git_url, commit, experiments, existing)


def dvc_repo_root(cwd: Path) -> Path:
    outside = f"{cwd} is not in a git repository: run mnist-sweep in your clone"
    root = repo_root(cwd, error=SweepError, outside=outside, timeout=60)
    if not (root / ".dvc").is_dir():
        raise SweepError(f"{root} is not a DVC repository (no .dvc folder)")
    return root


def remote_url(repo: Path, name: str) -> str:
    """The git remote's URL as every node can use it: a local path made absolute."""
    try:
        url = git(repo, "remote", "get-url", name, error=SweepError, timeout=60).strip()
    except SweepError:
        raise SweepError(
            f"no git remote {name!r}: every node clones the sweep's commit from "
            f"it; add one with `git remote add {name} URL` and push"
        ) from None
    if is_url(url):
        return url
    return str((repo / url).resolve())


def remote_refs(repo: Path, git_remote: str) -> dict[str, str]:
    """{ref: commit} of the remote's branches, tags and experiments, in one call."""
    unreachable = f"cannot reach git remote {git_remote!r}"
    return ls_remote(git_remote, cwd=repo, error=SweepError, name=unreachable)


def require_pushed(repo: Path, commit: str, refs: dict[str, str], git_remote: str) -> None:
    """The tasks clone the remote: HEAD must be there, as a tip or under one."""
    tips = {sha for ref, sha in refs.items() if not ref.startswith("refs/exps/")}
    if commit in tips or any(
        git_ok(repo, "cat-file", "-e", f"{tip}^{{commit}}")  # a tip this clone knows
        and git_ok(repo, "merge-base", "--is-ancestor", commit, tip)
        for tip in tips
    ):
        return
    raise SweepError(
        f"HEAD ({commit[:7]}) is not on {git_remote}, where the tasks clone it "
        f"from: `git push {git_remote} HEAD` first"
    )


def dvc_remotes(repo: Path) -> tuple[dict[str, dict[str, Any]], str | None]:
    """The DVC remotes as this clone sees them (its .dvc/config.local included), with local
    paths absolute: a task's clone is elsewhere, and relative paths would point elsewhere."""
    from dvc.config import Config

    config = Config(dvc_dir=str(repo / ".dvc"))
    remotes = {name: dict(options) for name, options in config.get("remote", {}).items()}
    default = config.get("core", {}).get("remote")
    if not remotes:
        raise SweepError(
            "no DVC remote: the tasks pull the data from one and push their "
            "results to it; add one with `dvc remote add -d NAME URL`"
        )
    return remotes, default
