"""dvc.yaml lists, for each stage, exactly the project code the stage runs: its own module, every
project module it imports, directly or through another project module, and the C++ its packages
compile. `make deps` (scripts/stage_deps.py) writes those lines from the code; here the code deps
it would write must be the committed ones, and its closure must follow imports as Python does."""

from __future__ import annotations

import runpy

import yaml

from tests.helpers import REPO_ROOT

STAGE_DEPS = runpy.run_path(str(REPO_ROOT / "scripts" / "stage_deps.py"))
DVC_YAML = (REPO_ROOT / "dvc.yaml").read_text()


def test_the_committed_code_deps_are_the_generated_ones():
    written = STAGE_DEPS["rewrite"](DVC_YAML)
    before, after = yaml.safe_load(DVC_YAML)["stages"], yaml.safe_load(written)["stages"]
    stale = [name for name in before if before[name]["deps"] != after[name]["deps"]]
    assert not stale, f"dvc.yaml: the code deps of {stale} differ from the imports: run `make deps`"
    assert written == DVC_YAML  # and nothing else moved: comments, order, blank lines


def test_the_closure_follows_imports_through_other_modules(tmp_path):
    # A stage importing `pkg.a`, which imports `pkg.b` inside a function; `pkg.c` compiles C++.
    (tmp_path / "stages").mkdir()
    (tmp_path / "mnist_dvc" / "c").mkdir(parents=True)
    (tmp_path / "stages" / "__init__.py").write_text("")
    (tmp_path / "stages" / "s.py").write_text("from mnist_dvc import a\n")
    (tmp_path / "mnist_dvc" / "__init__.py").write_text("")
    (tmp_path / "mnist_dvc" / "a.py").write_text("def f():\n    import mnist_dvc.b\n")
    (tmp_path / "mnist_dvc" / "b.py").write_text("from mnist_dvc.c import build\n")
    (tmp_path / "mnist_dvc" / "c" / "__init__.py").write_text("")
    (tmp_path / "mnist_dvc" / "c" / "build.py").write_text("")
    (tmp_path / "mnist_dvc" / "c" / "kernels.cc").write_text("")
    (tmp_path / "mnist_dvc" / "unused.py").write_text("")
    assert STAGE_DEPS["code_closure"]("stages.s", tmp_path) == {
        "stages/__init__.py", "stages/s.py", "mnist_dvc/__init__.py", "mnist_dvc/a.py",
        "mnist_dvc/b.py", "mnist_dvc/c/__init__.py", "mnist_dvc/c/build.py",
        "mnist_dvc/c/kernels.cc",
    }  # fmt: skip


def test_a_stale_dep_list_is_rewritten_and_everything_else_kept():
    stale = DVC_YAML.replace("      - mnist_dvc/feed.py\n", "").replace(
        "      - stages/train.py\n", "      - stages/train.py\n      - mnist_dvc/unused.py\n", 1
    )
    assert stale != DVC_YAML
    assert STAGE_DEPS["rewrite"](stale) == DVC_YAML
