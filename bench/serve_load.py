"""Load test of the KServe predictor on loopback: latency percentiles and requests/s.

    .venv/bin/python bench/serve_load.py --workers 2 --write-docs

Starts ``hairseg serve`` on a free 127.0.0.1 port (or uses ``--url``, which must be a
loopback address), then for each image size (256², 512² JPEG), protocol (V1 JSON with
base64, V2 with the binary-data extension) and concurrency (1, 8, 32) sends requests for
at most ``--seconds`` or ``--max-requests`` each (whichever comes first) from closed-loop
asyncio clients (aiohttp), and reports p50/p95/p99 latency, requests/s and errors. The
model-only latency (ONNX Runtime, batch 1, the server's thread count) of the same file is
measured first, for comparison.

The model: ``--model PATH|models:/...``; by default the
default network (``hairseg.model.build_model`` with ``params.yaml`` ``model:``) exported
by ``hairseg.quantize`` with untrained weights (same graph and cost) and, for
``--variant int8``, quantized with synthetic calibration images.

Each row also carries the model-only throughput with the server's thread budget
(``--workers`` threads, each its own ONNX Runtime session with ``--threads`` intra-op
threads, batch 1, for ``--model-seconds``), measured right before that row's group on
the same cores, and the **ratio** server requests/s ÷ model-only images/s (issue 13's
target: ≥ 0.90 at 16 connections), and for one client p50 − model-only p50 (target:
≤ 1.5 ms). ``--baseline REF`` also serves the code of git ``REF`` (``git archive``, put
first on ``PYTHONPATH``; same model, flags and venv) on a second port, and runs every
row against both servers back to back (alternating which goes first), so before/after
are compared inside one run at the same machine load.

The load generator runs on the same cores as the server, so the numbers are a floor;
``uptime`` load averages are recorded before and after each run.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import ipaddress
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
from hairseg_serving.testing import start_server as launch_server
from hairseg_serving.testing import stop_server, synthetic_portrait

from hairseg import imaging

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Row:
    size: int
    protocol: str
    concurrency: int
    code: str  # "before" (--baseline REF) / "after" (this checkout) / "" (no baseline)
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    server_cpu_ms: float = float("nan")  # server CPU time (all processes) per request
    client_cpu_ms: float = float("nan")  # this load generator's CPU time per request
    model_ips: float = float("nan")  # model-only images/s, same thread budget, just before
    model_p50_ms: float = float("nan")  # model-only p50, one session, just before
    model_cpu_ms: float = float("nan")  # model-only CPU time per image

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def ratio(self) -> float:
        """Server requests/s ÷ model-only images/s with the same thread budget."""
        return self.rps / self.model_ips if self.model_ips else float("nan")

    @property
    def overhead_ms(self) -> float:
        """p50 − model-only p50 (meaningful for one client)."""
        return self.p50_ms - self.model_p50_ms

    @property
    def cpu_ratio(self) -> float:
        """Model-only CPU per image ÷ server CPU per request (1.0 = no serving overhead)."""
        return self.model_cpu_ms / self.server_cpu_ms if self.server_cpu_ms else float("nan")


def section_start(title: str, script: str) -> list[str]:
    """A results section's first lines: title with date and commit, the exact command."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return [
        f"### {title}, {when} (`{commit}`)",
        "",
        f"Command: `python {script} {' '.join(sys.argv[1:])}`",
        "",
    ]


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def server_cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of the server process and its workers so far."""
    if pid is None:
        return float("nan")
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return float("nan")
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def require_loopback(url: str) -> None:
    host = urlparse(url).hostname or ""
    try:
        ok = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise SystemExit(f"--url must be a loopback address (127.0.0.0/8, ::1), got {host!r}")


# -- the model ----------------------------------------------------------------------------


def default_network(out_dir: Path, variant: str) -> tuple[Path, str, list[Path]]:
    """The default network, exported and quantized by the lifecycle code: the file to
    serve, what it is, and both variants (for the model-only comparison)."""
    from hairseg.config import load_params, section
    from hairseg.model import ModelConfig, build_model
    from hairseg.quantize import QuantizeConfig, export_onnx, quantize_int8

    params = load_params(REPO / "params.yaml")
    cfg = section(params, "model", ModelConfig)
    fp32 = out_dir / "model_fp32.onnx"
    export_onnx(build_model(cfg=cfg), cfg, fp32)
    what = f"{cfg.arch} (params.yaml model:, input {cfg.input_size}², untrained weights)"
    calibration = np.stack(
        [synthetic_portrait(cfg.input_size, cfg.input_size, seed=i) for i in range(16)]
    )
    int8 = out_dir / "model_int8.onnx"
    quantize_int8(
        fp32, int8, calibration, cfg.input_size, section(params, "quantize", QuantizeConfig)
    )
    if variant == "fp32":
        return fp32, what + ", fp32", [fp32, int8]
    return int8, what + ", int8 QDQ (synthetic calibration)", [fp32, int8]


def model_to_serve(model: Path | None, out_dir: Path, variant: str) -> tuple[Path, str]:
    """``--model`` when it is given, else :func:`default_network` exported into ``out_dir``:
    the file to serve and what it is."""
    if model is not None:
        return model, str(model)
    path, what, _ = default_network(out_dir, variant)
    return path, what


def model_only(path: Path, threads: int, repeats: int) -> dict[str, float]:
    from hairseg.inference import OnnxSegmenter

    seg = OnnxSegmenter(path, intra_op_threads=threads)
    batch = imaging.preprocess([synthetic_portrait(seg.input_size, seg.input_size)], seg.input_size)
    for _ in range(10):
        seg.logits(batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        seg.logits(batch)
        times.append((time.perf_counter() - start) * 1000)
    return {
        "p50_ms": percentile(times, 50),
        "p95_ms": percentile(times, 95),
        "p99_ms": percentile(times, 99),
    }


def model_throughput(path: Path, workers: int, threads: int, seconds: float) -> dict[str, float]:
    """Images/s of ``workers`` sessions run side by side (each in its own thread, ORT
    releases the GIL), ``threads`` intra-op threads each, batch 1, for ``seconds``; also
    the p50 of one session alone and the CPU time per image."""
    import threading

    from hairseg.inference import OnnxSegmenter

    segs = [OnnxSegmenter(path, intra_op_threads=threads) for _ in range(workers)]
    size = segs[0].input_size
    batch = imaging.preprocess([synthetic_portrait(size, size)], size)
    for seg in segs:
        for _ in range(5):
            seg.logits(batch)
    alone = []
    stop_alone = time.perf_counter() + min(seconds, 2.0)
    while time.perf_counter() < stop_alone:
        t0 = time.perf_counter()
        segs[0].logits(batch)
        alone.append((time.perf_counter() - t0) * 1000)
    counts, cpu = [0] * workers, [0.0] * workers
    stop_at = time.perf_counter() + seconds

    def run(i: int) -> None:
        c0 = time.thread_time()  # intra-op threads 1: ORT computes on this thread
        while time.perf_counter() < stop_at:
            segs[i].logits(batch)
            counts[i] += 1
        cpu[i] = time.thread_time() - c0

    start = time.perf_counter()
    pool = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - start
    for seg in segs:
        seg.close()
    images = sum(counts)
    return {
        "ips": images / elapsed,
        "p50_ms": percentile(alone, 50),
        # With more intra-op threads than 1 the pool threads' CPU is not on this thread.
        "cpu_ms": sum(cpu) * 1000 / images if threads == 1 and images else float("nan"),
    }


def baseline_tree(ref: str, dest: Path) -> tuple[Path, str]:
    """The files of git ``ref`` under ``dest`` (``git archive``) and its short commit."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", ref], cwd=REPO, capture_output=True, text=True
    )
    if commit.returncode != 0:
        raise SystemExit(f"--baseline {ref!r}: not a git revision ({commit.stderr.strip()})")
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", ref], cwd=REPO, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest, commit.stdout.strip()


