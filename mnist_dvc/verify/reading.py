"""Reading both sides: HEAD's results from git alone (no DVC cache or remote), the work tree's
from its files, each parsed into Results; every refusal is a VerifyError of one line that names
the file at fault (HEAD:path for a committed one).

A work tree is refused, too, when `dvc status` would not call it up to date: its outputs are
not what its dvc.lock records, its params.yaml values or its stages' code changed since the
stages ran, or that lock comes from `dvc repro` of only some stages: its results would not
belong to its params and code, nor together. This is checked before any result is parsed.

Every file is read only if it is a regular file of at most MAX_RECORD_BYTES (a committed one by
the size git records, before it is read), and model.h5 is hashed only if it is a regular file
(mnist_dvc/files.py): a symlink to /dev/zero is refused, not hashed forever.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnist_dvc import commands, documents, dvc_lock, records
from mnist_dvc.digests import file_digest
from mnist_dvc.documents import quote, shorten
from mnist_dvc.errors import ToolError, describe
from mnist_dvc.files import MAX_RECORD_BYTES, read_limited, too_large
from mnist_dvc.git_commands import repo_root
from mnist_dvc.paths import METRICS, MODEL_WEIGHTS, PARAMS, PREDICTIONS, PROVENANCE

WEIGHTS = str(MODEL_WEIGHTS)  # as dvc.lock spells it
LOCK = Path("dvc.lock")
RESULTS = (LOCK, METRICS, PREDICTIONS)  # what a side must have to be compared
RUN_REPRO = "run `dvc repro` (or `make`)"
NO_COMMITTED = (
    "HEAD has no committed results: run `dvc repro` and commit dvc.lock, metrics.json and reports/"
)
NO_WORK = f"no results in the work tree: {RUN_REPRO}"
GIT_TIMEOUT_S = 120.0  # one local git command: a repository on a stalled disk fails, not hangs
MAX_SETTINGS = 10_000  # dotted keys of params.yaml: YAML aliases could multiply them without end


class VerifyError(ToolError):
    """The comparison cannot be made; the message is one line that says why."""

    exit_status = 2  # 1 is a verdict: different


@dataclass(frozen=True)
class Results:
    """One side's results, as read from its files."""

    where: str  # "HEAD" or "the work tree"
    commit: str  # HEAD's commit, or "" for the work tree
    outs: dict[str, dict[str, str]]  # stage -> output path -> md5, from dvc.lock
    deps: dict[str, dict[str, str]]  # stage -> dependency path -> md5, from dvc.lock
    params: dict[str, Any]  # params.yaml as dotted keys
    accuracy: float
    predictions: list[tuple[int, int]]  # (actual, predicted) per test image
    provenance: dict[str, Any] | None

    @property
    def model_md5(self) -> str | None:
        return next((outs[WEIGHTS] for outs in self.outs.values() if WEIGHTS in outs), None)


# ------------------------------------------------------------------------------------ from git


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """`git -C repo ARGS`, its output as bytes: a committed file is compared as it is, which
    commands.run (text, and the command line in its messages) would not leave it."""
    try:
        git = ["git", "-C", str(repo), *args]
        return commands.completed(git, timeout=GIT_TIMEOUT_S, text=False)
    except subprocess.TimeoutExpired:
        raise VerifyError(f"git {args[0]}: timed out after {GIT_TIMEOUT_S:g} s") from None
    except OSError as error:
        raise VerifyError(f"cannot run git: {describe(error)}") from error


def _git_failure(run: subprocess.CompletedProcess[bytes]) -> str:
    return commands.last_line(run.stderr, f"git exited with status {run.returncode}")


