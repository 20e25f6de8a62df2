"""The drawing page in a real browser: Debian's Chromium, headless, driven by Playwright, against
a real `mnist-serve` process serving a model trained here on real MNIST (1 epoch, 12,000
images). MNIST test digits are drawn on the canvas with the mouse and the page's answer must
agree with the model's own prediction on the same images.

How a digit becomes strokes: every row of the 28x28 image is cut into runs of ink pixels
(value >= 128); each run is one stroke, mouse down at the centre of its first pixel, a move to
the centre of its last, mouse up, with the page's pen as wide as one scaled pixel (280 / 28 =
10 canvas pixels) and round caps. So the strokes cover the same pixels as the thresholded
digit, and the page posts that drawing as a PNG for the server to bring into MNIST's form.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from mnist_dvc import mnist
from mnist_dvc.idx import read_idx
from mnist_dvc.model import load_model
from tests.helpers import REPO_ROOT, missing_prerequisite
from tests.serving.helpers import serve_commands, serving

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
COUNT = 60  # MNIST test digits drawn
NO_DIGIT = "\N{EN DASH}"  # what the page shows on a blank canvas
INK = 128  # pixels at least this bright are drawn
MIN_AGREEMENT = 0.90
ARTIFACTS = REPO_ROOT / "test-artifacts"
SCREENSHOTS = 4  # of the first digits drawn, and of every disagreement (up to 10)


@pytest.fixture(scope="module")
def digits(real_raw_dir) -> np.ndarray:
    return read_idx(real_raw_dir / mnist.TEST_IMAGES.name, ndim=3)[:COUNT]


@pytest.fixture(scope="module")
def own_predictions(weak_model_dir, digits) -> np.ndarray:
    model = load_model(weak_model_dir / "model.json", weak_model_dir / "model.h5")
    images = (digits / 255.0).astype(np.float32)[..., None]
    return model.predict(images, verbose=0).argmax(axis=1)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        missing_prerequisite(f"needs {CHROMIUM}: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def server_url(weak_model_dir):
    kind = "console script" if serve_commands()["console script"] else "module"
    with serving(weak_model_dir, kind=kind) as url:
        yield url


@dataclass
class Seen:
    """What the page did besides drawing: every URL it requested, every script error."""

    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@pytest.fixture
def seen() -> Seen:
    return Seen()


@pytest.fixture
def page(browser, server_url, seen):
    """The page, loaded, with what it requests and its script errors recorded in `seen`."""
    page = browser.new_page(viewport={"width": 900, "height": 620})
    page.set_default_timeout(30_000)
    page.on("request", lambda request: seen.requests.append(request.url))
    page.on("pageerror", lambda error: seen.errors.append(str(error)))
    page.goto(server_url + "/")
    # Functions, not expressions: the page's Content-Security-Policy forbids eval.
    page.wait_for_function("() => document.getElementById('model').dataset.matches !== undefined")
    yield page
    page.close()


def strokes(image: np.ndarray) -> list[tuple[int, int, int]]:
    """(row, first column, last column) of every run of ink pixels."""
    runs = []
    for row, pixels in enumerate(image >= INK):
        col = 0
        while col < len(pixels):
            if pixels[col]:
                start = col
                while col + 1 < len(pixels) and pixels[col + 1]:
                    col += 1
                runs.append((row, start, col))
            col += 1
    return runs


def draw(page, image: np.ndarray) -> None:
    box = page.locator("#pad").bounding_box()
    scale = box["width"] / image.shape[1]
    page.locator("#pen").evaluate("(pen, width) => { pen.value = width; }", scale)

    def at(row: int, col: int) -> tuple[float, float]:
        return box["x"] + (col + 0.5) * scale, box["y"] + (row + 0.5) * scale

    for row, first, last in strokes(image):
        page.mouse.move(*at(row, first))
        page.mouse.down()
        if last > first:
            page.mouse.move(*at(row, last))
        page.mouse.up()


def shown_prediction(page) -> int:
    """The digit on the page once it answers for the drawing as it is now."""
    page.wait_for_function(
        "() => { const r = document.getElementById('result').dataset;"
        " return r.drawn !== '0' && r.shown === r.drawn; }"
    )
    assert page.locator("#status").inner_text() == ""
    return int(page.locator("#digit").inner_text())


def test_drawn_mnist_digits_are_classified_as_the_model_classifies_them(
    page, seen, digits, own_predictions, server_url
):
    ARTIFACTS.mkdir(exist_ok=True)
    shown, screenshots = [], 0
    for i, image in enumerate(digits):
        draw(page, image)
        shown.append(shown_prediction(page))
        disagrees = shown[-1] != own_predictions[i]
        if i < SCREENSHOTS or (disagrees and screenshots < SCREENSHOTS + 10):
            name = f"browser-{i:02d}-page{shown[-1]}-model{own_predictions[i]}.png"
            page.screenshot(path=ARTIFACTS / name)
            screenshots += 1
        page.click("#clear")
        assert page.locator("#digit").inner_text() == NO_DIGIT
    agreement = float(np.mean(np.array(shown) == own_predictions))
    (ARTIFACTS / "browser-agreement.json").write_text(
        json.dumps(
            {
                "digits": len(shown),
                "agreement": agreement,
                "page": shown,
                "model": own_predictions.tolist(),
            }
        )
        + "\n"
    )
    assert agreement >= MIN_AGREEMENT, f"page and model agree on {agreement:.0%}"
    assert seen.errors == []
    # A self-contained page: it fetched only from the server it came from.
    assert seen.requests and all(url.startswith(server_url + "/") for url in seen.requests)


def test_the_page_says_which_model_it_serves(page, weak_model_dir):
    text = page.locator("#model").inner_text()
    assert "model.onnx md5" in text and "(onnx engine)" in text
    assert "No dvc.lock" in text  # trained in a scratch folder: nothing to compare with
    assert "Test accuracy: unknown" in text


def test_pen_and_touch_strokes_draw_too(page):
    """Pointer events of a pen and of a finger draw as the mouse does (dispatched by script:
    headless Chromium has no pen to drive)."""
    for kind in ("pen", "touch"):
        page.evaluate(
            """kind => {
                const pad = document.getElementById('pad');
                const box = pad.getBoundingClientRect();
                const at = (x, y) => ({clientX: box.left + x, clientY: box.top + y,
                    pointerType: kind, pointerId: 7, bubbles: true, isPrimary: true});
                pad.dispatchEvent(new PointerEvent('pointerdown', at(140, 40)));
                for (let y = 40; y <= 240; y += 20)
                    pad.dispatchEvent(new PointerEvent('pointermove', at(140, y)));
                pad.dispatchEvent(new PointerEvent('pointerup', at(140, 240)));
            }""",
            kind,
        )
        assert 0 <= shown_prediction(page) <= 9
        bars = page.locator(".bar").evaluate_all("bars => bars.map(b => b.style.height)")
        assert len(bars) == 10 and any(height != "0px" for height in bars)
        page.click("#clear")
        assert page.locator("#digit").inner_text() == NO_DIGIT
