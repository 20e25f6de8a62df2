"""Run a grid of experiments across a Ray cluster; share them through git and the DVC remote.

    mnist-sweep -S train.optimizer.learning_rate=0.5,1.0 -S train.epochs=6,12 --address auto

Each combination of the `-S` values (dvc exp run's syntax, values separated by commas) is one
Ray task, run on whichever node has `--cpus` CPUs free. The task clones the git remote at this
repository's HEAD (which must be pushed there), pulls the prepared data from the DVC remote,
runs `dvc exp run` with its params and pushes the experiment with `dvc exp push`. Then this
command pulls the experiments' git refs (`dvc exp pull`) and prints `dvc exp show`, so that
`dvc exp show`, `dvc metrics diff` and `dvc plots diff` compare them like any experiment.

Experiments are named from the commit, the targets and their params (`sweep-<hash>`): running
the same sweep again skips those already on the git remote. An experiment that fails (invalid
params) is reported with its stage's one-line message and the others go on; a task whose node
dies is run again on another node. The exit status is 1 when any experiment failed.

`--address local` starts Ray on this machine only; without Ray installed it runs the same tasks
in this process, one after another. See docs/sweeps.md for a real cluster.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from mnist_dvc.sweep_grid import Experiment, GridError, expand
from mnist_dvc.sweep_task import (
    InfraError,
    Job,
    Outcome,
    dvc,
    exp_ref,
    read_metrics,
    run_experiment,
)

DEFAULT_CPUS = 2  # what one training uses well: TensorFlow's ops on this model scale to ~2 cores
DEFAULT_PULL = ("data/prepared",)  # the train stage's data: no node fetches MNIST again
DEFAULT_RETRIES = 3  # per task, when its worker or node dies or git/DVC remote calls fail
LOCAL_OBJECT_STORE = 100 * 1024 * 1024  # tasks exchange a few small objects; Ray's minimum is 75 MB
CONNECT_TIMEOUT_S = 5.0
RAY_MESSAGE_CHARS = 200
WIDE_TABLE = 250  # columns for `dvc exp show` when the output is not a terminal
ANSI_CODE = re.compile(r"\x1b\[[0-9;]*m")  # Ray colours the prefix of its messages
AUTH_SETTINGS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


class SweepError(Exception):
    """Something the user can fix before a sweep starts. The message is one line."""


class UsageError(SweepError):
    """Bad command-line input (exit status 2, as argparse's own)."""


@dataclass(frozen=True)
class Plan:
    repo: Path
    git_url: str
    commit: str
    experiments: list[Experiment]
    existing: set[str]  # names already on the git remote


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return sweep(args)
    except UsageError as error:
        print(f"mnist-sweep: error: {error}", file=sys.stderr)
        return 2
    except SweepError as error:
        print(f"mnist-sweep: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mnist-sweep: interrupted", file=sys.stderr)
        return 130


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="mnist-sweep", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "targets",
        nargs="*",
        help="stages to run up to, as dvc exp run's targets (default: the whole pipeline)",
    )
    parser.add_argument(
        "-S",
        "--set-param",
        dest="set",
        action="append",
        default=[],
        metavar="KEY=V1[,V2...]",
        help="a param and its values (repeat it)",
    )
    parser.add_argument(
        "--address",
        default="local",
        help="Ray cluster: auto, HOST:PORT, or local (this machine; the default)",
    )
    parser.add_argument(
        "--cpus",
        type=positive_int,
        default=DEFAULT_CPUS,
        help=f"CPUs each experiment holds (default {DEFAULT_CPUS})",
    )
    parser.add_argument(
        "--git-remote",
        default="origin",
        help="git remote that every node clones and pushes to (default origin)",
    )
    parser.add_argument(
        "--pull",
        action="append",
        default=None,
        metavar="PATH",
        help=f"what each task pulls from the DVC remote before it runs "
        f"(repeat it; default {' '.join(DEFAULT_PULL)})",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=DEFAULT_RETRIES,
        help=f"tries more per experiment when a node dies (default {DEFAULT_RETRIES})",
    )
    parser.add_argument(
        "--workdir",
        default=None,
        help="where tasks make their clones (default: the system's temp folder)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="print the end of each failed experiment's output",
    )
    return parser.parse_args(argv)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is less than 1")
    return value


