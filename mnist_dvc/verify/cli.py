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

Exit status: 0 identical or equivalent, 1 different, 2 an error (one line on stderr: not a git
repository with a dvc.yaml, no committed results, no results in the work tree, a work tree
whose outputs are not what its dvc.lock records, or a file that cannot be read).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mnist_dvc.redact import redact
from mnist_dvc.verify.reading import VerifyError, load_committed, load_work
from mnist_dvc.verify.verdict import Verdict, compare

EXIT = {"identical": 0, "equivalent": 0, "different": 1}
ERROR_EXIT = 2


def render_text(verdict: Verdict) -> str:
    """The verdict line, then one indented line per reason (and what was made differently)."""
    lines = [verdict.summary, *(f"  {reason}" for reason in verdict.reasons)]
    if verdict.verdict == "different" and verdict.made_differently:
        lines.append(f"  made differently: {', '.join(verdict.made_differently)}")
    return "\n".join(lines)


def render_json(verdict: Verdict) -> str:
    """The verdict as one strict JSON object (no NaN)."""
    document = {
        "verdict": verdict.verdict,
        "summary": verdict.summary,
        "reasons": verdict.reasons,
        "made_differently": verdict.made_differently,
        **verdict.details,
    }
    return json.dumps(document, allow_nan=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mnist-verify", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--repo", type=Path, default=Path("."), help="the pipeline's folder")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    try:
        committed = load_committed(args.repo)
        work = load_work(args.repo)
    except VerifyError as error:
        print(f"mnist-verify: error: {redact(str(error))}", file=sys.stderr)
        if args.json:
            print(json.dumps({"verdict": None, "error": redact(str(error))}))
        return ERROR_EXIT
    verdict = compare(work, committed)
    print(render_json(verdict) if args.json else render_text(verdict))
    return EXIT[verdict.verdict]
