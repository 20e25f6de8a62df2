"""Nothing lost: a refused or interrupted run leaves every previous output byte-identical,
cached by DVC or not, and `dvc status` tells the truth afterwards.

In a repository where a quick `dvc repro` has run, each case below runs the command a user
would run (`dvc repro`, `dvc repro -s X`, `dvc exp run`), with a bad value in each params
section, a corrupt raw file, an interpreter that is not the locked environment, SIGINT and
SIGTERM (what Ctrl-C and `kill` send) and SIGKILL mid-stage, and a second `dvc repro` while
one runs; then it compares the md5 of every file of every output declared in dvc.yaml with
the baseline.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
import yaml

from mnist_dvc import mnist
from tests.helpers import (
    ENV,
    serve_mirror,
    sh,
    stop_queue_workers,
    write_params,
    write_sources,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(quick_run, tmp_path_factory) -> Path:
    """A repository where a quick `dvc repro` has run and been committed."""
    return quick_run.copy(tmp_path_factory.mktemp("repo") / "repo")


@pytest.fixture
def baseline(repo) -> Iterator[dict[str, str]]:
    """md5 of every output file before the test; afterwards the work tree is reset to the
    commit, so that each test starts from the same state."""
    before = output_md5s(repo)
    yield before
    # A refused `dvc exp run` edits params.yaml to the same size ("epochs: 1" -> "epochs: 0")
    # and has git's index refreshed afterwards: git then takes the edited file for the committed
    # one by its size and time. A new index makes git write every tracked file back from HEAD.
    (repo / ".git" / "index").unlink()
    sh("git", "reset", "-q", "--hard", cwd=repo)
    sh("dvc", "checkout", "--force", cwd=repo)
    for partial in repo.rglob("*.partial"):  # what a SIGKILL leaves, hidden and ignored
        shutil.rmtree(partial) if partial.is_dir() else partial.unlink()


def declared_outputs(repo: Path) -> list[Path]:
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    paths = []
    for stage in stages.values():
        for entry in stage.get("outs", []) + stage.get("metrics", []):
            paths.append(repo / (entry if isinstance(entry, str) else next(iter(entry))))
    return paths


def output_md5s(repo: Path) -> dict[str, str]:
    """md5 of each file of each declared output (a folder's files one by one)."""
    digests = {}
    for output in declared_outputs(repo):
        files = sorted(output.rglob("*")) if output.is_dir() else [output]
        for file in files:
            if file.is_file():
                digests[str(file.relative_to(repo))] = hashlib.md5(file.read_bytes()).hexdigest()
    assert digests, "no outputs: the fixture's repro did not run"
    return digests


def assert_nothing_lost(repo: Path, baseline: dict[str, str]) -> None:
    assert output_md5s(repo) == baseline
    assert not list(repo.rglob("*.partial")), "half-written outputs are cleaned away"


def restore_params(repo: Path) -> None:
    """The committed params.yaml back after a run that got past check_params with other
    bytes: that check then reruns (its one change in `dvc status`), in under a second."""
    sh("git", "checkout", "--", "params.yaml", cwd=repo)
    status = sh("dvc", "status", "--json", cwd=repo).stdout
    assert set(json.loads(status)) <= {"check_params"}, status
    sh("dvc", "repro", "check_params", cwd=repo)


def assert_status_up_to_date(repo: Path) -> None:
    assert "up to date" in sh("dvc", "status", cwd=repo).stdout


def edit_yaml(path: Path, dotted: str, value: object) -> None:
    data = yaml.safe_load(path.read_text())
    *parents, last = dotted.split(".")
    node = data
    for key in parents:
        node = node[key]
    node[last] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def last_line(run: subprocess.CompletedProcess) -> str:
    lines = [line for line in run.stderr.splitlines() if "cuda" not in line.lower()]
    return "\n".join(lines[-2:])


@pytest.mark.parametrize(
    ("file", "dotted", "value", "stage", "message"),
    [
        ("params.yaml", "preprocess.data_format", "nhwc", "preprocess", "preprocess.data_format"),
        ("params.yaml", "train.epochs", "twelve", "train", "train.epochs: input should be"),
        ("params.yaml", "train.epochs", 0, "train", "train.epochs: input should be greater"),
        ("params.yaml", "train.batch_size", 0, "train", "train.batch_size"),
        ("params.yaml", "evaluate.batch_size", 0, "evaluate", "evaluate.batch_size"),
        (
            "params.yaml",
            "train.optimizer.learning_rate",
            float("inf"),
            "train",
            "train.optimizer.learning_rate: input should be a finite number (got inf)",
        ),
        ("params.yaml", "numerics", "fast", "train", "numerics: input should be 'portable'"),
        ("sources.yaml", "timeout_s", -1, "fetch", "timeout_s: input should be greater"),
        # Upper bounds (issue 28 §6): std::bad_alloc, OverflowError and OOM before
        ("params.yaml", "train.batch_size", 10**9, "train",
         "train.batch_size: input should be less than or equal to 60000 (got 1000000000)"),
        ("params.yaml", "train.epochs", 10**20, "train",
         "train.epochs: input should be less than or equal to 10000"),
        ("params.yaml", "train.model.notebook_cnn.dense_units", 10**8, "train",
         "train.model.notebook_cnn.dense_units: 100,000,000 needs about 15.0 TB of memory"),
        ("sources.yaml", "timeout_s", 1.0e300, "fetch",
         "timeout_s: input should be less than or equal to 86400 (got 1e+300)"),
    ],
)  # fmt: skip
def test_a_refused_value_in_each_section_loses_nothing(
    repo, baseline, file, dotted, value, stage, message
):
    edit_yaml(repo / file, dotted, value)
    run = sh("dvc", "repro", cwd=repo, check=False)
    assert run.returncode != 0
    # params.yaml is checked as a whole first (stages/check_params.py), in the stage's words
    refusing = "check_params" if file == "params.yaml" else stage
    assert f"{refusing}: error: {file}: {message}" in run.stderr, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    # the one line only: refused before TensorFlow loads and prints its start-up messages
    assert not [line for line in run.stderr.splitlines() if "cuda" in line.lower()]
    assert_nothing_lost(repo, baseline)
    status = sh("dvc", "status", cwd=repo).stdout
    assert f"{stage}:" in status, status  # the truth: the settings changed, the outputs did not
    sh("git", "checkout", "--", file, cwd=repo)
    assert_status_up_to_date(repo)


@pytest.mark.parametrize(
    ("dotted", "value", "message"),
    [
        # DVC compares values, and True == 1 == 1.0 (the quick run's epochs is 1): its params
        # diff is empty for these two, and a key no stage lists is never compared.
        ("train.epochs", True, "train.epochs: input should be a valid integer (got True)"),
        ("train.epochs", 1.0, "train.epochs: input should be a valid integer (got 1.0)"),
        ("tarin", {"epochs": 3}, "tarin: unknown key"),
    ],
)
def test_a_value_dvc_cannot_see_is_refused_all_the_same(repo, baseline, dotted, value, message):
    edit_yaml(repo / "params.yaml", dotted, value)
    run = sh("dvc", "repro", cwd=repo, check=False)
    assert run.returncode != 0
    assert f"check_params: error: params.yaml: {message}" in run.stderr, run.stderr[-2000:]
    assert "check_params:" in sh("dvc", "status", cwd=repo).stdout  # never "up to date"
    assert_nothing_lost(repo, baseline)


def test_a_comment_in_params_yaml_reruns_only_the_check(repo, baseline):
    params = repo / "params.yaml"
    params.write_text("# a comment, and the file reformatted\n" + params.read_text() + "\n\n")
    run = sh("dvc", "repro", cwd=repo)
    assert "Running stage 'check_params'" in run.stdout
    assert run.stdout.count("Running stage") == 1, run.stdout
    assert_nothing_lost(repo, baseline)


def test_a_diverging_training_stops_in_one_line_and_loses_nothing(repo, baseline):
    """A finite but far too large learning rate: the loss becomes NaN within the first epoch."""
    edit_yaml(repo / "params.yaml", "train.optimizer.learning_rate", 1.0e30)
    run = sh("dvc", "repro", cwd=repo, check=False)
    assert run.returncode != 0
    errors = [line for line in run.stderr.splitlines() if line.startswith("train: error:")]
    assert len(errors) == 1, run.stderr[-2000:]
    assert re.fullmatch(
        r"train: error: the loss became (NaN|infinite) at epoch 1, batch \d+: lower "
        r"train\.optimizer\.learning_rate",
        errors[0],
    )
    assert "Traceback" not in run.stderr
    assert_nothing_lost(repo, baseline)


def test_a_refused_experiment_loses_nothing(repo, baseline):
    run = sh("dvc", "exp", "run", "-S", "train.epochs=0", cwd=repo, check=False)
    assert run.returncode != 0
    assert re.search(
        r"^(check_params|train): error: params.yaml: train.epochs: input should be greater",
        run.stderr,
        re.MULTILINE,
    ), run.stderr[-2000:]
    assert not [line for line in run.stderr.splitlines() if "cuda" in line.lower()]
    assert_nothing_lost(repo, baseline)
    # DVC's own doing: `-S` wrote the refused value into params.yaml and leaves it there, and
    # `git checkout -- params.yaml` may not see it (see the baseline fixture). The undo that
    # docs/experiments.md gives, by content:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["train"]["epochs"] == 0
    committed = sh("git", "show", "HEAD:params.yaml", cwd=repo).stdout
    (repo / "params.yaml").write_text(committed)
    assert_status_up_to_date(repo)


@pytest.mark.parametrize(
    ("setting", "said"),
    [
        ("train.batch_size=1000000000",
         "train.batch_size: input should be less than or equal to 60000 (got 1000000000)"),
        ("train.model.notebook_cnn.dense_units=100000000",
         "train.model.notebook_cnn.dense_units: 100,000,000 needs about 15.0 TB of memory"),
    ],
)  # fmt: skip
def test_an_experiment_that_cannot_run_is_refused_in_one_line(repo, baseline, setting, said):
    """`dvc exp run -S` of a value that cannot run: refused by check_params before TensorFlow
    loads, nothing lost (it was SIGABRT, or an out-of-memory kill minutes in)."""
    run = sh("dvc", "exp", "run", "-S", setting, cwd=repo, check=False)
    assert run.returncode != 0
    assert f"check_params: error: params.yaml: {said}" in run.stderr, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert not [line for line in run.stderr.splitlines() if "cuda" in line.lower()]
    assert_nothing_lost(repo, baseline)


def test_a_corrupt_raw_file_loses_nothing(repo, baseline):
    raw = repo / "data" / "raw" / mnist.TEST_LABELS.name
    os.chmod(raw, 0o644)  # DVC links cached files read-only
    raw.write_bytes(raw.read_bytes()[:-2])
    baseline = {**baseline, f"data/raw/{raw.name}": hashlib.md5(raw.read_bytes()).hexdigest()}
    run = sh("dvc", "repro", "-s", "preprocess", cwd=repo, check=False)
    assert run.returncode != 0
    assert f"preprocess: error: data/raw/{raw.name}: 10006 bytes" in run.stderr, run.stderr
    assert_nothing_lost(repo, baseline)


DVC = str(Path(sys.executable).parent / "dvc")  # this environment's, whatever PATH says


@pytest.fixture(scope="module")
def wrong_python(tmp_path_factory) -> str:
    """A PATH whose `python` is a bare one, not the locked environment, as after `.venv/bin/dvc
    repro` without activating it: every stage refuses to run."""
    bare = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run(
        [sys.base_prefix + "/bin/python3", "-m", "venv", "--without-pip", bare], check=True
    )
    return f"{bare / 'bin'}{os.pathsep}{os.environ['PATH']}"


def test_the_wrong_python_loses_nothing(repo, baseline, wrong_python):
    run = sh(DVC, "repro", "-f", "-s", "train", cwd=repo, check=False, PATH=wrong_python)
    assert run.returncode != 0
    assert "train: error: " in run.stderr and "is not the environment in requirements.lock" in (
        run.stderr
    )
    assert "Run `make setup`, then `source .venv/bin/activate`" in run.stderr
    assert "Traceback" not in run.stderr
    assert_nothing_lost(repo, baseline)
    assert_status_up_to_date(repo)


def start(cwd: Path, *args: str, **env: str) -> tuple[subprocess.Popen, Path]:
    """Start a command in its own process group (as a terminal runs it), output to a log."""
    log = cwd.parent / f"{cwd.name}-{time.monotonic_ns()}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            args, cwd=cwd, env={**ENV, "PYTHONUNBUFFERED": "1", **env},
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    return proc, log


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen, log: Path, limit_s=300):
    deadline = time.monotonic() + limit_s
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"finished before the moment to interrupt it:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"waited {limit_s} s in vain:\n{log.read_text()[-3000:]}")
        time.sleep(0.01)


