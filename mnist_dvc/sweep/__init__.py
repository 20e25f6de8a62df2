"""mnist-sweep: a grid of `dvc exp run` experiments across a Ray cluster, shared through the git
remote and the DVC remote (docs/sweeps.md).

The subpackage, in the order a sweep uses it: `cli` (the console script and the sweep from start
to end), `grid` (the `-S` options expanded to named experiments), `plan` (what the repository
and its remotes must be, checked before anything runs), `cluster` (Ray: connecting, checking
room, scheduling and retrying the tasks, or running them in this process without Ray), `task`
(one experiment, as a worker runs it in a clone of its own), `guarded` (how a task runs a
command: through `guard`, the process that ends it when the task's worker dies, with a
deadline), `results` (why a task's command failed, in one line, and the metrics its run wrote)
and `output` (the progress lines, Ray's messages, the table and the summary).

Nothing is imported here: a Ray worker imports `task` (with `guarded` and `results`) and runs
`guard`, and with each this file.
The pipeline never imports this subpackage (tests/test_layout.py).
"""
