"""`mnist-sweep`: a grid of experiments on a real two-node Ray cluster on this machine (a head and
a second node, each one CPU, started here and stopped by PID), sharing its results through a
bare git repository (`origin`) and a local-folder DVC remote, as a team's machines would (and,
in the last test, S3 on a real Ceph gateway, its credentials travelling with the tasks).

The prepared data is pushed to the DVC remote first, as it would be after anyone's `dvc repro`;
the tasks pull it from there and never fetch MNIST. Sweeps run up to `evaluate` (the stages
after it, the model card and the exports, take as long as training here and prove nothing more
about sweeping) with quick runs: 1 epoch on 2000 images.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import yaml

from mnist_dvc.sweep import grid as sweep_grid
from mnist_dvc.sweep.cli import DEFAULT_PULL
from stages.evaluate import evaluate
from tests.helpers import ENV, make_repo, sh
from tests.servers import free_port, wait_until

pytestmark = pytest.mark.slow  # a Ray cluster, dvc exp run, trainings

pytest.importorskip("ray", reason="the sweep extra is not installed: pip install -e '.[sweep]'")

MNIST_SWEEP = str(Path(sys.executable).parent / "mnist-sweep")
QUICK = ("-S", "train.epochs=1", "-S", "train.train_images=2000")
GRID = (*QUICK, "-S", "train.optimizer.learning_rate=0.5,1.0", "-S", "train.seed=1,2")
TARGET = "evaluate"
# Ray's token authentication, with a token of these tests only: not ~/.ray/auth_token, which
# other Ray clusters on this machine may write.
RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "token",
    "RAY_AUTH_TOKEN": secrets.token_hex(32),
}
SWEEP_TIMEOUT_S = 900


@dataclass
class Team:
    origin: Path  # the bare git repository every node clones and pushes to
    storage: Path  # the DVC remote (a local folder)
    driver: Path  # the clone where the sweep is started
    commit: str


@dataclass
class Cluster:
    address: str
    head: subprocess.Popen
    node: subprocess.Popen  # the second node
    logs: Path


def sweep(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    return sh(MNIST_SWEEP, *args, cwd=cwd, check=check, **RAY_ENV)


@pytest.fixture(scope="module")
def team(tmp_path_factory, real_raw_dir) -> Team:
    """origin.git and the DVC remote, with this work tree committed and its prepared data
    pushed; the driver is the clone the data was made in. The committed .dvc/config keeps its
    relative remote path (`../../mnist-dvc-storage`), which the sweep makes absolute for its
    tasks, whose clones are elsewhere."""
    base = tmp_path_factory.mktemp("team")
    origin = base / "origin.git"
    sh("git", "init", "-q", "--bare", "-b", "main", str(origin), cwd=base)
    driver = make_repo(base / "driver")
    # fetch and fetch_ood (from the download cache), preprocess, prepare_ood and
    # prepare_drawings: what the tasks pull (mnist-sweep's DEFAULT_PULL)
    sh("dvc", "repro", "preprocess", "prepare_ood", "prepare_drawings", cwd=driver)
    sh("git", "add", "-A", cwd=driver)
    sh("git", "commit", "-qm", "prepared data", "--allow-empty", cwd=driver)
    sh("dvc", "push", cwd=driver)
    sh("git", "remote", "add", "origin", str(origin), cwd=driver)
    sh("git", "push", "-q", "origin", "main", cwd=driver)
    commit = sh("git", "rev-parse", "HEAD", cwd=driver).stdout.strip()
    return Team(origin, base / "mnist-dvc-storage", driver, commit)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """`ray start --block` twice, as child processes, one CPU each; stopped by PID."""
    # Ray's socket paths must stay short: its own temp folder under /tmp, not pytest's.
    logs = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    port = free_port()
    common = [
        "--node-ip-address=127.0.0.1",
        "--num-cpus=1",
        "--disable-usage-stats",
        "--object-store-memory=100000000",
        "--block",
    ]
    env = {**ENV, **RAY_ENV}
    started: list[subprocess.Popen] = []
    try:
        head = start(
            [
                "ray",
                "start",
                "--head",
                f"--port={port}",
                "--include-dashboard=false",
                f"--temp-dir={logs}",
                *common,
            ],
            logs / "head.log",
            env,
        )
        started.append(head)
        wait_until(lambda: "Ray runtime started" in read(logs / "head.log"), "Ray head", 120)
        (logs / "node").mkdir()  # not /tmp/ray, Ray's default, shared with the machine
        node = start(
            ["ray", "start", f"--address=127.0.0.1:{port}", f"--temp-dir={logs / 'node'}", *common],
            logs / "node.log",
            env,
        )
        started.append(node)
        wait_until(lambda: "Ray runtime started" in read(logs / "node.log"), "Ray node", 120)
        yield Cluster(f"127.0.0.1:{port}", head, node, logs)
    finally:
        for proc in reversed(started):  # the second node first, then the head
            stop(proc)
        shutil.rmtree(logs, ignore_errors=True)


def start(cmd: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)


def read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def stop(proc: subprocess.Popen) -> None:
    """`ray start --block` ends its node's processes when it gets SIGTERM."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        for child in psutil.Process(proc.pid).children(recursive=True):
            child.kill()
        proc.kill()
        proc.wait(timeout=30)