def baseline_env(tree: Path) -> dict[str, str]:
    """PYTHONPATH that puts the baseline's packages before this checkout's editable ones."""
    paths = [tree / "src", tree / "serving", tree / "components", tree / "pipelines"]
    return {"PYTHONPATH": os.pathsep.join(str(p) for p in paths)}


# -- the server ---------------------------------------------------------------------------


def start_server(
    model: Path,
    args: argparse.Namespace,
    workdir: Path,
    env: dict[str, str] | None = None,
    max_inflight: bool = True,
) -> tuple[subprocess.Popen, str]:
    """``hairseg serve`` on loopback with the flags under test (the tests' own launcher);
    ``env``: the baseline's PYTHONPATH, whose CLI may predate ``--max-inflight``."""
    flags = ["--workers", str(args.workers), "--max-batch-size", str(args.max_batch_size)]
    flags += [
        "--intra-op-threads",
        str(args.threads),
        "--feature-repo",
        "",
        "--inference-log-dir",
        "",
    ]
    flags += [] if args.access_log else ["--no-access-log"]
    if max_inflight:
        flags += ["--max-inflight", str(args.max_inflight)]
    try:
        proc, url, log = launch_server(model, workdir, *flags, env=env)
    except AssertionError as exc:
        raise SystemExit(str(exc)) from None
    print(f"server log: {log}", flush=True)
    return proc, url