def signal_group(proc: subprocess.Popen, signum: int) -> int:
    """Send `signum` to dvc and the stage under it, as Ctrl-C in a terminal does, and wait
    until every process of the group has ended (dvc may end before its stage does)."""
    os.killpg(proc.pid, signum)
    try:
        status = proc.wait(timeout=60)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return status
            time.sleep(0.05)
        raise TimeoutError("the stage outlived dvc by 60 s")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_train_ends_in_one_line_and_loses_nothing(repo, baseline, signum, status):
    write_params(repo / "params.yaml", epochs=3, train_images=6000)
    # DVC runs a stage's cmd with `$SHELL -c`. bash execs a lone command, so DVC sees the
    # stage's own exit status; dash (/bin/sh on Debian) stays as the parent and dies of the
    # SIGINT itself, and DVC then reports "exited with -2". Pin the shell that shows our status.
    proc, log = start(repo, "dvc", "repro", SHELL="/bin/bash")
    wait_for(lambda: "Epoch 2/3" in log.read_text(), proc, log)
    signal_group(proc, signum)
    output = log.read_text()
    assert "train: interrupted" in output, output[-3000:]
    if signum == signal.SIGINT:  # DVC itself ends at once on SIGTERM, without a word
        assert f"failed to run: python -m stages train, exited with {status}" in output
    assert "Traceback" not in output, output[-3000:]
    assert_nothing_lost(repo, baseline)
    assert "train:" in sh("dvc", "status", cwd=repo).stdout  # the params changed; not the outputs
    restore_params(repo)
    assert_status_up_to_date(repo)