def remote_exps(team: Team) -> dict[str, str]:
    """{experiment name: commit} of the experiments on origin for the team's commit."""
    listed = sh("git", "ls-remote", str(team.origin), "refs/exps/*", cwd=team.driver).stdout
    prefix = f"refs/exps/{team.commit[:2]}/{team.commit[2:]}/"
    refs = (line.split("\t") for line in listed.splitlines())
    return {ref.removeprefix(prefix): sha for sha, ref in refs if ref.startswith(prefix)}


def progress(output: str) -> dict[str, tuple[str, str, str]]:
    """{name: (status, node, message)} from the `[i/n] name params: status on node (...)` lines."""
    found = {}
    for line in output.splitlines():
        hit = re.match(
            r"^\[\d+/\d+\] (sweep-\w+) .*?: (\w+)(?: on (\S+))?(?: \(.*?\))?: (.*)$", line
        )
        if hit:
            found[hit[1]] = (hit[2], hit[3] or "", hit[4])
    return found


def names(team: Team, *options: str, target: str = TARGET) -> list[str]:
    sets = [options[i + 1] for i in range(0, len(options), 2)]
    return [e.name for e in sweep_grid.expand(sets, team.commit, (target,))]


# The first sweep: four quick experiments over both nodes.


@pytest.fixture(scope="module")
def first_sweep(team, cluster, tmp_path_factory) -> subprocess.CompletedProcess:
    workdir = tmp_path_factory.mktemp("clones")
    run = sweep(
        *GRID,
        "--address",
        cluster.address,
        "--cpus",
        "1",
        "--workdir",
        str(workdir),
        TARGET,
        cwd=team.driver,
    )
    print(run.stdout, run.stderr)
    # Every clone is gone, whatever happened to it; the node's DVC cache stays for the next.
    assert [p.name for p in workdir.iterdir()] == ["mnist-sweep-cache"]
    return run


def test_the_sweep_runs_every_experiment_across_both_nodes(team, first_sweep):
    expected = names(team, *GRID)
    done = progress(first_sweep.stdout)
    assert sorted(done) == sorted(expected), first_sweep.stdout
    assert all(status == "done" for status, _, _ in done.values()), first_sweep.stdout
    assert len({node for _, node, _ in done.values()}) == 2, "both nodes ran experiments"
    assert sorted(remote_exps(team)) == sorted(expected)
    assert "4 done, 0 failed, 0 skipped" in first_sweep.stdout
    # The driver pulled them: its own `dvc exp show` lists them, with the swept params.
    for name in expected:
        assert name in first_sweep.stdout
    assert "train.optimizer.learning_rate" in first_sweep.stdout


def exp_rows(repo: Path) -> dict[str, dict]:
    rows = json.loads(sh("dvc", "exp", "show", "--json", cwd=repo).stdout)
    return {
        rev["name"]: rev["data"]
        for row in rows
        for exp in row.get("experiments") or []
        for rev in exp.get("revs") or []
    }


