"""What GET /model says of the served model: the engine and its files with their md5s, whether
they are the ones dvc.lock records (the project is the model folder's parent, as models/ is in
this repository), the test accuracy (and that on real handwriting that is not MNIST's,
mnist_dvc/ood.py) if and only if dvc.lock's evaluate stage scored exactly these files, where
the model was made (models/provenance.json), and the registry's version and stage when it came
from there. A missing, unreadable or malformed dvc.lock, metrics.json or
provenance.json is said, not fatal: the server may serve a model copied anywhere.

Paths are shown relative to the project (`models/model.onnx`, `dvc.lock`): /model answers
anyone who can reach the server, and says nothing of its machine's folders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mnist_dvc import dvc_lock, ood, provenance, records
from mnist_dvc.digests import file_digest
from mnist_dvc.errors import describe
from mnist_dvc.paths import METRICS, MODEL_JSON, MODEL_WEIGHTS, PROVENANCE
from mnist_dvc.serving.engines import ENGINES, served_files

MODEL_NAME = "mnist-cnn"
LOCK = "dvc.lock"


def _shown(path: Path) -> str:
    """A file of the model folder as /model shows it: `models/model.onnx`, whatever the
    folder's place on this machine."""
    return f"{path.parent.resolve().name}/{path.name}"


def describe_served(model_dir: Path, engine: str, release: dict | None = None) -> dict[str, Any]:
    """GET /model's answer for the model in `model_dir` served by the engine named `engine`."""
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


def stale_export(model_dir: Path, engine: str) -> str | None:
    """Why the engine's files are not an export of the model.json + model.h5 beside them, by
    dvc.lock's stage that exported them; None if they are, if nothing says otherwise, or if the
    engine serves that pair itself."""
    stage = ENGINES[engine].exported_by
    if stage is None:
        return None
    project = model_dir.resolve().parent
    try:
        exporter = dvc_lock.read(project / LOCK).get(stage)
    except dvc_lock.LockError:
        return None
    if exporter is None:
        return None
    read = _resolved(project, exporter.deps)
    for name in (MODEL_JSON.name, MODEL_WEIGHTS.name):
        path = model_dir / name
        if path.is_file() and read.get(path.resolve()) not in (None, file_digest(path)):
            return (
                f"{served_files(model_dir, engine)[0]}: exported from another {name} (dvc.lock's "
                f"{stage} stage): run `dvc repro {stage}`, or serve model.json + model.h5 with "
                "--engine keras"
            )
    return None


def _metrics(project: Path, model_dir: Path, stages: dict, engine: str) -> dict[str, Any]:
    path = project / METRICS.name
    empty = {"path": METRICS.name, "accuracy": None, "loss": None, ood.ACCURACY: None,
             ood.LOSS: None}  # fmt: skip
    evaluate = stages.get("evaluate")
    if evaluate is None:
        return {**empty, "note": "dvc.lock has no evaluate stage: the model has not been scored"}
    scored = _resolved(project, evaluate.deps)
    model = [model_dir / MODEL_JSON.name, model_dir / MODEL_WEIGHTS.name]
    exported_by = ENGINES[engine].exported_by
    exporter = stages.get(exported_by) if exported_by else None
    if exporter:  # its exported files compute what the scored Keras model does, if current
        model += served_files(model_dir, engine)
        scored.update(_resolved(project, exporter.outs))
    written = _resolved(project, evaluate.outs).get(path.resolve())
    try:
        unscored = [p for p in model if scored.get(p.resolve()) != file_digest(p)]
        if unscored or written != file_digest(path):
            return {**empty, "note": "the served model has not been evaluated: dvc.lock's "
                    "evaluate stage scored other files (run `dvc repro evaluate`)"}  # fmt: skip
        metrics = records.read_record(path, records.parse_metrics)
        found = records.read_record(path, ood.parse_scores)  # None before it was scored
    except records.RecordError as error:  # not the evaluate stage's metrics.json
        return {**empty, "note": str(error).replace(str(path), METRICS.name)}
    except OSError as error:
        return {**empty, "note": f"{METRICS.name}: {describe(error)}"}
    return {"path": METRICS.name, "accuracy": metrics.accuracy, "loss": metrics.loss,
            ood.ACCURACY: None if found is None else found.accuracy,
            ood.LOSS: None if found is None else found.loss,
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