def test_sigint_during_start_up_is_one_line_too(repo):
    proc, log = start(repo, sys.executable, "-m", "stages", "train")
    time.sleep(1.0)  # still importing TensorFlow
    assert signal_group(proc, signal.SIGINT) == 130
    assert log.read_text().strip().splitlines()[-1] == "train: interrupted"
    assert "Traceback" not in log.read_text()


def has_data(folder: Path) -> bool:
    return folder.is_dir() and any(p.is_file() and p.stat().st_size for p in folder.rglob("*"))


def test_sigkill_of_train_mid_epoch_loses_nothing(repo, baseline):
    write_params(repo / "params.yaml", epochs=3, train_images=6000)
    proc, log = start(repo, "dvc", "repro")
    wait_for(lambda: "Epoch 2/3" in log.read_text(), proc, log)
    signal_group(proc, signal.SIGKILL)
    assert output_md5s(repo) == baseline  # (a hidden, git-ignored partial may be left)
    untracked = sh("git", "status", "--porcelain", "--untracked-files=all", cwd=repo).stdout
    assert "??" not in untracked, untracked  # what a killed stage leaves is hidden and ignored
    restore_params(repo)
    assert_status_up_to_date(repo)


STAGE_GONE_S = 10  # how long a stage may outlive the dvc that started it