def test_a_fresh_clone_pulls_the_experiments_and_their_models(
    team, first_sweep, tmp_path, real_prepared_dir
):
    fresh = clone_with_remote(team, tmp_path / "fresh")
    assert not (fresh / ".dvc" / "cache").exists()
    sh("dvc", "exp", "pull", "origin", cwd=fresh)  # git refs, and the outputs from the remote
    rows = exp_rows(fresh)
    on_origin = remote_exps(team)
    seen = set()
    for name in names(team, *GRID):
        data = rows[name]
        params = data["params"]["params.yaml"]["data"]["train"]
        metrics = data["metrics"]["metrics.json"]["data"]
        assert params["epochs"] == 1 and params["train_images"] == 2000
        seen.add((params["optimizer"]["learning_rate"], params["seed"]))
        assert 0.1 < metrics["accuracy"] <= 1
        # The experiment's model, pulled from the DVC remote, scores what its metrics.json says.
        model_json, model_h5 = model_of(fresh, on_origin[name], tmp_path / name)
        scored, _, _, _ = evaluate(real_prepared_dir, model_json, model_h5, 1000, "portable")
        assert scored["accuracy"] == metrics["accuracy"], name
        assert scored["loss"] == metrics["loss"], name  # portable: the same bits anywhere
    assert seen == {(0.5, 1), (0.5, 2), (1.0, 1), (1.0, 2)}


def clone_with_remote(team: Team, dest: Path) -> Path:
    sh("git", "clone", "-q", str(team.origin), str(dest), cwd=dest.parent)
    # Its .dvc/config says ../../mnist-dvc-storage, relative to its own .dvc: not beside it.
    sh("dvc", "remote", "modify", "--local", "local", "url", str(team.storage), cwd=dest)
    return dest


def model_of(repo: Path, commit: str, dest: Path) -> tuple[Path, Path]:
    """An experiment's model.json and model.h5, from the DVC cache by what its dvc.lock
    records (`dvc exp apply` would also want the outputs of the stages after the target)."""
    lock = yaml.safe_load(sh("git", "show", f"{commit}:dvc.lock", cwd=repo).stdout)
    md5s = {out["path"]: out["md5"] for out in lock["stages"]["train"]["outs"]}
    dest.mkdir()
    for name in ("model.json", "model.h5"):
        md5 = md5s[f"models/{name}"]
        shutil.copy(repo / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:], dest / name)
    return dest / "model.json", dest / "model.h5"


def test_the_same_sweep_again_runs_nothing(team, first_sweep, cluster):
    before = remote_exps(team)
    again = sweep(*GRID, "--address", cluster.address, "--cpus", "1", TARGET, cwd=team.driver)
    assert "4 already on origin (skipped), 0 to run" in again.stdout
    assert "0 done, 0 failed, 4 skipped" in again.stdout
    assert remote_exps(team) == before


# User errors: one line on stderr, no traceback, before anything runs.


def test_user_errors_are_one_line(team, cluster, tmp_path):
    cases = [
        (("-S", "train.seed"), "expected KEY=VALUE"),
        (("-S", "train.seed=1,,2"), "an empty value"),
        (("-S", "train.x=[1,2"), "unclosed"),
        (("-S", "train.seed=1", "--git-remote", "nowhere"), "no git remote 'nowhere'"),
        (
            ("-S", "train.seed=7", "--address", f"127.0.0.1:{free_port()}"),
            "cannot reach the Ray cluster",
        ),
        (
            ("-S", "train.seed=7", "--address", cluster.address, "--cpus", "3"),
            "no node of the Ray cluster has that many",
        ),
    ]
    for args, says in cases:
        run = sweep(*args, cwd=team.driver, check=False)
        assert run.returncode in (1, 2), (args, run.stdout, run.stderr)
        assert run.stderr.strip().startswith("mnist-sweep: error: ") and says in run.stderr, args
        assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    # A commit that was never pushed: the tasks could not clone it.
    unpushed = tmp_path / "unpushed"
    sh("git", "clone", "-q", str(team.origin), str(unpushed), cwd=tmp_path)
    sh("git", "commit", "-q", "--allow-empty", "-m", "local only", cwd=unpushed)
    run = sweep("-S", "train.seed=7", cwd=unpushed, check=False)
    assert run.returncode == 1 and "is not on origin" in run.stderr, run.stderr


