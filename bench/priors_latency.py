"""What the real-photo priors cost a served request: one client, 256² JPEG, V1 JSON.

    .venv/bin/python bench/priors_latency.py MODEL.onnx [--requests 300] [--size 256]

Two :class:`hairseg_serving.predictor.HairsegModel` instances on the same ONNX file, one
with ``params.yaml`` ``priors:`` and one with priors off, answer the same requests
(``output: mask``) in alternation, one at a time (a single client), through the whole
predictor (decode, network, priors, masks, PNG encode) — ``hairseg serve`` minus HTTP,
which both pay alike. Photos: the real-photo eval crops (faces present, so the face
detector does its full work) resized to ``--size``², JPEG-encoded once. Reported: p50/p95
of each and the p50 difference, plus the ``priors`` stage alone (Server-Timing).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from hairseg import imaging
from hairseg.config import load_params, section
from hairseg.evaluate import load_real_set
from hairseg.priors import PriorsConfig

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1, help="ORT intra-op threads")
    args = parser.parse_args(argv)
    os.environ.setdefault("GLOG_minloglevel", "2")
    from hairseg_serving.predictor import HairsegModel
    from hairseg_serving.settings import ServeConfig

    priors = section(load_params(args.params), "priors", PriorsConfig)
    priors = dataclasses.replace(priors, models_dir=str(ROOT / priors.models_dir))
    base = ServeConfig(intra_op_threads=args.threads, access_log=False)
    on = HairsegModel("on", args.model, dataclasses.replace(base, priors=priors))
    off = HairsegModel(
        "off", args.model, dataclasses.replace(base, priors=PriorsConfig(enabled=False))
    )
    on.load()
    off.load()
    if on.segmenter.priors is None or not any(on.segmenter.priors.available.values()):
        print("error: no MediaPipe prior available (run `hairseg models fetch`)", file=sys.stderr)
        return 2
    real = load_real_set(ROOT / "datasets/real_portraits")
    bodies = []
    for rgb in real.test.images:
        small = cv2.resize(rgb, (args.size, args.size), interpolation=cv2.INTER_AREA)
        data = base64.b64encode(imaging.encode_jpeg(small)).decode()
        bodies.append({"instances": [{"image_b64": data, "output": "mask"}]})

    async def run() -> dict[str, list[float]]:
        times: dict[str, list[float]] = {"on": [], "off": [], "priors_stage": []}
        for i in range(args.requests + 20):
            body = bodies[i % len(bodies)]
            for name, model in (("on", on), ("off", off)) if i % 2 else (("off", off), ("on", on)):
                start = time.perf_counter()
                _, headers = await model(body, headers={"x-request-id": str(i)})
                elapsed = (time.perf_counter() - start) * 1e3
                if i < 20:  # warm-up
                    continue
                times[name].append(elapsed)
                if name == "on":
                    stage = dict(p.split(";dur=") for p in headers["server-timing"].split(", "))
                    times["priors_stage"].append(float(stage.get("priors", "nan")))
        return times

    times = asyncio.run(run())
    on.stop()
    off.stop()
    p = {k: (np.percentile(v, 50), np.percentile(v, 95)) for k, v in times.items()}
    print(
        f"{args.size}² JPEG, one client, {args.requests} requests each, ORT threads {args.threads}"
    )
    print("| path | p50 ms | p95 ms |\n|---|---|---|")
    print(f"| priors off | {p['off'][0]:.2f} | {p['off'][1]:.2f} |")
    print(f"| priors on (params.yaml) | {p['on'][0]:.2f} | {p['on'][1]:.2f} |")
    print(f"| priors stage alone | {p['priors_stage'][0]:.2f} | {p['priors_stage'][1]:.2f} |")
    print(f"p50 growth: {p['on'][0] - p['off'][0]:+.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
