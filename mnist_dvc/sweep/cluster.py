"""Where the tasks run: a Ray cluster (connected to with a one-line error instead of a hang or a
traceback, checked for a node with room for one task, each task retried when its node dies), or
this process, one task after another, when Ray is not installed and the sweep is local.

Ray is imported here only, on use: the rest of mnist-sweep runs without it.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import threading
from collections.abc import Iterator
from typing import Any

from mnist_dvc.errors import describe
from mnist_dvc.sweep.output import plural
from mnist_dvc.sweep.plan import SweepError, UsageError
from mnist_dvc.sweep.task import InfraError, Job, Outcome, run_experiment

LOCAL_OBJECT_STORE = 100 * 1024 * 1024  # tasks exchange a few small objects; Ray's minimum is 75 MB
CONNECT_TIMEOUT_S = 5.0
AUTH_SETTINGS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


def load_ray(address: str, count: int) -> Any | None:
    """The ray module, or None to run the tasks in this process (only with --address local)."""
    try:
        import ray
    except ImportError:
        if address != "local":
            raise SweepError(
                "ray is not installed: `make setup-sweep` installs the locked version, or "
                "run here with --address local"
            ) from None
        print(
            f"mnist-sweep: ray is not installed: running {plural(count, 'experiment')} in "
            "this process instead, one after another",
            flush=True,
        )
        return None
    return ray


def run_jobs(
    ray: Any | None, jobs: list[Job], address: str, cpus: int, retries: int
) -> Iterator[Outcome]:
    """Every job's Outcome, in the order they finish: on Ray at `address`, or in this process
    when `ray` is None."""
    if ray is None:
        yield from run_in_process(jobs)
        return
    on_sigterm = signal.getsignal(signal.SIGTERM)
    try:
        connect(ray, address)
    finally:
        # ray.init makes SIGTERM sys.exit(15) in the driver, which ends in Ray's C++ abort
        # (SIGABRT and its stack on stderr) or leaves a task's clone behind. The console
        # script's own handler (mnist_dvc/console.py) ends it as Ctrl-C does: ray.shutdown()
        # below, `mnist-sweep: interrupted`, 143.
        if threading.current_thread() is threading.main_thread() and on_sigterm is not None:
            signal.signal(signal.SIGTERM, on_sigterm)
    try:
        require_room(ray, cpus)
        yield from run_on_ray(ray, jobs, cpus, retries)
    finally:
        ray.shutdown()


def run_in_process(jobs: list[Job]) -> Iterator[Outcome]:
    for job in jobs:
        try:
            yield run_experiment(job)
        except InfraError as error:
            yield Outcome(job.name, "failed", str(error))


def connect(ray: Any, address: str) -> None:
    """ray.init, with a one-line error instead of a hang or a traceback when there is no
    cluster at the address."""
    quiet = {"logging_level": "ERROR", "log_to_driver": False}
    if address == "local":
        private_token()
        ray.init(
            address="local",
            num_cpus=os.cpu_count(),
            include_dashboard=False,
            object_store_memory=LOCAL_OBJECT_STORE,
            **quiet,
        )
        return
    if address != "auto" and "://" not in address:
        require_reachable(address)
    try:
        ray.init(address=address, **quiet)
    except ConnectionError as error:
        if address == "auto":
            raise SweepError(
                "--address auto: no Ray cluster running on this machine; start one with "
                "`ray start --head` (docs/sweeps.md), or use --address local"
            ) from None
        # Ray's default: nodes and drivers must share a token. With an explicit address Ray
        # sends it only when RAY_AUTH_MODE=token says so. (ray.init's ConnectionErrors are one
        # sentence each: describe gives its first line, as for any error.)
        raise SweepError(
            f"--address {address}: {describe(error)}; if the cluster uses Ray's token "
            "authentication, set RAY_AUTH_MODE=token and its token (RAY_AUTH_TOKEN or "
            "~/.ray/auth_token) here as on its nodes"
        ) from None


def private_token() -> None:
    """A Ray instance of this run only would otherwise write a new token to ~/.ray/auth_token,
    which every later `ray start --head` on this machine then picks up. A token in this
    process's environment (its Ray processes inherit it) leaves the home folder alone."""
    if not any(os.environ.get(name) for name in AUTH_SETTINGS):
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)


def require_reachable(address: str) -> None:
    # ray.init waits minutes for an address where nothing listens; a socket says at once.
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--address {address!r}: expected auto, local or HOST:PORT")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise SweepError(
            f"cannot reach the Ray cluster at {address} ({reason}): is "
            f"`ray start --head --port {port}` running on {host}?"
        ) from None


def require_room(ray: Any, cpus: int) -> None:
    """A task asking for more CPUs than any node has would wait forever."""
    largest = max(
        (node["Resources"].get("CPU", 0) for node in ray.nodes() if node["Alive"]), default=0
    )
    if largest < cpus:
        raise UsageError(
            f"--cpus {cpus}: no node of the Ray cluster has that many (the largest "
            f"has {largest:g}); use --cpus {max(int(largest), 1)}"
        )


def run_on_ray(ray: Any, jobs: list[Job], cpus: int, retries: int) -> Iterator[Outcome]:
    """One task per job, `cpus` CPUs each; outcomes in the order they finish. A task whose
    worker or node dies is run again (max_retries), as is one whose git or DVC remote calls
    failed (retry_exceptions); a failed experiment is an Outcome, not an exception."""
    task = ray.remote(run_experiment).options(
        num_cpus=cpus, max_retries=retries, retry_exceptions=[InfraError]
    )
    pending = {task.remote(job): job for job in jobs}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        job = pending.pop(ready[0])
        try:
            yield ray.get(ready[0])
        except ray.exceptions.RayTaskError as error:
            yield Outcome(job.name, "failed", task_error(error.cause or error, retries))
        except ray.exceptions.RayError as error:  # the worker or its node died every time
            yield Outcome(job.name, "failed", f"after {retries + 1} tries: {first_line(error)}")


def task_error(cause: BaseException, retries: int) -> str:
    if isinstance(cause, InfraError):
        return f"after {retries + 1} tries: {cause}"
    return f"{type(cause).__name__}: {first_line(cause)}"  # a bug: say what it was


def first_line(error: BaseException) -> str:
    """The first line of Ray's error, or of a bug's. Not mnist_dvc.errors.describe: Ray puts
    the reason first and the advice in a last paragraph ("Failed to retrieve object ...\\n\\n
    All copies ... have been lost"; an OutOfMemoryError ends with "Refer to the documentation"),
    which describe would pick, and a bug's OSError keeps its file name here."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