def test_without_ray_the_tasks_run_in_this_process(team, first_sweep, tmp_path):
    # `import ray` fails, as when the sweep extra is not installed.
    code = (
        "import sys; sys.modules['ray'] = None; "
        "from mnist_dvc.sweep.cli import main; sys.exit(main())"
    )
    # One experiment of the first sweep (on origin already: skipped) and an invalid one.
    grid = (*GRID[:2], "-S", "train.train_images=2000,0", "-S", "train.optimizer.learning_rate=0.5",
            "-S", "train.seed=1")  # fmt: skip
    run = sh(sys.executable, "-c", code, *grid, "--cpus", "1", "--workdir", str(tmp_path), TARGET,
             cwd=team.driver, check=False, **RAY_ENV)  # fmt: skip
    assert "1 already on origin (skipped), 1 to run" in run.stdout, run.stdout
    assert "ray is not installed: running 1 experiment in this process instead" in run.stdout
    assert run.returncode == 1
    assert "train: error: params.yaml: train.train_images" in run.stderr, run.stderr
    auto = sh(sys.executable, "-c", code, "-S", "train.seed=7", "--address", "auto",
              cwd=team.driver, check=False)  # fmt: skip
    assert auto.returncode == 1 and "ray is not installed" in auto.stderr


# Faults on the cluster: an invalid experiment beside two valid ones, and the second node's
# raylet killed while it trains one of them. Last: the cluster has one node afterwards. Up to
# `train` only: these need no metrics, and a stage less is half a minute less per experiment.
# Which node Ray gives each task is its choice: with three tasks and two one-CPU nodes, the
# second node trains a valid experiment at some point.
HARD = ("-S", "train.epochs=1", "-S", "train.seed=3", "-S", "train.train_images=0,1000,2000")
HARD_TARGET = "train"


@dataclass
class HardSweep:
    run: subprocess.CompletedProcess
    killed: str  # the experiment the second node was training
    node_id: str  # the second node's
    orphans: list[psutil.Process]  # what was left of its processes after the kill


