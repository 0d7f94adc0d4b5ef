"""The README's real-photo gallery: the public-domain Solvay 1927 crops through the served endpoint.

    .venv/bin/python tools/real_gallery.py --model models/model.fp32.onnx [--out docs/img]

Starts ``hairseg serve`` on loopback from the project root with the project's
``params.yaml`` (so the ``priors:`` fusion is what a client gets), sends each Solvay crop of
``datasets/real_portraits`` as a V1 request with ``output: both``, scores the served mask
against the coarse label (IoU, hair outside the head boxes, inner face marked hair), and
writes ``real_gallery_solvay.png``: one row per photo, photo (head boxes) | served mask |
mask vs label (green correct, red false hair, blue missed) | served try-on. It prints the
per-photo numbers. Only the Solvay crops may be rendered into docs/ (the other real
photos' licences forbid redistribution).
"""

from __future__ import annotations

import argparse
import base64
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from hairseg import imaging
from hairseg.evaluate import RealPhotoSet, TestSet, load_real_set, score_real_photos
from hairseg.model_card import _letterbox, _overlay, _with_boxes

ROOT = Path(__file__).resolve().parents[1]


def _serve(model: Path, log: Path) -> tuple[subprocess.Popen, str]:
    from hairseg_serving.testing import free_port

    port = free_port()
    cmd = [sys.executable, "-m", "hairseg", "serve", "--model", str(model)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--params", str(ROOT / "params.yaml")]
    env = {**os.environ, "FEAST_USAGE": "False", "MLFLOW_DISABLE_TELEMETRY": "true"}
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited {proc.returncode}:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise SystemExit("server not ready within 300 s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--shade", default="copper")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = parser.parse_args(argv)
    real = load_real_set(ROOT / "datasets" / "real_portraits")
    keep = [i for i, x in enumerate(real.test.manifest["id"]) if "solvay" in str(x)]
    sub = RealPhotoSet(
        test=TestSet(
            manifest=real.test.manifest.iloc[keep].reset_index(drop=True),
            images=[real.test.images[i] for i in keep],
            masks=[real.test.masks[i] for i in keep],
        ),
        head_boxes=[real.head_boxes[i] for i in keep],
        inner_face_boxes=[real.inner_face_boxes[i] for i in keep],
    )
    masks, tryons = [], []
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = _serve(args.model.resolve(), Path(tmp) / "server.log")
        try:
            for rgb in sub.test.images:
                body = {
                    "instances": [
                        {
                            "image_b64": base64.b64encode(imaging.encode_png(rgb)).decode(),
                            "output": "both",
                            "tryon_format": "png",
                            "color": args.shade,
                            "intensity": 1.0,
                        }
                    ]
                }
                r = httpx.post(f"{url}/v1/models/hairseg:predict", json=body, timeout=120)
                r.raise_for_status()
                pred = r.json()["predictions"][0]
                masks.append(imaging.decode_image(base64.b64decode(pred["mask_png_b64"])))
                tryons.append(imaging.decode_image(base64.b64decode(pred["tryon_b64"])))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    masks = [m if m.ndim == 2 else m[..., 0] for m in masks]
    scores = score_real_photos("served", masks, sub)
    rows = []
    for i, row in scores.per_image.iterrows():
        rgb = sub.test.images[i]
        rows.append(
            np.concatenate(
                [
                    _letterbox(_with_boxes(rgb, sub.head_boxes[i]), f"IoU {row['iou']:.2f}"),
                    _letterbox(masks[i], f"mask, {row['outside_head_share']:.0%} off-head"),
                    _letterbox(
                        _overlay(rgb, sub.test.masks[i], masks[i]),
                        f"vs label, face {row['inner_face_share']:.0%}",
                    ),
                    _letterbox(tryons[i], f"served try-on: {args.shade}"),
                ],
                axis=1,
            )
        )
        print(
            f"{row['id']}: IoU {row['iou']:.3f}, outside head {row['outside_head_share']:.1%}, "
            f"inner face {row['inner_face_share']:.1%}"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "real_gallery_solvay.png"
    imaging.write_png(path, np.concatenate(rows, axis=0))
    s = scores.summary()
    print(
        f"wrote {path}; {len(rows)} photos: mean IoU {s['real_iou']:.3f}, outside head "
        f"{s['real_outside_head']:.1%} (pooled), inner face {s['real_inner_face']:.1%}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
