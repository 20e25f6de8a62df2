"""One side's results, HEAD's or the work tree's, as mnist-verify compares them: parsed from
the side's files (dvc.lock read strictly, params.yaml as dotted keys, metrics.json,
reports/predictions.csv, models/provenance.json) into Results; an error names the file at
fault (HEAD:path for a committed one). VerifyError is every refusal of mnist-verify: one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnist_dvc import documents, dvc_lock, ood, records
from mnist_dvc.errors import ToolError
from mnist_dvc.paths import METRICS, MODEL_WEIGHTS, PARAMS, PREDICTIONS, PROVENANCE

WEIGHTS = str(MODEL_WEIGHTS)  # as dvc.lock spells it
LOCK = Path("dvc.lock")
RESULTS = (LOCK, METRICS, PREDICTIONS)  # what a side must have to be compared
READ = (*RESULTS, PARAMS, PROVENANCE)  # the files read from each side
RUN_REPRO = "run `dvc repro` (or `make`)"
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
    ood: ood.OodScores | None = None  # on real handwriting that is not MNIST's: information

    @property
    def model_md5(self) -> str | None:
        return next((outs[WEIGHTS] for outs in self.outs.values() if WEIGHTS in outs), None)


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


def params_tree(data: bytes | None, version: str = "1.1") -> dict[str, Any]:
    """params.yaml as a nested mapping (bounded: mnist_dvc/documents.py), read as the stages
    read it (YAML 1.1), or as DVC does (1.2)."""
    params = documents.load_yaml(data, version) if data else None
    if params is not None and not isinstance(params, dict):
        raise ValueError("not a mapping of params")
    return params or {}


def _parse_params(data: bytes | None) -> dict[str, Any]:
    return flatten(params_tree(data))


def _parse_provenance(data: bytes | None) -> dict[str, Any] | None:
    return None if data is None else records.parse_provenance(data)


def parse_results(files: dict[Path, bytes | None], where: str, commit: str = "") -> Results:
    """Results from the files of one side; an error names the file at fault."""
    prefix = "HEAD:" if commit else ""
    stages = lock_stages(files, prefix)

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
        ood=parsed(METRICS, ood.parse_scores),
    )


def lock_stages(files: dict[Path, bytes | None], prefix: str) -> dict[str, dvc_lock.Stage]:
    """dvc.lock's stages from a side's files, named `prefix`dvc.lock in an error."""
    try:  # every entry of every stage, or an error: the strict reading
        return dvc_lock.parse(files[LOCK] or b"", f"{prefix}{LOCK}", strict=True)
    except dvc_lock.LockError as error:
        raise VerifyError(str(error)) from error
