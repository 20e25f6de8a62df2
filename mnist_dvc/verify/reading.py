"""Reading both sides: HEAD's results from git alone (no DVC cache or remote), the work tree's
from its files, each parsed into Results; every refusal is a VerifyError of one line that names
the file at fault (HEAD:path for a committed one).

A work tree is refused, too, when its outputs are not what its dvc.lock records, or when that
lock comes from `dvc repro` of only some stages: its results would not belong together.

Every file is read only if it is a regular file of at most MAX_RECORD_BYTES (a committed one by
the size git records, before it is read), and model.h5 is hashed only if it is a regular file
(mnist_dvc/files.py): a symlink to /dev/zero is refused, not hashed forever.
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mnist_dvc import commands, dvc_lock
from mnist_dvc.digests import file_digest
from mnist_dvc.errors import ToolError, describe
from mnist_dvc.files import MAX_RECORD_BYTES, read_limited, too_large
from mnist_dvc.paths import METRICS, MODEL_WEIGHTS, PARAMS, PREDICTIONS, PROVENANCE

WEIGHTS = str(MODEL_WEIGHTS)  # as dvc.lock spells it
LOCK = Path("dvc.lock")
RESULTS = (LOCK, METRICS, PREDICTIONS)  # what a side must have to be compared
HEADER = ["actual", "predicted"]
DIGITS = frozenset("0123456789")
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
    if _git(repo, "rev-parse", "--is-inside-work-tree").returncode != 0:
        raise VerifyError(f"{repo.resolve()} is not in a git repository")
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


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def _finite(text: str) -> float:
    if not math.isfinite(number := float(text)):
        raise ValueError(f"{text} is too large a number")
    return number


def _json(data: bytes) -> Any:
    """Strict JSON: no NaN, no infinities (so that --json can print what it read)."""
    return json.loads(data, parse_constant=_reject_constant, parse_float=_finite)


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


def _parse_params(data: bytes | None) -> dict[str, Any]:
    params = yaml.safe_load(data) if data else None
    if params is not None and not isinstance(params, dict):
        raise ValueError("not a mapping of params")
    return flatten(params or {})


def _parse_metrics(data: bytes) -> float:
    metrics = _json(data)
    accuracy = metrics.get("accuracy") if isinstance(metrics, dict) else None
    if isinstance(accuracy, bool) or not isinstance(accuracy, int | float):
        raise ValueError("no accuracy (a number)")
    if not 0 <= accuracy <= 1:
        raise ValueError(f"accuracy {accuracy} is not between 0 and 1")
    return float(accuracy)


def _parse_predictions(data: bytes) -> list[tuple[int, int]]:
    rows = csv.reader(data.decode().splitlines())
    if next(rows, None) != HEADER:
        raise ValueError(f"the first line must be {','.join(HEADER)}")
    predictions = []
    for line, row in enumerate(rows, start=2):
        if not row:
            continue  # a blank line
        if len(row) != 2 or not all(len(cell) == 1 and cell in DIGITS for cell in row):
            raise ValueError(f"line {line}: expected two digits 0-9, got {','.join(row)!r}")
        predictions.append((int(row[0]), int(row[1])))
    if not predictions:
        raise ValueError("no predictions")
    return predictions


def _parse_provenance(data: bytes | None) -> dict[str, Any] | None:
    if data is None:
        return None
    provenance = _json(data)
    if not isinstance(provenance, dict):
        raise ValueError("not a JSON object")
    return provenance


def _reason(error: Exception) -> str:
    """What is wrong with a file, in one line: a syntax error as "not valid ...", with its line."""
    if isinstance(error, json.JSONDecodeError):
        return f"not valid JSON: {error.msg} (line {error.lineno})"
    return dvc_lock.yaml_reason(error)


def _parse(files: dict[Path, bytes | None], where: str, commit: str = "") -> Results:
    """Results from the files of one side; an error names the file at fault."""
    prefix = "HEAD:" if commit else ""

    def parsed(path: Path, parse: Any) -> Any:
        try:
            return parse(files[path])
        except (ValueError, TypeError, AttributeError, yaml.YAMLError, csv.Error) as error:
            raise VerifyError(f"{prefix}{path}: {_reason(error)}") from error

    try:  # every entry of every stage, or an error: the strict reading
        stages = dvc_lock.parse(files[LOCK] or b"", f"{prefix}{LOCK}", strict=True)
    except dvc_lock.LockError as error:
        raise VerifyError(str(error)) from error
    return Results(
        where=where,
        commit=commit,
        outs={name: stage.outs for name, stage in stages.items()},
        deps={name: stage.deps for name, stage in stages.items()},
        params=parsed(PARAMS, _parse_params),
        accuracy=parsed(METRICS, _parse_metrics),
        predictions=parsed(PREDICTIONS, _parse_predictions),
        provenance=parsed(PROVENANCE, _parse_provenance),
    )


# ---------------------------------------------------------------------------------- both sides


def load_committed(repo: Path) -> Results:
    """HEAD's results, from git; refused when HEAD has none."""
    commit = check_project(repo)
    files = read_committed(repo, (*RESULTS, PARAMS, PROVENANCE)) if commit else {}
    if not commit or any(files[path] is None for path in RESULTS):
        raise VerifyError(NO_COMMITTED)
    return _parse(files, "HEAD", commit)


def _check_up_to_date(repo: Path, work: Results) -> None:
    """Refuse a work tree whose model.h5, metrics or predictions are not what its dvc.lock
    records, or whose lock has a stage that ran on another version of an earlier stage's
    output (`dvc repro` of only some stages): its results would not belong together."""
    recorded = {path: md5 for outs in work.outs.values() for path, md5 in outs.items()}
    if WEIGHTS not in recorded:
        raise VerifyError(f"dvc.lock records no {MODEL_WEIGHTS}: {RUN_REPRO}")
    if not (repo / MODEL_WEIGHTS).exists():
        raise VerifyError(f"the work tree has no {MODEL_WEIGHTS}: {RUN_REPRO}")
    for path in (MODEL_WEIGHTS, METRICS, PREDICTIONS):
        try:
            unchanged = str(path) not in recorded or file_digest(repo / path) == recorded[str(path)]
        except OSError as error:
            raise VerifyError(f"{path}: {describe(error)}") from error
        if not unchanged:
            raise VerifyError(
                f"the work tree's {path} is not what dvc.lock records: run `dvc repro`"
            )
    for stage, deps in work.deps.items():
        for path, md5 in deps.items():
            if path in recorded and md5 != recorded[path]:
                raise VerifyError(
                    f"dvc.lock's stage {stage} ran on another {path}: run `dvc repro`"
                )


def load_work(repo: Path) -> Results:
    """The work tree's results, from its files; refused when it has none, or when they are not
    what its dvc.lock records."""
    files = read_work(repo, (*RESULTS, PARAMS, PROVENANCE))
    missing = [str(path) for path in RESULTS if files[path] is None]
    if len(missing) == len(RESULTS):
        raise VerifyError(NO_WORK)
    if missing:
        raise VerifyError(f"the work tree has no {' or '.join(missing)}: {RUN_REPRO}")
    work = _parse(files, "the work tree")
    _check_up_to_date(repo, work)
    return work
