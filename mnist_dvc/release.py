"""Model versions and stages as GTO git tags, made only for a model anyone can download.

    mnist-release register v1.2.0 [--stage prod]   # tag: mnist-cnn@v1.2.0
    mnist-release promote v1.2.0 prod              # tag: mnist-cnn#prod#N
    mnist-release publish /srv/www/mnist-dvc       # local remote -> web folder

(`make release VERSION=... [STAGE=...]`, `make promote` and `make publish` call these, handing
the values over as environment variables: no shell and no make expansion ever sees them.)

`register` commits release.yaml (the version, for the model card) on HEAD and tags that commit.
It refuses, in one line and before any commit or tag exists, a commit that does not describe the
model: a dirty git tree, a pipeline that `dvc status` says is out of date, or a model file that
is not in the default DVC remote (consumers of a tag would get "missing cache files"). The
remote is checked file by file (`dvc data status --not-in-remote --granular`): `dvc status -c`
trusts a directory's `.dir` listing and misses a file missing inside a directory output.

The artifact and its path are declared in dvc.yaml (`artifacts: mnist-cnn`); see
docs/releases.md for the consumer side: `dvc artifacts get`, `dvc.api.open`.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import yaml

from mnist_dvc import dvc_lock
from mnist_dvc.paths import RELEASE
from mnist_dvc.released import ARTIFACT, Release, write_release

STAGES = ("dev", "staging", "prod")
MAX_VERSION = 64  # characters: v1.2.0-rc.1+build.5 and then some; a git tag name stays short


class Refused(Exception):
    """Why nothing was tagged, in one line that says what to do."""


def command(root: Path, argv: list[str], name: str) -> str:
    """Run a command in `root`, its output; a failure is Refused with `name` and its last line."""
    run = subprocess.run(argv, cwd=root, capture_output=True, text=True)
    if run.returncode != 0:
        last = (run.stderr.strip().splitlines() or [f"exit status {run.returncode}"])[-1]
        raise Refused(f"{name}: {last}")
    return run.stdout


def git(root: Path, *args: str) -> str:
    return command(root, ["git", *args], f"git {' '.join(args)}")


def repo_root() -> Path:
    run = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=False
    )
    if run.returncode != 0:
        raise Refused("not inside a git repository: run this in a clone of the project")
    return Path(run.stdout.strip())


def check_version(version: str) -> None:
    # GTO's own rule ("v" and a SemVer), checked before the slower checks run.
    from gto.versions import SemVer

    if len(version) > MAX_VERSION:
        raise Refused(f"a version has at most {MAX_VERSION} characters, got {len(version)}")
    if not SemVer.is_valid(version):
        raise Refused(f"a version looks like v1.2.0 (SemVer with a leading v), got {version!r}")


def check_stage(stage: str) -> None:
    if stage not in STAGES:
        shown = stage if len(stage) <= MAX_VERSION else f"{stage[:MAX_VERSION]}..."
        raise Refused(f"a stage is one of {', '.join(STAGES)}, got {shown!r}")


def check_git_clean(root: Path) -> None:
    # Untracked files count too: a new module that was never committed is not in the version.
    changed = [line[3:] for line in git(root, "status", "--porcelain").splitlines()]
    if changed:
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        raise Refused(
            f"the git work tree has uncommitted changes ({', '.join(changed[:3])}{more}): "
            "commit or stash them, then release"
        )


def artifact_path(root: Path) -> str:
    """The artifact's path from dvc.yaml, as `dvc artifacts get` will read it at the tag."""
    try:
        declared = yaml.safe_load((root / "dvc.yaml").read_text()).get("artifacts") or {}
        return str(declared[ARTIFACT]["path"]).rstrip("/")
    except (OSError, AttributeError, KeyError, TypeError):
        raise Refused(
            f"dvc.yaml declares no artifact {ARTIFACT} with a path: add it under `artifacts:`"
        ) from None


def model_files(root: Path, path: str) -> dict[str, str]:
    """The model's outputs with the md5 that dvc.lock records: what the tag will stand for."""
    try:
        found = dvc_lock.outs_under(dvc_lock.read(root / "dvc.lock"), path)
    except dvc_lock.LockError:
        raise Refused("no dvc.lock: run `dvc repro` and commit dvc.lock, then release") from None
    if not found:
        raise Refused(f"dvc.lock has no output under {path}/: run `dvc repro`, commit, release")
    return found


def check_pipeline(repo) -> None:
    status = repo.status()
    if status:
        raise Refused(
            f"the pipeline is not up to date (dvc status: {', '.join(sorted(status))} changed): "
            "run `dvc repro` (or `dvc pull` for outputs not fetched) and commit dvc.lock"
        )


