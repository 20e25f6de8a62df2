"""Comparing model versions on real git history: two branches that differ in params, each
with its own committed run, compared by metrics, params and plots (drawn offline in headless
Chromium), plus experiments, queued ones included, and the model card."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.helpers import ENV, REPO_ROOT, sh, stop_queue_workers, write_params
from tests.servers import require

pytestmark = pytest.mark.slow  # runs stages, dvc, servers or a browser

ARTIFACTS = REPO_ROOT / "test-artifacts"
TEMPLATE = REPO_ROOT / "build" / "plots.html"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run")  # fmt: skip


@pytest.fixture(scope="module")
def repo(quick_run, tmp_path_factory) -> Path:
    """branch-a: the quick run (1 epoch); branch-b, from it: 2 epochs; each reproduced and
    committed."""
    if not TEMPLATE.is_file():
        pytest.fail(f"{TEMPLATE} is missing: `make setup` builds it")
    repo = quick_run.copy(tmp_path_factory.mktemp("compare") / "repo", commit=False)
    (repo / "build").mkdir()
    shutil.copy(TEMPLATE, repo / "build" / "plots.html")  # what `make setup` makes in a clone
    for branch, epochs in (("branch-a", 1), ("branch-b", 2)):
        sh("git", "checkout", "-q", "-b", branch, cwd=repo)
        write_params(repo / "params.yaml", epochs=epochs, train_images=2000)
        sh("dvc", "repro", cwd=repo)
        sh("git", "add", "-A", cwd=repo)
        sh("git", "commit", "-qm", f"quick run, {epochs} epoch(s)", cwd=repo)
    return repo


@pytest.fixture(scope="module")
def cacheless_clone(repo, tmp_path_factory) -> Path:
    """A plain git clone: no DVC cache, no data, no model."""
    dest = tmp_path_factory.mktemp("cacheless") / "clone"
    sh("git", "clone", "-q", "--branch", "branch-b", str(repo), str(dest), cwd=repo.parent)
    sh("git", "branch", "-q", "branch-a", "origin/branch-a", cwd=dest)
    assert not (dest / ".dvc" / "cache").exists()
    return dest


def committed_metrics(repo: Path, branch: str) -> dict:
    return json.loads(sh("git", "show", f"{branch}:metrics.json", cwd=repo).stdout)


def test_metrics_diff_across_branches_without_a_cache(repo, cacheless_clone):
    diff = json.loads(
        sh("dvc", "metrics", "diff", "branch-a", "branch-b", "--json", cwd=cacheless_clone).stdout
    )
    a, b = committed_metrics(repo, "branch-a"), committed_metrics(repo, "branch-b")
    for key in ("accuracy", "loss"):
        change = diff["metrics.json"][key]
        assert (change["old"], change["new"]) == (a[key], b[key])
        assert change["diff"] == pytest.approx(b[key] - a[key], abs=1e-9)
    text = sh("dvc", "metrics", "diff", "branch-a", "branch-b", cwd=cacheless_clone).stdout
    assert "metrics.json" in text and "accuracy" in text and "branch-a" in text


def test_params_diff_shows_exactly_what_changed(repo, cacheless_clone):
    diff = json.loads(
        sh("dvc", "params", "diff", "branch-a", "branch-b", "--json", cwd=cacheless_clone).stdout
    )
    assert diff == {"params.yaml": {"train.epochs": {"old": 1, "new": 2, "diff": 1}}}


def render(url: str, screenshot: Path) -> str:
    """Load a page in headless Chromium: save a screenshot and return the DOM it built."""
    require(("chromium",), "chromium")
    profile = screenshot.parent / f".chromium-{screenshot.stem}"
    common = [*CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=15000"]
    run = subprocess.run(["chromium", *common, "--window-size=1300,2000",
                          f"--screenshot={screenshot}", url],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0 and screenshot.is_file(), run.stderr[-2000:]
    dom = subprocess.run(["chromium", *common, "--dump-dom", url],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    shutil.rmtree(profile, ignore_errors=True)
    return dom.stdout


def assert_charts_drawn(html: Path, name: str, expected_charts: int) -> None:
    page = html.read_text()
    assert "cdn.jsdelivr" not in page and "<script src=" not in page  # nothing from the network
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / f"{name}.png"
    dom = render(html.as_uri(), screenshot)
    # vega-embed puts a rendered chart into each plot's div: a canvas with the marks.
    assert dom.count('class="marks"') >= expected_charts, dom[:2000]
    pixels = np.asarray(Image.open(screenshot).convert("L"))
    assert (pixels < 200).mean() > 0.01, "the screenshot is (nearly) blank"


def test_plots_show_draws_offline(repo):
    out = repo.parent / "plots-show"
    sh("dvc", "plots", "show", "-o", str(out), cwd=repo)
    assert_charts_drawn(out / "index.html", "plots-show", expected_charts=3)


def test_plots_diff_across_branches_draws_offline(repo, cacheless_clone):
    (cacheless_clone / "build").mkdir(exist_ok=True)
    shutil.copy(TEMPLATE, cacheless_clone / "build" / "plots.html")
    out = cacheless_clone.parent / "plots-diff"
    sh("dvc", "plots", "diff", "branch-a", "branch-b", "-o", str(out), cwd=cacheless_clone)
    page = (out / "index.html").read_text()
    assert "branch-a" in page and "branch-b" in page
    assert_charts_drawn(out / "index.html", "plots-diff", expected_charts=3)


def test_the_model_card(repo):
    sh("git", "checkout", "-q", "branch-b", cwd=repo)
    card = (repo / "reports" / "model.md").read_text()
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    for out in lock["stages"]["train"]["outs"]:
        if out["path"] in ("models/model.json", "models/model.h5"):  # the card's files
            assert f"| `{out['path']}` | `{out['md5']}` |" in card
    metrics = json.loads((repo / "metrics.json").read_text())
    assert f"Test accuracy **{metrics['accuracy']:.4f}**" in card
    assert "| `train.epochs` | 2 |" in card
    assert "![confusion matrix](confusion.png)" in card
    picture = Image.open(repo / "reports" / "confusion.png")
    assert picture.size[0] > 400 and picture.size[0] == picture.size[1]


def exp_rows(repo: Path) -> list[dict]:
    return json.loads(sh("dvc", "exp", "show", "--json", cwd=repo).stdout)


def _experiments(rows: list[dict]) -> list[dict]:
    found = []
    for row in rows:
        for exp in row.get("experiments") or []:
            found.extend(exp.get("revs") or [])
    return found


def _value(exp: dict, section: str, file: str, key: str):
    data = exp["data"][section][file]["data"]
    for part in key.split("."):
        data = data[part]
    return data


def test_exp_run_and_show(repo):
    sh("git", "checkout", "-q", "branch-b", cwd=repo)
    sh("dvc", "exp", "run", "-n", "three-epochs", "-S", "train.epochs=3",
       "-S", "train.train_images=1000", cwd=repo)  # fmt: skip
    exps = {exp["name"]: exp for exp in _experiments(exp_rows(repo))}
    exp = exps["three-epochs"]
    assert _value(exp, "params", "params.yaml", "train.epochs") == 3
    assert 0 < _value(exp, "metrics", "metrics.json", "accuracy") < 1
    table = sh("dvc", "exp", "show", "--no-pager", "--md", cwd=repo).stdout
    assert "three-epochs" in table and "train.epochs" in table and "accuracy" in table
    # What users compare leads: the test accuracy and loss first, the sources nowhere.
    header = table.splitlines()[0]
    assert header.index("accuracy") < header.index("loss") < header.index("train.")
    assert "fetch.sources" not in header and "| sources " not in header  # not a param column
    sh("git", "checkout", "-q", "--", ".", cwd=repo)  # exp run left its params in the work tree
    sh("dvc", "checkout", "-q", cwd=repo)


def test_queued_experiments_run_two_at_a_time(repo):
    sh("git", "checkout", "-q", "branch-b", cwd=repo)
    for name, images in (("queued-a", 500), ("queued-b", 800)):
        sh("dvc", "exp", "run", "--queue", "-n", name, "-S", "train.epochs=1",
           "-S", f"train.train_images={images}", cwd=repo)  # fmt: skip
    # `dvc queue start` forks processes that wait on its workers and inherit its stdout and
    # stderr: captured in pipes, sh() would wait for every worker to end. One of two workers
    # once never ended (its own "shutting down due to empty queue" came while its task ran,
    # and was lost), which hung CI: the output goes to a file, and `dvc queue stop`, then the
    # workers' PIDs, stop them.
    log = repo / ".dvc" / "tmp" / "queue-start.log"
    with open(log, "w") as out:
        started = subprocess.run(["dvc", "queue", "start", "--jobs", "2"], cwd=repo, env=ENV,
                                 stdout=out, stderr=subprocess.STDOUT, timeout=120)  # fmt: skip
    if started.returncode != 0:
        pytest.fail(f"dvc queue start failed ({started.returncode}):\n{log.read_text()[-3000:]}")
    try:
        deadline = time.monotonic() + 900
        while True:
            asked = sh("dvc", "queue", "status", cwd=repo, check=False)
            # DVC reads a running experiment's info file while its worker writes it, and then
            # fails with "Expecting value: line 1 column 1" (seen once in CI): ask again.
            if asked.returncode != 0 and "Expecting value" in asked.stdout + asked.stderr:
                assert time.monotonic() < deadline, asked.stderr
                time.sleep(1)
                continue
            assert asked.returncode == 0, asked.stderr
            status = asked.stdout
            if "Queued" not in status and "Running" not in status:
                break
            assert time.monotonic() < deadline, status
            time.sleep(3)
    finally:
        sh("dvc", "queue", "stop", cwd=repo, check=False)
        stop_queue_workers(repo)
    assert status.count("Success") >= 2, status
    exps = {exp["name"]: exp for exp in _experiments(exp_rows(repo))}
    for name, images in (("queued-a", 500), ("queued-b", 800)):
        assert _value(exps[name], "params", "params.yaml", "train.train_images") == images
        assert 0 < _value(exps[name], "metrics", "metrics.json", "accuracy") < 1


@pytest.fixture(autouse=True, scope="module")
def _no_dvc_left_running(repo):
    yield
    # The queue's workers stop when idle; make sure none outlives the tests.
    sh("dvc", "queue", "stop", "--kill", cwd=repo, check=False)
    stop_queue_workers(repo)
