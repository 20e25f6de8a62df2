"""dvc.yaml lists, for each stage, exactly the project code the stage runs: its own module and
every project module it imports, directly or through another project module (read from the
code with `ast`, so a new import without a new dep fails here, naming the stage and the path)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO_ROOT

PROJECT_PACKAGES = ("mnist_dvc", "stages")
DVC_YAML = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())
STAGES = DVC_YAML["stages"]


def module_files(name: str, root: Path = REPO_ROOT) -> list[str]:
    """The files Python executes to import module `name`: each package's __init__.py on the
    way down, then the module itself (a package's __init__.py, or name.py)."""
    parts = name.split(".")
    files = [f"{'/'.join(parts[:i])}/__init__.py" for i in range(1, len(parts))]
    as_package = f"{'/'.join(parts)}/__init__.py"
    files.append(as_package if (root / as_package).is_file() else f"{'/'.join(parts)}.py")
    return files


def imported_modules(path: Path, root: Path = REPO_ROOT) -> set[str]:
    """Project modules that the file imports, anywhere in it (inside functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from package import name` imports the submodule `name` when there is one.
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] in PROJECT_PACKAGES and _exists(name, root):
                found.add(name)
    return found


def _exists(name: str, root: Path) -> bool:
    stem = root / name.replace(".", "/")
    return stem.with_suffix(".py").is_file() or (stem / "__init__.py").is_file()


def code_closure(module: str, root: Path = REPO_ROOT) -> set[str]:
    """Every project file that `python -m <module>` executes."""
    seen: set[str] = set()
    todo = module_files(module, root)
    while todo:
        file = todo.pop()
        if file in seen:
            continue
        seen.add(file)
        for name in imported_modules(root / file, root):
            todo.extend(module_files(name, root))
    return seen


def stage_module(stage: dict) -> str:
    command = stage["cmd"].split()
    assert command[:2] == ["python", "-m"], f"run stages as `python -m stages.<name>`: {command}"
    return command[2]


def listed_code(stage: dict) -> set[str]:
    return {dep for dep in stage["deps"] if dep.endswith(".py")}


@pytest.mark.parametrize("name", STAGES)
def test_every_module_a_stage_runs_is_a_dep(name):
    missing = code_closure(stage_module(STAGES[name])) - listed_code(STAGES[name])
    assert not missing, f"dvc.yaml: stage {name} runs {sorted(missing)} but does not list it"


@pytest.mark.parametrize("name", STAGES)
def test_every_code_dep_is_run_by_the_stage(name):
    extra = listed_code(STAGES[name]) - code_closure(stage_module(STAGES[name]))
    assert not extra, f"dvc.yaml: stage {name} lists {sorted(extra)}, which it never imports"


def test_the_closure_follows_imports_through_other_modules(tmp_path):
    # A stage importing `pkg.a`, which imports `pkg.b` inside a function.
    (tmp_path / "stages").mkdir()
    (tmp_path / "mnist_dvc").mkdir()
    (tmp_path / "stages" / "__init__.py").write_text("")
    (tmp_path / "stages" / "s.py").write_text("from mnist_dvc import a\n")
    (tmp_path / "mnist_dvc" / "__init__.py").write_text("")
    (tmp_path / "mnist_dvc" / "a.py").write_text("def f():\n    import mnist_dvc.b\n")
    (tmp_path / "mnist_dvc" / "b.py").write_text("")
    assert code_closure("stages.s", tmp_path) == {
        "stages/__init__.py", "stages/s.py", "mnist_dvc/__init__.py", "mnist_dvc/a.py",
        "mnist_dvc/b.py",
    }  # fmt: skip
