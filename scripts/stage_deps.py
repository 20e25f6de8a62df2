"""`make deps`: write each stage's code deps in dvc.yaml from the code itself.

    python scripts/stage_deps.py [--check]

A stage's code is what `python -m stages <name>` (its cmd) runs: the dispatcher, the start-up
stages/__main__.py's STAGES table gives the stage, and the stage's module, with every project
module each imports, directly or through another project module, anywhere in the file (inside
functions too), read with `ast`; and the compiled sources (`.cc`) of every project package they
import, which the package builds at run time (mnist_dvc/portable/build.py). In dvc.yaml each stage's
deps keep everything else as written (data, lock files, comments); the code deps, one line per
file, are replaced by the closure, `stages/` first, then the rest in order. `--check` changes
nothing and exits 1, naming the stage, where dvc.yaml differs from what it would write.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PROJECT_PACKAGES = ("mnist_dvc", "stages")
CODE_SUFFIXES = (".py", ".cc")
DEP_LINE = "      - "  # a dep in dvc.yaml's deps lists, as the file indents them


def module_files(name: str, root: Path = ROOT) -> list[str]:
    """The files Python executes to import module `name`: each package's __init__.py on the
    way down, then the module itself (a package's __init__.py, or name.py)."""
    parts = name.split(".")
    files = [f"{'/'.join(parts[:i])}/__init__.py" for i in range(1, len(parts))]
    as_package = f"{'/'.join(parts)}/__init__.py"
    files.append(as_package if (root / as_package).is_file() else f"{'/'.join(parts)}.py")
    return files


def imported_modules(path: Path, root: Path = ROOT) -> set[str]:
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


def code_closure(module: str, root: Path = ROOT) -> set[str]:
    """Every project file that `python -m <module>` executes or compiles."""
    seen: set[str] = set()
    todo = module_files(module, root)
    while todo:
        file = todo.pop()
        if file in seen:
            continue
        seen.add(file)
        for name in imported_modules(root / file, root):
            todo.extend(module_files(name, root))
    compiled = {
        str(source.relative_to(root))
        for file in seen
        if file.endswith("/__init__.py")
        for source in (root / file).parent.glob("*.cc")
    }
    return seen | compiled


def stage_modules(stage: dict, root: Path = ROOT) -> list[str]:
    """What `python -m stages <name>` runs: the dispatcher, the stage's start-up in its STAGES
    table (read, not imported) and the stage's module."""
    command = stage["cmd"].split()
    if command[:3] != ["python", "-m", "stages"] or len(command) != 4:
        sys.exit(f"stage_deps: run stages as `python -m stages <name>`: {stage['cmd']}")
    name = command[3]
    table = next(
        node.value
        for node in ast.parse((root / "stages" / "__main__.py").read_text()).body
        if isinstance(node, ast.AnnAssign | ast.Assign)
        and getattr(node.targets[0] if isinstance(node, ast.Assign) else node.target, "id", "")
        == "STAGES"
    )
    start_up = ast.literal_eval(table)[name]
    return ["stages.__main__", *(hook.partition(":")[0] for hook in start_up), f"stages.{name}"]


def stage_code(stage: dict, root: Path = ROOT) -> set[str]:
    return set().union(*(code_closure(module, root) for module in stage_modules(stage, root)))


def ordered(files: set[str]) -> list[str]:
    return sorted(files, key=lambda file: (not file.startswith("stages/"), file))


def is_code(dep: str) -> bool:
    return dep.startswith(tuple(f"{p}/" for p in PROJECT_PACKAGES)) and dep.endswith(CODE_SUFFIXES)


def rewrite(text: str, root: Path = ROOT) -> str:
    """dvc.yaml's text with each stage's code deps replaced by its closure, the generated lines
    where the first code dep stood (or after the last dep)."""
    stages = yaml.safe_load(text)["stages"]
    lines = text.splitlines(keepends=True)
    for name, stage in stages.items():
        start = lines.index(f"  {name}:\n")
        deps_at = next(i for i in range(start, len(lines)) if lines[i] == "    deps:\n")
        end = deps_at + 1
        while end < len(lines) and lines[end].startswith((DEP_LINE, "      #")):
            end += 1
        block = lines[deps_at + 1 : end]
        code = [i for i, line in enumerate(block) if is_code(line.removeprefix(DEP_LINE).strip())]
        at = code[0] if code else len(block)
        kept = [line for i, line in enumerate(block) if i not in code]
        generated = [f"{DEP_LINE}{file}\n" for file in ordered(stage_code(stage, root))]
        new_block = kept[:at] + generated + kept[at:]
        lines[deps_at + 1 : end] = new_block
    return "".join(lines)


def main() -> None:
    parse = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parse.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    args = parse.parse_args()
    path = ROOT / "dvc.yaml"
    text = path.read_text()
    written = rewrite(text)
    if written == text:
        print("stage_deps: dvc.yaml's code deps are the stages' imports")
        return
    before, after = yaml.safe_load(text)["stages"], yaml.safe_load(written)["stages"]
    stale = [name for name in before if before[name].get("deps") != after[name].get("deps")]
    if args.check:
        sys.exit(
            f"stage_deps: dvc.yaml's code deps differ from the imports for {', '.join(stale)}"
            ": run `make deps`"
        )
    path.write_text(written)
    print(f"stage_deps: rewrote the code deps of {', '.join(stale) or 'no stage'} in dvc.yaml")


if __name__ == "__main__":
    main()
