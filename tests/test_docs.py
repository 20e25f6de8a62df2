"""The manual names what exists: every project path (`mnist_dvc/...`, `scripts/...`) and every
`mnist_dvc.module.name` the README and docs/ mention is there, and every stage of dvc.yaml is
in the pipeline's table and the README's diagram; the README stays a front door."""

from __future__ import annotations

import importlib
import re

import pytest
import yaml

from tests.helpers import REPO_ROOT

DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
PROJECT = r"(?:mnist_dvc|stages|scripts|tests|docs|benchmarks|\.ci)"
# `mnist_dvc/portable/kernels.cc`, `tests/pipeline/`; not templates (`<name>`) or globs.
PATH = re.compile(rf"`({PROJECT}/[\w./-]*)`")
# `mnist_dvc.numerics.training_precision`, `mnist_dvc/provenance.describe` (a file's name).
NAME = re.compile(r"`((?:mnist_dvc|stages)[./][\w/]*\.[A-Za-z_]\w*(?:\.\w+)*)")


def mentions(pattern: re.Pattern) -> list[tuple[str, str]]:
    return [(doc.name, found) for doc in DOCS for found in pattern.findall(doc.read_text())]


def resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(found, attribute):
                return False
            found = getattr(found, attribute)
        return True
    return False


@pytest.mark.parametrize(("doc", "path"), mentions(PATH))
def test_every_path_the_docs_name_exists(doc, path):
    assert (REPO_ROOT / path).exists(), f"{doc} names {path}, which does not exist"


@pytest.mark.parametrize(("doc", "name"), mentions(NAME))
def test_every_module_name_the_docs_name_exists(doc, name):
    if name.endswith((".py", ".cc", ".md", ".json", ".yaml", ".lock", ".html", ".png")):
        pytest.skip("a file, checked as a path")
    dotted = name.replace("/", ".")
    assert resolves(dotted), f"{doc} names {name}, which does not exist"


def test_every_stage_is_in_the_pipeline_table_and_the_readme_diagram():
    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    table = (REPO_ROOT / "docs" / "pipeline.md").read_text()
    readme = (REPO_ROOT / "README.md").read_text()
    diagram = readme[readme.index("```") : readme.index("```", readme.index("```") + 3)]
    for name in stages:
        assert f"| `{name}` |" in table, f"docs/pipeline.md's stage table lacks {name}"
        assert name in diagram, f"the README's diagram lacks {name}"


def test_the_readme_is_a_front_door_and_the_manual_is_in_docs():
    """At most 200 lines (issue 29), with no placeholder left for a measurement to fill."""
    readme = (REPO_ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200, "move detail from README.md to a page of docs/"
    for doc in DOCS:
        left = re.findall(r"^[A-Z][A-Z_]{6,}$", doc.read_text(), flags=re.M)
        assert not left, f"{doc.name} has a placeholder left: {left}"
