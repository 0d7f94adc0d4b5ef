"""GPU serving benchmark: ONNX Runtime's CUDA execution provider, micro-batching, img/s,
GPU utilisation (nvidia-smi) and latency percentiles, on a machine with an NVIDIA GPU.

    .venv/bin/python bench/gpu_serve.py --write-docs            # needs onnxruntime-gpu

1. Model only: the network on ``CUDAExecutionProvider`` at each batch size of
   ``--batches`` (input already on the host, as the server has it): img/s, p50/p99 per
   batch, mean GPU utilisation while it ran.
2. Served: ``hairseg serve`` on loopback with ``--max-batch-size`` / ``--batch-window-ms``
   (the micro-batcher merges concurrent requests into one network run), closed-loop
   aiohttp clients at each of ``--concurrency`` on 256² JPEG V2 binary requests: req/s,
   p50/p99, mean GPU utilisation, server CPU per request (the host side: decode, resize,
   PNG encode stay on the CPU and bound a GPU pod's throughput, docs/CAPACITY.md).

Without a CUDA provider or a GPU it prints one line saying so and exits 2; nothing is
measured and nothing is written. The model: ``--model PATH`` or the default network
exported as in ``bench/serve_load.py`` (untrained weights: same graph and cost).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

EXIT_NO_GPU = 2
DOCS_HEADING = "## GPU serving (`bench/gpu_serve.py`)"


def cuda_missing() -> str | None:
    """Why this machine cannot run the benchmark, or None."""
    try:
        import onnxruntime as ort
    except ImportError:
        return "onnxruntime is not installed"
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return (
            f"onnxruntime {ort.__version__} has no CUDAExecutionProvider "
            f"(providers: {', '.join(ort.get_available_providers())}); "
            "install onnxruntime-gpu on a machine with an NVIDIA GPU"
        )
    if shutil.which("nvidia-smi") is None:
        return "nvidia-smi not found: no NVIDIA driver on this machine"
    probe = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    if probe.returncode != 0 or "GPU" not in probe.stdout:
        return f"nvidia-smi lists no GPU ({(probe.stderr or probe.stdout).strip()[:200]})"
    return None


class GpuSampler:
    """``nvidia-smi`` utilisation and memory every ``interval_ms`` in the background."""

    def __init__(self, interval_ms: int = 100) -> None:
        self.samples: list[tuple[float, float, float]] = []  # (time, util %, MiB)
        self._proc = subprocess.Popen(
            [
                "nvidia-smi",
                "--query-gpu=utilization.gpu,memory.used",
                "--format=csv,noheader,nounits",
                "-i",
                "0",
                "-lms",
                str(interval_ms),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                util, mem = (float(x) for x in line.split(","))
            except ValueError:
                continue
            self.samples.append((time.perf_counter(), util, mem))

    def mean(self, start: float, end: float) -> tuple[float, float]:
        chosen = [(u, m) for t, u, m in self.samples if start <= t <= end]
        if not chosen:
            return float("nan"), float("nan")
        return sum(u for u, _ in chosen) / len(chosen), max(m for _, m in chosen)

    def close(self) -> None:
        self._proc.terminate()
        self._proc.wait(timeout=10)


def model_only(path: Path, batches: list[int], seconds: float, gpu: GpuSampler) -> list[str]:
    import numpy as np
    from hairseg_serving.testing import synthetic_portrait
    from serve_load import percentile

    from hairseg import imaging
    from hairseg.inference import OnnxSegmenter

    seg = OnnxSegmenter(path, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    used = seg.session.get_providers()
    if used[0] != "CUDAExecutionProvider":
        raise SystemExit(f"gpu_serve: the session fell back to {used}; nothing measured")
    size = seg.input_size
    one = imaging.preprocess([synthetic_portrait(size, size)], size)
    rows = []
    for b in batches:
        batch = np.repeat(one, b, axis=0)
        for _ in range(10):
            seg.logits(batch)
        times = []
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            t0 = time.perf_counter()
            seg.logits(batch)
            times.append((time.perf_counter() - t0) * 1000)
        end = time.perf_counter()
        util, mem = gpu.mean(start, end)
        rows.append(
            f"| {b} | {len(times) * b / (end - start):.0f} | {percentile(times, 50):.2f} | "
            f"{percentile(times, 99):.2f} | {util:.0f} | {mem:.0f} |"
        )
        print(rows[-1], flush=True)
    seg.close()
    return rows


def served(path: Path, args: argparse.Namespace, gpu: GpuSampler, tmp: Path) -> list[str]:
    from hairseg_serving.testing import start_server, stop_server
    from serve_load import run_cell

    flags = ["--workers", str(args.workers), "--max-batch-size", str(args.max_batch_size)]
    flags += ["--batch-window-ms", str(args.batch_window_ms), "--max-inflight", "0"]
    flags += ["--feature-repo", "", "--inference-log-dir", "", "--no-access-log"]
    proc, url, log = start_server(path, tmp, *flags)
    print(f"server log: {log}", flush=True)
    rows = []
    try:
        for conc in args.concurrency:
            start = time.perf_counter()
            row = asyncio.run(
                run_cell(url, 256, "v2", conc, args.seconds, args.max_requests, proc.pid)
            )
            util, _mem = gpu.mean(start, time.perf_counter())
            rows.append(
                f"| {conc} | {row.requests} | {row.errors} | {row.rps:.0f} | {row.p50_ms:.1f} | "
                f"{row.p99_ms:.1f} | {util:.0f} | {row.server_cpu_ms:.2f} |"
            )
            print(rows[-1], flush=True)
    finally:
        stop_server(proc, timeout_s=60)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--variant", choices=["fp32", "int8"], default="fp32")
    parser.add_argument("--batches", default="1,4,16,32,64")
    parser.add_argument("--model-seconds", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--batch-window-ms", type=float, default=2.0)
    parser.add_argument("--concurrency", default="16,64,256")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--max-requests", type=int, default=100_000)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    reason = cuda_missing()
    if reason is not None:
        print(f"gpu_serve: no GPU to measure: {reason}", file=sys.stderr)
        return EXIT_NO_GPU
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    from serve_load import REPO, loadavg, model_to_serve, section_start, write_docs

    gpu_name = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader", "-i", "0"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    load_before = loadavg()
    gpu = GpuSampler()
    try:
        with tempfile.TemporaryDirectory(prefix="hairseg-gpu-") as tmp_name:
            tmp = Path(tmp_name)
            model, what = model_to_serve(args.model, tmp, args.variant)
            model_rows = model_only(
                model, [int(b) for b in args.batches.split(",")], args.model_seconds, gpu
            )
            serve_rows = served(model, args, gpu, tmp)
    finally:
        gpu.close()
    text = "\n".join(
        [
            *section_start("GPU serving", "bench/gpu_serve.py"),
            f"GPU: {gpu_name}. Model: {what}. Load average before: {load_before}; after: "
            f"{loadavg()}.",
            "",
            "Model only (CUDAExecutionProvider, host input):",
            "",
            "| batch | img/s | p50 ms | p99 ms | GPU util % | GPU MiB |",
            "|---:|---:|---:|---:|---:|---:|",
            *model_rows,
            "",
            f"Served: `hairseg serve --workers {args.workers} --max-batch-size "
            f"{args.max_batch_size} --batch-window-ms {args.batch_window_ms:g}`, 256² JPEG V2 "
            "binary, closed-loop clients on the same host:",
            "",
            "| connections | requests | errors | req/s | p50 ms | p99 ms | GPU util % | server CPU ms/req |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
            *serve_rows,
            "",
        ]
    )
    print(text)
    if args.write_docs:
        write_docs(REPO / "docs" / "BENCHMARKS.md", text, DOCS_HEADING)
    return 0


if __name__ == "__main__":
    sys.exit(main())
