"""The whole loop in a real browser: headless Chromium draws digits on a real `mnist-serve
--feedback-dir` page (scripts/draw_digits.py: pen strokes, with the mouse), confirms or corrects
each guess with the page's buttons, and every drawing is found in the spool with its right
digit, then in the next version of the drawings data set that `mnist-drawings version` makes
in a real git + DVC repository."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mnist_dvc import drawings
from mnist_dvc.spool import Spool
from tests.helpers import REPO_ROOT, make_repo, missing_prerequisite, sh
from tests.serving.helpers import serving

pytestmark = pytest.mark.slow

SCRIPT = REPO_ROOT / "scripts" / "draw_digits.py"
COUNT = 20


def draw_digits_module():
    spec = importlib.util.spec_from_file_location("draw_digits", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def drawn(weak_model_dir, tmp_path_factory):
    """(the spool, what the script drew and the page guessed, the page's own correction)."""
    module = draw_digits_module()
    if not module.CHROMIUM.exists():
        missing_prerequisite(f"needs {module.CHROMIUM}: apt-get install chromium")
    base = tmp_path_factory.mktemp("browser-feedback")
    spool, report = base / "feedback", base / "drawn.json"
    with serving(weak_model_dir, "--feedback-dir", str(spool)) as url:
        run = subprocess.run(
            [sys.executable, str(SCRIPT), url + "/", "--count", str(COUNT), "--seed", "11",
             "--json", str(report)],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr[-3000:]
        # A correction by the digit buttons, whatever the page guessed: a 4 said to be a 4.
        corrected = correct_by_button(module, url + "/", digit=4)
    return spool, json.loads(report.read_text()), corrected, run.stdout


def correct_by_button(module, url: str, digit: int) -> str:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(module.CHROMIUM), headless=True, args=module.LAUNCH_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 900, "height": 1000})
            page.set_default_timeout(30_000)
            page.goto(url)
            page.wait_for_function("() => !document.getElementById('feedback').hidden")
            module.draw(page, digit, np.random.default_rng(99))
            guessed = module.guess(page)
            return module.label(page, digit, guessed=(guessed + 1) % 10)  # the button path
        finally:
            browser.close()


def test_every_drawing_is_in_the_spool_with_its_right_digit(drawn):
    spool, done, corrected, printed = drawn
    kept = {sample.sha256: sample for sample in Spool(spool).samples()}
    assert len(done) == COUNT and f"drew {COUNT} digits" in printed
    for entry in done:
        sample = kept[entry["sha256"]]
        assert sample.label == entry["digit"]  # the right digit, whatever the page guessed
        assert sample.prediction == entry["page"]  # the server's own guess, recorded
        assert sample.model and sample.model.startswith("md5:")
    assert kept[corrected].label == 4
    assert len(kept) == COUNT + 1


def test_the_next_version_holds_them(drawn, tmp_path):
    spool, done, corrected, _ = drawn
    repo = make_repo(tmp_path / "repo")
    run = sh(str(Path(sys.executable).parent / "mnist-drawings"), "version", "--spool",
             str(spool), cwd=repo)  # fmt: skip
    assert f"{COUNT + 1} samples, {COUNT + 1} new" in run.stdout
    rows = drawings.read_rows(repo / "data" / "drawings")
    by_hash = {row.sha256: row for row in rows}
    for entry in done:
        row = by_hash[entry["sha256"]]
        assert (row.label, row.split, row.version) == (
            entry["digit"],
            drawings.split_of(entry["sha256"]),
            "v1.0.0",
        )
    assert by_hash[corrected].label == 4
    tags = sh("git", "tag", "--points-at", "HEAD", cwd=repo).stdout.split()
    assert tags == ["mnist-drawings@v1.0.0"]
