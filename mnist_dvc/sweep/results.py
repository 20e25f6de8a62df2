"""What a sweep task's commands left: the one line that says why one failed (a stage's own
line, else DVC's last ERROR line, else the last line), and the metrics an experiment's run
wrote.

Only the standard library and mnist_dvc's small modules at the top: a Ray worker imports it
with mnist_dvc/sweep/task.py.
"""

from __future__ import annotations

import re
from pathlib import Path

from mnist_dvc import documents
from mnist_dvc.commands import last_line
from mnist_dvc.files import read_text_limited

NO_OUTPUT = "no output"  # the reason when a failed command wrote nothing
STAGE_ERROR = re.compile(r"^[A-Za-z_][\w-]*: (error: |interrupted$)")  # mnist_dvc.stage's lines


def fresh_metrics(path: Path, since: float) -> dict[str, float]:
    """The experiment's metrics, if its run wrote them: with targets that stop before the
    evaluate stage, metrics.json is still the commit's."""
    try:
        written = path.stat().st_mtime
    except OSError:
        return {}
    return read_metrics(path) if written >= since else {}


def read_metrics(path: Path) -> dict[str, float]:
    """The top-level numbers of a metrics file (accuracy, loss), or none."""
    try:
        metrics = documents.load_json(read_text_limited(path))
    except (OSError, ValueError):  # ValueError: not JSON (documents.DocumentError), not UTF-8
        return {}
    if not isinstance(metrics, dict):
        return {}
    return {
        k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)
    }


def failure_reason(output: str) -> str:
    """The one line that says why: a stage's own (`train: error: params.yaml: ...`), else
    DVC's last ERROR line, else the last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        if STAGE_ERROR.match(line):
            return line
    return dvc_error(output)


def dvc_error(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("ERROR: "):
            return line.removeprefix("ERROR: ")
    return last_line(output, NO_OUTPUT)