def group_ends(pgid: int, within_s: float) -> bool:
    """Whether every process of the group has ended within `within_s` (the caller has reaped
    its own child, dvc); what is left afterwards is killed."""
    deadline = time.monotonic() + within_s
    try:
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.05)
        return False
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)


def changed_outputs(repo: Path) -> dict[str, object]:
    """The stages whose outputs `dvc status` finds changed: outputs that dvc.lock does not
    record."""
    status = json.loads(sh("dvc", "status", "--json", cwd=repo).stdout)
    return {
        stage: change["changed outs"]
        for stage, changes in status.items()
        for change in changes
        if isinstance(change, dict) and "changed outs" in change
    }


@pytest.mark.parametrize(
    ("signum", "shell"),
    # bash execs the cmd (the stage is dvc's child), dash stays between them as its parent.
    [(signal.SIGTERM, "/bin/bash"), (signal.SIGKILL, "/bin/sh")],
    ids=["SIGTERM-bash", "SIGKILL-dash"],
)
def test_dvc_killed_alone_mid_train_leaves_no_stage_and_loses_nothing(
    repo, baseline, wrong_python, signum, shell
):
    """`kill <pid of dvc>`: dvc ends at once, without a word to its stage. The stage must stop
    within seconds and replace nothing (dvc.lock would not record it, and the uncommitted
    dvclive/ and provenance.json it replaced would be lost), and `dvc status` must say what
    it says after a run whose train refused."""
    write_params(repo / "params.yaml", epochs=3, train_images=6000)
    # A plain refused run with these params: check_params passes them, then train refuses.
    sh("dvc", "repro", "check_params", cwd=repo)
    refused = sh(DVC, "repro", cwd=repo, check=False, PATH=wrong_python)
    assert "train: error: " in refused.stderr, refused.stderr[-2000:]
    refused_status = json.loads(sh("dvc", "status", "--json", cwd=repo).stdout)
    lock = (repo / "dvc.lock").read_bytes()
    proc, log = start(repo, "dvc", "repro", SHELL=shell)
    try:
        wait_for(lambda: "Epoch 2/3" in log.read_text(), proc, log)
        os.kill(proc.pid, signum)  # dvc alone: the stage gets no signal from it
        assert proc.wait(timeout=60) == -signum
    finally:
        ended = group_ends(proc.pid, within_s=STAGE_GONE_S)
    output = log.read_text()
    assert ended, f"a stage outlived dvc by {STAGE_GONE_S} s:\n{output[-3000:]}"
    assert output.rstrip().endswith("train: interrupted"), output[-3000:]
    assert "Traceback" not in output
    assert_nothing_lost(repo, baseline)
    assert (repo / "dvc.lock").read_bytes() == lock
    assert json.loads(sh("dvc", "status", "--json", cwd=repo).stdout) == refused_status
    restore_params(repo)
    assert_status_up_to_date(repo)


