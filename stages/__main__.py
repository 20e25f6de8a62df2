"""`python -m stages <name>`: one stage of dvc.yaml, as `dvc repro` runs it.

Before the stage's module loads, signals are made to end it in one line, the interpreter is
checked against requirements.lock and, under `dvc`, the stage is made to end with the dvc that
started it (mnist_dvc/stage.py); then its start-up in STAGES runs, and its `main()`, within the
one error boundary every stage has (`run_stage`). Importing a stage module (the tests, the
benchmark) does none of this.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from mnist_dvc.stage import begin, run_stage

# Each stage, and what runs before its module loads (as module:function): the stages that
# compute with TensorFlow choose its numerics first, since TensorFlow reads them when it loads.
# scripts/stage_deps.py reads this table: a stage's code deps are its module's and its
# start-up's, so that no other stage depends on numerics.py.
STAGES: dict[str, tuple[str, ...]] = {
    "check_params": (),
    "fetch": (),
    "preprocess": (),
    "fetch_ood": (),
    "prepare_ood": (),
    "prepare_drawings": (),
    "train": ("mnist_dvc.numerics:configure_from_params",),
    "evaluate": ("mnist_dvc.numerics:configure_from_params",),
    "report": (),
    "export": ("mnist_dvc.numerics:configure_from_params",),
}
LOCK = Path(__file__).resolve().parent.parent / "requirements.lock"


def start_and_run(name: str) -> None:
    """The stage's start-up, then its module's main()."""
    for hook in STAGES[name]:
        module, _, function = hook.partition(":")
        getattr(importlib.import_module(module), function)()
    importlib.import_module(f"stages.{name}").main()


def main(argv: list[str]) -> None:
    if len(argv) != 1 or argv[0] not in STAGES:
        sys.exit(f"usage: python -m stages {{{','.join(STAGES)}}}")
    name = argv[0]
    begin(name, LOCK)
    run_stage(name, lambda: start_and_run(name))


if __name__ == "__main__":
    main(sys.argv[1:])
