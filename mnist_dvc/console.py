"""The console scripts' entry points (pyproject.toml's [project.scripts]): each imports its
command's module inside an error boundary, then runs the command's own (mnist_dvc/tool.py).

A command's module imports what it needs when it loads (NumPy, FastAPI, Ray, DVC's parts): a
second or more on a loaded machine, before its `main` and its boundary start. Ctrl-C in that
second was a KeyboardInterrupt traceback from the middle of some library's import; here it is
`<name>: interrupted` and 130, as at any later moment (and a broken install is one line).

SIGTERM (`kill`, `timeout`) ends a command as Ctrl-C does, with its cleanup and 143: it ended
them at once, and `mnist-sweep` left its clone of the repository in the temporary folder.
"""

from __future__ import annotations

import importlib
import sys

from mnist_dvc.tool import end_on_sigterm_as_on_ctrl_c, failure


def launch(name: str, target: str) -> int:
    """Import `target` ("module:function") and return what the function returns, or, if the
    import is interrupted or fails, the exit status of its one line on stderr."""
    module, _, function = target.partition(":")
    end_on_sigterm_as_on_ctrl_c()
    try:
        main = getattr(importlib.import_module(module), function)
    except SystemExit:
        raise
    except BaseException as error:  # Ctrl-C while it loads, a missing package
        line, status = failure(name, error)
        print(line, file=sys.stderr)
        return status
    return main()


def drawings() -> int:
    return launch("mnist-drawings", "mnist_dvc.registry.drawings_cli:main")


def predict() -> int:
    return launch("mnist-predict", "mnist_dvc.predict:main")


def serve() -> int:
    return launch("mnist-serve", "mnist_dvc.serving.cli:main")


def release() -> int:
    return launch("mnist-release", "mnist_dvc.registry.cli:main")


def sweep() -> int:
    return launch("mnist-sweep", "mnist_dvc.sweep.cli:main")


def verify() -> int:
    return launch("mnist-verify", "mnist_dvc.verify.cli:main")
