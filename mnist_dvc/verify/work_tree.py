"""The work tree's results, read from its files, and refused unless `dvc status` would call
them up to date: its outputs are what its dvc.lock records, its params.yaml values and its
stages' code are those the stages ran with, and the lock does not come from `dvc repro` of only
some stages; otherwise its results would not belong to its params and code, nor together. This
is checked before any result is parsed. Every file is read only if it is a regular file of at
most MAX_RECORD_BYTES, and model.h5 is hashed only if it is a regular file
(mnist_dvc/files.py): a symlink to /dev/zero is refused, not hashed forever.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mnist_dvc import dvc_lock
from mnist_dvc.digests import file_digest
from mnist_dvc.errors import describe
from mnist_dvc.files import MAX_RECORD_BYTES, read_limited
from mnist_dvc.paths import METRICS, MODEL_WEIGHTS, PREDICTIONS
from mnist_dvc.quoting import quote, shorten
from mnist_dvc.verify.results import (
    READ,
    RESULTS,
    RUN_REPRO,
    WEIGHTS,
    Results,
    VerifyError,
    flatten,
    lock_stages,
    params_tree,
    parse_results,
)

NO_WORK = f"no results in the work tree: {RUN_REPRO}"


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


def _check_up_to_date(repo: Path, files: dict[Path, bytes | None]) -> None:
    """Refuse a work tree that `dvc status` would not call up to date, before any of its
    results is parsed: a model.h5, metrics or predictions that are not what its dvc.lock
    records (a 200 MB predictions.csv is refused by its md5, unparsed), params.yaml values or
    code that changed since the stages ran, or a lock with a stage that ran on another version
    of an earlier stage's output (`dvc repro` of only some stages): results that do not belong
    to the work tree's params and code would be judged as if they did."""
    stages = lock_stages(files, "")
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
        return params_tree(read_limited(repo / name, MAX_RECORD_BYTES), version="1.2")
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
    files = read_work(repo, READ)
    missing = [str(path) for path in RESULTS if files[path] is None]
    if len(missing) == len(RESULTS):
        raise VerifyError(NO_WORK)
    if missing:
        raise VerifyError(f"the work tree has no {' or '.join(missing)}: {RUN_REPRO}")
    _check_up_to_date(repo, files)
    return parse_results(files, "the work tree")
