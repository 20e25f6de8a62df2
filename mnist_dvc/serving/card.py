"""What GET /model says of the served model: the engine and its files with their md5s, whether
they are the ones dvc.lock records (the project is the model folder's parent, as models/ is in
this repository), the test accuracy if and only if dvc.lock's evaluate stage scored exactly
these files, where the model was made (models/provenance.json), and the registry's version and
stage when it came from there. A missing, unreadable or malformed dvc.lock, metrics.json or
provenance.json is said, not fatal: the server may serve a model copied anywhere.

Paths are shown relative to the project (`models/model.onnx`, `dvc.lock`): /model answers
anyone who can reach the server, and says nothing of its machine's folders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mnist_dvc import dvc_lock, provenance, records
from mnist_dvc.digests import file_digest
from mnist_dvc.errors import describe
from mnist_dvc.paths import METRICS, MODEL_JSON, MODEL_ONNX, MODEL_WEIGHTS, PROVENANCE
from mnist_dvc.serving.engines import Engine, served_files

MODEL_NAME = "mnist-cnn"
LOCK = "dvc.lock"


def _shown(path: Path) -> str:
    """A file of the model folder as /model shows it: `models/model.onnx`, whatever the
    folder's place on this machine."""
    return f"{path.parent.resolve().name}/{path.name}"


def model_card(model_dir: Path, engine: Engine, release: dict | None = None) -> dict[str, Any]:
    project = model_dir.resolve().parent
    try:
        stages, lock_note = dvc_lock.read(project / LOCK, shown=LOCK), None
    except dvc_lock.LockError as error:
        stages, lock_note = {}, f"{error}: cannot say which pipeline run made the model"
    recorded = _resolved(project, dvc_lock.all_outs(stages))
    entries = []
    for path in served_files(model_dir, engine):
        md5, locked = file_digest(path), recorded.get(path.resolve())
        entries.append({"path": _shown(path), "md5": md5, "dvc_lock_md5": locked,
                        "matches_dvc_lock": None if locked is None else locked == md5})  # fmt: skip
    matches: bool | None = None
    if all(entry["dvc_lock_md5"] for entry in entries):
        matches = all(entry["matches_dvc_lock"] for entry in entries)
        lock_note = (
            "the served files are the ones dvc.lock records"
            if matches
            else "the served files differ from dvc.lock's: not the model the pipeline made "
            "(run `dvc pull` or `dvc repro`)"
        )
    elif lock_note is None:
        lock_note = "dvc.lock records no md5 for these files"
    weights = model_dir / MODEL_WEIGHTS.name
    weights_md5 = file_digest(weights) if weights.is_file() else None
    return {
        "name": MODEL_NAME,
        "engine": engine,
        "files": entries,
        "dvc_lock": {"path": LOCK, "matches": matches, "note": lock_note},
        "metrics": _metrics(project, model_dir, stages, engine),
        "provenance": _provenance(model_dir / PROVENANCE.name, weights_md5),
        "release": release or {"version": None, "stage": None, "note": "not from the registry"},
    }


def stale_onnx(model_dir: Path) -> str | None:
    """Why models/model.onnx is not an export of the model.json + model.h5 beside it, by
    dvc.lock's export stage; None if it is, or if nothing says otherwise."""
    project = model_dir.resolve().parent
    try:
        export = dvc_lock.read(project / LOCK).get("export")
    except dvc_lock.LockError:
        return None
    if export is None:
        return None
    read = _resolved(project, export.deps)
    for name in (MODEL_JSON.name, MODEL_WEIGHTS.name):
        path = model_dir / name
        if path.is_file() and read.get(path.resolve()) not in (None, file_digest(path)):
            return (
                f"{model_dir / MODEL_ONNX.name}: exported from another {name} (dvc.lock's "
                "export stage): run `dvc repro export`, or serve model.json + model.h5 with "
                "--engine keras"
            )
    return None


def _metrics(project: Path, model_dir: Path, stages: dict, engine: Engine) -> dict[str, Any]:
    path = project / METRICS.name
    empty = {"path": METRICS.name, "accuracy": None, "loss": None}
    evaluate = stages.get("evaluate")
    if evaluate is None:
        return {**empty, "note": "dvc.lock has no evaluate stage: the model has not been scored"}
    scored = _resolved(project, evaluate.deps)
    model = [model_dir / MODEL_JSON.name, model_dir / MODEL_WEIGHTS.name]
    if engine == "onnx":  # the ONNX file computes what the scored Keras model does, if current
        exported = stages.get("export")
        model += [model_dir / MODEL_ONNX.name] if exported else []
        scored.update(_resolved(project, exported.outs) if exported else {})
    written = _resolved(project, evaluate.outs).get(path.resolve())
    try:
        unscored = [p for p in model if scored.get(p.resolve()) != file_digest(p)]
        if unscored or written != file_digest(path):
            return {**empty, "note": "the served model has not been evaluated: dvc.lock's "
                    "evaluate stage scored other files (run `dvc repro evaluate`)"}  # fmt: skip
        metrics = records.read_record(path, records.parse_metrics)
    except records.RecordError as error:  # not the evaluate stage's metrics.json
        return {**empty, "note": str(error).replace(str(path), METRICS.name)}
    except OSError as error:
        return {**empty, "note": f"{METRICS.name}: {describe(error)}"}
    return {"path": METRICS.name, "accuracy": metrics.accuracy, "loss": metrics.loss,
            "note": "test-set metrics of the served model"}  # fmt: skip


def _provenance(path: Path, weights_md5: str | None) -> dict[str, Any]:
    """Where the served model.h5 was made, from the train stage's record beside it, if that
    record is of these very weights."""
    shown = _shown(path)
    try:
        made = records.read_provenance(path)
    except records.RecordError as error:
        return {"path": shown, "made": None, "note": str(error).replace(str(path), shown)}
    if made is None:
        return {"path": shown, "made": None, "note": "no provenance recorded"}
    if made.get("model_h5_md5") != weights_md5:
        return {"path": shown, "made": None, "note": "recorded for other weights"}
    return {"path": shown, "made": made, "note": provenance.describe(made)}


def _resolved(project: Path, md5s: dict[str, str]) -> dict[Path, str]:
    return {(project / path).resolve(): md5 for path, md5 in md5s.items()}
