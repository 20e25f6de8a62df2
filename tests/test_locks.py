"""Locks by role: requirements.lock holds the stages' packages and nothing else, and each extra
of pyproject.toml is locked in requirements-<extra>.lock as what it adds on top, so that a
server's or a test tool's upgrade never marks a stage out of date
(tests/pipeline/test_pipeline.py runs `dvc status` on that). Checked against the installed
packages' own metadata: no registry."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.helpers import REPO_ROOT, missing_prerequisite

PROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
EXTRAS = PROJECT["optional-dependencies"]


def pins(lock: str) -> dict[str, str]:
    lines = (REPO_ROOT / lock).read_text().splitlines()
    return {
        canonicalize_name(name): version
        for name, _, version in (line.partition("==") for line in lines if "==" in line)
        if not name.startswith("#")
    }


STAGES = pins("requirements.lock")
LOCKS = {extra: pins(f"requirements-{extra}.lock") for extra in EXTRAS}


def needs(name: str, extras: frozenset[str]) -> list[Requirement]:
    """What an installed package requires, with the named extras of it, by its metadata."""
    found = []
    for line in metadata.requires(name) or []:
        requirement = Requirement(line)
        marker = requirement.marker
        if marker is None or any(marker.evaluate({"extra": e}) for e in ("", *extras)):
            found.append(requirement)
    return found


def closure(roots: list[str]) -> set[str]:
    """The roots and everything they need (extras such as sshfs[bcrypt] included),
    transitively, as installed here."""
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [Requirement(root) for root in roots]
    while todo:
        requirement = todo.pop()
        key = canonicalize_name(requirement.name), frozenset(requirement.extras)
        if key not in seen:
            seen.add(key)
            todo.extend(needs(*key))
    return {name for name, _ in seen} - {"setuptools", "wheel", "pip"}  # not in pip freeze


def test_the_stage_lock_is_the_stages_packages_and_all_they_need():
    assert closure(PROJECT["dependencies"]) == set(STAGES)


def test_the_makefile_locks_every_extra():
    makefile = (REPO_ROOT / "Makefile").read_text()
    listed = re.search(r"^EXTRAS := (.*)$", makefile, re.MULTILINE).group(1).split()
    assert sorted(listed) == sorted(EXTRAS)


@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_each_extra_lock_is_what_the_extra_adds(extra):
    missing = [
        root
        for root in EXTRAS[extra]
        if canonicalize_name(Requirement(root).name) not in installed()
    ]
    if missing:
        missing_prerequisite(f"{', '.join(missing)} not installed here (make setup-{extra})")
    added = closure(EXTRAS[extra]) - set(STAGES)
    assert added == set(LOCKS[extra])


def test_no_package_has_two_versions_across_the_locks():
    seen: dict[str, tuple[str, str]] = {}
    for lock, pinned in {"requirements.lock": STAGES, **LOCKS}.items():
        for name, version in pinned.items():
            first = seen.setdefault(name, (lock, version))
            assert first[1] == version, f"{name}: {first} and {lock} {version}"


def test_this_environment_has_the_locked_versions():
    have = installed()
    for pinned in (STAGES, *LOCKS.values()):
        for name, version in pinned.items():
            assert have.get(name, version) == version, name


def installed() -> dict[str, str]:
    return {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}


def test_the_gpu_lock_pins_what_tensorflow_and_cuda_adds():
    # Read from the locked TensorFlow's own metadata: the CUDA libraries need not be installed.
    cuda = [
        Requirement(text)
        for text in metadata.requires("tensorflow") or []
        if Requirement(text).marker
        and Requirement(text).marker.evaluate({"extra": "and-cuda"})
        and not Requirement(text).marker.evaluate({"extra": ""})
    ]
    gpu = pins("requirements-gpu.lock")
    assert sorted(gpu) == sorted(canonicalize_name(r.name) for r in cuda)
    for requirement in cuda:
        assert requirement.specifier.contains(gpu[canonicalize_name(requirement.name)]), requirement
    assert not set(gpu) & set(STAGES)  # nothing the stages' lock pins
