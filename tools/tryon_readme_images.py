"""The README's try-on pictures, made by the served endpoint on a public-domain Solvay photo.

    .venv/bin/python tools/tryon_readme_images.py --model models/model.onnx \
        [--image datasets/real_portraits/images/visp_solvay1927_f5.png] [--out docs/img]

Starts ``hairseg serve`` on loopback with ``--model``, then

- ``tryon_solvay.png``: before | try-on per tier (V1 requests, PNG, intensity 1) | the
  served hard mask, each panel 2x (the crops are ~230 px);
- ``demo_page.png``: the demo page (``GET /demo``) in headless Debian chromium after
  uploading the photo (Playwright with ``executable_path``; no browser download).

Only Solvay 1927 crops may go into docs/: the other real photos' licences forbid it.
"""

from __future__ import annotations

import argparse
import base64
import shutil
import sys
import tempfile
from pathlib import Path

import cv2
import httpx
import numpy as np
from hairseg_serving.testing import start_server, stop_server

from hairseg import imaging

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _label(img: np.ndarray, text: str) -> np.ndarray:
    bar = np.full((22, img.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (20, 20, 20), 1, cv2.LINE_AA)
    return np.vstack([bar, img])


def _v1(url: str, png: bytes, **options: object) -> dict:
    body = {"instances": [{"image_b64": base64.b64encode(png).decode(), **options}]}
    r = httpx.post(f"{url}/v1/models/hairseg:predict", json=body, timeout=120)
    r.raise_for_status()
    return r.json()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument(
        "--image",
        type=Path,
        default=ROOT / "datasets/real_portraits/images/visp_solvay1927_f5.png",
    )
    parser.add_argument("--shade", default="copper")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args(argv)
    if "solvay" not in args.image.name:
        print("only Solvay 1927 crops may be rendered into docs/ (licences)", file=sys.stderr)
        return 2
    png = args.image.read_bytes()
    rgb = imaging.decode_image(png)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        proc, url, _ = start_server(args.model.resolve(), Path(tmp))
        try:
            panels = [_label(rgb, "before")]
            mask = None
            for tier in ("fast", "standard", "premium"):
                out = _v1(url, png, output="both", tryon_format="png", color=args.shade,
                          intensity=1.0, tier=tier)  # fmt: skip
                pred = out["predictions"][0]
                tryon = imaging.decode_image(base64.b64decode(pred["tryon_b64"]))
                ms = out["processing_ms"]
                panels.append(_label(tryon, f"{tier} ({sum(ms.values()):.0f} ms)"))
                mask = imaging.decode_image(base64.b64decode(pred["mask_png_b64"]))
            panels.append(_label(mask, "served mask"))
            sheet = np.hstack(
                [np.pad(p, ((0, 0), (0, 4), (0, 0)), constant_values=255) for p in panels]
            )
            sheet = cv2.resize(sheet, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
            imaging.write_png(args.out / "tryon_solvay.png", sheet)
            print(f"wrote {args.out / 'tryon_solvay.png'}")

            from playwright.sync_api import sync_playwright

            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path=args.chromium, headless=True, args=FLAGS
                )
                try:
                    page = browser.new_page(viewport={"width": 1200, "height": 560})
                    page.goto(f"{url}/demo")
                    page.set_input_files("#photo", str(args.image))
                    page.select_option("#shade", args.shade)
                    page.fill("#intensity", "1")
                    page.select_option("#tier", "premium")
                    page.click("#go")
                    page.wait_for_selector('#status[data-state="done"]', timeout=120_000)
                    page.screenshot(path=str(args.out / "demo_page.png"), full_page=True)
                finally:
                    browser.close()
            print(f"wrote {args.out / 'demo_page.png'}")
        finally:
            stop_server(proc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
