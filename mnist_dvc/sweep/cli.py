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
import sys
import time
from pathlib import Path
from typing import Any

from mnist_dvc.ood import OOD_PREPARED_DIR
from mnist_dvc.paths import DRAWINGS_HOLDOUT_DIR, DRAWINGS_TRAIN_DIR, PREPARED_DIR
from mnist_dvc.redact import redact
from mnist_dvc.sweep.cluster import load_ray, run_jobs
from mnist_dvc.sweep.grid import Experiment
from mnist_dvc.sweep.output import (
    columns,
    plural,
    progress_line,
    pull_and_show,
    ray_messages_to_stderr,
    summary,
)
from mnist_dvc.sweep.plan import Plan, dvc_remotes, make_plan
from mnist_dvc.sweep.task import Job, Outcome
from mnist_dvc.tool import ToolParser, run_tool, whole_number

DEFAULT_CPUS = 2  # what one training uses well: TensorFlow's ops on this model scale to ~2 cores
# What train and evaluate read: no node fetches MNIST or the out-of-distribution set again, or
# reads a drawings version (prepare_drawings' outputs: empty arrays under drawings.version none).
DEFAULT_PULL = tuple(
    str(path) for path in (PREPARED_DIR, OOD_PREPARED_DIR, DRAWINGS_TRAIN_DIR, DRAWINGS_HOLDOUT_DIR)
)
DEFAULT_RETRIES = 3  # per task, when its worker or node dies or git/DVC remote calls fail
MAX_CPUS = 1024  # per experiment: more than any one node has, which Ray would wait for forever
MAX_RETRIES = 100  # a task that failed a hundred times will not succeed on the next try


def main(argv: list[str] | None = None) -> int:
    """The console script, inside the one error boundary (mnist_dvc/tool.py): a refusal exits
    1, a usage error 2, Ctrl-C 130."""
    return run_tool("mnist-sweep", lambda argv: sweep(parse_args(argv)), argv)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = ToolParser(
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
        type=whole_number(1, MAX_CPUS),
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
        type=whole_number(0, MAX_RETRIES),
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
        print(redact(line), file=sys.stderr)
    return 1 if failed or not pulled else 0


def run_all(jobs: list[Job], todo: list[Experiment], args: argparse.Namespace) -> list[Outcome]:
    """Every job, on Ray or in this process, with a progress line as each one finishes."""
    if not jobs:
        return []
    ray = load_ray(args.address, len(jobs))
    outcomes = []
    with ray_messages_to_stderr() as out:
        runs = run_jobs(ray, jobs, args.address, args.cpus, args.retries)
        for count, outcome in enumerate(runs, 1):
            outcomes.append(outcome)
            print(redact(progress_line(count, len(jobs), outcome, todo)), file=out, flush=True)
            if args.verbose and outcome.status == "failed":
                print(redact(outcome.log_tail), file=sys.stderr)
    return outcomes


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


if __name__ == "__main__":
    sys.exit(main())