# -- the load -----------------------------------------------------------------------------


def request_for(size: int, protocol: str) -> tuple[str, bytes, dict[str, str]]:
    data = imaging.encode_jpeg(synthetic_portrait(size, size, seed=size), quality=90)
    if protocol == "v1":
        body = json.dumps({"instances": [{"image_b64": base64.b64encode(data).decode()}]}).encode()
        return "/v1/models/hairseg:predict", body, {"content-type": "application/json"}
    blob = len(data).to_bytes(4, "little") + data
    spec = {
        "name": "image",
        "shape": [1],
        "datatype": "BYTES",
        "parameters": {"binary_data_size": len(blob)},
    }
    header = json.dumps({"inputs": [spec], "parameters": {"binary_data_output": True}}).encode()
    headers = {
        "inference-header-content-length": str(len(header)),
        "content-type": "application/octet-stream",
    }
    return "/v2/models/hairseg/infer", header + blob, headers


async def run_cell(
    url: str,
    size: int,
    protocol: str,
    concurrency: int,
    seconds: float,
    max_requests: int,
    pid: int | None,
    code: str = "",
) -> Row:
    import aiohttp

    path, body, headers = request_for(size, protocol)
    latencies: list[float] = []
    errors = 0
    issued = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(url, connector=connector) as session:
        # Warm-up: every connection once.
        await asyncio.gather(
            *(session.post(path, data=body, headers=headers) for _ in range(concurrency))
        )
        cpu_before = server_cpu_seconds(pid)
        client_before = time.process_time()
        start = time.perf_counter()
        stop_at = start + seconds

        async def client() -> None:
            nonlocal errors, issued
            while issued < max_requests and time.perf_counter() < stop_at:
                issued += 1
                t0 = time.perf_counter()
                try:
                    async with session.post(path, data=body, headers=headers) as r:
                        await r.read()
                        ok = r.status == 200
                except aiohttp.ClientError:
                    ok = False
                latencies.append((time.perf_counter() - t0) * 1000)
                errors += not ok

        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
        cpu = server_cpu_seconds(pid) - cpu_before
        client_cpu = time.process_time() - client_before
    return Row(
        size,
        protocol,
        concurrency,
        code,
        len(latencies),
        errors,
        elapsed,
        percentile(latencies, 50),
        percentile(latencies, 95),
        percentile(latencies, 99),
        cpu * 1000 / max(len(latencies), 1),
        client_cpu * 1000 / max(len(latencies), 1),
    )


def _f(value: float, fmt: str) -> str:
    return "–" if value != value else format(value, fmt)  # NaN: not measured


