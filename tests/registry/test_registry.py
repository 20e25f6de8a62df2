"""The model registry on real git history: two versions trained from two commits with different
params, registered with GTO tags by `python -m mnist_dvc.registry` (and `make release`/`promote`),
pushed to a bare `origin` and a DVC remote, then fetched by version and by stage from outside
any clone (`dvc artifacts get`, `dvc.api.open`) and loaded with Keras; the refusals (dirty tree,
out-of-date pipeline, model missing from the remote) each leave one line and no tag.

One registry (`shared_registry`) serves this file and tests/registry/test_http_remote.py: its two
trainings are most of their run time."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from mnist_dvc import dvc_lock
from mnist_dvc.released import ARTIFACT
from mnist_dvc.serving.background import free_port
from tests.helpers import REPO_ROOT, make_repo, sh, write_params
from tests.servers import ceph_rgw

pytestmark = pytest.mark.slow  # runs dvc repro, git, gto and a Ceph S3 server

ARTIFACTS = REPO_ROOT / "test-artifacts"
V1, V2 = "v1.0.0", "v1.1.0"
QUICK = {V1: {"epochs": 1, "train_images": 2000}, V2: {"epochs": 2, "train_images": 2000}}
KERAS_FILES = ("model.json", "model.h5")  # the notebook's files, in every version


@dataclass
class Registry:
    producer: Path  # the clone where models are trained and released
    origin: Path  # bare git repository: what consumers name as the repository
    storage: Path  # the default DVC remote, a local folder
    path: str  # the artifact's path in dvc.yaml
    trained: dict[str, str] = field(default_factory=dict)  # version -> commit trained at
    commits: dict[str, str] = field(default_factory=dict)  # version -> its release commit
    runs: dict[str, subprocess.CompletedProcess] = field(default_factory=dict)
    tags_before_push: set[str] = field(default_factory=set)


def release(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return sh(sys.executable, "-m", "mnist_dvc.registry", *args, cwd=repo, check=check)


def tags(repo: Path) -> set[str]:
    return set(sh("git", "tag", cwd=repo).stdout.split())


def head(repo: Path) -> str:
    return sh("git", "rev-parse", "HEAD", cwd=repo).stdout.strip()


def commit_of(repo: Path, tag: str) -> str:
    return sh("git", "rev-list", "-n1", tag, cwd=repo).stdout.strip()


def stage_tag(run: subprocess.CompletedProcess, stage: str) -> str:
    """The stage tag a release command made. GTO numbers them per artifact, across stages."""
    found = re.search(rf"now in stage {stage} \(tag ({ARTIFACT}#{stage}#\d+)\)", run.stdout)
    assert found, run.stdout
    return found.group(1)


def locked_outputs(repo: Path, rev: str, path: str) -> dict[str, str]:
    """The model's outputs and md5s in dvc.lock as committed at `rev` (a tag or a commit)."""
    lock = sh("git", "show", f"{rev}:dvc.lock", cwd=repo).stdout
    return dvc_lock.outs_under(dvc_lock.parse(lock), path)


def push_model(repo: Path, *remote: str) -> None:
    """Push only the model's outputs (data/ stays local: consumers never need it)."""
    path = yaml.safe_load((repo / "dvc.yaml").read_text())["artifacts"][ARTIFACT]["path"]
    lock = dvc_lock.read(repo / "dvc.lock")
    sh("dvc", "push", *remote, *dvc_lock.outs_under(lock, path), cwd=repo)


