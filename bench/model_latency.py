"""Model-only latency: PyTorch eager vs ONNX Runtime fp32 vs ONNX Runtime int8.

Batch 1 and 8, at 256² and 512², on preprocessed input (no decode/resize), ORT sessions with
``intra_op_num_threads`` = --threads and all graph optimisations. Uses the trained weights
in models/ when present (latency does not depend on the weight values; an untrained network
of the same architecture is used otherwise), exports each size to ONNX, quantizes it with
static QDQ int8 (calibration: train images when data/ exists, else noise), and times it.

    .venv/bin/python bench/model_latency.py --write docs/BENCHMARKS.md

appends a dated table (with this command and the machine's load average) to the file.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import tempfile
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

# Before torch loads libgomp: waiting OpenMP threads must not spin (see cli/lifecycle.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch

from hairseg.evaluate import measure_latency
from hairseg.model import ModelConfig, build_model, load_model
from hairseg.quantize import QuantizeConfig, export_onnx, quantize_int8


def _calibration(size: int, data: Path, n: int) -> np.ndarray:
    if (data / "manifest.parquet").is_file():
        from hairseg.train import load_split

        return load_split(data, "train", size, n).images
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _session(path: Path, threads: int, profile_prefix: str | None = None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    if profile_prefix:  # ORT's per-node JSON profile (bench/fast_network.py --profile)
        opts.enable_profiling = True
        opts.profile_file_prefix = profile_prefix
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def report_header(title: str) -> list[str]:
    """A dated Markdown heading and the exact command line (for --write)."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return [
        "",
        f"### {title} ({when})",
        "",
        "```bash",
        ".venv/bin/python " + " ".join(shlex.quote(a) for a in sys.argv),
        "```",
        "",
    ]


def emit(lines: list[str], write: Path | None) -> None:
    """Print the report and append it to ``write`` (when given)."""
    text = "\n".join(lines) + "\n"
    print(text)
    if write:
        with write.open("a") as fh:
            fh.write(text)


def _print(row: tuple) -> None:
    name, size, batch, p50, p95 = row
    print(f"{name:20s} {size:4d}² batch {batch}: p50 {p50:8.2f} ms  p95 {p95:8.2f} ms", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--write", type=Path, default=None, help="append the table to this file")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    weights = args.models / "weights.pt"
    if weights.is_file():
        model, base_cfg = load_model(weights, args.models / "model_config.json")
        source = f"trained weights ({weights})"
    else:
        base_cfg = ModelConfig()
        model = build_model(cfg=base_cfg).eval()
        source = "untrained weights (no models/weights.pt)"

    rows = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="hairseg-bench-") as tmp:
        for size in args.sizes:
            cfg = replace(base_cfg, input_size=size)
            fp32 = Path(tmp) / f"fp32_{size}.onnx"
            int8 = Path(tmp) / f"int8_{size}.onnx"
            export_onnx(model, cfg, fp32)
            quantize_int8(fp32, int8, _calibration(size, args.data, 32), size, QuantizeConfig())
            inputs = {
                b: np.random.default_rng(0).normal(size=(b, 3, size, size)).astype(np.float32)
                for b in args.batches
            }
            # PyTorch first, before any ORT session exists (ORT's pool threads spin).
            for batch_size, x in inputs.items():
                with torch.inference_mode():
                    p50, p95 = measure_latency(
                        model, torch.from_numpy(x), args.warmup, args.repeats
                    )
                rows.append(("pytorch eager fp32", size, batch_size, p50, p95))
                _print(rows[-1])
            for name, path in (("ort fp32", fp32), ("ort int8", int8)):
                sess = _session(path, args.threads)
                for batch_size, x in inputs.items():
                    p50, p95 = measure_latency(
                        lambda b, s=sess: s.run(["logits"], {"image": b}),
                        x,
                        args.warmup,
                        args.repeats,
                    )
                    rows.append((name, size, batch_size, p50, p95))
                    _print(rows[-1])
                del sess
    load_after = os.getloadavg()

    lines = [
        *report_header("Model latency"),
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
        f"{args.threads} threads (torch intra-op / ORT intra_op_num_threads), {source}, "
        f"{args.repeats} timed runs after {args.warmup} warm-up. Load average (1 min) "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after: other jobs shared the CPU "
        "when it is above the thread count, so these are upper bounds.",
        "",
        "| backend | input | batch | p50 ms | p95 ms | p50 ms / image |",
        "|---|---|---|---|---|---|",
    ]
    for name, size, batch_size, p50, p95 in rows:
        lines.append(
            f"| {name} | {size}² | {batch_size} | {p50:.2f} | {p95:.2f} | {p50 / batch_size:.2f} |"
        )
    emit(lines, args.write)


if __name__ == "__main__":
    main()
