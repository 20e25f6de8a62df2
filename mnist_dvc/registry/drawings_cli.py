"""The mnist-drawings console script (`make drawings` calls it): the feedback spool that
`mnist-serve --feedback-dir` fills becomes the next version of the drawings data set.

    mnist-drawings version --spool feedback [--version v1.1.0] [--clear]
                                          # tag: mnist-drawings@v1.1.0
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections import Counter
from pathlib import Path

from mnist_dvc.drawings import ARTIFACT, tag
from mnist_dvc.registry.checks import Refused
from mnist_dvc.registry.datasets import DVC_FILE, clear, make_version
from mnist_dvc.tool import ToolParser, run_tool

NAME = "mnist-drawings"


def parser() -> argparse.ArgumentParser:
    parse = ToolParser(prog=NAME, description=__doc__.splitlines()[0])
    commands = parse.add_subparsers(dest="command", required=True)
    ver = commands.add_parser("version", help=f"the spool's new samples as a new {ARTIFACT}")
    ver.add_argument("--spool", type=Path, required=True, help="mnist-serve's --feedback-dir")
    ver.add_argument("--version", help="v1.1.0 (default: v1.0.0, then the next minor version)")
    ver.add_argument(
        "--clear",
        action="store_true",
        help="then remove from the spool every sample the version holds (what arrived since stays)",
    )
    return parse


def main(argv: list[str] | None = None) -> int:
    """The console script, inside the one error boundary (mnist_dvc/tool.py)."""
    return run_tool(NAME, drawings, argv)


def drawings(argv: list[str] | None) -> int:
    args = parser().parse_args(argv)
    try:
        version, rows = make_version(args.spool, args.version)
    except Refused as reason:
        raise Refused(f"{reason}; no version was made") from None
    new = [row for row in rows if row.version == version]
    cleared = clear(args.spool, rows, version) if args.clear else 0
    splits = Counter(row.split for row in new)
    print(
        f"{NAME}: registered {ARTIFACT} {version} (tag {tag(version)}): {len(rows)} samples, "
        f"{len(new)} new ({splits['train']} train, {splits['holdout']} holdout)"
        + (f"; {cleared} removed from {args.spool}" if args.clear else "")
    )
    print(
        f"{NAME}: local until pushed: `dvc push {DVC_FILE}` and "
        f"`git push origin HEAD {shlex.quote(tag(version))}`"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