def default_remote(repo) -> tuple[str, str]:
    name = repo.config["core"].get("remote")
    if not name:
        raise Refused("no default DVC remote: `dvc remote add -d NAME URL`, commit, `dvc push`")
    return name, str(repo.config["remote"][name]["url"])


def check_in_remote(repo, path: str) -> None:
    """Every file of the model is in the default remote, as a consumer of the tag needs it.
    DVC reports an unreachable HTTP remote as files missing, so the message says both."""
    from mnist_dvc.errors import describe

    name, url = default_remote(repo)
    try:
        status = repo.data_status(
            targets=[path], granular=True, not_in_remote=True, remote_refresh=True
        )
    except Exception as error:  # DVC raises many kinds for a remote it cannot reach
        reason = describe(error)
        raise Refused(f"cannot check the default remote {name!r} ({url}): {reason}") from None
    missing = sorted(entry.replace(os.sep, "/") for entry in status["not_in_remote"])
    if missing:
        more = f" and {len(missing) - 2} more" if len(missing) > 2 else ""
        raise Refused(
            f"{', '.join(missing[:2])}{more} not in the default remote {name!r} ({url}), or it "
            "cannot be reached: run `dvc push`, then release"
        )


def check_release(root: Path) -> dict[str, str]:
    """All the reasons not to release HEAD, cheapest first; the model's files when none."""
    from dvc.repo import Repo

    check_git_clean(root)
    path = artifact_path(root)
    files = model_files(root, path)
    with Repo(os.fspath(root)) as repo:
        check_pipeline(repo)
        check_in_remote(repo, path)
    return files


def gto_call(function, **kwargs):
    """A gto API call whose refusals (version exists, not registered, ...) become Refused."""
    from gto.exceptions import GTOException

    try:
        return function(**kwargs)
    except GTOException as error:
        raise Refused(str(error).strip().splitlines()[0].rstrip(".")) from None


def version_commit(root: Path, version: str) -> str | None:
    tag = f"refs/tags/{ARTIFACT}@{version}^{{commit}}"
    run = subprocess.run(["git", "rev-parse", "--verify", "--quiet", tag], cwd=root,
                         capture_output=True, text=True)  # fmt: skip
    return run.stdout.strip() or None


def newest_stage_tag(root: Path, stage: str) -> tuple[str, int] | None:
    """The commit and time of the stage's newest tag: what `dvc artifacts get --stage` picks.
    (Read from git: GTO's `which` prefers the highest version, not the newest tag, and DVC's
    API reads each old commit's config, which a `--local` remote added since can break.)"""
    line = git(root, "for-each-ref", "--sort=-taggerdate", "--count=1",
               "--format=%(*objectname) %(taggerdate:unix)",
               f"refs/tags/{ARTIFACT}#{stage}#*").strip()  # fmt: skip
    if not line:
        return None
    commit, when = line.split()
    return commit, int(when)


def assign(root: Path, version: str, stage: str) -> str:
    """Tag `version` with `stage`; the stage's newest tag wins, so this also moves it back."""
    from gto.api import assign as gto_assign

    target = version_commit(root, version)
    if target is None:
        raise Refused(f"{ARTIFACT} {version} is not registered: `gto show` lists the versions")
    newest = newest_stage_tag(root, stage)
    if newest is not None:
        if newest[0] == target:
            raise Refused(f"{ARTIFACT} {version} is already in stage {stage}: nothing to do")
        # DVC orders a stage's tags by their time in whole seconds: two in one second would
        # tie, and the older could win.
        time.sleep(max(0.0, newest[1] + 1 - time.time()))
    # force: GTO refuses a version that held this stage before (a roll-back) without it.
    event = gto_call(
        gto_assign, repo=os.fspath(root), name=ARTIFACT, stage=stage, version=version, force=True
    )
    return event.ref


def commit_release(root: Path, release: Release) -> None:
    """The release commit on top of HEAD: release.yaml names the version and the report stage
    writes it into the model card; the model's files stay as checked. (A version tag names a
    commit, and a commit cannot contain its own tag, so the name goes in first.) Nothing to
    commit when HEAD already is this release's commit (a release cut short, run again)."""
    from mnist_dvc.paths import REPORT, REPORT_CONFUSION

    write_release(release, root / RELEASE)
    repro = [sys.executable, "-m", "dvc", "repro", "report"]
    command(root, repro, "dvc repro report (the model card)")
    git(root, "add", str(RELEASE), "dvc.lock", str(REPORT), str(REPORT_CONFUSION))
    if git(root, "diff", "--cached", "--name-only").strip():
        stage = f" (stage {release.stage})" if release.stage else ""
        git(root, "commit", "-q", "-m", f"Release {ARTIFACT} {release.version}{stage}")
    check_git_clean(root)