def sweep(args: argparse.Namespace) -> int:
    targets = tuple(args.targets)
    plan = make_plan(Path.cwd(), args.git_remote, args.set, targets)
    todo = [e for e in plan.experiments if e.name not in plan.existing]
    remotes, default_remote = dvc_remotes(plan.repo)
    jobs = [make_job(plan, e, args, targets, remotes, default_remote) for e in todo]
    skipped = len(plan.experiments) - len(todo)
    print(
        f"mnist-sweep: {plural(len(plan.experiments), 'experiment')} on commit "
        f"{plan.commit[:7]}: {skipped} already on {args.git_remote} (skipped), {len(jobs)} to "
        f"run (--address {args.address}, {plural(args.cpus, 'CPU')} each)",
        flush=True,
    )
    start = time.monotonic()
    outcomes = run_all(jobs, todo, args)
    wall = time.monotonic() - start
    shared = [e.name for e in plan.experiments if e.name in plan.existing]
    shared += [o.name for o in outcomes if o.status in ("done", "exists")]
    pulled = not shared or pull_and_show(
        plan, args.git_remote, shared, columns(plan, args.set, outcomes)
    )
    print(summary(skipped, outcomes, wall), flush=True)
    failed = [o for o in outcomes if o.status == "failed"]
    labels = {e.name: e.label for e in plan.experiments}
    for outcome in failed:
        line = f"mnist-sweep: failed: {outcome.name} ({labels[outcome.name]}): {outcome.message}"
        print(line, file=sys.stderr)
    return 1 if failed or not pulled else 0


def run_all(jobs: list[Job], todo: list[Experiment], args: argparse.Namespace) -> list[Outcome]:
    """Every job, on Ray or in this process, with a progress line as each one finishes."""
    if not jobs:
        return []
    ray = load_ray(args.address, len(jobs))
    outcomes = []
    with ray_messages_to_stderr() as out:
        for count, outcome in enumerate(run_jobs(ray, jobs, args), 1):
            outcomes.append(outcome)
            print(progress_line(count, len(jobs), outcome, todo), file=out, flush=True)
            if args.verbose and outcome.status == "failed":
                print(outcome.log_tail, file=sys.stderr)
    return outcomes


def make_plan(cwd: Path, git_remote: str, options: list[str], targets: tuple[str, ...]) -> Plan:
    repo = repo_root(cwd)
    git_url = remote_url(repo, git_remote)
    commit = git(repo, "rev-parse", "HEAD")
    try:
        experiments = expand(options, commit, targets)
    except GridError as error:
        raise UsageError(str(error)) from None
    refs = remote_refs(repo, git_remote)
    require_pushed(repo, commit, refs, git_remote)
    if git(repo, "status", "--porcelain", "--untracked-files=no"):
        print(
            f"mnist-sweep: note: uncommitted changes are not part of the sweep; it runs commit "
            f"{commit[:7]} as {git_remote} has it",
            file=sys.stderr,
        )
    prefix = exp_ref(commit, "")
    existing = {ref.removeprefix(prefix) for ref in refs if ref.startswith(prefix)}
    return Plan(repo, git_url, commit, experiments, existing)


def git(repo: Path, *args: str) -> str:
    run = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=120)
    if run.returncode != 0:
        raise SweepError(f"git {' '.join(args)}: {run.stderr.strip() or 'failed'}")
    return run.stdout.strip()


def repo_root(cwd: Path) -> Path:
    run = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"], cwd=cwd, capture_output=True, text=True, timeout=60
    )
    if run.returncode != 0:
        raise SweepError(f"{cwd} is not in a git repository: run mnist-sweep in your clone")
    root = Path(run.stdout.strip())
    if not (root / ".dvc").is_dir():
        raise SweepError(f"{root} is not a DVC repository (no .dvc folder)")
    return root


def remote_url(repo: Path, name: str) -> str:
    """The git remote's URL as every node can use it: a local path made absolute."""
    run = subprocess.run(
        ["git", "remote", "get-url", name], cwd=repo, capture_output=True, text=True, timeout=60
    )
    if run.returncode != 0:
        raise SweepError(
            f"no git remote {name!r}: every node clones the sweep's commit from "
            f"it; add one with `git remote add {name} URL` and push"
        )
    url = run.stdout.strip()
    if "://" in url or (":" in url.split("/")[0] and not url.startswith("/")):
        return url  # a URL or scp-like user@host:path
    return str((repo / url).resolve())


def remote_refs(repo: Path, git_remote: str) -> dict[str, str]:
    """{ref: commit} of the remote's branches, tags and experiments, in one call."""
    run = subprocess.run(
        ["git", "ls-remote", git_remote], cwd=repo, capture_output=True, text=True, timeout=120
    )
    if run.returncode != 0:
        reason = (run.stderr.strip().splitlines() or ["failed"])[-1]
        raise SweepError(f"cannot reach git remote {git_remote!r}: {reason}")
    refs = {}
    for line in run.stdout.splitlines():
        sha, _, ref = line.partition("\t")
        refs[ref] = sha
    return refs


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


def git_ok(repo: Path, *args: str) -> bool:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, timeout=60).returncode == 0


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


def make_job(
    plan: Plan,
    experiment: Experiment,
    args: argparse.Namespace,
    targets: tuple[str, ...],
    remotes: dict[str, dict[str, Any]],
    default_remote: str | None,
) -> Job:
    return Job(
        git_url=plan.git_url,
        commit=plan.commit,
        name=experiment.name,
        overrides=experiment.overrides,
        targets=targets,
        pull=tuple(args.pull) if args.pull is not None else DEFAULT_PULL,
        cpus=args.cpus,
        remotes=remotes,
        default_remote=default_remote,
        workdir=args.workdir,
        git_remote=args.git_remote,
    )


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


