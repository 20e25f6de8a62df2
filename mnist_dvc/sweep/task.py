"""One experiment of a sweep, as a Ray task runs it on whichever node has room (or the driver runs
it in its own process when there is no Ray).

In a clone of its own (DVC locks a work tree, so two experiments never share one): clone the git
remote at the sweep's commit, pull the data the pipeline needs from the DVC remote instead of
fetching MNIST again, `dvc exp run` with the experiment's params, then push its outputs to the
DVC remote first and its git ref last. A ref on the remote therefore always has its outputs
there too: a task that dies on the way leaves nothing, or only unreferenced cache files.

Only the standard library and mnist_dvc's own small modules (errors, commands, git_commands,
and the sweep's guarded and results) at the top: Ray imports this module on every worker, by
its path (mnist_dvc.sweep.task), to run run_experiment and to rebuild the Job, the Outcome and
an InfraError.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mnist_dvc.commands import last_line
from mnist_dvc.errors import ToolError
from mnist_dvc.git_commands import listed_refs
from mnist_dvc.redact import redact
from mnist_dvc.sweep.guarded import dvc, guarded, task_env
from mnist_dvc.sweep.results import NO_OUTPUT, dvc_error, failure_reason, fresh_metrics

LOG_TAIL_CHARS = 6000  # of each experiment's output, kept for `mnist-sweep --verbose`


class InfraError(ToolError):
    """Git or the DVC remote failed (clone, pull, push): worth another try, on any node.
    The message is one line."""


@dataclass(frozen=True)
class Job:
    """Everything a task needs, sent to it by Ray: plain data only."""

    git_url: str
    commit: str
    name: str
    overrides: tuple[str, ...]
    targets: tuple[str, ...]
    pull: tuple[str, ...]
    cpus: int
    # The driver's DVC remotes, local paths made absolute and credentials from its
    # .dvc/config.local included: a clone has only what git carries.
    remotes: dict[str, dict[str, Any]]
    default_remote: str | None
    workdir: str | None = None
    git_remote: str = "origin"


@dataclass(frozen=True)
class Outcome:
    name: str
    status: str  # "done", "failed" or "exists" (pushed by an earlier try or another sweep)
    message: str  # one line: the metrics, or why it failed
    node: str = ""
    seconds: dict[str, float] = field(default_factory=dict)  # clone, pull, run, push
    log_tail: str = ""
    metrics: dict[str, float] = field(default_factory=dict)  # metrics.json's numbers


def run_experiment(job: Job) -> Outcome:
    """The task. A user error (invalid params) is a "failed" Outcome; trouble with git or the
    DVC remote raises InfraError, which Ray retries."""
    seconds: dict[str, float] = {}
    node = node_name()
    work = make_workdir(job)
    try:
        with timed(seconds, "clone"):
            clone(job, work)
        if ref_on_remote(job, work):
            # An earlier try pushed it and then lost its node before it could report.
            return Outcome(job.name, "exists", "already on the git remote", node, seconds)
        configure(job, work)
        with timed(seconds, "pull"):
            pull(job, work)
        started = time.time()
        with timed(seconds, "run"):
            code, output = exp_run(job, work)
        if code != 0:
            return Outcome(
                job.name, "failed", failure_reason(output), node, seconds, output[-LOG_TAIL_CHARS:]
            )
        metrics = fresh_metrics(work / "metrics.json", started)
        with timed(seconds, "push"):
            push(job, work)
        summary = ", ".join(f"{key} {value:.4f}" for key, value in metrics.items())
        return Outcome(
            job.name,
            "done",
            summary or "no new metrics.json (the targets stop before evaluate)",
            node,
            seconds,
            output[-LOG_TAIL_CHARS:],
            metrics,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def make_workdir(job: Job) -> Path:
    try:
        if job.workdir:  # a folder named on the command line need not exist yet on every node
            Path(job.workdir).mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"{job.name}-", dir=job.workdir))
    except OSError as error:
        where = job.workdir or tempfile.gettempdir()
        raise InfraError(f"cannot make a clone in {where}: {error.strerror}") from None


@contextmanager
def timed(seconds: dict[str, float], step: str) -> Iterator[None]:
    start = time.monotonic()
    try:
        yield
    finally:
        seconds[step] = round(time.monotonic() - start, 2)


def node_name() -> str:
    """The host, and the Ray node when there is one (several nodes can share a host)."""
    host = socket.gethostname()
    try:
        import ray

        if ray.is_initialized():
            return f"{host}/{ray.get_runtime_context().get_node_id()[:8]}"
    except ImportError:
        pass
    return host


def clone(job: Job, work: Path) -> None:
    code, output = guarded(
        [
            "git",
            "clone",
            "--quiet",
            "--no-checkout",
            "--origin",
            job.git_remote,
            job.git_url,
            str(work),
        ],
        cwd=work.parent,
    )
    if code != 0:
        raise InfraError(redact(f"git clone {job.git_url} failed: {last_line(output, NO_OUTPUT)}"))
    code, output = guarded(["git", "checkout", "--quiet", "--detach", job.commit], cwd=work)
    if code != 0:
        reason = last_line(output, NO_OUTPUT)
        raise InfraError(redact(f"commit {job.commit[:12]} is not in {job.git_url}: {reason}"))


def ref_on_remote(job: Job, work: Path) -> bool:
    """Whether the experiment's ref is on the git remote. Asked through the guard, as every
    remote call of a task is; its listing read by the one parser of `git ls-remote`'s lines
    (the guard's output holds git's warnings too)."""
    ref = exp_ref(job.commit, job.name)
    code, output = guarded(["git", "ls-remote", job.git_remote, ref], work)
    if code != 0:
        reason = last_line(output, NO_OUTPUT)
        raise InfraError(redact(f"git ls-remote {job.git_url} failed: {reason}"))
    return ref in listed_refs(output)


def exp_ref(commit: str, name: str) -> str:
    """Where DVC keeps an experiment in git: refs/exps/<baseline split 2/38>/<name>."""
    return f"refs/exps/{commit[:2]}/{commit[2:]}/{name}"


def configure(job: Job, work: Path) -> None:
    """The driver's remotes in the clone's .dvc/config.local (git-ignored: never pushed); a
    DVC cache shared by the tasks of this node; a committer for the experiment's commit where
    git has none configured."""
    from dvc.config import Config  # DVC is in every node's environment; imported on use

    with Config(dvc_dir=str(work / ".dvc")).edit("local") as conf:
        conf["remote"] = job.remotes
        if job.default_remote:
            conf["core"]["remote"] = job.default_remote
        # The prepared data (220 MB) then comes from the remote once per node, not once per
        # experiment, and is hard-linked into each clone. DVC writes cache files under
        # temporary names and renames them, so tasks side by side can share it; the stages
        # replace their outputs (mnist_dvc.atomic) rather than write into linked files.
        conf["cache"]["dir"] = str(node_cache(job))
        conf["cache"]["type"] = "hardlink,copy"
    code, _ = guarded(["git", "config", "user.email"], work)
    if code != 0:
        guarded(["git", "config", "user.name", "mnist-sweep"], work)
        guarded(["git", "config", "user.email", f"mnist-sweep@{socket.gethostname()}"], work)


def node_cache(job: Job) -> Path:
    return Path(job.workdir or tempfile.gettempdir()) / "mnist-sweep-cache"


def pull(job: Job, work: Path) -> None:
    if not job.pull:
        return
    code, output = guarded(dvc("pull", *job.pull), work)
    if code != 0:
        paths = " ".join(job.pull)
        raise InfraError(
            f"dvc pull {paths} failed: {dvc_error(output)} (push it first: "
            f"`dvc push {paths}` where it was made)"
        )


def exp_run(job: Job, work: Path) -> tuple[int, str]:
    # --allow-missing: a stage whose outputs were not pulled but did not change (fetch) is
    # skipped instead of run again, so no node downloads MNIST.
    sets = [arg for override in job.overrides for arg in ("-S", override)]
    cmd = dvc("exp", "run", "--allow-missing", "--name", job.name, *sets, *job.targets)
    return guarded(cmd, work, task_env(job.cpus), timeout=None)  # training: no deadline


def push(job: Job, work: Path) -> None:
    """The outputs first (the work tree holds the experiment's), then the git ref."""
    code, output = guarded(dvc("push"), work)
    if code != 0:
        raise InfraError(f"dvc push failed: {dvc_error(output)}")
    code, output = guarded(dvc("exp", "push", "--no-cache", job.git_remote, job.name), work)
    if code != 0:
        raise InfraError(f"dvc exp push {job.git_remote} failed: {dvc_error(output)}")