@pytest.fixture(scope="module")
def hard_sweep(team, cluster, tmp_path_factory) -> HardSweep:
    workdir = tmp_path_factory.mktemp("hard-clones")
    _, *valid = names(team, *HARD, target=HARD_TARGET)
    raylet = raylet_of(cluster.node)
    node_id = re.search(r"--node[_-]id=(\w+)", " ".join(raylet.cmdline()))[1]
    out = workdir.parent / "hard-sweep.out"
    command = [MNIST_SWEEP, *HARD, "--address", cluster.address, "--cpus", "1",
               "--workdir", str(workdir), HARD_TARGET]  # fmt: skip
    with open(out, "w") as log:
        proc = subprocess.Popen(command, cwd=team.driver, env={**ENV, **RAY_ENV}, stdout=log,
                                stderr=subprocess.STDOUT)  # fmt: skip
        try:
            killed, training = wait_for_training(valid, raylet, limit_s=400)
            time.sleep(3)  # well inside its training
            raylet.kill()
            # The dead node's worker notices within seconds and exits; the task's guard then
            # ends the stage (with a loaded CPU, that took 15-40 s here).
            _, orphans = psutil.wait_procs([training], timeout=90)
            proc.wait(timeout=SWEEP_TIMEOUT_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    output = out.read_text()
    print(output)
    run = subprocess.CompletedProcess(command, proc.returncode, output, output)
    return HardSweep(run, killed, node_id, orphans)


def raylet_of(node: subprocess.Popen) -> psutil.Process:
    return next(
        p for p in psutil.Process(node.pid).children(recursive=True) if p.name() == "raylet"
    )


def wait_for_training(
    names: list[str], raylet: psutil.Process, limit_s: float
) -> tuple[str, psutil.Process]:
    """The train stage of one of `names` running on the raylet's node (Ray's workers are its
    children; a task's clone is named `<experiment>-<random>`)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        for proc in raylet.children(recursive=True):
            try:
                if "-m stages train" not in " ".join(proc.cmdline()):
                    continue
                clone = Path(proc.cwd()).name
            except psutil.Error:
                continue
            for name in names:
                if clone.startswith(f"{name}-"):
                    return name, proc
        time.sleep(0.5)
    pytest.fail(f"the second node trained none of {names} in {limit_s} s")


def test_an_invalid_experiment_fails_alone_with_its_message(team, hard_sweep):
    invalid, *valid = names(team, *HARD, target=HARD_TARGET)
    lines = progress(hard_sweep.run.stdout)
    assert lines[invalid][0] == "failed"
    assert lines[invalid][2].startswith("train: error: params.yaml: train.train_images: ")
    assert all(lines[name][0] == "done" for name in valid), hard_sweep.run.stdout
    assert hard_sweep.run.returncode == 1
    assert "2 done, 1 failed" in hard_sweep.run.stdout
    assert f"mnist-sweep: failed: {invalid} (train.train_images=0): train: error:" in (
        hard_sweep.run.stdout
    )
    assert invalid not in remote_exps(team)


def test_a_task_whose_node_dies_runs_again_on_another(team, cluster, hard_sweep, tmp_path):
    assert hard_sweep.orphans == [], "the killed task's stage went on training"
    assert cluster.node.wait(timeout=60) is not None  # `ray start --block` ended with its raylet
    status, node, _ = progress(hard_sweep.run.stdout)[hard_sweep.killed]
    assert status == "done" and hard_sweep.node_id[:8] not in node
    # Whole on the remotes: the ref on origin, its model on the DVC remote.
    on_origin = remote_exps(team)
    assert hard_sweep.killed in on_origin
    check = clone_with_remote(team, tmp_path / "check")
    sh("dvc", "exp", "pull", "origin", hard_sweep.killed, cwd=check)
    model_json, model_h5 = model_of(check, on_origin[hard_sweep.killed], tmp_path / "model")
    assert model_h5.stat().st_size > 0 and model_json.stat().st_size > 0


# The guard alone: its command dies with the process that started it.


PARENT = """
import os, subprocess, sys, time
guard = [sys.executable, "-m", "mnist_dvc.sweep.guard", str(os.getpid()), "--"]
subprocess.Popen([*guard, "sh", "-c", f"echo $$ > {sys.argv[1]}; sleep 300"])
time.sleep(300)
"""


def test_the_guard_ends_its_command_when_its_parent_dies(tmp_path):
    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(pid_file)], env=ENV)
    try:
        wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), "the command", 30)
        child = psutil.Process(int(pid_file.read_text()))
        parent.kill()
        parent.wait(timeout=10)
        _, alive = psutil.wait_procs([child], timeout=20)
        assert alive == []
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


# The grid and the names, without running anything.


def test_the_grid_is_every_combination_named_from_commit_targets_and_params():
    commit = "c0ffee" * 6 + "0000"
    grid = ["train.seed=1,2", "train.x=[1,2],'a,b'"]
    exps = sweep_grid.expand(grid, commit, ("evaluate",))
    assert [e.overrides for e in exps] == [
        ("train.seed=1", "train.x=[1,2]"),
        ("train.seed=1", "train.x='a,b'"),
        ("train.seed=2", "train.x=[1,2]"),
        ("train.seed=2", "train.x='a,b'"),
    ]
    assert exps[0].label == "train.seed=1 train.x=[1,2]"
    assert len({e.name for e in exps}) == 4
    assert all(re.fullmatch(r"sweep-[0-9a-f]{10}", e.name) for e in exps)
    # The order of the options does not matter; the commit and the targets do.
    named = {e.name for e in exps}
    assert names_of(grid[::-1], commit, ("evaluate",)) == named
    assert names_of(grid, "f" * 40, ("evaluate",)).isdisjoint(named)
    assert names_of(grid, commit, ()).isdisjoint(named)


def names_of(options: list[str], commit: str, targets: tuple[str, ...]) -> set[str]:
    return {e.name for e in sweep_grid.expand(options, commit, targets)}


def test_failure_reasons_are_the_stage_s_own_line():
    from mnist_dvc.sweep.results import failure_reason

    output = (
        "Running stage 'train':\n> python -m stages train\n"
        "E0000 00:00:1 cuda_platform.cc:52] failed call to cuInit\n"
        "train: error: params.yaml: train.epochs: input should be greater than or equal to 1\n"
        "ERROR: failed to reproduce 'train': failed to run: python -m stages train, exited with 1\n"
    )
    assert failure_reason(output) == (
        "train: error: params.yaml: train.epochs: input should be greater than or equal to 1"
    )
    assert failure_reason("ERROR: failed to reproduce 'x': boom\n") == (
        "failed to reproduce 'x': boom"
    )


def test_a_clone_folder_is_made_when_missing_and_refused_in_one_line_when_impossible(tmp_path):
    from mnist_dvc.sweep.task import InfraError, Job, make_workdir

    def job(workdir: Path) -> Job:
        return Job("url", "c" * 40, "sweep-x", (), (), (), 1, {}, None, str(workdir))

    clone = make_workdir(job(tmp_path / "not" / "yet"))
    assert clone.is_dir() and clone.parent == tmp_path / "not" / "yet"
    (tmp_path / "a-file").write_text("")
    with pytest.raises(InfraError, match=r"^cannot make a clone in .*a-file/x: "):
        make_workdir(job(tmp_path / "a-file" / "x"))


# S3 as the DVC remote: the same sweep path, with credentials that travel with the tasks.


def test_a_sweep_shares_its_outputs_through_an_s3_remote(team, cluster, tmp_path):
    from tests.servers import ceph_rgw

    with ceph_rgw(tmp_path / "ceph") as s3:
        s3.make_bucket("sweeps")
        driver = clone_with_remote(team, tmp_path / "s3-driver")
        sh("dvc", "pull", "-q", *DEFAULT_PULL, cwd=driver)  # from the team's local remote
        sh("dvc", "remote", "add", "-d", "-f", "s3", "s3://sweeps/dvc", cwd=driver)
        sh("dvc", "remote", "modify", "s3", "endpointurl", s3.endpoint, cwd=driver)
        for option, value in (("access_key_id", s3.access_key),
                              ("secret_access_key", s3.secret_key)):  # fmt: skip
            sh("dvc", "remote", "modify", "--local", "s3", option, value, cwd=driver)
        sh("git", "commit", "-qam", "Sweeps share through S3", cwd=driver)
        sh("git", "push", "-q", "origin", "HEAD:s3", cwd=driver)
        sh("dvc", "push", "-q", *DEFAULT_PULL, cwd=driver)  # to S3, the new default
        grid = (*QUICK, "-S", "train.seed=7")
        run = sweep(*grid, "--address", cluster.address, "--cpus", "1", "--workdir",
                    str(tmp_path / "clones"), "train", cwd=driver)  # fmt: skip
        assert "1 done, 0 failed" in run.stdout, run.stdout + run.stderr
        commit = sh("git", "rev-parse", "HEAD", cwd=driver).stdout.strip()
        (name,) = [e.name for e in sweep_grid.expand(list(grid[1::2]), commit, ("train",))]
        listed = sh("git", "ls-remote", str(team.origin), f"refs/exps/*/{name}", cwd=driver)
        ((exp_commit, ref),) = [line.split("\t") for line in listed.stdout.splitlines()]
        sh("git", "fetch", "-q", str(team.origin), f"{ref}:{ref}", cwd=driver)
        lock = yaml.safe_load(sh("git", "show", f"{exp_commit}:dvc.lock", cwd=driver).stdout)
        model_md5 = {o["path"]: o["md5"] for o in lock["stages"]["train"]["outs"]}
        import s3fs

        bucket = s3fs.S3FileSystem(key=s3.access_key, secret=s3.secret_key,
                                   client_kwargs={"endpoint_url": s3.endpoint})  # fmt: skip
        for path in ("models/model.json", "models/model.h5"):
            md5 = model_md5[path]
            assert bucket.exists(f"sweeps/dvc/files/md5/{md5[:2]}/{md5[2:]}"), path