def run_jobs(ray: Any | None, jobs: list[Job], args: argparse.Namespace) -> Iterator[Outcome]:
    if ray is None:
        yield from run_in_process(jobs)
        return
    connect(ray, args.address)
    try:
        require_room(ray, args.cpus)
        yield from run_on_ray(ray, jobs, args.cpus, args.retries)
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
        # sends it only when RAY_AUTH_MODE=token says so.
        raise SweepError(
            f"--address {address}: {first_line(error)}; if the cluster uses Ray's token "
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


class RayMessages(io.TextIOBase):
    """Ray's driver prints the cluster's error messages (a node died, a task will be retried)
    on sys.stdout, each followed by the last lines of the raylet's log. While the sweep runs,
    sys.stdout is this: the first line of each message goes to stderr, cut short; the log lines
    are dropped (they are in Ray's logs on the node)."""

    def __init__(self, sink: TextIO) -> None:
        super().__init__()
        self.sink = sink
        self.pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in map(strip_colours, lines):
            if line.startswith("("):  # "(raylet) ...": a message; indented lines: its log
                cut = line if len(line) <= RAY_MESSAGE_CHARS else f"{line[:RAY_MESSAGE_CHARS]}..."
                self.sink.write(f"mnist-sweep: ray: {cut}\n")
        return len(text)

    def flush(self) -> None:
        self.sink.flush()


def strip_colours(line: str) -> str:
    return ANSI_CODE.sub("", line)


@contextmanager
def ray_messages_to_stderr() -> Iterator[TextIO]:
    """sys.stdout is RayMessages inside; the real stdout is yielded for the sweep's own lines."""
    stdout = sys.stdout
    sys.stdout = RayMessages(sys.stderr)
    try:
        yield stdout
    finally:
        sys.stdout = stdout


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def progress_line(count: int, total: int, outcome: Outcome, todo: list[Experiment]) -> str:
    label = next(e.label for e in todo if e.name == outcome.name)
    steps = ", ".join(f"{step} {s:.1f} s" for step, s in outcome.seconds.items())
    where = f" on {outcome.node}" if outcome.node else ""
    took = f" ({steps})" if steps else ""
    head = f"[{count}/{total}] {outcome.name} {label}"
    return f"{head}: {outcome.status}{where}{took}: {outcome.message}"


def columns(plan: Plan, options: list[str], outcomes: list[Outcome]) -> list[str]:
    """What the table shows: the swept params and the metrics (not every param and code
    dependency, which would push them off the screen)."""
    metrics = dict(read_metrics(plan.repo / "metrics.json"))
    for outcome in outcomes:
        metrics.update(outcome.metrics)
    keys = [option.partition("=")[0].strip().rpartition(":")[2] for option in options]
    return ["Experiment", "Created", *metrics, *keys]


def pull_and_show(plan: Plan, git_remote: str, names: list[str], keep: list[str]) -> bool:
    """The experiments' git refs into this clone: all that `dvc exp show`, `dvc metrics diff`
    and `dvc plots diff` read (metrics and plots are in git). The models stay on the DVC
    remote until `dvc exp apply NAME` and `dvc pull`. False if the pull failed (the
    experiments are on the remote all the same)."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    pull = dvc("exp", "pull", "--no-cache", git_remote, *names)
    run = subprocess.run(pull, cwd=plan.repo, capture_output=True, text=True, env=env, timeout=600)
    if run.returncode != 0:
        reason = (run.stderr.strip().splitlines() or ["failed"])[-1]
        print(
            f"mnist-sweep: error: dvc exp pull {git_remote} failed: {reason}; the experiments "
            f"are on {git_remote}: run `dvc exp pull {git_remote}` again",
            file=sys.stderr,
        )
        return False
    others = f"^(?!({'|'.join(re.escape(name) for name in keep)})$)"
    show = dvc(
        "exp", "show", "--no-pager", "--rev", plan.commit, "--hide-workspace", "--drop", others
    )
    # DVC's table cuts columns to the terminal's width; a log or a pipe gets all of them.
    width = str(shutil.get_terminal_size().columns if sys.stdout.isatty() else WIDE_TABLE)
    subprocess.run(show, cwd=plan.repo, env={**env, "COLUMNS": width}, timeout=600)
    return True


def summary(skipped: int, outcomes: list[Outcome], wall_s: float) -> str:
    done = sum(o.status == "done" for o in outcomes)
    failed = sum(o.status == "failed" for o in outcomes)
    skipped += sum(o.status == "exists" for o in outcomes)
    return (
        f"mnist-sweep: {done} done, {failed} failed, {skipped} skipped (already on the git "
        f"remote) in {wall_s:.0f} s"
    )


if __name__ == "__main__":
    sys.exit(main())
