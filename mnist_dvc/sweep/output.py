"""What a sweep prints: a progress line as each experiment finishes, Ray's own messages cut to
one line each on stderr, then the experiments' git refs pulled into this clone and shown as
`dvc exp show`'s table (the swept params and the metrics), and the summary line.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from mnist_dvc.commands import run
from mnist_dvc.redact import redact
from mnist_dvc.sweep.grid import Experiment
from mnist_dvc.sweep.guarded import dvc
from mnist_dvc.sweep.plan import Plan, SweepError
from mnist_dvc.sweep.results import read_metrics
from mnist_dvc.sweep.task import Outcome

RAY_MESSAGE_CHARS = 200
WIDE_TABLE = 250  # columns for `dvc exp show` when the output is not a terminal
ANSI_CODE = re.compile(r"\x1b\[[0-9;]*m")  # Ray colours the prefix of its messages


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
                self.sink.write(redact(f"mnist-sweep: ray: {cut}\n"))
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
    try:
        run(
            pull,
            plan.repo,
            error=SweepError,
            name=f"dvc exp pull {git_remote} failed",
            timeout=600,
            env=env,
        )
    except SweepError as error:
        print(
            f"mnist-sweep: error: {redact(str(error))}; the experiments are on {git_remote}: run "
            f"`dvc exp pull {git_remote}` again",
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