def build_registry(base: Path) -> Registry:
    origin = base / "origin.git"
    sh("git", "init", "-q", "--bare", "-b", "main", str(origin), cwd=base)
    producer = make_repo(base / "producer")
    storage = base / "storage"
    # An absolute path: a consumer's temporary clone would resolve a relative one (the default
    # remote's ../../mnist-dvc-storage) against itself and find nothing there.
    sh("dvc", "remote", "add", "-d", "-f", "store", str(storage), cwd=producer)
    sh("git", "remote", "add", "origin", str(origin), cwd=producer)
    sh("git", "commit", "-qam", "Models go to the team's storage", cwd=producer)
    path = yaml.safe_load((producer / "dvc.yaml").read_text())["artifacts"][ARTIFACT]["path"]
    registry = Registry(producer, origin, storage, path)
    for version, params in QUICK.items():
        write_params(producer / "params.yaml", **params)
        sh("dvc", "repro", cwd=producer)
        sh("git", "add", "-A", cwd=producer)
        sh("git", "commit", "-qm", f"Train {params['epochs']} epoch(s)", cwd=producer)
        registry.trained[version] = head(producer)
        if version == V2:  # trained and committed, not pushed yet: the usual slip
            registry.runs["unpushed"] = release(producer, "register", V2, check=False)
            registry.tags_before_push = tags(producer)
            assert head(producer) == registry.trained[V2]  # no release commit either
        push_model(producer)
        stage = ["--stage", "prod"] if version == V1 else []
        registry.runs[version] = release(producer, "register", version, *stage)
        registry.commits[version] = head(producer)
    registry.runs["promote"] = release(producer, "promote", V2, "prod")
    sh("git", "push", "-q", "origin", "main", "--tags", cwd=producer)
    # Real output for the README (test-artifacts/gto-*.txt): two versions, prod moved from v1 to v2.
    ARTIFACTS.mkdir(exist_ok=True)
    for name in (V1, V2, "promote"):
        (ARTIFACTS / f"release-{name}.txt").write_text(registry.runs[name].stdout)
    for command in ("show", "history"):
        registry.runs[f"gto {command}"] = sh("gto", command, cwd=producer)
        (ARTIFACTS / f"gto-{command}.txt").write_text(registry.runs[f"gto {command}"].stdout)
    return registry


_SHARED: dict[str, Registry] = {}


def shared_registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """Built once per test session, whichever of the two test files asks first."""
    if "registry" not in _SHARED:
        _SHARED["registry"] = build_registry(tmp_path_factory.mktemp("registry"))
    return _SHARED["registry"]


