"""The mnist-release console script (`make release`, `make promote` and `make publish` call it).

mnist-release register v1.2.0 [--stage prod]   # tag: mnist-cnn@v1.2.0
mnist-release promote v1.2.0 prod              # tag: mnist-cnn#prod#N
mnist-release publish /srv/www/mnist-dvc       # local remote -> web folder
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from mnist_dvc import registry
from mnist_dvc.redact import redact
from mnist_dvc.registry.checks import STAGES, Refused
from mnist_dvc.registry.publish import publish
from mnist_dvc.registry.tags import promote, register


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(prog="release", description=registry.__doc__.splitlines()[0])
    commands = parse.add_subparsers(dest="command", required=True)
    reg = commands.add_parser("register", help="commit and tag HEAD's model as a version")
    reg.add_argument("version", help="v1.2.0")
    reg.add_argument("--stage", help=f"also assign a stage: {', '.join(STAGES)}")
    pro = commands.add_parser("promote", help="assign a stage to a registered version")
    pro.add_argument("version")
    pro.add_argument("stage", help=", ".join(STAGES))
    pub = commands.add_parser("publish", help="copy a local-folder remote to a web folder")
    pub.add_argument("dest", type=Path)
    pub.add_argument("--remote", help="the remote to copy (default: the default remote)")
    return parse


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "register":
            tags = register(args.version, args.stage)
        elif args.command == "promote":
            tags = promote(args.version, args.stage)
        else:
            publish(args.dest, args.remote)
            return 0
    except Refused as reason:
        # publish copies whole files only: what it copied before a failure is good to serve.
        untouched = "" if args.command == "publish" else "; no tag was made"
        print(f"release: error: {redact(str(reason))}{untouched}", file=sys.stderr)
        return 1
    names = " ".join(shlex.quote(tag) for tag in tags)
    if args.command == "register":
        print(f"release: the release commit and tags are local until pushed: "
              f"`git push origin HEAD {names}`")  # fmt: skip
    else:
        print(f"release: the tag is local until pushed: `git push origin {names}`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