def register(version: str, stage: str | None) -> list[str]:
    from gto.api import register as gto_register

    check_version(version)
    if stage is not None:
        check_stage(stage)
    root = repo_root()
    files = check_release(root)
    if version_commit(root, version) is not None:
        raise Refused(f"{ARTIFACT} {version} exists: `gto show` lists the versions")
    here = git(root, "tag", "--points-at", "HEAD", "--list", f"{ARTIFACT}@*").split()
    if here:
        raise Refused(
            f"HEAD is already the release commit of {here[0].replace('@', ' ')}: "
            "`make promote` gives it a stage; a new version needs a new commit"
        )
    start = git(root, "rev-parse", "HEAD").strip()
    tags: list[str] = []
    try:
        commit_release(root, Release(version, stage, files))
        event = gto_call(gto_register, repo=os.fspath(root), name=ARTIFACT, ref="HEAD",
                         version=version)  # fmt: skip
        tags.append(event.ref)
        if stage is not None:
            tags.append(assign(root, version, stage))
    except BaseException:  # all or nothing: the tree was clean, so put it back as it was
        undo(root, start, [f"{ARTIFACT}@{version}", *tags[1:]])  # the version was new
        raise
    commit = git(root, "rev-parse", "--short", "HEAD").strip()
    print(f"release: registered {ARTIFACT} {version} at {commit} (tag {tags[0]}), a release "
          f"commit on {start[:7]} whose model card names it")  # fmt: skip
    for name, md5 in files.items():
        print(f"release:   {name} md5 {md5}")
    if stage is not None:
        print(f"release: {ARTIFACT} {version} is now in stage {stage} (tag {tags[1]})")
    return tags


def undo(root: Path, start: str, tags: list[str]) -> None:
    """Delete the tags a failed release made and reset the branch to `start`, without
    masking the error that made it fail."""
    for tag in tags:
        subprocess.run(["git", "tag", "-d", tag], cwd=root, capture_output=True)
    subprocess.run(["git", "reset", "-q", "--hard", start], cwd=root, capture_output=True)


def promote(version: str, stage: str) -> list[str]:
    check_version(version)
    check_stage(stage)
    root = repo_root()
    tag = assign(root, version, stage)
    print(f"release: {ARTIFACT} {version} is now in stage {stage} (tag {tag})")
    return [tag]


def remote_folder(root: Path, remote: str | None) -> tuple[str, Path]:
    from dvc.repo import Repo

    with Repo(os.fspath(root)) as repo:
        name = remote or default_remote(repo)[0]
        try:
            url = str(repo.config["remote"][name]["url"])
        except KeyError:
            raise Refused(f"no DVC remote {name!r}: `dvc remote list` shows them") from None
    if "://" in url:
        raise Refused(
            f"remote {name!r} is {url}, not a local folder: copy it with its own tools "
            "(for S3, `aws s3 sync`), or serve it as it is"
        )
    return name, Path(url)


def new_files(source: Path, dest: Path) -> Iterator[Path]:
    """Files under `source` that `dest` lacks: the remote is content-addressed (the name is the
    md5), so a file already published never changes and is not copied again."""
    for path in sorted(source.rglob("*")):
        if path.is_file() and not (dest / path.relative_to(source)).exists():
            yield path.relative_to(source)


def copy_whole(source: Path, target: Path) -> None:
    """Written beside its final name, then renamed: a web server never serves half a file, and
    a copy cut short (full disk, Ctrl-C) is redone by the next publish."""
    from mnist_dvc.errors import describe

    partial = target.with_name(f".{target.name}.partial")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(source.read_bytes())
        os.replace(partial, target)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise Refused(f"{target}: {describe(error)}") from None


def publish(dest: Path, remote: str | None) -> int:
    root = repo_root()
    name, source = remote_folder(root, remote)
    if dest.resolve().is_relative_to(source.resolve()):
        raise Refused(
            f"{dest} is inside remote {name!r} ({source}): publish to a folder outside it"
        )
    if not (source / "files").is_dir():
        raise Refused(f"remote {name!r} ({source}) holds nothing yet: run `dvc push` first")
    copied = 0
    for relative in new_files(source, dest):
        copy_whole(source / relative, dest / relative)
        copied += 1
    print(f"release: copied {copied} new files from remote {name!r} ({source}) to {dest}")
    print(
        "release: serve that folder read-only over HTTP(S); consumers then run "
        "`dvc remote add public https://HOST/PATH` (docs/releases.md)"
    )
    return copied


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(prog="release", description=__doc__.splitlines()[0])
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
        print(f"release: error: {reason}{untouched}", file=sys.stderr)
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
