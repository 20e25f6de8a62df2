"""The direction of the arrows: the pipeline's code (every module a stage runs, which
tests/test_stage_deps.py finds from the imports and checks against dvc.yaml) never imports the
subsystems that use the model: serving, the registry, the sweeps and the verdict tool. They
can change without marking a stage out of date."""

from __future__ import annotations

import yaml

from tests.helpers import REPO_ROOT

SUBSYSTEMS = (
    "mnist_dvc/serving/",
    "mnist_dvc/registry/",
    "mnist_dvc/sweep/",
    "mnist_dvc/verify/",
)


def test_no_stage_runs_a_subsystem_that_uses_the_model():
    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        runs = [dep for dep in stage.get("deps", []) if dep.endswith(".py")]
        assert runs, name
        wrong = [dep for dep in runs if dep.startswith(SUBSYSTEMS)]
        assert not wrong, f"stage {name} imports {wrong}: the pipeline must not depend on them"


def test_the_subsystems_exist_where_named():
    for prefix in SUBSYSTEMS:
        path = REPO_ROOT / prefix
        assert path.exists() or list(path.parent.glob(path.name + "*")), prefix
