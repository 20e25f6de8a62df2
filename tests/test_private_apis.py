"""The names the project takes from inside its packages, where no public API does the job, have
one home each: the pipeline's in mnist_dvc/private_apis.py, the server's in
mnist_dvc/serving/protocol.py (no stage imports the server). An upgrade that moves or changes
one fails here, loudly and by name, before a stage or the server fails in words of its own.
(What they compute is tested where they are used: the legacy model.h5 in test_model.py, fit's
batches in test_feed.py, the fingerprint in test_export.py, the deadlines in
tests/serving/test_protocol.py.)"""

from __future__ import annotations

import ast
import importlib
import inspect

import pytest

from tests.helpers import REPO_ROOT

PRIVATE = ("keras.src", "tensorflow.python", "uvicorn.protocols")
HOMES = ("mnist_dvc/private_apis.py", "mnist_dvc/serving/protocol.py")


def private_imports(path) -> list[tuple[str, str]]:
    """(module, name) of each name the file imports from a package's private modules."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PRIVATE):
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(a.name, "") for a in node.names if a.name.startswith(PRIVATE)]
    return found


def test_private_names_are_imported_in_their_homes_only():
    code = [*(REPO_ROOT / "mnist_dvc").rglob("*.py"), *(REPO_ROOT / "stages").rglob("*.py")]
    elsewhere = {
        str(path.relative_to(REPO_ROOT)): names
        for path in code
        if str(path.relative_to(REPO_ROOT)) not in HOMES and (names := private_imports(path))
    }
    assert not elsewhere, f"import these through {' or '.join(HOMES)}: {elsewhere}"


@pytest.mark.parametrize(
    ("home", "module", "name"),
    [(home, *found) for home in HOMES for found in private_imports(REPO_ROOT / home)],
)
def test_each_private_name_is_where_its_home_takes_it_from(home, module, name):
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as error:
        pytest.fail(f"{module}.{name} is gone ({error}): an upgrade moved it; find where it "
                    f"went, or a public API that does its job, and change {home}")  # fmt: skip
    assert callable(found)


def takes(function, *args: object, **kwargs: object) -> None:
    """Fail, naming `function`, unless it takes the arguments the project calls it with."""
    try:
        inspect.signature(function).bind(*args, **kwargs)
    except TypeError as error:
        pytest.fail(f"{function.__qualname__} no longer takes what the project gives it: {error}")


def test_the_pipelines_private_names_take_what_the_pipeline_gives_them():
    from mnist_dvc import private_apis

    takes(private_apis.save_weights_to_hdf5_group, "h5 file", "model")  # model.write_model
    takes(private_apis.ArrayDataAdapter, "x", "y", batch_size=128, shuffle=True)  # feed.batches
    for used in ("get_tf_dataset", "num_batches"):
        assert hasattr(private_apis.ArrayDataAdapter, used), f"ArrayDataAdapter.{used} is gone"
    takes(private_apis.write_fingerprint, "saved_model folder")  # export.export_saved_model


def test_uvicorns_protocol_still_calls_the_hooks_the_server_overrides():
    """DeadlineProtocol overrides these hooks of HttpToolsProtocol: one that uvicorn renamed
    would never be called, and the deadlines would silently stop."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from mnist_dvc.serving.protocol import DeadlineProtocol

    overridden = [
        name
        for name, value in vars(DeadlineProtocol).items()
        if callable(value) and not name.startswith("_")
    ]
    assert overridden, "DeadlineProtocol overrides nothing?"
    missing = [name for name in overridden if not hasattr(HttpToolsProtocol, name)]
    assert not missing, f"uvicorn's HttpToolsProtocol no longer has {missing}"


def test_uvicorns_request_cycle_still_has_what_a_refusal_reads_and_sets():
    """A refusal reads whether an answer is under way, and marks a request still in the app as
    disconnected, as uvicorn's connection_lost does: attributes uvicorn could rename."""
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

    names = RequestResponseCycle.__init__.__code__.co_names
    for used in ("response_started", "response_complete", "disconnected", "message_event"):
        assert used in names, f"uvicorn's RequestResponseCycle no longer sets {used}"