def markdown(rows: list[Row], meta: dict[str, str], model_rows: dict[str, dict[str, float]]) -> str:
    codes = meta.get("codes", "")
    lines = [
        f"### Serving load, {meta['date']} (`{meta['commit']}`)",
        "",
        f"Command: `{meta['command']}`",
        "",
        f"Model: {meta['model']}. Server: `hairseg serve` on 127.0.0.1, {meta['config']}. "
        f"Client: closed-loop aiohttp on the same 2 cores, {meta['bounds']}. "
        f"Load average (1/5/15 min) before: {meta['load_before']}; after: {meta['load_after']}."
        + (f" Code: {codes}." if codes else ""),
        "",
        "Model only (ONNX Runtime, batch 1, same threads), ms:",
        "",
        "| model | p50 | p95 | p99 |",
        "|---|---:|---:|---:|",
        *(
            f"| {k} | {v['p50_ms']:.2f} | {v['p95_ms']:.2f} | {v['p99_ms']:.2f} |"
            for k, v in model_rows.items()
        ),
        "",
        "Model img/s is the served file alone with the server's thread budget (one ORT",
        "session per worker, side by side), measured just before each input/protocol",
        "group; ratio = req/s ÷ model img/s (target ≥ 0.90 at 16 connections). Δp50 =",
        "p50 − model-only p50 of one session (target ≤ 1.5 ms for one client). Server CPU",
        "ms/req is the CPU time of the server's processes per request (psutil; it depends far",
        "less on the machine's load than wall-clock figures); CPU ratio = model-only CPU per",
        "image ÷ server CPU per request (1.00 = the server spends nothing besides the",
        "network). Client CPU ms/req is the load generator's share of the same cores.",
        "",
        "| input | protocol | conc. | code | requests | errors | req/s | model img/s | ratio | p50 ms | Δp50 ms | p99 ms | server CPU ms/req | CPU ratio | client CPU ms/req |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {r.size}² JPEG | {'V1 JSON' if r.protocol == 'v1' else 'V2 binary'} | {r.concurrency} | "
            f"{r.code or '–'} | {r.requests} | {r.errors} | {r.rps:.0f} | {_f(r.model_ips, '.0f')} | "
            f"**{_f(r.ratio, '.2f')}** | {r.p50_ms:.1f} | {_f(r.overhead_ms, '+.1f')} | {r.p99_ms:.1f} | "
            f"{_f(r.server_cpu_ms, '.2f')} | {_f(r.cpu_ratio, '.2f')} | {r.client_cpu_ms:.2f} |"
            for r in rows
        ),
        "",
    ]
    return "\n".join(lines)


DOCS_HEADING = "## Serving: the KServe predictor under load (`bench/serve_load.py`)"


