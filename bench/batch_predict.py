"""Batch prediction throughput: ``hairseg.batch.run_batch`` at 1 and 2 processes against
the model-only figure (ONNX Runtime on preprocessed tensors) at 1 and 2 processes, in one run.

Inputs: demo portraits (``hairseg.data.generate``) re-encoded as JPEG (q90) at --image-size,
like a folder of photos. Model: the project network (``model`` section defaults) exported to
ONNX with untrained weights (throughput does not depend on the weight values); ``--variant
int8`` quantizes it too. Every process runs ORT with one intra-op thread.

- model-only: each process loads the session, preprocesses its share of the images
  (untimed), then all start together and time ``session.run`` alone; img/s = images / wall.
  Not :func:`hairseg.quantize.time_models`: that one times a single random tensor per call
  in one process (a median latency), while the comparison here needs model-only
  *throughput* with N processes running at once (a barrier, then wall clock over real
  preprocessed images). Its one-process figure is printed beside ours as a cross-check.
- batch: ``run_batch`` into a fresh folder (read, decode, preprocess, infer, post-process,
  stats, mask PNG written, rows flushed, table compacted). *steady* img/s counts from the
  first to the last finished row (worker start-up excluded, reported as its own column);
  *end-to-end* img/s is images / the whole call.

    .venv/bin/python bench/batch_predict.py --write docs/BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

from hairseg import imaging

# pandas and hairseg.batch are imported inside functions: spawned workers re-import this
# module, and must not pay for what they do not use (as with `hairseg predict`).


def make_inputs(folder: Path, n: int, size: int) -> None:
    from hairseg.data.generate import DataParams, generate_dataset

    data = folder.parent / "demo"
    generate_dataset(data, DataParams(n_train=n, n_val=0, n_test=0, image_size=size, seed=7))
    folder.mkdir(parents=True)
    for path in sorted((data / "images").glob("*.png")):
        rgb = imaging.read_image(path)
        (folder / f"{path.stem}.jpg").write_bytes(imaging.encode_jpeg(rgb, quality=90))


def make_model(path: Path, variant: str, calibration: list[np.ndarray]) -> Path:
    import torch

    from hairseg.model import ModelConfig, build_model
    from hairseg.quantize import QuantizeConfig, export_onnx, quantize_int8

    torch.set_num_threads(1)
    cfg = ModelConfig()
    fp32 = path.with_name("fp32.onnx")
    export_onnx(build_model(cfg=cfg).eval(), cfg, fp32, metadata={"hairseg.model_version": "bench"})
    if variant == "fp32":
        return fp32
    quantize_int8(fp32, path, np.stack(calibration), cfg.input_size, QuantizeConfig())
    return path


def _model_only_worker(model: str, files: list[str], barrier, queue) -> None:  # type: ignore[no-untyped-def]
    from hairseg.inference import OnnxSegmenter

    seg = OnnxSegmenter(model, intra_op_threads=1)
    tensors = [imaging.preprocess([imaging.read_image(f)], seg.input_size) for f in files]
    for x in tensors[:3]:
        seg.logits(x)  # warm-up
    barrier.wait()
    start, cpu = time.time(), time.process_time()
    for x in tensors:
        seg.logits(x)
    queue.put((start, time.time(), len(tensors), time.process_time() - cpu))


def model_only(model: Path, files: list[Path], processes: int) -> dict[str, float]:
    ctx = multiprocessing.get_context("spawn")
    barrier, queue = ctx.Barrier(processes), ctx.Queue()
    shares = [[str(f) for f in files[i::processes]] for i in range(processes)]
    procs = [
        ctx.Process(target=_model_only_worker, args=(str(model), share, barrier, queue))
        for share in shares
    ]
    for p in procs:
        p.start()
    spans = [queue.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    n = sum(span[2] for span in spans)
    wall = max(span[1] for span in spans) - min(span[0] for span in spans)
    return {"ips": n / wall, "cpu_ms": 1e3 * sum(span[3] for span in spans) / n}


def batch(model: Path, src: Path, dest: Path, processes: int) -> dict[str, float]:
    import pandas as pd

    from hairseg.batch import BatchConfig, list_inputs, results_path, run_batch

    items = list_inputs(str(src))
    cfg = BatchConfig(workers=processes, flush_every=64)
    started, cpu = time.monotonic(), time.process_time()
    summary = run_batch(items, dest, model, cfg)
    total, main_cpu = time.monotonic() - started, time.process_time() - cpu
    assert summary.n_ok == len(items), summary.line()
    done = pd.to_datetime(pd.read_parquet(results_path(dest))["finished_at"]).sort_values()
    steady = (done.iloc[-1] - done.iloc[0]).total_seconds()
    table = pd.read_parquet(results_path(dest))
    ms = table[["read_ms", "decode_ms", "infer_ms", "write_ms"]]
    # worker CPU per item, plus the parent's own share (listing rows, parquet, IPC) when the
    # items ran in worker processes (with one process they run in the parent: counted once)
    parent = main_cpu / len(items) * 1e3 if processes > 1 else 0.0
    return {
        "cpu_ms": float(table["cpu_ms"].mean()) + parent
        if processes > 1
        else main_cpu / len(items) * 1e3,
        "steady": (len(items) - 1) / steady,
        "end_to_end": len(items) / total,
        "startup_s": total - steady,
        **{k: float(v) for k, v in ms.median().items()},
    }


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.median([r[k] for r in runs])) for k in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--variant", choices=["fp32", "int8"], default="fp32")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians")
    parser.add_argument("--write", type=Path, default=None, help="append the table to this file")
    args = parser.parse_args()

    runs: dict[int, dict[str, list[dict[str, float]]]] = {
        p: {"model": [], "batch": []} for p in args.processes
    }
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="hairseg-bench-batch-") as tmp:
        src = Path(tmp) / "photos"
        make_inputs(src, args.images, args.image_size)
        files = sorted(src.glob("*.jpg"))
        calib = [imaging.read_image(f) for f in files[:16]]
        model = make_model(Path(tmp) / f"{args.variant}.onnx", args.variant, calib)
        for r in range(args.rounds):  # interleaved, so load changes hit every figure alike
            for p in args.processes:
                mo = model_only(model, files, p)
                b = batch(model, src, Path(tmp) / f"out-{r}-{p}", p)
                runs[p]["model"].append(mo)
                runs[p]["batch"].append(b)
                print(
                    f"round {r} {p} process(es): model-only {mo['ips']:6.1f} img/s "
                    f"({mo['cpu_ms']:.1f} CPU ms/img) | batch steady {b['steady']:6.1f} img/s "
                    f"({b['cpu_ms']:.1f} CPU ms/img), end-to-end {b['end_to_end']:6.1f} img/s, "
                    f"start-up {b['startup_s']:.1f} s",
                    flush=True,
                )
        from hairseg.model import ModelConfig
        from hairseg.quantize import time_models

        latency = time_models({"m": model}, ModelConfig().input_size, repeats=200, threads=1)
        print(f"cross-check: time_models (1 process, random tensor) {1e3 / latency['m']:.1f} img/s")
    load_after = os.getloadavg()
    med = {p: (_median(v["model"]), _median(v["batch"])) for p, v in runs.items()}
    base_ips, base_cpu = med[min(med)][0]["ips"], med[min(med)][0]["cpu_ms"]
    rows = []
    for p, (mo, b) in med.items():
        rows.append(
            f"| {p} | {mo['ips']:.1f} | {mo['cpu_ms']:.2f} | {b['steady']:.1f} | "
            f"{b['cpu_ms']:.2f} | {b['end_to_end']:.1f} | {b['startup_s']:.1f} | "
            f"{100 * b['steady'] / base_ips:.0f} % | {100 * p * base_cpu / b['cpu_ms']:.0f} % | "
            f"{100 * b['steady'] / mo['ips']:.0f} % | {b['read_ms']:.1f} / {b['decode_ms']:.1f} / "
            f"{b['infer_ms']:.1f} / {b['write_ms']:.1f} |"
        )
        print(rows[-1])
    if args.write is None:
        return
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "",
        f"### Batch prediction, {when} (`{commit}`)",
        "",
        "```bash",
        ".venv/bin/python " + " ".join(shlex.quote(a) for a in sys.argv),
        "```",
        "",
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs; "
        f"{args.images} demo portraits as {args.image_size}² JPEG; {args.variant} network "
        "(default `model` section, untrained weights), one ORT thread per process; medians of "
        f"{args.rounds} interleaved rounds. Load average (1 min) {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after: above the process count, other jobs shared the cores and "
        "the wall-clock img/s are lower bounds; CPU ms/img (process CPU time per image) "
        "depends far less on it. `hairseg.quantize.time_models` (one process, median of 200 "
        f"calls on a random tensor) gives {1e3 / latency['m']:.1f} img/s for the same model.",
        "",
        "| processes | model-only img/s | model-only CPU ms/img | batch steady img/s | "
        "batch CPU ms/img | batch end-to-end img/s | start-up s | batch / model-only "
        "(1 process), wall | same, from CPU time | batch / model-only (same processes), wall "
        "| median read / decode / infer / write ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        *rows,
    ]
    with args.write.open("a") as f:
        f.write("\n".join(lines) + "\n")
    print(f"appended to {args.write}")


if __name__ == "__main__":
    main()
