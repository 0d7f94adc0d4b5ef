"""Try-on quality and latency per tier, side by side with the previous HSV recolour.

    .venv/bin/python bench/tryon_quality.py [--model models/model.onnx] [--n-synthetic 100]
        [--shades all] [--repeats 3] [--json OUT.json]

Two image sets:

- **synthetic**: the demo test split, rendered by the repo's generator
  (:func:`hairseg.data.generate.render_index` with ``params.yaml`` ``data.seed`` /
  ``image_size``: the same bytes as ``data/`` test images), with the generator's label
  map (its ``SKIN`` pixels give the face);
- **real**: ``datasets/real_portraits`` (34 faces; ``python tools/fetch_real_portraits.py``
  fills in the 28 not committed), with its coarse hair masks and inner-face boxes.

Hair probabilities come from the network when ``--model`` is given (ONNX Runtime, the
serving path: sigmoid of the logits at the network resolution; premium's second pass
uses the same model), else from the labels (the truth mask area-downsampled to 64 px and
blurred): that isolates the try-on from segmentation errors.

Per tier, at intensity 1 over every shade of the catalogue (``--shades``):

- ``dE2000``: mean CIEDE2000 between the try-on and the target shade over hair pixels
  (the truth mask eroded by 2 px; target ≤ 10);
- ``hf_ratio``: high-frequency energy (luma minus its σ = 2 px blur) of the hair region
  after / before (target ≥ 0.8), mean over images (and its 10th percentile);
- ``face_leak``: share of inner-face pixels whose colour moved by ΔE2000 > 3 (real: the
  inner-face box minus truth hair; synthetic: face skin ≥ 4 px from truth hair; ≤ 1 %);
- latency (ms, median over ``--repeats``): the try-on stages (premium's second network
  pass, matte, recolour) at each set's image size, and at 1024 × 1024.

``hsv`` is the recolour this repo shipped before (HSV hue/saturation, feathered hard
mask), on the same images and probabilities, for comparison.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from hairseg.colour import delta_e2000, high_frequency_energy, rgb_to_lab
from hairseg.config import load_params
from hairseg.tryon import SHADES, TIERS, Shade, parse_shade, try_on

ROOT = Path(__file__).resolve().parents[1]
LEAK_DE = 3.0


@dataclass
class Item:
    id: str
    rgb: np.ndarray
    hair: np.ndarray  # bool, truth
    face: np.ndarray  # bool, where colour must not go
    prob: np.ndarray | None = None  # network-resolution probabilities


def hsv_baseline(rgb: np.ndarray, mask: np.ndarray, shade: Shade, intensity: float = 1.0):
    """The previous hairseg.tryon.recolour (HSV, 3 px feathered 0/255 mask), verbatim."""
    alpha = (mask > 127).astype(np.float32)
    alpha = cv2.GaussianBlur(alpha, (7, 7), sigmaX=1.5, borderType=cv2.BORDER_REFLECT)
    alpha *= float(intensity)
    if not np.any(alpha > 0):
        return rgb.copy()
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV_FULL).astype(np.float32)
    target = cv2.cvtColor(np.array([[shade.rgb]], dtype=np.uint8), cv2.COLOR_RGB2HSV_FULL)[0, 0]
    target = target.astype(np.float32)
    hair = mask > 127
    mean_v = float(hsv[..., 2][hair].mean()) if hair.any() else float(hsv[..., 2].mean())
    gain = np.clip((0.5 * mean_v + 0.5 * target[2]) / max(mean_v, 1.0), 0.5, 2.5)
    out = hsv.copy()
    out[..., 0] = target[0]
    out[..., 1] = 0.25 * hsv[..., 1] + 0.75 * target[1]
    out[..., 2] = np.clip(hsv[..., 2] * gain, 0, 255)
    dyed = cv2.cvtColor(out.round().astype(np.uint8), cv2.COLOR_HSV2RGB_FULL).astype(np.float32)
    a = alpha[..., None]
    blended = (rgb.astype(np.float32) * (1.0 - a) + dyed * a).round().astype(np.uint8)
    return np.where(a > 0, blended, rgb)


def label_prob(hair: np.ndarray) -> np.ndarray:
    small = cv2.resize(hair.astype(np.float32), (64, 64), interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(small, (0, 0), 1.0)


def synthetic_items(n: int) -> list[Item]:
    from hairseg.data.generate import Label, render_index

    data = load_params(ROOT / "params.yaml")["data"]
    items = []
    for i in range(n):
        _, r = render_index(int(data["seed"]), "test", i, int(data["image_size"]))
        hair = r.mask > 127
        skin = cv2.erode((r.labels == Label.SKIN).astype(np.uint8), np.ones((7, 7), np.uint8))
        near_hair = cv2.dilate(hair.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
        items.append(Item(f"demo-test-{i:05d}", r.image, hair, (skin > 0) & ~near_hair))
    return items


def real_items() -> list[Item]:
    from hairseg.evaluate import load_real_set

    real = load_real_set()
    items = []
    for (_, row), rgb, mask, box in zip(
        real.test.manifest.iterrows(),
        real.test.images,
        real.test.masks,
        real.inner_face_boxes,
        strict=True,
    ):
        hair = mask > 127
        x0, y0, x1, y1 = box
        face = np.zeros_like(hair)
        face[max(0, y0) : y1, max(0, x0) : x1] = True
        items.append(Item(str(row["id"]), rgb, hair, face & ~hair))
    return items


def attach_probabilities(items: list[Item], segmenter) -> None:
    for item in items:
        if segmenter is None:
            item.prob = label_prob(item.hair)
        else:
            item.prob = segmenter.probabilities([item.rgb])[0]


def score(items: list[Item], shades: list[Shade], method: str, segmenter) -> dict[str, float]:
    des, ratios, leaks = [], [], []
    kw = {}
    if segmenter is not None:
        kw = {"logits_fn": segmenter.logits, "input_size": segmenter.input_size}
    for item in items:
        core = cv2.erode(item.hair.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        if core.sum() < 30:
            continue  # a bald subject: no hair to colour
        lab_in = rgb_to_lab(item.rgb)
        hf_in = high_frequency_energy(item.rgb, core)
        for shade in shades:
            if method == "hsv":
                h, w = item.rgb.shape[:2]
                up = cv2.resize(item.prob, (w, h), interpolation=cv2.INTER_LINEAR)
                out = hsv_baseline(item.rgb, ((up >= 0.5) * 255).astype(np.uint8), shade)
            else:
                out, _ = try_on(item.rgb, item.prob, shade, tier=method, intensity=1.0, **kw)
            lab = rgb_to_lab(out)
            des.append(float(delta_e2000(lab[core], shade.lab).mean()))
            ratios.append(high_frequency_energy(out, core) / max(hf_in, 1e-9))
            if item.face.any():
                moved = delta_e2000(lab[item.face], lab_in[item.face]) > LEAK_DE
                leaks.append(float(moved.mean()))
    return {
        "dE2000": float(np.mean(des)),
        "hf_ratio": float(np.mean(ratios)),
        "hf_ratio_p10": float(np.percentile(ratios, 10)),
        "face_leak": float(np.mean(leaks)) if leaks else float("nan"),
        "face_leak_max": float(np.max(leaks)) if leaks else float("nan"),
        "renders": len(des),
    }


def latency_ms(items: list[Item], tier: str, segmenter, repeats: int, side: int | None) -> float:
    kw = {}
    if segmenter is not None:
        kw = {"logits_fn": segmenter.logits, "input_size": segmenter.input_size}
    shade = parse_shade("copper")
    times = []
    for item in items[:10]:
        rgb, prob = item.rgb, item.prob
        if side:
            rgb = cv2.resize(rgb, (side, side), interpolation=cv2.INTER_LINEAR)
        best = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            try_on(rgb, prob, shade, tier=tier, intensity=1.0, **kw)
            best.append(time.perf_counter() - t0)
        times.append(statistics.median(best))
    return 1000.0 * statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="ONNX model (default: label probabilities)")
    parser.add_argument("--n-synthetic", type=int, default=100)
    parser.add_argument("--shades", default="all", help="comma-separated shade names, or all")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-real", action="store_true", help="skip datasets/real_portraits")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    shades = [parse_shade(s) for s in (SHADES if args.shades == "all" else args.shades.split(","))]
    segmenter = None
    if args.model:
        from hairseg.inference import OnnxSegmenter

        segmenter = OnnxSegmenter(args.model, intra_op_threads=1)
    sets = {"synthetic": synthetic_items(args.n_synthetic)}
    if not args.no_real:
        sets["real"] = real_items()
    print(
        f"$ {shlex.join(['.venv/bin/python', 'bench/tryon_quality.py', *sys.argv[1:]])}\n"
        f"probabilities: {'network ' + str(args.model) if segmenter else 'labels (64 px, blurred)'};"
        f" {len(shades)} shades at intensity 1"
    )
    results: dict[str, dict] = {}
    for name, items in sets.items():
        attach_probabilities(items, segmenter)
        results[name] = {}
        print(
            f"\n{name}: {len(items)} images, {items[0].rgb.shape[1]}x{items[0].rgb.shape[0]} first"
        )
        print(
            "| method | mean ΔE2000 to shade | HF ratio (p10) | face leak (max) | ms/image | ms at 1024² |"
        )
        print("|---|---|---|---|---|---|")
        for method in ("hsv", *TIERS):
            r = score(items, shades, method, segmenter)
            if method != "hsv":
                r["ms"] = latency_ms(items, method, segmenter, args.repeats, None)
                r["ms_1024"] = latency_ms(items, method, segmenter, args.repeats, 1024)
            results[name][method] = r
            ms = f"{r['ms']:.1f} | {r['ms_1024']:.1f}" if "ms" in r else "- | -"
            print(
                f"| {method} | {r['dE2000']:.2f} | {r['hf_ratio']:.2f} ({r['hf_ratio_p10']:.2f}) |"
                f" {100 * r['face_leak']:.2f} % ({100 * r['face_leak_max']:.1f} %) | {ms} |",
                flush=True,
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