def write_docs(path: Path, text: str, heading: str = DOCS_HEADING) -> None:
    """Add ``text`` at the end of the ``heading`` section (created if missing)."""
    doc = path.read_text() if path.exists() else "# Benchmarks\n"
    if heading not in doc:
        doc = doc.rstrip("\n") + f"\n\n{heading}\n"
    start = doc.index(heading) + len(heading)
    following = doc.find("\n## ", start)
    end = len(doc) if following < 0 else following + 1
    doc = (
        doc[:end].rstrip("\n")
        + "\n\n"
        + text.rstrip("\n")
        + "\n"
        + ("\n" + doc[end:] if end < len(doc) else "")
    )
    path.write_text(doc)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model",
        default=None,
        help="ONNX file or models:/ URI (default: the default network, exported here)",
    )
    parser.add_argument("--variant", choices=["fp32", "int8"], default="int8")
    parser.add_argument("--url", default=None, help="an already running server (loopback only)")
    parser.add_argument(
        "--baseline",
        default=None,
        metavar="REF",
        help="also serve git REF's code and run every row against both (before/after)",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="ORT intra-op threads per worker")
    parser.add_argument("--max-batch-size", type=int, default=1)
    parser.add_argument(
        "--max-inflight", type=int, default=0, help="serve --max-inflight (0: no shedding)"
    )
    parser.add_argument("--access-log", action="store_true", help="keep the per-request log line")
    parser.add_argument("--sizes", default="256,512")
    parser.add_argument("--protocols", default="v1,v2")
    parser.add_argument("--concurrency", default="1,16")
    parser.add_argument("--seconds", type=float, default=10.0, help="per cell, at most")
    parser.add_argument("--max-requests", type=int, default=5000, help="per cell, at most")
    parser.add_argument("--model-repeats", type=int, default=200)
    parser.add_argument(
        "--model-seconds", type=float, default=3.0, help="model-only throughput per group"
    )
    parser.add_argument(
        "--write-docs", action="store_true", help="append the rows to docs/BENCHMARKS.md"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args()
    if args.url:
        require_loopback(args.url)
        if args.baseline:
            raise SystemExit("--baseline starts its own servers; leave out --url")
    load_before = loadavg()
    codes = ""
    with tempfile.TemporaryDirectory(prefix="hairseg-bench-") as tmp:
        tmp_dir = Path(tmp)
        if args.model:
            from hairseg_serving.model_source import resolve_model

            model, what = (
                resolve_model(args.model, cache_dir=tmp_dir, project_root=REPO),
                args.model,
            )
            variants = [model]
        else:
            model, what, variants = default_network(tmp_dir, args.variant)
        model_rows = {
            Path(m).name: model_only(m, args.threads, args.model_repeats) for m in variants
        }
        servers: list[tuple[str, subprocess.Popen | None, str]] = []  # (code, process, url)
        try:
            if args.url:
                servers.append(("", None, args.url))
            else:
                if args.baseline:
                    tree, ref = baseline_tree(args.baseline, tmp_dir / "baseline")
                    (tmp_dir / "before").mkdir()
                    proc, url = start_server(
                        model, args, tmp_dir / "before", baseline_env(tree), max_inflight=False
                    )
                    servers.append(("before", proc, url))
                    head = subprocess.run(
                        ["git", "rev-parse", "--short", "HEAD"],
                        cwd=REPO,
                        capture_output=True,
                        text=True,
                    ).stdout.strip()
                    codes = (
                        f"before = `{args.baseline}` ({ref}), after = this checkout ({head}"
                        f"{', uncommitted changes' if _dirty() else ''})"
                    )
                proc, url = start_server(model, args, tmp_dir)
                servers.append(("after" if args.baseline else "", proc, url))
            rows = []
            flip = False
            for size in map(int, args.sizes.split(",")):
                for protocol in args.protocols.split(","):
                    mt = model_throughput(model, args.workers, args.threads, args.model_seconds)
                    print(
                        f"model only: {mt['ips']:.0f} img/s with {args.workers} x {args.threads} "
                        f"thread(s), p50 {mt['p50_ms']:.2f} ms (load {loadavg()})",
                        flush=True,
                    )
                    for conc in map(int, args.concurrency.split(",")):
                        order = servers[::-1] if flip else servers
                        flip = not flip
                        for code, proc, url in order:
                            row = asyncio.run(
                                run_cell(
                                    url,
                                    size,
                                    protocol,
                                    conc,
                                    args.seconds,
                                    args.max_requests,
                                    proc.pid if proc is not None else None,
                                    code,
                                )
                            )
                            row.model_ips = mt["ips"]
                            row.model_p50_ms = mt["p50_ms"]
                            row.model_cpu_ms = mt["cpu_ms"]
                            rows.append(row)
                            print(
                                f"{size}² {protocol} c={conc} {code}: {row.requests} req, "
                                f"{row.errors} errors, {row.rps:.0f} req/s = {row.ratio:.2f} x model "
                                f"({row.model_ips:.0f} img/s), p50 {row.p50_ms:.1f} "
                                f"(model {row.model_p50_ms:.2f}, {row.overhead_ms:+.1f}) p99 "
                                f"{row.p99_ms:.1f} ms, server CPU {row.server_cpu_ms:.2f} ms/req "
                                f"(CPU ratio {row.cpu_ratio:.2f}), client CPU {row.client_cpu_ms:.2f} "
                                f"ms/req (load {loadavg()})",
                                flush=True,
                            )
                        rows[-len(order) :] = sorted(
                            rows[-len(order) :], key=lambda r: r.code, reverse=True
                        )
        finally:
            for _, proc, _ in servers:
                if proc is not None:
                    stop_server(proc, timeout_s=60)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "commit": commit,
        "command": "python bench/serve_load.py " + " ".join(sys.argv[1:]),
        "model": what,
        "config": f"{args.workers} worker(s), {args.threads} ORT thread(s) each, micro-batch ≤ {args.max_batch_size}, "
        f"access log {'on' if args.access_log else 'off'}, max_inflight {args.max_inflight or 'off'}",
        "bounds": f"≤ {args.seconds:g} s and ≤ {args.max_requests} requests per row",
        "load_before": load_before,
        "load_after": loadavg(),
        "codes": codes,
    }
    text = markdown(rows, meta, model_rows)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "meta": meta,
                    "model_only": model_rows,
                    "rows": [
                        r.__dict__
                        | {
                            "rps": r.rps,
                            "ratio": r.ratio,
                            "overhead_ms": r.overhead_ms,
                            "cpu_ratio": r.cpu_ratio,
                        }
                        for r in rows
                    ],
                },
                indent=2,
            )
        )
    if args.write_docs:
        write_docs(REPO / "docs" / "BENCHMARKS.md", text)
    return 0 if all(r.errors == 0 for r in rows) else 1


def _dirty() -> bool:
    return bool(
        subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )


if __name__ == "__main__":
    sys.exit(main())