def test_dvc_exp_run_killed_alone_mid_train_leaves_no_stage_and_loses_nothing(repo, baseline):
    proc, log = start(
        repo, "dvc", "exp", "run", "-S", "train.epochs=3", "-S", "train.train_images=6000"
    )
    try:
        wait_for(lambda: "Epoch 2/3" in log.read_text(), proc, log)
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        ended = group_ends(proc.pid, within_s=STAGE_GONE_S)
    output = log.read_text()
    assert ended, f"a stage outlived dvc by {STAGE_GONE_S} s:\n{output[-3000:]}"
    assert output.rstrip().endswith("train: interrupted"), output[-3000:]
    assert_nothing_lost(repo, baseline)
    assert changed_outputs(repo) == {}


def is_stage(cmdline: list[str]) -> bool:
    """`python -m stages <name>`, as dvc.yaml runs a stage."""
    return any(a == "-m" and b == "stages" for a, b in itertools.pairwise(cmdline))


def stage_processes(repo: Path) -> list[psutil.Process]:
    """The stages that dvc runs for `repo`, wherever they run (a queued experiment's in a
    temporary copy): DVC gives their commands DVC_ROOT."""
    found = []
    for proc in psutil.process_iter(["cmdline", "environ"], ad_value=None):
        cmdline, environ = proc.info["cmdline"] or [], proc.info["environ"] or {}
        if is_stage(cmdline) and (environ.get("DVC_ROOT") == str(repo)):
            found.append(proc)
    return found


