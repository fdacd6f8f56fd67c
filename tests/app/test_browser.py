"""``cnnlab app`` end to end in headless Chromium (Playwright with Debian's browser).

Screenshots go to the test's temp folder; with ``CNNLAB_DOC_IMAGES=1`` they are also copied
into docs/images/ for docs/app.md.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
from tests.app.browser import chromium_options, running_app, sync_playwright
from tests.conftest import folder_digest, make_class_image

from cnnlab.predict import Predictor

DOC_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
WAIT_MS = 90_000  # the first prediction loads torch and the model in the server
SHOWN = "[...document.images].filter(i => i.complete && i.naturalWidth > 0).length >= 2"
DRAWN = (
    "[...document.images].some(i => i.complete && i.naturalWidth > 0)"
    " && document.querySelectorAll('.js-plotly-plot .main-svg').length > 0"
)


def _shots(tmp: Path, page, name: str) -> Path:
    path = tmp / "screenshots" / f"app-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("CNNLAB_DOC_IMAGES") == "1":
        DOC_IMAGES.mkdir(exist_ok=True)
        shutil.copyfile(path, DOC_IMAGES / path.name)
    return path


def test_upload_predicts_and_a_fake_png_gets_a_friendly_error(
    app_runs: Path, tmp_path: Path
) -> None:
    data = app_runs.parent / "data"
    before = folder_digest(data)
    picture = tmp_path / "gatito ñ.png"
    make_class_image(1, np.random.default_rng(7), 48).save(picture)
    fake = tmp_path / "notes.png"
    fake.write_text("a text file wearing a .png name\n")
    want = Predictor(app_runs / "cnn-s1").predict([picture], top_k=3)[0]["label"]
    (tmp_path / "screenshots").mkdir()
    with running_app(app_runs, data, log=tmp_path / "app.log") as url, sync_playwright() as pw:
        browser = pw.chromium.launch(**chromium_options())
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url)
        page.get_by_text("Try sample images").wait_for(timeout=WAIT_MS)
        page.locator("input[type=file]").set_input_files(str(picture))
        page.get_by_text(re.compile(f"Prediction: {re.escape(want)} ")).wait_for(timeout=WAIT_MS)
        # the picture and its bar chart, not their placeholders (docs/app.md shows this one)
        page.wait_for_function(DRAWN, timeout=WAIT_MS)
        _shots(tmp_path, page, "predict")
        page.get_by_text("Grad-CAM overlay").click()
        page.get_by_text("Grad-CAM: where the model saw").wait_for(timeout=WAIT_MS)
        page.wait_for_function(SHOWN, timeout=WAIT_MS)  # the overlay itself, not its caption
        _shots(tmp_path, page, "gradcam")
        page.locator("input[type=file]").set_input_files(str(fake))
        page.get_by_text("notes.png is not a picture this app reads").wait_for(timeout=WAIT_MS)
        assert page.locator("[data-testid=stAlertContentError]").count() == 1  # as test_load
        _shots(tmp_path, page, "bad-upload")
        text = page.inner_text("body")
        assert "Traceback" not in text and str(tmp_path) not in text
        assert str(app_runs) not in text
        page.get_by_role("link", name="Runs").click()
        page.get_by_text("Confusion matrix").wait_for(timeout=WAIT_MS)
        page.wait_for_timeout(1500)  # let plotly draw before the picture is taken
        _shots(tmp_path, page, "runs")
        page.get_by_role("link", name="Compare").click()
        page.get_by_text("Paired comparisons with the best cell").wait_for(timeout=WAIT_MS)
        page.wait_for_timeout(1500)
        _shots(tmp_path, page, "compare")
        page.get_by_role("link", name="Data").click()
        page.get_by_text("Samples per class").wait_for(timeout=WAIT_MS)
        _shots(tmp_path, page, "data")
        browser.close()
    assert folder_digest(data) == before
    assert all((tmp_path / "screenshots" / f"app-{n}.png").stat().st_size > 10_000 for n in
               ("predict", "gradcam", "bad-upload", "runs", "compare", "data"))  # fmt: skip
