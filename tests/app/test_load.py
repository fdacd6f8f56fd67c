"""Eight browser sessions at once, ten images each, against one ``cnnlab app`` server.

Every prediction must appear and none may error, the server loads the model once, and the
median time to a session's predictions stays within 3x that of one session alone. Only the
ratio is asserted, never a wall time.

The browsers run on the test machine too, and rendering a result costs Chromium about twice
the server's CPU time (measured: ~1 CPU-s per session against ~0.4 s for the server). Eight
pages at once need 8+ cores for the ratio to measure the server, not the browsers. With
fewer cores it measures the browsers (5.7x to 9.8x on a shared 2-core machine) and is
reported as a warning, not asserted; everything else is asserted everywhere.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from tests.app.browser import INSTALL_PLAYWRIGHT, chromium_options, running_app
from tests.conftest import make_class_image

SESSIONS = 8
IMAGES = 10
WAIT_MS = 180_000  # generous: eight sessions on a busy 2-core machine
MAX_RATIO = 3.0
MIN_CORES = 8  # for the ratio to measure the server, not eight Chromium renderers


def _images(folder: Path) -> list[str]:
    folder.mkdir()
    rng = np.random.default_rng(0)
    paths = []
    for i in range(IMAGES):
        path = folder / f"img_{i:02d}.png"
        make_class_image(i % 3, rng, 32).save(path)
        paths.append(str(path))
    return paths


async def _open(browser, url: str):
    ctx = await browser.new_context(viewport={"width": 1200, "height": 900})
    page = await ctx.new_page()
    await page.goto(url, timeout=WAIT_MS)
    await page.get_by_text("Try sample images").wait_for(timeout=WAIT_MS)
    return page


async def _time_to_predictions(page, files: list[str]) -> float:
    """Seconds from choosing the files to every prediction shown; fails on any error box."""
    start = time.perf_counter()
    await page.locator("input[type=file]").set_input_files(files)
    done = page.get_by_text("Prediction:")
    deadline = start + WAIT_MS / 1000
    while await done.count() < len(files):
        assert time.perf_counter() < deadline, "predictions did not all appear"
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - start
    assert await page.locator("[data-testid=stAlertContentError]").count() == 0
    assert await page.get_by_text("Prediction:").count() == len(files)
    return elapsed


async def _measure(url: str, files: list[str]) -> tuple[list[float], list[float]]:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.fail(INSTALL_PLAYWRIGHT)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(**chromium_options())
        warm = await _open(browser, url)
        await _time_to_predictions(warm, files[:1])  # loads the model once
        single = []
        for _ in range(2):
            page = await _open(browser, url)
            single.append(await _time_to_predictions(page, files))
            await page.context.close()
        pages = await asyncio.gather(*(_open(browser, url) for _ in range(SESSIONS)))
        together = await asyncio.gather(*(_time_to_predictions(p, files) for p in pages))
        await browser.close()
    return single, list(together)


@pytest.mark.slow
def test_eight_sessions_share_one_model(app_runs: Path, tmp_path: Path) -> None:
    files = _images(tmp_path / "upload")
    log = tmp_path / "app.log"
    with running_app(app_runs, log=log) as url:
        single, together = asyncio.run(_measure(url, files))
    assert log.read_text().count("cnnlab app: loaded run") == 1  # one model, shared
    ratio = statistics.median(together) / statistics.median(single)
    print(f"one session {statistics.median(single):.2f} s, {SESSIONS} at once "
          f"{statistics.median(together):.2f} s (median), ratio {ratio:.2f}")  # fmt: skip
    assert len(together) == SESSIONS
    cores = os.cpu_count() or 1
    if cores >= MIN_CORES:
        assert ratio <= MAX_RATIO, (single, together)
    else:
        warnings.warn(f"load: ratio {ratio:.2f} not asserted on {cores} cores (needs "
                      f"{MIN_CORES}: the browsers share the machine)", stacklevel=1)  # fmt: skip