def test_a_queued_experiment_killed_with_its_dvc_leaves_no_stage(repo, baseline):
    """`dvc queue kill --force` sends SIGKILL to the experiment's `dvc exp exec-run` alone."""
    sh("dvc", "exp", "run", "--queue", "-n", "killed", "-S", "train.epochs=3",
       "-S", "train.train_images=6000", cwd=repo)  # fmt: skip
    start_log = repo / ".dvc" / "tmp" / "queue-start.log"  # as in test_compare.py: not a pipe
    stages: list[psutil.Process] = []
    try:
        with open(start_log, "w") as out:
            subprocess.run(["dvc", "queue", "start"], cwd=repo, env=ENV, stdout=out,
                           stderr=subprocess.STDOUT, timeout=120, check=True)  # fmt: skip
        # The experiment's output: .dvc/tmp/exps/run/<its stash commit>/<the same>.out
        logs = (repo / ".dvc" / "tmp" / "exps" / "run").glob
        deadline = time.monotonic() + 300
        while not any("Epoch 2/3" in out.read_text() for out in logs("*/*.out")):
            assert time.monotonic() < deadline, sh("dvc", "queue", "status", cwd=repo).stdout
            time.sleep(0.1)
        stages = stage_processes(repo)
        assert stages, "no stage runs"
        sh("dvc", "queue", "kill", "--force", "killed", cwd=repo)
        _, alive = psutil.wait_procs(stages, timeout=STAGE_GONE_S)
        assert not alive, f"a stage outlived dvc by {STAGE_GONE_S} s: {alive}"
        assert any("train: interrupted" in out.read_text() for out in logs("*/*.out"))
    finally:
        for stage in stages:
            with contextlib.suppress(psutil.NoSuchProcess):
                stage.kill()
        sh("dvc", "queue", "stop", "--kill", cwd=repo, check=False)
        stop_queue_workers(repo)
    assert_nothing_lost(repo, baseline)


def test_sigkill_of_preprocess_while_it_writes_loses_nothing(repo, baseline):
    proc, log = start(repo, "dvc", "repro", "-f", "preprocess")
    wait_for(lambda: has_data(repo / "data" / ".prepared.partial"), proc, log)
    signal_group(proc, signal.SIGKILL)
    assert (repo / "data" / ".prepared.partial").exists()  # left, hidden and git-ignored
    assert output_md5s(repo) == baseline
    assert_status_up_to_date(repo)
    sh("dvc", "repro", "-f", "-s", "preprocess", cwd=repo)
    assert not list(repo.rglob("*.partial")), "the stage's next run removes what was left"
    assert output_md5s(repo) == baseline  # and writes the same bytes


def test_sigkill_of_fetch_while_it_downloads_loses_nothing(repo, baseline, gz_dir, tmp_path):
    empty_cache = tmp_path / "cache"
    with serve_mirror(gz_dir) as url:
        write_sources(repo / "sources.yaml", [f"{url}/throttled/"])
        proc, log = start(repo, "dvc", "repro", "fetch", MNIST_CACHE_DIR=str(empty_cache))
        wait_for(lambda: has_data(repo / "data" / ".raw.partial"), proc, log)
        signal_group(proc, signal.SIGKILL)
    assert {k: v for k, v in output_md5s(repo).items() if k.startswith("data/raw")} == {
        k: v for k, v in baseline.items() if k.startswith("data/raw")
    }
    assert not any(empty_cache.iterdir()) if empty_cache.exists() else True
    sh("git", "checkout", "--", "sources.yaml", cwd=repo)
    assert_status_up_to_date(repo)


def test_a_second_repro_is_refused_while_one_runs(repo, baseline):
    proc, log = start(repo, "dvc", "repro", "-f", "train")
    wait_for(lambda: "Running stage 'train'" in log.read_text(), proc, log)
    second = sh("dvc", "repro", cwd=repo, check=False)
    assert second.returncode != 0
    # DVC's read/write lock on the outputs names the run that holds them.
    assert "is busy, it is being blocked by" in second.stderr, second.stderr
    assert f"(PID {proc.pid})" in second.stderr
    assert proc.wait(timeout=600) == 0, log.read_text()[-3000:]
    assert output_md5s(repo) == baseline  # deterministic: the forced run wrote the same bytes
    assert_status_up_to_date(repo)