@pytest.fixture(scope="module")
def registry(tmp_path_factory, real_raw_dir) -> Registry:
    return shared_registry(tmp_path_factory)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): md5(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def expected_tree(registry: Registry, rev: str) -> dict[str, str]:
    """What `dvc artifacts get` must write for `rev`: every file of every DVC output under the
    artifact's path with the md5 dvc.lock records (a folder's files from its listing in the
    remote), and the files git tracks there (DVC's .gitignore)."""
    expected: dict[str, str] = {}
    prefix = f"{registry.path}/"
    for out, digest in locked_outputs(registry.origin, rev, registry.path).items():
        name = out.removeprefix(prefix)
        if digest.endswith(".dir"):
            listing = registry.storage / "files" / "md5" / digest[:2] / digest[2:]
            for entry in json.loads(listing.read_text()):
                expected[f"{name}/{entry['relpath']}"] = entry["md5"]
        else:
            expected[name] = digest
    listed = sh("git", "ls-tree", "-r", "--name-only", rev, "--", prefix, cwd=registry.origin)
    for tracked in listed.stdout.split():
        blob = sh("git", "show", f"{rev}:{tracked}", cwd=registry.origin).stdout.encode()
        expected[tracked.removeprefix(prefix)] = hashlib.md5(blob).hexdigest()
    return expected


def artifacts_get(registry: Registry, dest: Path, *how: str, **env: str):
    """`dvc artifacts get` run in an empty folder outside any clone."""
    return sh("dvc", "artifacts", "get", str(registry.origin), ARTIFACT, *how, "-o", str(dest),
              cwd=dest.parent, **env)  # fmt: skip


def one_line_refusal(run: subprocess.CompletedProcess) -> str:
    assert run.returncode == 1, run.stdout + run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("mnist-release: error: ") and lines[0].endswith("no tag was made")
    return lines[0]


# Versions and stages


def test_each_version_and_stage_is_a_gto_tag_on_its_commit(registry):
    origin = registry.origin
    assert tags(origin) == {f"{ARTIFACT}@{V1}", f"{ARTIFACT}@{V2}", f"{ARTIFACT}#prod#1",
                            f"{ARTIFACT}#prod#2"}  # fmt: skip
    target = {tag: commit_of(origin, tag) for tag in tags(origin)}
    assert target[f"{ARTIFACT}@{V1}"] == target[f"{ARTIFACT}#prod#1"] == registry.commits[V1]
    assert target[f"{ARTIFACT}@{V2}"] == target[f"{ARTIFACT}#prod#2"] == registry.commits[V2]
    # The two versions differ where they should: params, and so the model's bytes.
    v1, v2 = (locked_outputs(origin, f"{ARTIFACT}@{v}", registry.path) for v in (V1, V2))
    assert v1["models/model.h5"] != v2["models/model.h5"]
    # The release command names the tags, the model's md5s and how to push the tags.
    out = registry.runs[V1].stdout
    assert f"registered {ARTIFACT} {V1}" in out
    assert f"now in stage prod (tag {ARTIFACT}#prod#1)" in out
    assert f"models/model.h5 md5 {v1['models/model.h5']}" in out
    assert f"git push origin HEAD {ARTIFACT}@{V1} '{ARTIFACT}#prod#1'" in out
    assert f"{ARTIFACT} {V2} is now in stage prod" in registry.runs["promote"].stdout


def test_a_release_commit_names_its_version_in_the_model_card(registry):
    """Each version's tag is on a release commit over the trained one: release.yaml and the
    model card name the version; the model's files are the trained commit's."""
    origin = registry.origin
    for version, card_line in (
        (V1, f"Release **{ARTIFACT} {V1}**, assigned to stage **prod** at release."),
        (V2, f"Release **{ARTIFACT} {V2}**. Stages move"),
    ):
        commit, trained = registry.commits[version], registry.trained[version]
        assert sh("git", "rev-parse", f"{commit}~1", cwd=origin).stdout.strip() == trained
        changed = sh("git", "diff", "--name-only", trained, commit, cwd=origin).stdout.split()
        assert sorted(changed) == ["dvc.lock", "release.yaml", "reports/model.md"]
        locked = locked_outputs(origin, commit, registry.path)
        assert locked == locked_outputs(origin, trained, registry.path)
        released = yaml.safe_load(sh("git", "show", f"{commit}:release.yaml", cwd=origin).stdout)
        assert released["version"] == version and released["files"] == locked
        card = sh("git", "show", f"{commit}:reports/model.md", cwd=origin).stdout
        assert card_line in card, card[:400]
        # the trained commit's card names no version; the next one's says it is not V1
        before = sh("git", "show", f"{trained}:reports/model.md", cwd=origin).stdout
        assert "Not a release" in before and "Release **" not in before
    v2_trained = sh("git", "show", f"{registry.trained[V2]}:reports/model.md", cwd=origin).stdout
    assert f"differ from {ARTIFACT} {V1}, the last release on this branch" in v2_trained


def test_gto_show_and_history(registry):
    show = registry.runs["gto show"].stdout
    header, row = (
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in show.splitlines()
        if "│" in line
    )
    assert header == ["name", "latest", "#prod"], show
    assert row == [ARTIFACT, V2, V2], show
    history = registry.runs["gto history"].stdout
    assert history.count("registration") == 2 and history.count("assignment") == 2, history


# Getting a version without cloning by hand


def test_artifacts_get_by_version_and_by_stage(registry, tmp_path):
    for how, rev in (((f"--rev={V1}",), V1), ((f"--rev={V2}",), V2), (("--stage=prod",), V2)):
        dest = tmp_path / "-".join(how).strip("-")
        run = artifacts_get(registry, dest, *how)
        assert "Downloaded" in run.stdout, run.stdout + run.stderr
        got = tree(dest)
        assert got == expected_tree(registry, f"{ARTIFACT}@{rev}"), how
        locked = locked_outputs(registry.origin, f"{ARTIFACT}@{rev}", registry.path)
        for name in KERAS_FILES:
            assert got[name] == locked[f"{registry.path}/{name}"]


CONSUMER = """
import hashlib, json, sys, tempfile
from pathlib import Path

import dvc.api
import keras
import numpy as np

repo, folder = sys.argv[1], Path(sys.argv[2])
result = {"md5": {}, "prod": dvc.api.artifacts_show("mnist-cnn", stage="prod", repo=repo)}
for rev in sys.argv[3:]:
    for name in ("models/model.json", "models/model.h5"):
        with dvc.api.open(name, repo=repo, rev=rev, mode="rb") as f:
            result["md5"][f"{rev}:{name}"] = hashlib.md5(f.read()).hexdigest()

# The README's consumer snippets: from what `dvc artifacts get` wrote...
model = keras.models.model_from_json((folder / "model.json").read_text())
model.load_weights(folder / "model.h5")
# ...and from the bytes dvc.api reads (Keras loads weights from a file).
rev = sys.argv[3]
config = dvc.api.read("models/model.json", repo=repo, rev=rev)
with tempfile.TemporaryDirectory() as tmp:
    weights = Path(tmp, "model.h5")
    weights.write_bytes(dvc.api.read("models/model.h5", repo=repo, rev=rev, mode="rb"))
    same = keras.models.model_from_json(config)
    same.load_weights(weights)

images = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
result["predictions"] = [m.predict(images, verbose=0).tolist() for m in (model, same)]
print(json.dumps(result))
"""


def test_dvc_api_open_and_the_keras_snippets(registry, tmp_path):
    folder = tmp_path / "v1"
    artifacts_get(registry, folder, f"--rev={V1}")
    revs = (f"{ARTIFACT}@{V1}", f"{ARTIFACT}@{V2}")
    run = sh(sys.executable, "-c", CONSUMER, str(registry.origin), str(folder), *revs,
             cwd=tmp_path)  # fmt: skip
    result = json.loads(run.stdout.strip().splitlines()[-1])
    for rev in revs:
        locked = locked_outputs(registry.origin, rev, registry.path)
        for name in ("models/model.json", "models/model.h5"):
            assert result["md5"][f"{rev}:{name}"] == locked[name]
    assert result["prod"] == {"rev": registry.commits[V2], "path": registry.path}
    by_folder, by_api = result["predictions"]
    assert by_folder == by_api  # the same v1 model, whichever way it came
    assert all(abs(sum(row) - 1) < 1e-5 for row in by_folder)


# Refusals: one line, exit status 1, no tag


def test_refuses_a_model_that_was_not_pushed(registry):
    line = one_line_refusal(registry.runs["unpushed"])
    assert "models/model.h5" in line and "not in the default remote 'store'" in line
    assert "dvc push" in line
    assert f"{ARTIFACT}@{V2}" not in registry.tags_before_push


def candidate(registry: Registry) -> Path:
    """HEAD moved to a new, clean commit: a release candidate no version names yet."""
    sh("git", "commit", "-q", "--allow-empty", "-m", "candidate", cwd=registry.producer)
    return registry.producer


def undo_candidate(repo: Path) -> None:
    # A refused release made no release commit on top of the candidate.
    assert sh("git", "log", "-1", "--format=%s", cwd=repo).stdout.strip() == "candidate"
    sh("git", "reset", "-q", "--hard", "HEAD~1", cwd=repo)


def test_refuses_a_dirty_git_tree(registry):
    repo = candidate(registry)
    before = tags(repo)
    try:
        (repo / "README.md").write_text((repo / "README.md").read_text() + "\nedited\n")
        (repo / "notes.txt").write_text("not committed\n")
        line = one_line_refusal(release(repo, "register", "v9.0.0", check=False))
        assert "uncommitted changes (README.md, notes.txt)" in line, line
        assert tags(repo) == before
    finally:
        (repo / "notes.txt").unlink()
        undo_candidate(repo)


def test_refuses_an_out_of_date_pipeline(registry):
    repo = candidate(registry)
    before = tags(repo)
    try:
        # params committed without `dvc repro`: git is clean, the pipeline is not
        write_params(repo / "params.yaml", epochs=3, train_images=2000)
        sh("git", "commit", "-qam", "3 epochs, not run", cwd=repo)
        line = one_line_refusal(release(repo, "register", "v9.0.0", check=False))
        assert "pipeline is not up to date" in line and "train" in line and "dvc repro" in line
        sh("git", "reset", "-q", "--hard", "HEAD~1", cwd=repo)
        # an output deleted from the work tree (git ignores it, DVC does not)
        model, aside = repo / "models" / "model.h5", repo.parent / "model.h5.aside"
        model.rename(aside)
        try:
            line = one_line_refusal(release(repo, "register", "v9.0.0", check=False))
            assert "pipeline is not up to date" in line, line
        finally:
            aside.rename(model)
        assert tags(repo) == before
    finally:
        undo_candidate(repo)


def test_a_release_that_fails_at_its_stage_leaves_no_commit_and_no_tag(registry, monkeypatch):
    """All or nothing: the stage tag comes last, and its failure takes the release commit and
    the version tag back."""
    from mnist_dvc.registry import tags as command

    repo = candidate(registry)
    before = tags(repo)
    try:

        def refuse(*_args):
            raise command.Refused("stage refused for this test")

        monkeypatch.setattr(command, "assign", refuse)
        monkeypatch.chdir(repo)
        with pytest.raises(command.Refused, match="stage refused for this test"):
            command.register("v9.1.0", "staging")
        assert tags(repo) == before
        assert sh("git", "status", "--porcelain", cwd=repo).stdout == ""
    finally:
        undo_candidate(repo)  # also checks that HEAD is the candidate again


def remote_object(registry: Registry, digest: str) -> Path:
    return registry.storage / "files" / "md5" / digest[:2] / digest[2:]


def test_refuses_a_model_file_missing_from_the_remote(registry):
    """The remote is asked for each file: a file lost there is found, though the local cache
    and DVC's own records say it was pushed."""
    repo = candidate(registry)
    before = tags(repo)
    digest = locked_outputs(repo, "HEAD", registry.path)["models/model.json"]
    obj = remote_object(registry, digest)
    obj.rename(obj.with_name("aside"))
    try:
        line = one_line_refusal(release(repo, "register", "v9.0.0", check=False))
        assert "models/model.json not in the default remote 'store'" in line, line
        assert tags(repo) == before
    finally:
        obj.with_name("aside").rename(obj)
        undo_candidate(repo)


def test_refuses_a_file_missing_inside_a_directory_output(registry):
    """`dvc status -c` trusts a folder's listing in the remote; the release checks its files."""
    repo = candidate(registry)
    try:
        folders = {out: digest for out, digest in locked_outputs(repo, "HEAD", registry.path)
                   .items() if digest.endswith(".dir")}  # fmt: skip
        if not folders:
            pytest.skip(f"no folder output under {registry.path}/ in dvc.yaml yet")
        out, digest = next(iter(folders.items()))
        entry = json.loads(remote_object(registry, digest).read_text())[0]
        obj = remote_object(registry, entry["md5"])
        obj.rename(obj.with_name("aside"))
        try:
            cloud = sh("dvc", "status", "-c", out, cwd=repo)
            assert "in sync" in cloud.stdout  # what DVC's own check says
            line = one_line_refusal(release(repo, "register", "v9.0.0", check=False))
            assert f"{out}/{entry['relpath']}" in line and "not in the default remote" in line
        finally:
            obj.with_name("aside").rename(obj)
    finally:
        undo_candidate(repo)


def test_refuses_bad_arguments_before_anything_else(registry):
    repo = registry.producer
    line = one_line_refusal(release(repo, "register", "1.2", check=False))
    assert "looks like v1.2.0" in line
    line = one_line_refusal(release(repo, "register", "v9.0.0", "--stage", "production",
                                    check=False))  # fmt: skip
    assert "one of dev, staging, prod" in line
    line = one_line_refusal(release(repo, "promote", "v9.9.9", "prod", check=False))
    assert f"{ARTIFACT} v9.9.9 is not registered" in line
    line = one_line_refusal(release(repo, "promote", V2, "prod", check=False))
    assert "already in stage prod" in line


# The make targets, and S3 as the default remote


def test_make_promote_and_usage(registry):
    repo = registry.producer
    promoted = sh("make", "-s", "promote", f"VERSION={V1}", "STAGE=dev", cwd=repo)
    assert commit_of(repo, stage_tag(promoted, "dev")) == registry.commits[V1]
    for target in ("release", "promote"):
        missing = sh("make", "-s", target, cwd=repo, check=False)
        assert missing.returncode != 0 and f"make {target} VERSION=v1.2.0" in missing.stderr
    refused = sh("make", "-s", "release", "VERSION=v9.0.0", cwd=repo, check=False)
    assert refused.returncode != 0
    assert f"HEAD is already the release commit of {ARTIFACT} {V2}" in refused.stderr


# Hostile values through make: each must reach mnist-release as text, be refused in one line
# with a non-zero exit, and run nothing ({marker} is where an injected command would write).
HOSTILE = [
    ("release", "VERSION=v1'; touch {marker}; echo '"),
    ("release", "VERSION=v1.0.0", "STAGE=prod'; touch {marker}; echo '"),
    ("release", "VERSION=$(shell touch {marker})v1"),
    ("release", "VERSION=v1.0.0", "STAGE=$$(touch {marker})"),
    ("release", "VERSION=v" + "1" * 240),
    ("promote", 'VERSION=v1"; touch {marker}; echo "', "STAGE=prod"),
    ("promote", "VERSION=v1.0.0", "STAGE=`touch {marker}`"),
]


MAKE_FAILED = re.compile(r"make(\[\d+\])?: \*\*\*")  # make's own word that a recipe failed


def git_state(repo: Path) -> tuple[str, ...]:
    return tuple(
        sh("git", *args, cwd=repo).stdout
        for args in (("rev-parse", "HEAD"), ("tag", "--list"), ("status", "--porcelain"))
    )


@pytest.mark.parametrize("hostile", HOSTILE, ids=lambda h: " ".join(h)[:40])
def test_hostile_make_values_run_nothing_and_change_nothing(registry, tmp_path, hostile):
    repo = registry.producer
    before = git_state(repo)
    marker = tmp_path / "pwned"
    target, *values = hostile
    run = sh("make", "-s", target, *(v.format(marker=marker) for v in values), cwd=repo,
             check=False)  # fmt: skip
    assert run.returncode != 0
    assert not marker.exists(), "a value ran as a command"
    # make's own line that the recipe failed (make[1] under `make test`) aside
    said = [
        line for line in run.stderr.splitlines() if not re.match(r"make(\[\d+\])?: \*\*\*", line)
    ]
    assert len(said) == 1 and said[0].startswith("mnist-release: error: "), run.stderr
    assert git_state(repo) == before


def test_publish_refuses_a_folder_inside_the_remote(registry):
    dest = registry.storage / "pubcopy"
    run = sh("make", "-s", "publish", f"DEST={dest}", "REMOTE=store", cwd=registry.producer,
             check=False)  # fmt: skip
    assert run.returncode != 0
    assert (
        f"mnist-release: error: {dest} is inside remote 'store' ({registry.storage})" in run.stderr
    )
    assert not dest.exists()


def test_a_remote_url_password_is_never_printed(tmp_path):
    """Issue 28: a DVC remote whose URL holds credentials, named in a refusal: redacted."""
    repo = tmp_path / "repo"
    repo.mkdir()
    sh("git", "init", "-q", cwd=repo)
    sh("dvc", "init", "-q", cwd=repo)
    sh("dvc", "remote", "add", "-d", "pub", "https://user:hunter2@127.0.0.1/dvc", cwd=repo)
    run = release(repo, "publish", str(tmp_path / "www"), check=False)
    assert run.returncode == 1
    assert "hunter2" not in run.stdout + run.stderr
    assert run.stderr.startswith(
        "mnist-release: error: remote 'pub' is https://user:***@127.0.0.1/dvc, not a local folder"
    )


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with ceph_rgw(tmp_path_factory.mktemp("ceph")) as server:
        yield server


def test_release_to_an_s3_remote(registry, s3, tmp_path):
    repo = registry.producer
    s3.make_bucket("registry")
    sh("dvc", "remote", "add", "-d", "-f", "s3", "s3://registry/dvc", cwd=repo)
    sh("dvc", "remote", "modify", "s3", "endpointurl", s3.endpoint, cwd=repo)
    keys = {"AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key}
    for option, value in zip(("access_key_id", "secret_access_key"), keys.values(), strict=True):
        sh("dvc", "remote", "modify", "--local", "s3", option, value, cwd=repo)
    sh("git", "commit", "-qam", "Models go to S3", cwd=repo)
    # Same model, new storage: not in S3 yet, so no version for this commit.
    refused = sh("make", "-s", "release", "VERSION=v1.2.0", "STAGE=staging", cwd=repo, check=False)
    assert refused.returncode != 0, refused.stdout
    assert "not in the default remote 's3'" in refused.stderr, refused.stderr
    assert "no tag was made" in refused.stderr
    push_model(repo, "-r", "s3")
    made = sh("make", "-s", "release", "VERSION=v1.2.0", "STAGE=staging", cwd=repo)
    assert f"tag {ARTIFACT}@v1.2.0" in made.stdout
    assert commit_of(repo, stage_tag(made, "staging")) == head(repo)
    sh("git", "push", "-q", "origin", "main", "--tags", cwd=repo)
    # A consumer with the S3 credentials gets v1.2.0 from S3: the same model as v1.1.0.
    dest = tmp_path / "from-s3"
    artifacts_get(registry, dest, "--stage=staging", **keys)
    assert tree(dest) == expected_tree(registry, f"{ARTIFACT}@v1.2.0")
    v12, v11 = (locked_outputs(registry.origin, f"{ARTIFACT}@{v}", registry.path)
                for v in ("v1.2.0", V2))  # fmt: skip
    assert v12 == v11


def test_promote_moves_a_stage_back(registry, tmp_path):
    """Roll-back: prod back to v1 (GTO needs its force flag for that; the command passes it).
    v1 (one epoch) scores below v2 (two) by far more than the seed spread: the promotion gate
    refuses it, naming the metric, unless the roll-back is asked for."""
    before = tags(registry.producer)
    refused = one_line_refusal(release(registry.producer, "promote", V1, "prod", check=False))
    assert f"{ARTIFACT} {V1} scores accuracy " in refused and f"below prod's {V2}" in refused
    assert "seed spread" in refused and tags(registry.producer) == before
    forced = sh("make", "-s", "promote", f"VERSION={V1}", "STAGE=prod", "FORCE=1",
                cwd=registry.producer)  # fmt: skip
    assert commit_of(registry.producer, stage_tag(forced, "prod")) == registry.commits[V1]
    # Forward again needs no flag: v2 is no regression against v1.
    release(registry.producer, "promote", V2, "prod")
    run = release(registry.producer, "promote", V1, "prod", "--allow-regression")
    assert commit_of(registry.producer, stage_tag(run, "prod")) == registry.commits[V1]
    sh("git", "push", "-q", "origin", "--tags", cwd=registry.producer)
    dest = tmp_path / "prod"
    artifacts_get(registry, dest, "--stage=prod")
    assert tree(dest) == expected_tree(registry, f"{ARTIFACT}@{V1}")


# Serving what the registry names (mnist-serve --stage / --rev)


def served_card(args: list[str], log: Path) -> dict:
    from mnist_dvc.serving.background import serve_in_background

    with (
        serve_in_background(args, log=log) as (url, _pid),
        urllib.request.urlopen(f"{url}/model", timeout=10) as answer,
    ):
        return json.load(answer)


def prod_version(repo: Path) -> str:
    """The version prod holds by git's own record: the stage tag made last (taggerdate)."""
    newest = sh("git", "for-each-ref", "--sort=-taggerdate", "--count=1",
                "--format=%(*objectname)", f"refs/tags/{ARTIFACT}#prod#*", cwd=repo)  # fmt: skip
    commit = newest.stdout.strip()
    (version,) = [v for v in (V1, V2) if commit_of(repo, f"{ARTIFACT}@{v}") == commit]
    return version


def test_mnist_serve_serves_the_version_in_a_stage_and_follows_a_promotion(registry, tmp_path):
    """`mnist-serve --stage prod --repo ORIGIN` downloads the version prod holds into a cache
    folder and says so in /model; after `make promote` moves prod to the other version (in a
    copy of the team's repository, so the shared registry keeps its tags), a restart serves
    that one. Each version's files are the ones its dvc.lock records, and its test accuracy is
    that commit's metrics.json."""
    team = tmp_path / "team.git"
    sh("git", "clone", "-q", "--mirror", str(registry.origin), str(team), cwd=tmp_path)
    cache = tmp_path / "cache"
    args = ["--stage", "prod", "--repo", str(team), "--cache-dir", str(cache)]

    def check(card: dict, version: str) -> None:
        assert card["release"]["version"] == version and card["release"]["stage"] == "prod"
        assert card["release"]["commit"] == commit_of(team, f"{ARTIFACT}@{version}")
        locked = locked_outputs(team, f"{ARTIFACT}@{version}", registry.path)
        for served in card["files"]:
            assert served["md5"] == locked[f"{registry.path}/{Path(served['path']).name}"]
        assert card["dvc_lock"]["matches"] is True, card["dvc_lock"]
        metrics = json.loads(sh("git", "show", f"{ARTIFACT}@{version}:metrics.json",
                                cwd=team).stdout)  # fmt: skip
        assert card["metrics"]["accuracy"] == metrics["accuracy"], card["metrics"]

    now = prod_version(team)  # V2 as built; V1 after the roll-back test
    other = V1 if now == V2 else V2
    first = served_card(args, tmp_path / "serve-1.log")
    check(first, now)
    assert "downloaded" in first["release"]["note"]

    work = tmp_path / "work"
    sh("git", "clone", "-q", str(team), str(work), cwd=tmp_path)
    sh("git", "fetch", "-q", "--tags", cwd=work)
    release(work, "promote", other, "prod", "--allow-regression")  # maybe a roll-back
    sh("git", "push", "-q", "origin", "--tags", cwd=work)
    assert prod_version(team) == other

    second = served_card(args, tmp_path / "serve-2.log")
    check(second, other)
    assert second["files"][0]["md5"] != first["files"][0]["md5"]  # another model

    again = served_card(["--rev", now, *args[2:]], tmp_path / "serve-3.log")
    assert again["release"]["version"] == now and again["release"]["stage"] is None
    assert "from the cache folder" in again["release"]["note"]


@pytest.mark.parametrize(
    ("how", "said"),
    [
        (["--rev", "v9.9.9"], f"{ARTIFACT} v9.9.9 is not registered in "),
        (["--stage", "dev"], f"no version of {ARTIFACT} is in stage dev in "),
    ],
)
def test_mnist_serve_refuses_a_version_the_registry_lacks(registry, tmp_path, how, said):
    # A mirror without stage dev: other tests here may assign it (make promote's test does).
    team = tmp_path / "team.git"
    sh("git", "clone", "-q", "--mirror", str(registry.origin), str(team), cwd=tmp_path)
    for tag in sh("git", "tag", "--list", f"{ARTIFACT}#dev#*", cwd=team).stdout.split():
        sh("git", "tag", "-d", tag, cwd=team)
    where = ["--repo", str(team), "--cache-dir", str(tmp_path / "cache")]
    run = subprocess.run(
        [sys.executable, "-m", "mnist_dvc.serving", *how, *where, "--port", str(free_port())],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 1 and len(lines) == 1, run.stderr
    assert lines[0].startswith(f"mnist-serve: error: {said}"), lines[0]
    assert f"its versions are {V1}, {V2}" in lines[0]
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.h5"))


def test_a_long_version_or_stage_is_quoted_short_in_the_refusal(tmp_path):
    """`mnist-serve --stage <5,000 characters>` printed all 5,000 back in its one line."""
    from mnist_dvc.registry.checks import Refused
    from mnist_dvc.registry.lookup import find

    sh("git", "init", "-q", cwd=tmp_path)
    for asked in ({"version": "v" + "1" * 5000}, {"stage": "s" * 5000}):
        with pytest.raises(Refused) as refused:
            find(str(tmp_path), **asked)
        assert len(str(refused.value)) < 300 and "..." in str(refused.value), str(refused.value)
