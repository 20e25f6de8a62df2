"""Draw digits on mnist-serve's page in a real browser, as a person would, and label each one:
"Yes" when the page's guess is right, the right digit's button when it is not. With the server
started with --feedback-dir, every drawing lands in the feedback spool (docs/drawings.md).

    python scripts/draw_digits.py http://127.0.0.1:8000/ --count 300 --seed 1

The digits are strokes, not images: each digit has a hand-made skeleton of one or two pen
strokes (below), drawn with the mouse at a random size, slant, rotation, place and pen width,
with a little tremor, so that no two drawings are the same. They are synthetic handwriting,
made by this script, not by people: honest test data for the loop, not a claim about how
people write. Needs Playwright (requirements-dev.lock) and Chromium (`make system-packages`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run"]  # fmt: skip


def _ellipse(cx: float, cy: float, rx: float, ry: float, start: float = 0.0, turn: float = 1.0):
    steps = 24
    return [
        (cx + rx * math.sin(start + 2 * math.pi * turn * i / steps),
         cy - ry * math.cos(start + 2 * math.pi * turn * i / steps))
        for i in range(steps + 1)
    ]  # fmt: skip


# Each digit's strokes in a unit box (x to the right, y down), as a pen would draw them.
SKELETONS: dict[int, list[list[tuple[float, float]]]] = {
    0: [_ellipse(0.5, 0.5, 0.3, 0.45)],
    1: [[(0.35, 0.22), (0.55, 0.05), (0.55, 0.95)]],
    2: [[(0.2, 0.3), (0.3, 0.1), (0.5, 0.04), (0.7, 0.1), (0.8, 0.3), (0.7, 0.5), (0.2, 0.95),
         (0.85, 0.95)]],
    3: [[(0.2, 0.1), (0.5, 0.03), (0.8, 0.15), (0.75, 0.35), (0.45, 0.48), (0.8, 0.6),
         (0.85, 0.8), (0.55, 0.97), (0.2, 0.9)]],
    4: [[(0.6, 0.05), (0.15, 0.65), (0.85, 0.65)], [(0.65, 0.3), (0.65, 0.97)]],
    5: [[(0.8, 0.05), (0.25, 0.05), (0.2, 0.45), (0.5, 0.38), (0.8, 0.55), (0.8, 0.8),
         (0.5, 0.97), (0.2, 0.88)]],
    6: [[(0.75, 0.05), (0.45, 0.2), (0.25, 0.5), (0.22, 0.8), (0.45, 0.97), (0.75, 0.85),
         (0.78, 0.62), (0.5, 0.5), (0.25, 0.65)]],
    7: [[(0.15, 0.08), (0.85, 0.08), (0.45, 0.97)]],
    8: [_ellipse(0.5, 0.27, 0.22, 0.22), _ellipse(0.5, 0.72, 0.28, 0.25)],
    9: [_ellipse(0.5, 0.3, 0.25, 0.25, start=math.pi / 2, turn=-1.0),
        [(0.75, 0.3), (0.7, 0.97)]],
}  # fmt: skip


def strokes(digit: int, rng: np.random.Generator, size: float) -> list[np.ndarray]:
    """The digit's strokes in canvas pixels (a `size`-pixel square canvas), varied at random."""
    height = size * rng.uniform(0.3, 0.9)
    width = height * rng.uniform(0.45, 1.0)
    angle = math.radians(rng.uniform(-20, 20))
    shear = rng.uniform(-0.4, 0.25)  # most hands slant forward
    rotate = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    out = []
    for stroke in SKELETONS[digit]:
        unit = np.array(stroke, float) - 0.5
        unit[:, 0] += shear * -unit[:, 1]
        points = (unit * [width, height]) @ rotate.T
        points += rng.normal(0, 0.02 * height, points.shape)  # a hand's tremor
        out.append(points)
    every = np.concatenate(out)
    low, high = every.min(axis=0), every.max(axis=0)
    margin = size * 0.06
    shift = [rng.uniform(margin - lo, size - margin - hi) if hi - lo < size - 2 * margin
             else size / 2 - (lo + hi) / 2 for lo, hi in zip(low, high, strict=True)]  # fmt: skip
    return [points + shift for points in out]


def draw(page, digit: int, rng: np.random.Generator) -> None:
    page.locator("#pad").scroll_into_view_if_needed()
    box = page.locator("#pad").bounding_box()
    scale = box["width"] / 280  # the canvas is 280 pixels wide, shown at its box's width
    pen = int(rng.integers(8, 36))
    page.locator("#pen").evaluate("(pen, width) => { pen.value = width; }", pen)
    for points in strokes(digit, rng, 280.0):
        x0, y0 = points[0]
        page.mouse.move(box["x"] + x0 * scale, box["y"] + y0 * scale)
        page.mouse.down()
        for x, y in points[1:]:
            page.mouse.move(box["x"] + x * scale, box["y"] + y * scale, steps=3)
        page.mouse.up()


def guess(page) -> int:
    """The page's digit once it has answered for the drawing as it is now."""
    page.wait_for_function(
        "() => { const r = document.getElementById('result').dataset;"
        " return r.drawn !== '0' && r.shown === r.drawn; }"
    )
    status = page.locator("#status").inner_text()
    if status:
        raise RuntimeError(f"the page says: {status}")
    return int(page.locator("#digit").inner_text())


def label(page, digit: int, guessed: int) -> str:
    """Confirm or correct the guess; the kept sample's hash."""
    page.locator("#kept").evaluate("kept => { kept.dataset.kept = ''; kept.textContent = ''; }")
    page.click("#right" if guessed == digit else f"#digits button[data-digit='{digit}']")
    page.wait_for_function("() => document.getElementById('kept').textContent !== ''")
    kept = page.locator("#kept").get_attribute("data-kept")
    if not kept:
        raise RuntimeError(f"not kept: {page.locator('#kept').inner_text()}")
    return kept


def draw_digits(url: str, count: int, seed: int, shots: Path | None = None) -> list[dict]:
    """Draw `count` digits (0-9 in turn) on the page at `url` and label each; what happened."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sys.exit("draw_digits: needs Playwright, one of the test tools: `make setup-dev`")
    if not CHROMIUM.exists():
        sys.exit(f"draw_digits: needs Chromium at {CHROMIUM}: `make system-packages`")

    rng = np.random.default_rng(seed)
    done = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 1000})  # no scrolling
            page.set_default_timeout(30_000)
            page.goto(url)
            page.wait_for_function("() => !document.getElementById('feedback').hidden")
            for number in range(count):
                digit = number % 10
                draw(page, digit, rng)
                guessed = guess(page)
                kept = label(page, digit, guessed)
                if shots is not None and number < 20:
                    page.screenshot(path=shots / f"drawn-{number:02d}-{digit}-page{guessed}.png")
                done.append({"digit": digit, "page": guessed, "sha256": kept})
                page.click("#clear")
        finally:
            browser.close()
    return done


def main() -> int:
    parse = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parse.add_argument("url", help="the page, e.g. http://127.0.0.1:8000/")
    parse.add_argument("--count", type=int, default=100)
    parse.add_argument("--seed", type=int, default=0)
    parse.add_argument("--json", type=Path, help="write what happened to this file")
    args = parse.parse_args()
    done = draw_digits(args.url, args.count, args.seed)
    right = sum(d["digit"] == d["page"] for d in done)
    print(f"draw_digits: drew {len(done)} digits; the page guessed {right} right "
          f"({right / len(done):.1%}), {len(done) - right} corrected")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(done, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
