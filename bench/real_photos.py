"""What a model does on real photos: IoU on the coarse masks, hair off the head, hair on the face.

    .venv/bin/python bench/real_photos.py MODEL [MODEL ...] [--gallery DIR] [--write docs/BENCHMARKS.md]

MODEL: a ``.onnx`` file, a model directory (``models/``) or ``models:/hairseg@champion``
(resolved through the MLflow registry at ``--tracking-uri``). Every model runs through
:class:`hairseg.inference.OnnxSegmenter` with the ``evaluate:`` section of params.yaml
(threshold, threads) — the path the synthetic evaluation and serving take. With the
MediaPipe selfie segmenter fetched (``hairseg models fetch``), each model is also scored
with the selfie person-mask post-filter (``+selfie``). Each model is also scored with the
real-photo priors of ``params.yaml`` ``priors:`` fused in (``+priors``: the path serving
takes), and with ``--priors-variants`` with the selfie person prior on top
(``+priors+person``) and without the inner-face prior (``+head-only``).

Needs the images of ``datasets/real_portraits`` (``python tools/fetch_real_portraits.py``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from hairseg.config import load_params, section
from hairseg.errors import HairsegError
from hairseg.evaluate import (
    EvaluateConfig,
    RealPhotoEvaluation,
    SelfieSegmenter,
    evaluate_real_photos,
    load_real_set,
)
from hairseg.mediapipe_models import model_path
from hairseg.model_card import gallery_rows, render_real_gallery
from hairseg.priors import PriorsConfig
from hairseg.registry import default_tracking_uri, fetch_onnx

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ("real_iou", "real_outside_head", "real_outside_head_mean", "real_inner_face")


def table(results: list[RealPhotoEvaluation]) -> str:
    lines = [
        "| model | images | IoU (coarse masks) | hair outside head boxes (pooled) "
        "| same, mean per photo | inner face marked hair (mean) | hair found (recall) "
        "| marked hair that is hair (precision) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        s = r.summary()
        lines.append(
            f"| {r.name} | {s['real_n_images']} | {s['real_iou']:.3f} | "
            f"{s['real_outside_head']:.1%} | {s['real_outside_head_mean']:.1%} | "
            f"{s['real_inner_face']:.1%} | {s['real_recall']:.1%} | {s['real_precision']:.1%} |"
        )
    return "\n".join(lines)


def teacher_result(real, params: dict, priors: PriorsConfig) -> RealPhotoEvaluation:
    """The ``hairseg data pseudo-label`` teacher's masks on the eval photos (a photo where
    it finds no face gets an empty mask)."""
    import cv2
    import numpy as np

    from hairseg.data.pseudo_label import PseudoLabelConfig, label_image
    from hairseg.evaluate import score_real_photos
    from hairseg.priors import Priors

    cfg = section(params, "pseudo_label", PseudoLabelConfig)
    teacher_cfg = dataclasses.replace(
        priors, selfie_segmenter=True, min_face_confidence=cfg.min_face_confidence
    )
    masks = []
    with Priors(teacher_cfg) as teacher:
        for rgb in real.test.images:
            h, w = rgb.shape[:2]
            faces = [f for f in (teacher.detect_faces(rgb) or []) if len(f.keypoints) >= 4]
            if not faces:
                masks.append(np.zeros((h, w), np.uint8))
                continue
            person = teacher.person(rgb, max(h, w))
            if person is not None:
                person = cv2.resize(person, (w, h), interpolation=cv2.INTER_LINEAR)
            masks.append(label_image(rgb, faces, person, cfg).mask)
    return score_real_photos("pseudo-label teacher (no network)", masks, real)


def synthetic_table(
    models: list[str], dataset: Path, cfg: EvaluateConfig, priors: PriorsConfig, tracking_uri: str
) -> str:
    """Mean IoU on the synthetic split through :func:`evaluate_onnx`, priors off and on."""
    from hairseg.evaluate import evaluate_onnx, load_test_set

    test = load_test_set(dataset, cfg.split)
    quick = dataclasses.replace(
        cfg, latency_batch_sizes=(1,), latency_repeats=1, sweep_thresholds=()
    )
    lines = [
        f"| model | synthetic {cfg.split} IoU ({len(test)} images) | with +priors | change |",
        "|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory(prefix="hairseg-syn-") as tmp:
        for uri in models:
            onnx = fetch_onnx(uri, Path(tmp), tracking_uri)
            off = evaluate_onnx(uri, onnx, test, quick).summary()["iou"]
            on = evaluate_onnx(uri, onnx, test, quick, priors=priors).summary()["iou"]
            lines.append(f"| {uri} | {off:.4f} | {on:.4f} | {on - off:+.4f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help=".onnx, model dir or models:/NAME@ALIAS")
    parser.add_argument("--dataset", type=Path, default=ROOT / "datasets/real_portraits")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("--gallery", type=Path, default=None, help="write gallery PNGs here")
    parser.add_argument("--json", type=Path, default=None, help="write summaries + per image")
    parser.add_argument("--write", type=Path, default=None, help="append the table here")
    parser.add_argument("--no-selfie", action="store_true", help="skip the +selfie rows")
    parser.add_argument("--no-raw", action="store_true", help="only the +priors rows")
    parser.add_argument(
        "--priors-variants", action="store_true", help="also +priors+person and +head-only rows"
    )
    parser.add_argument(
        "--gallery-of", default=None, help="the row whose masks the gallery shows [first]"
    )
    parser.add_argument(
        "--teacher",
        action="store_true",
        help="also score the pseudo-label teacher's masks (params pseudo_label:) on the set",
    )
    parser.add_argument(
        "--synthetic",
        type=Path,
        default=None,
        help="also score this dataset's evaluate.split (e.g. data) with and without the priors",
    )
    args = parser.parse_args(argv)
    params = load_params(args.params)
    cfg = section(params, "evaluate", EvaluateConfig)
    priors = section(params, "priors", PriorsConfig)
    priors = dataclasses.replace(priors, models_dir=str(ROOT / priors.models_dir))
    variants = [("+priors", priors)]
    if args.priors_variants:
        variants += [
            ("+priors+person", dataclasses.replace(priors, selfie_segmenter=True)),
            ("+head-only", dataclasses.replace(priors, inner_face=False)),
        ]
    tracking_uri = args.tracking_uri or default_tracking_uri(ROOT)
    try:
        real = load_real_set(args.dataset)
        person = None
        selfie = model_path("selfie_segmenter", ROOT / ".hairseg/models/mediapipe")
        if selfie is not None and not args.no_selfie:
            os.environ.setdefault("GLOG_minloglevel", "2")
            with SelfieSegmenter(selfie) as seg:
                person = [seg(img) for img in real.test.images]
        results: list[RealPhotoEvaluation] = []
        if args.teacher:
            results.append(teacher_result(real, params, priors))
        with tempfile.TemporaryDirectory(prefix="hairseg-real-") as tmp:
            for uri in args.models:
                onnx = fetch_onnx(uri, Path(tmp), tracking_uri)
                if not args.no_raw:
                    results.append(evaluate_real_photos(uri, onnx, real, cfg))
                for suffix, variant in variants:
                    results.append(
                        evaluate_real_photos(f"{uri} {suffix}", onnx, real, cfg, priors=variant)
                    )
                if person is not None and not args.no_raw:
                    results.append(
                        evaluate_real_photos(f"{uri} +selfie", onnx, real, cfg, person_masks=person)
                    )
    except HairsegError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    text = table(results)
    if args.synthetic is not None:
        text += "\n\n" + synthetic_table(args.models, args.synthetic, cfg, priors, tracking_uri)
    print(text)
    for r in results:
        print(f"\nworst for {r.name}:")
        for metric, rows in r.worst(4).items():
            print(f"  {metric}: " + ", ".join(f"{x['id']} {x[metric]:.2f}" for x in rows))
    if args.gallery:
        first = next((r for r in results if r.name == args.gallery_of), results[0])
        # Every photo, worst IoU first.
        rows = gallery_rows(first.per_image, n_typical=0, n_worst=len(real))
        paths = render_real_gallery(
            args.gallery,
            real.test.images,
            real.test.masks,
            first.predictions,
            first.per_image,
            real.head_boxes,
            rows,
            cfg.gallery_shade,
        )
        print(f"\ngallery: {paths[-1]}")
    if args.json:
        payload = {
            r.name: {
                **r.summary(),
                "worst": r.worst(5),
                "per_image": r.per_image.to_dict("records"),
            }
            for r in results
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    if args.write:
        command = "python bench/real_photos.py " + " ".join(
            shlex.quote(a) for a in (argv or sys.argv[1:])
        )
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        with args.write.open("a") as fh:
            fh.write(f"\n{stamp}, threshold {cfg.threshold}: `{command}`\n\n{text}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
