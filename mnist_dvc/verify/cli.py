"""mnist-verify: do the work tree's results reproduce the committed ones?

    mnist-verify [--repo PATH] [--json]

Compares what `dvc repro` left in the work tree (dvc.lock, metrics.json,
reports/predictions.csv, models/provenance.json, params.yaml) with the same files committed at
HEAD, which are read from git alone: no DVC cache or remote is needed. One verdict:

  identical   every output that dvc.lock records, in every stage, has the committed md5;
  equivalent  other bytes, but the same params (train.seed, numerics and train.precision
              aside), the same prepared data, a test accuracy within ACCURACY_TOLERANCE of the
              committed one and the same digit on at least MIN_AGREEMENT of the test images;
              what models/provenance.json and params.yaml record differently (CPU, numerics,
              threads, versions) explains it;
  different   anything else, one line per reason.

The accuracy on real handwriting that is not MNIST's (ood_accuracy in metrics.json) follows,
as information: it is never a reason for "different".

Exit status: 0 identical or equivalent, 1 different, 2 an error (one line on stderr: not a git
repository with a dvc.yaml, no committed results, no results in the work tree, a work tree
whose outputs, params or code are not what its dvc.lock records, a file that cannot be read,
or a usage error), 130 Ctrl-C, 141 its output closed early, 70 a bug.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mnist_dvc.tool import ToolParser, run_tool
from mnist_dvc.verify.committed import load_committed
from mnist_dvc.verify.verdict import Verdict, compare
from mnist_dvc.verify.work_tree import load_work

EXIT = {"identical": 0, "equivalent": 0, "different": 1}


def render_text(verdict: Verdict) -> str:
    """The verdict line, then one indented line per reason (and what was made differently), then
    the information beside the verdict."""
    lines = [verdict.summary, *(f"  {reason}" for reason in verdict.reasons)]
    if verdict.verdict == "different" and verdict.made_differently:
        lines.append(f"  made differently: {', '.join(verdict.made_differently)}")
    lines += [f"  {line}" for line in verdict.information]
    return "\n".join(lines)


def render_json(verdict: Verdict) -> str:
    """The verdict as one strict JSON object (no NaN)."""
    document = {
        "verdict": verdict.verdict,
        "summary": verdict.summary,
        "reasons": verdict.reasons,
        "made_differently": verdict.made_differently,
        "information": verdict.information,
        **verdict.details,
    }
    return json.dumps(document, allow_nan=False)


def main(argv: list[str] | None = None) -> int:
    """The console script: an error (a refusal, a usage error, anything) is one line on stderr
    and, with --json, {"verdict": null, "error": ...} on stdout (mnist_dvc/tool.py)."""
    return run_tool("mnist-verify", verify, argv, json_error=json_error)


def json_error(message: str) -> dict:
    return {"verdict": None, "error": message}


def verify(argv: list[str] | None) -> int:
    parser = ToolParser(
        prog="mnist-verify", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--repo", type=Path, default=Path("."), help="the pipeline's folder")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    committed = load_committed(args.repo)
    work = load_work(args.repo)
    verdict = compare(work, committed)
    print(render_json(verdict) if args.json else render_text(verdict))
    return EXIT[verdict.verdict]
