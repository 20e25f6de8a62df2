"""The mnist-release console script (`make release`, `make promote` and `make publish` call it).

mnist-release register v1.2.0 [--stage prod]   # tag: mnist-cnn@v1.2.0
mnist-release promote v1.2.0 prod              # tag: mnist-cnn#prod#N (no regression)
mnist-release publish /srv/www/mnist-dvc       # local remote -> web folder
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from mnist_dvc import registry
from mnist_dvc.registry.checks import STAGES, Refused
from mnist_dvc.registry.publish import publish
from mnist_dvc.registry.tags import promote, register
from mnist_dvc.tool import ToolParser, run_tool

NAME = "mnist-release"


def parser() -> argparse.ArgumentParser:
    parse = ToolParser(prog=NAME, description=registry.__doc__.splitlines()[0])
    commands = parse.add_subparsers(dest="command", required=True)
    reg = commands.add_parser("register", help="commit and tag HEAD's model as a version")
    reg.add_argument("version", help="v1.2.0")
    reg.add_argument("--stage", help=f"also assign a stage: {', '.join(STAGES)}")
    pro = commands.add_parser("promote", help="assign a stage to a registered version")
    pro.add_argument("version")
    pro.add_argument("stage", help=", ".join(STAGES))
    pro.add_argument(
        "--allow-regression",
        action="store_true",
        help="move prod to a model that scores below prod's by more than the seed spread "
        "(a roll-back on purpose)",
    )
    pub = commands.add_parser("publish", help="copy a local-folder remote to a web folder")
    pub.add_argument("dest", type=Path)
    pub.add_argument("--remote", help="the remote to copy (default: the default remote)")
    return parse


def main(argv: list[str] | None = None) -> int:
    """The console script, inside the one error boundary (mnist_dvc/tool.py)."""
    return run_tool(NAME, release, argv)


def release(argv: list[str] | None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "register":
            tags = register(args.version, args.stage)
        elif args.command == "promote":
            tags = promote(args.version, args.stage, args.allow_regression)
        else:
            publish(args.dest, args.remote)
            return 0
    except Refused as reason:
        # publish copies whole files only: what it copied before a failure is good to serve.
        if args.command == "publish":
            raise
        raise Refused(f"{reason}; no tag was made") from None
    names = " ".join(shlex.quote(tag) for tag in tags)
    if args.command == "register":
        print(f"{NAME}: the release commit and tags are local until pushed: "
              f"`git push origin HEAD {names}`")  # fmt: skip
    else:
        print(f"{NAME}: the tag is local until pushed: `git push origin {names}`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
