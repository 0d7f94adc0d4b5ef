"""Render the README's try-on picture through the predictor's own code path.

    .venv/bin/python serving/tryon_example.py --model models:/hairseg@champion \
        --image data/images/demo-test-00001.png --out docs/img/tryon_example.png
    .venv/bin/python serving/tryon_example.py --tiny   # the tiny test network, no training

The predictor (``HairsegModel.load()`` then KServe's ``Model.__call__`` with a V1 body,
exactly what the server runs per request) segments the image and recolours it in three
shades; the panel shows input | served mask | three served try-ons (PNG, lossless).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
from hairseg_serving.model_source import resolve_model
from hairseg_serving.predictor import HairsegModel
from hairseg_serving.settings import ServeConfig
from hairseg_serving.testing import synthetic_portrait, write_tiny_model

from hairseg import imaging


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="models:/hairseg@champion")
    parser.add_argument("--image", type=Path, default=Path("data/images/demo-test-00001.png"))
    parser.add_argument("--shades", default="copper,teal,platinum")
    parser.add_argument("--intensity", type=float, default=0.85)
    parser.add_argument("--tile", type=int, default=192, help="panel tile height in pixels")
    parser.add_argument("--out", type=Path, default=Path("docs/img/tryon_example.png"))
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="use the tiny test network and synthetic portrait of hairseg_serving.testing",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.tiny:
            path = write_tiny_model(Path(tmp) / "tiny.onnx", size=128, version="tiny-test-network")
            data = imaging.encode_png(synthetic_portrait(256, 224, seed=3))
        else:
            path = resolve_model(args.model, cache_dir=Path(tmp), project_root=Path.cwd())
            data = args.image.read_bytes()
        model = HairsegModel("hairseg", path, ServeConfig(max_batch_size=1))
        model.load()
    image = imaging.decode_image(data)
    tiles, mask = [image], None
    for shade in args.shades.split(","):
        body = {
            "instances": [
                {
                    "image_b64": base64.b64encode(data).decode(),
                    "output": "both",
                    "color": shade,
                    "intensity": args.intensity,
                    "tryon_format": "png",
                }
            ]
        }
        response, _ = asyncio.run(model(body, headers={"x-request-id": f"example-{shade}"}))
        pred = response["predictions"][0]
        mask = imaging.decode_image(base64.b64decode(pred["mask_png_b64"]))
        tiles.append(imaging.decode_image(base64.b64decode(pred["tryon_b64"])))
    overlay = image.copy()
    overlay[mask[..., 0] > 127] = (0.5 * overlay[mask[..., 0] > 127] + (0, 110, 255)).clip(0, 255)
    tiles.insert(1, overlay.astype(np.uint8))
    h = args.tile
    resized = [
        cv2.resize(t, (round(t.shape[1] * h / t.shape[0]), h), interpolation=cv2.INTER_AREA)
        for t in tiles
    ]
    gap = np.full((h, 4, 3), 255, np.uint8)
    panel = np.hstack([x for t in resized for x in (t, gap)][:-1])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(imaging.encode_png(panel, compression=9))
    model.stop()
    print(f"{args.out}: {panel.shape[1]}x{panel.shape[0]}, model {response['model_version']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