def check_project(repo: Path) -> str:
    """Refuse a folder that is not a DVC project in a git repository; HEAD's commit, or ''."""
    if not repo.is_dir():
        raise VerifyError(f"no such folder: {repo}")
    outside = f"{repo.resolve()} is not in a git repository"
    repo_root(repo, error=VerifyError, outside=outside, timeout=GIT_TIMEOUT_S)
    if not (repo / "dvc.yaml").is_file():
        raise VerifyError(f"no dvc.yaml in {repo.resolve()}: not the pipeline's folder (--repo)")
    head = _git(repo, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    return head.stdout.decode().strip() if head.returncode == 0 else ""


def read_committed(repo: Path, paths: tuple[Path, ...]) -> dict[Path, bytes | None]:
    """The files committed at HEAD (None for those HEAD does not have), from git; one larger
    than MAX_RECORD_BYTES is refused by the size git records, unread."""
    listed = _git(repo, "ls-tree", "--long", "HEAD", "--", *map(str, paths))
    if listed.returncode != 0:
        raise VerifyError(f"git ls-tree HEAD: {_git_failure(listed)}")
    sizes = {}  # "<mode> blob <object> <size>\t<path>" per file
    for line in listed.stdout.decode().splitlines():
        fields, _, name = line.partition("\t")
        sizes[name] = fields.split()[-1]
    files: dict[Path, bytes | None] = {}
    for path in paths:
        if str(path) not in sizes:
            files[path] = None
            continue
        size = int(sizes[str(path)]) if sizes[str(path)].isdigit() else 0
        if size > MAX_RECORD_BYTES:
            raise VerifyError(f"HEAD:{path}: {too_large(size, MAX_RECORD_BYTES)}")
        shown = _git(repo, "show", "--no-textconv", f"HEAD:./{path}")
        if shown.returncode != 0:
            raise VerifyError(f"git show HEAD:{path}: {_git_failure(shown)}")
        files[path] = shown.stdout
    return files


# ------------------------------------------------------------------------------ from the work tree


def read_work(repo: Path, paths: tuple[Path, ...]) -> dict[Path, bytes | None]:
    """The files in the work tree (None for those it does not have)."""
    files: dict[Path, bytes | None] = {}
    for path in paths:
        try:
            files[path] = read_limited(repo / path, MAX_RECORD_BYTES)
        except FileNotFoundError:
            files[path] = None
        except OSError as error:
            raise VerifyError(f"{path}: {describe(error)}") from error
    return files


# -------------------------------------------------------------------------------- parsing them


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """A nested mapping as dotted keys: {"train": {"seed": 42}} -> {"train.seed": 42}; a
    ValueError past MAX_SETTINGS keys (YAML's aliases can nest a mapping in itself many times
    over: a small file whose keys would never end)."""
    flat: dict[str, Any] = {}
    _flatten_into(flat, tree, prefix)
    return flat


def _flatten_into(flat: dict[str, Any], tree: Any, prefix: str) -> None:
    if isinstance(tree, dict) and tree:
        for key, sub in tree.items():
            _flatten_into(flat, sub, f"{prefix}{key}.")
    elif prefix:
        if len(flat) >= MAX_SETTINGS:
            raise ValueError(f"more than {MAX_SETTINGS:,} settings")
        flat[prefix[:-1]] = tree


def _params_tree(data: bytes | None, version: str = "1.1") -> dict[str, Any]:
    """params.yaml as a nested mapping (bounded: mnist_dvc/documents.py), read as the stages
    read it (YAML 1.1), or as DVC does (1.2)."""
    params = documents.load_yaml(data, version) if data else None
    if params is not None and not isinstance(params, dict):
        raise ValueError("not a mapping of params")
    return params or {}


def _parse_params(data: bytes | None) -> dict[str, Any]:
    return flatten(_params_tree(data))


def _parse_provenance(data: bytes | None) -> dict[str, Any] | None:
    return None if data is None else records.parse_provenance(data)


def _parse(files: dict[Path, bytes | None], where: str, commit: str = "") -> Results:
    """Results from the files of one side; an error names the file at fault."""
    prefix = "HEAD:" if commit else ""
    stages = _stages(files, prefix)

    def parsed(path: Path, parse: Any) -> Any:
        try:
            return parse(files[path])
        except ValueError as error:  # documents.DocumentError, or what flatten refuses
            raise VerifyError(f"{prefix}{path}: {error}") from error

    return Results(
        where=where,
        commit=commit,
        outs={name: stage.outs for name, stage in stages.items()},
        deps={name: stage.deps for name, stage in stages.items()},
        params=parsed(PARAMS, _parse_params),
        accuracy=parsed(METRICS, records.parse_metrics).accuracy,
        predictions=parsed(PREDICTIONS, documents.load_digit_pairs),
        provenance=parsed(PROVENANCE, _parse_provenance),
    )


def _stages(files: dict[Path, bytes | None], prefix: str) -> dict[str, dvc_lock.Stage]:
    try:  # every entry of every stage, or an error: the strict reading
        return dvc_lock.parse(files[LOCK] or b"", f"{prefix}{LOCK}", strict=True)
    except dvc_lock.LockError as error:
        raise VerifyError(str(error)) from error


# ---------------------------------------------------------------------------------- both sides


def load_committed(repo: Path) -> Results:
    """HEAD's results, from git; refused when HEAD has none."""
    commit = check_project(repo)
    files = read_committed(repo, (*RESULTS, PARAMS, PROVENANCE)) if commit else {}
    if not commit or any(files[path] is None for path in RESULTS):
        raise VerifyError(NO_COMMITTED)
    return _parse(files, "HEAD", commit)


def _check_up_to_date(repo: Path, files: dict[Path, bytes | None]) -> None:
    """Refuse a work tree that `dvc status` would not call up to date, before any of its
    results is parsed: a model.h5, metrics or predictions that are not what its dvc.lock
    records (a 200 MB predictions.csv is refused by its md5, unparsed), params.yaml values or
    code that changed since the stages ran, or a lock with a stage that ran on another version
    of an earlier stage's output (`dvc repro` of only some stages): results that do not belong
    to the work tree's params and code would be judged as if they did."""
    stages = _stages(files, "")
    recorded = dvc_lock.all_outs(stages)
    if WEIGHTS not in recorded:
        raise VerifyError(f"dvc.lock records no {MODEL_WEIGHTS}: {RUN_REPRO}")
    if not (repo / MODEL_WEIGHTS).exists():
        raise VerifyError(f"the work tree has no {MODEL_WEIGHTS}: {RUN_REPRO}")
    for path in (MODEL_WEIGHTS, METRICS, PREDICTIONS):
        if str(path) in recorded and _md5(repo, path) != recorded[str(path)]:
            raise VerifyError(
                f"the work tree's {path} is not what dvc.lock records: run `dvc repro`"
            )
    # Every other output that is a file (model.onnx, the model card, ...), where it is there: an
    # edited one is `modified` for `dvc status` (folders are left out: hashing saved_model's
    # files as DVC does would cost more than the verdict).
    for path, md5 in recorded.items():
        if not md5.endswith(".dir") and _inside(path) and _md5(repo, path) not in (None, md5):
            raise VerifyError(
                f"the work tree's {shorten(path)} is not what dvc.lock records: run `dvc repro`"
            )
    _check_params(repo, stages)
    _check_code(repo, stages, recorded)
    for stage, entry in stages.items():
        for path, md5 in entry.deps.items():
            if path in recorded and md5 != recorded[path]:
                raise VerifyError(
                    f"dvc.lock's stage {shorten(stage)} ran on another {shorten(path)}: run "
                    "`dvc repro`"
                )


def _md5(repo: Path, path: Path | str) -> str | None:
    """The md5 of the work tree's file at `path`, or None where there is no such file."""
    try:
        return file_digest(repo / path)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise VerifyError(f"{shorten(str(path))}: {describe(error)}") from error


def _check_params(repo: Path, stages: dict[str, dvc_lock.Stage]) -> None:
    """Refuse params whose values in the work tree's params files differ from those dvc.lock
    says each stage ran with, compared as DVC compares them (by value: 1 and 1.0 are one)."""
    trees: dict[str, dict[str, Any]] = {}
    for stage, entry in stages.items():
        for name, values in entry.params.items():
            if name not in trees:
                trees[name] = _read_params_file(repo, name)
            try:
                recorded = flatten(values)
            except ValueError as error:  # more keys than any params file has
                raise VerifyError(f"dvc.lock: stage {shorten(stage)}: params: {error}") from None
            for key, then in recorded.items():
                now = _lookup(trees[name], key)
                if now is _ABSENT or now != then:
                    shown = "is not set" if now is _ABSENT else f"is {quote(now)}"
                    raise VerifyError(
                        f"{shorten(name)}'s {shorten(key)} {shown}, but dvc.lock's stage "
                        f"{shorten(stage)} ran with {quote(then)}: run `dvc repro`"
                    )


_ABSENT = object()


def _lookup(tree: Any, dotted: str) -> Any:
    """The value at a dotted key of a nested mapping, or _ABSENT."""
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return _ABSENT
        tree = tree[part]
    return tree


def _inside(path: str) -> bool:
    """Whether a path dvc.lock names is inside the repository (neither absolute nor ..)."""
    return not Path(path).is_absolute() and ".." not in Path(path).parts


def _read_params_file(repo: Path, name: str) -> dict[str, Any]:
    if not _inside(name):
        raise VerifyError(f"dvc.lock: params file {quote(name)} is outside the repository")
    try:
        # As DVC reads it, to compare with what DVC recorded in dvc.lock
        return _params_tree(read_limited(repo / name, MAX_RECORD_BYTES), version="1.2")
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise VerifyError(f"{shorten(name)}: {describe(error)}") from error
    except ValueError as error:
        raise VerifyError(f"{shorten(name)}: {error}") from error


def _check_code(repo: Path, stages: dict[str, dvc_lock.Stage], outs: dict[str, str]) -> None:
    """Refuse a file a stage depends on (its code, params.yaml for check_params) that is not
    what dvc.lock records; folders (data/raw, data/prepared) and the outputs of other stages
    are left to the checks of the outputs."""
    for stage, entry in stages.items():
        for path, md5 in entry.deps.items():
            if md5.endswith(".dir") or path in outs or not _inside(path):
                continue
            now = _md5(repo, path)
            if now is not None and now != md5:
                raise VerifyError(
                    f"{shorten(path)} changed since dvc.lock's stage {shorten(stage)} ran: run "
                    "`dvc repro`"
                )


def load_work(repo: Path) -> Results:
    """The work tree's results, from its files; refused when it has none, or when they are not
    what its dvc.lock records (checked before they are parsed)."""
    files = read_work(repo, (*RESULTS, PARAMS, PROVENANCE))
    missing = [str(path) for path in RESULTS if files[path] is None]
    if len(missing) == len(RESULTS):
        raise VerifyError(NO_WORK)
    if missing:
        raise VerifyError(f"the work tree has no {' or '.join(missing)}: {RUN_REPRO}")
    _check_up_to_date(repo, files)
    return _parse(files, "the work tree")
