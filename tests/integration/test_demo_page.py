"""The try-on demo page (``GET /demo`` of ``hairseg serve``) end to end in headless Chromium.

Debian's ``chromium`` package driven by Playwright's Python client through
``executable_path`` (Playwright never downloads a browser here). The test uploads a
portrait, picks shade/intensity/tier, waits for the page to show the result, checks the
returned image it displays, and saves and checks a screenshot. Without the browser (or
the client) it skips and says which is missing and how to install it.
"""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from hairseg_serving.testing import start_server, stop_server, synthetic_portrait, write_tiny_model

from hairseg import imaging

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("HAIRSEG_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _browser_or_skip() -> None:
    if not Path(CHROMIUM).is_file():
        pytest.skip(
            f"no Chromium at {CHROMIUM}: install Debian's package (apt-get install -y chromium)"
            " or set HAIRSEG_CHROMIUM; the demo-page browser test needs it"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("the playwright client is not installed (dev extra): make venv")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    _browser_or_skip()
    tmp = tmp_path_factory.mktemp("demo")
    model = write_tiny_model(tmp / "tiny.onnx", size=64, version="tiny-demo")
    proc, url, _ = start_server(model, tmp, "--default-tier", "fast")
    yield url
    stop_server(proc)


def _data_url_image(src: str) -> np.ndarray:
    assert src.startswith("data:image/png;base64,"), src[:40]
    return imaging.decode_image(base64.b64decode(src.split(",", 1)[1]))


def test_demo_page_uploads_a_photo_and_shows_the_try_on(server: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    rgb = synthetic_portrait(220, 200, seed=11)
    photo = tmp_path / "portrait.png"
    imaging.write_png(photo, rgb)
    outside: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 620})
            page.on(
                "request",
                lambda r: (
                    None if r.url.startswith((server, "data:", "blob:")) else outside.append(r.url)
                ),
            )
            response = page.goto(f"{server}/demo")
            assert response is not None and response.status == 200
            assert "default-src 'none'" in response.headers["content-security-policy"]
            assert page.locator("#tier").input_value() == "fast"  # serve.default_tier
            assert page.locator("#shade option").count() >= 10
            page.set_input_files("#photo", str(photo))
            page.select_option("#shade", "electric_blue")
            page.fill("#intensity", "1")
            page.select_option("#tier", "premium")
            page.click("#go")
            page.wait_for_selector('#status[data-state="done"]', timeout=60_000)
            status = page.locator("#status").inner_text()
            assert "electric blue" in status and "premium" in status
            after = _data_url_image(page.get_attribute("#after", "src"))
            mask = _data_url_image(page.get_attribute("#mask", "src"))
            timing = page.locator("#timing").inner_text()
            shot = tmp_path / "demo.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert outside == []  # no CDN, no request leaves the server
    # The image the page shows is the server's try-on: input-sized, hair turned blue.
    assert after.shape == rgb.shape
    hair = mask[..., 0] > 127 if mask.ndim == 3 else mask > 127
    assert 0.05 < hair.mean() < 0.9
    assert after[hair][:, 2].mean() > rgb[hair][:, 2].mean() + 40
    assert "refine_infer" in timing and "tier premium" in timing
    # The screenshot: a real PNG of the page with the blue try-on visible in it.
    img = imaging.read_image(shot)
    assert img.shape[1] == 1200 and img.shape[0] >= 400
    blue = (img[..., 2].astype(int) - img[..., 0] > 80) & (img[..., 2] > 120)
    assert blue.sum() > 500, "the try-on is not visible in the screenshot"
    assert img.std() > 20  # not a blank page
    out = os.environ.get("HAIRSEG_DEMO_SCREENSHOT")
    if out:  # tools: keep the screenshot (docs/img/demo_page.png)
        shutil.copyfile(shot, out)
