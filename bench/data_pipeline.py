"""Time the data stages: demo generation, the statistics table, face counting, the GX gate.

    .venv/bin/python bench/data_pipeline.py --write-docs

Runs in a temp folder with the `data` params of params.yaml (default 700 images at 256²),
single process, and appends a table (plus this command and the load average, since the
reference machine is shared) to docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _phash_separation(dataset: Path, table) -> str:
    """Closest pair of distinct images vs farthest altered copy (threshold sits between)."""
    import cv2
    import numpy as np

    from hairseg.data.stats import hamming, perceptual_hash
    from hairseg.imaging import decode_image, encode_jpeg, read_image

    hashes = table["phash"].tolist()
    bits = np.stack([np.unpackbits(np.frombuffer(bytes.fromhex(h), np.uint8)) for h in hashes])
    bits = bits.astype(np.int32)
    distance = bits @ (1 - bits).T + (1 - bits) @ bits.T
    np.fill_diagonal(distance, 10_000)
    copies = []
    for image_id in table["image_id"][:50]:
        rgb = read_image(dataset / "images" / f"{image_id}.png")
        h, w = rgb.shape[:2]
        altered = [decode_image(encode_jpeg(rgb, quality=q)) for q in (30, 60, 90)]
        altered.append(cv2.resize(cv2.resize(rgb, (w // 2, h // 2)), (w, h)))
        altered.append(cv2.GaussianBlur(rgb, (0, 0), 1.5))
        copies += [hamming(perceptual_hash(rgb), perceptual_hash(a)) for a in altered]
    return (
        f"256-bit pHash: distinct images >= {int(distance.min())} bits apart; "
        f"JPEG q30-90 / half-res / blur copies of 50 images <= {max(copies)} bits"
    )


def main() -> int:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    from hairseg.config import load_params, section
    from hairseg.data.generate import DataParams, generate_dataset
    from hairseg.data.stats import compute_image_stats
    from hairseg.data.validate import ValidateParams, validate_dataset
    from hairseg.mediapipe_models import DEFAULT_MODELS_DIR, FaceDetector, model_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml")
    parser.add_argument("--n-train", type=int, help="override data.n_train")
    parser.add_argument("--write-docs", action="store_true", help="append to docs/BENCHMARKS.md")
    args = parser.parse_args()
    params = load_params(args.params)
    data_params = section(params, "data", DataParams)
    if args.n_train is not None:
        data_params = dataclasses.replace(data_params, n_train=args.n_train)
    validate_params = section(params, "validate", ValidateParams)
    n = data_params.n_train + data_params.n_val + data_params.n_test
    load_before = os.getloadavg()[0]
    rows: list[tuple[str, float, float, str]] = []  # step, wall s, CPU s, note
    with tempfile.TemporaryDirectory(prefix="hairseg-bench-data-") as tmp:
        start, cpu = time.perf_counter(), time.process_time()
        dataset = generate_dataset(Path(tmp) / "data", data_params).path
        took, cpu = time.perf_counter() - start, time.process_time() - cpu
        rows.append(
            ("generate (render + PNG write)", took, cpu, f"{1000 * cpu / n:.1f} CPU ms/img")
        )

        start, cpu = time.perf_counter(), time.process_time()
        table = compute_image_stats(dataset)
        took, cpu = time.perf_counter() - start, time.process_time() - cpu
        rows.append(("statistics table, no faces", took, cpu, f"{1000 * cpu / n:.1f} CPU ms/img"))
        rows.append(("pHash separation", 0.0, 0.0, _phash_separation(dataset, table)))

        face_model = model_path("face_detector", REPO / DEFAULT_MODELS_DIR)
        counter = FaceDetector(face_model) if face_model else None
        try:
            if counter is not None:
                start, cpu = time.perf_counter(), time.process_time()
                stats = compute_image_stats(dataset, face_counter=counter)
                took, cpu = time.perf_counter() - start, time.process_time() - cpu
                share = float((stats["face_count"] == 1).mean())
                rows.append(
                    (
                        "statistics table + MediaPipe face count",
                        took,
                        cpu,
                        f"{1000 * cpu / n:.1f} CPU ms/img; exactly one face in {share:.1%}",
                    )
                )
            start, cpu = time.perf_counter(), time.process_time()
            report = validate_dataset(
                dataset, validate_params, reports_dir=Path(tmp) / "reports", face_counter=counter
            )
            took, cpu = time.perf_counter() - start, time.process_time() - cpu
            rows.append(
                (
                    "validate (stats + GX suite + Data Docs)",
                    took,
                    cpu,
                    f"{report.n_expectations} expectations, success={report.success}",
                )
            )
        finally:
            if counter is not None:
                counter.close()
    load_after = os.getloadavg()[0]
    size = data_params.image_size
    text = "\n".join(
        [
            f"## Data stages: {n} demo images at {size}x{size}, one process",
            "",
            "```",
            ".venv/bin/python bench/data_pipeline.py"
            + (f" --n-train {args.n_train}" if args.n_train is not None else "")
            + " --write-docs",
            "```",
            "",
            "| step | wall s | CPU s | note |",
            "|---|---:|---:|---|",
            *[
                f"| {name} | {took:.2f} | {cpu:.2f} | {note} |"
                if took
                else f"| {name} | | | {note} |"
                for name, took, cpu, note in rows
            ],
            "",
            f"1-min load average {load_before:.1f} before, {load_after:.1f} after on 2 cores "
            "(shared machine: wall times include waiting for a core; CPU s is this process's "
            "own time, the per-core cost).",
            "",
        ]
    )
    print(text)
    if args.write_docs:
        with (REPO / "docs" / "BENCHMARKS.md").open("a") as fh:
            fh.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
