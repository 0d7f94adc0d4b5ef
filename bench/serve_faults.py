"""Soak, worker kill and overload burst of ``hairseg serve`` on loopback (issue 13, item 5).

    .venv/bin/python bench/serve_faults.py soak  --duration 600 --write-docs
    .venv/bin/python bench/serve_faults.py kill  --duration 30 --write-docs
    .venv/bin/python bench/serve_faults.py burst --duration 10 --write-docs

Every mode starts ``hairseg serve --workers W`` on a free 127.0.0.1 port with the model of
``bench/serve_load.py`` (``--model`` or the default network exported with untrained
weights) and first measures the server's capacity: closed-loop clients
(``--capacity-connections``, 256² V2 binary JPEG) for ``--capacity-seconds``.

- ``soak``: open-loop arrivals at ``--load`` × capacity (default 0.8) for ``--duration``
  seconds; per ``--window`` seconds: requests, errors, p50/p99 and each worker's RSS.
  Verdict lines: errors = 0, p99 of the last window ÷ p99 of the first, RSS growth of
  each worker from the end of the first window to the end (target < 5 %).
- ``kill``: closed-loop load (``--connections``); after ``--kill-after`` seconds one
  worker gets SIGKILL. Reports requests ok/failed per second, the failed requests, and
  the respawn time (kill → the replacement's "Application startup complete" log line).
- ``burst``: open-loop arrivals at ``--factor`` × capacity (default 4) for
  ``--duration`` seconds, once with ``--max-inflight`` (shedding on) and once with 0
  (off, the old behaviour), same run: 200s, 503s (with JSON body), timeouts and other
  errors, and the latency of each kind.

The load generator shares the cores with the server (and, on the reference machine,
with other people's jobs): load averages are recorded before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve_load import (  # bench/ is not a package: its folder is on sys.path
    REPO,
    loadavg,
    model_to_serve,
    percentile,
    request_for,
    section_start,
    write_docs,
)

DOCS_HEADING = "## Serving faults: soak, worker kill, overload burst (`bench/serve_faults.py`)"


# -- the server -----------------------------------------------------------------------------


def start(model: Path, args: argparse.Namespace, workdir: Path, max_inflight: int):
    from hairseg_serving.testing import start_server

    flags = ["--workers", str(args.workers), "--intra-op-threads", "1", "--max-batch-size", "1"]
    flags += ["--feature-repo", "", "--inference-log-dir", "", "--no-access-log"]
    flags += ["--max-inflight", str(max_inflight)]
    workdir.mkdir(parents=True, exist_ok=True)
    proc, url, log = start_server(model, workdir, *flags)
    return proc, url, log


def workers_of(pid: int) -> list[int]:
    import psutil

    try:
        return [c.pid for c in psutil.Process(pid).children(recursive=True) if _is_worker(c)]
    except psutil.NoSuchProcess:
        return []


def _is_worker(proc) -> bool:
    # KServe's workers are multiprocessing children (spawn); the resource tracker is not one.
    try:
        return "resource_tracker" not in " ".join(proc.cmdline())
    except Exception:
        return False


def rss_mb(pid: int) -> float:
    import psutil

    try:
        return psutil.Process(pid).memory_info().rss / 2**20
    except psutil.NoSuchProcess:
        return float("nan")


# -- clients ---------------------------------------------------------------------------------


class Tally:
    """Results of requests: status → latencies (ms); -1 = timeout, -2 = connection error."""

    def __init__(self) -> None:
        self.by_status: dict[int, list[float]] = {}
        self.events: list[tuple[float, int]] = []  # (finish time, status)
        self.json_503 = 0

    def add(self, status: int, ms: float) -> None:
        self.by_status.setdefault(status, []).append(ms)
        self.events.append((time.perf_counter(), status))

    def count(self, status: int) -> int:
        return len(self.by_status.get(status, []))

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.by_status.values())

    @property
    def failed(self) -> int:
        return self.total - self.count(200)


async def one(session, path, body, headers, tally: Tally, timeout_s: float) -> None:
    import aiohttp

    t0 = time.perf_counter()
    try:
        async with session.post(
            path, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s)
        ) as r:
            payload = await r.read()
            status = r.status
            if status == 503 and payload.startswith(b'{"error"'):
                tally.json_503 += 1
    except TimeoutError:
        status = -1
    except aiohttp.ClientError:
        status = -2
    tally.add(status, (time.perf_counter() - t0) * 1000)


async def closed_loop(url: str, connections: int, seconds: float, tally: Tally) -> float:
    import aiohttp

    path, body, headers = request_for(256, "v2")
    async with aiohttp.ClientSession(
        url, connector=aiohttp.TCPConnector(limit=connections)
    ) as session:
        start = time.perf_counter()
        stop_at = start + seconds

        async def client() -> None:
            while time.perf_counter() < stop_at:
                await one(session, path, body, headers, tally, 30.0)

        await asyncio.gather(*(client() for _ in range(connections)))
        return time.perf_counter() - start


async def open_loop(
    url: str, rate: float, seconds: float, tally: Tally, timeout_s: float, max_connections: int
) -> float:
    """Poisson-free fixed-interval arrivals at ``rate``/s, each its own task."""
    import aiohttp

    path, body, headers = request_for(256, "v2")
    async with aiohttp.ClientSession(
        url, connector=aiohttp.TCPConnector(limit=max_connections)
    ) as session:
        tasks = []
        start = time.perf_counter()
        n = 0
        while True:
            due = start + n / rate
            now = time.perf_counter()
            if due - start >= seconds:
                break
            if due > now:
                await asyncio.sleep(due - now)
            tasks.append(asyncio.create_task(one(session, path, body, headers, tally, timeout_s)))
            n += 1
            if len(tasks) > 4096:
                tasks = [t for t in tasks if not t.done()]
        await asyncio.gather(*tasks)
        return time.perf_counter() - start


def capacity(url: str, args: argparse.Namespace) -> float:
    tally = Tally()
    elapsed = asyncio.run(closed_loop(url, args.capacity_connections, args.capacity_seconds, tally))
    rps = tally.count(200) / elapsed
    print(
        f"capacity: {rps:.0f} req/s ({args.capacity_connections} connections, "
        f"{args.capacity_seconds:g} s, {tally.failed} failed; load {loadavg()})",
        flush=True,
    )
    return rps


def _ms(values: list[float], q: float) -> str:
    return f"{percentile(values, q):.1f}" if values else "–"


# -- modes -----------------------------------------------------------------------------------


def soak(url: str, proc, args: argparse.Namespace) -> tuple[list[str], bool]:
    cap = capacity(url, args)
    rate = args.load * cap
    workers = workers_of(proc.pid)
    rows, windows = [], int(max(1, round(args.duration / args.window)))
    first_rss: dict[int, float] = {}
    p99s, errors = [], 0
    for w in range(windows):
        tally = Tally()
        elapsed = asyncio.run(open_loop(url, rate, args.window, tally, 10.0, 256))
        ok = tally.by_status.get(200, [])
        rss = {pid: rss_mb(pid) for pid in workers}
        if w == 0:
            first_rss = rss
        p99 = percentile(ok, 99)
        p99s.append(p99)
        errors += tally.failed
        kinds = ", ".join(
            f"{_kind(k)}: {len(v)}" for k, v in sorted(tally.by_status.items()) if k != 200
        )
        rows.append(
            f"| {(w + 1) * args.window:.0f} | {tally.total} | {tally.total / elapsed:.0f} | "
            f"{tally.failed}{f' ({kinds})' if kinds else ''} | {_ms(ok, 50)} | {_ms(ok, 99)} | "
            + " / ".join(f"{v:.1f}" for v in rss.values())
            + f" | {loadavg()} |"
        )
        print(rows[-1], flush=True)
    growth = {
        pid: (rss_mb(pid) - first_rss[pid]) / first_rss[pid] * 100 for pid in first_rss
    }  # from the end of the first window (warm) to the end
    alive = workers_of(proc.pid)
    verdict = (
        errors == 0 and all(g < 5 for g in growth.values()) and sorted(alive) == sorted(workers)
    )
    lines = [
        f"Capacity (closed loop, {args.capacity_connections} connections, 256² V2): "
        f"{cap:.0f} req/s; soak at {args.load:g} × = {rate:.0f} req/s open loop "
        f"for {args.duration:g} s.",
        "",
        "| t s | requests | req/s | errors | p50 ms | p99 ms | worker RSS MiB | load avg |",
        "|---:|---:|---:|---:|---:|---:|---|---|",
        *rows,
        "",
        f"Errors: {errors}. p99 last ÷ first window: {p99s[-1] / p99s[0]:.2f} (max window p99 "
        f"{max(p99s):.1f} ms). Worker RSS growth from the end of the first window: "
        + ", ".join(f"{g:+.2f} %" for g in growth.values())
        + f". Workers restarted during the soak: {'none' if sorted(alive) == sorted(workers) else 'yes'}."
        + f" Verdict (0 errors, RSS growth < 5 %, no restart): {'pass' if verdict else 'FAIL'}.",
    ]
    return lines, verdict


def kill(url: str, proc, log: Path, args: argparse.Namespace) -> tuple[list[str], bool]:
    before = workers_of(proc.pid)
    if len(before) < 2:
        raise SystemExit(f"kill needs --workers >= 2 (found worker pids {before})")
    victim = before[0]
    startups = log.read_text().count("Application startup complete")
    tally = Tally()
    killed_at: list[float] = []

    async def run() -> float:
        async def killer() -> None:
            await asyncio.sleep(args.kill_after)
            os.kill(victim, signal.SIGKILL)
            killed_at.append(time.perf_counter())

        load = asyncio.create_task(closed_loop(url, args.connections, args.duration, tally))
        await killer()
        return await load

    start = time.perf_counter()
    respawn_s = float("nan")

    async def watch() -> None:
        nonlocal respawn_s
        while time.perf_counter() - start < args.duration + 60:
            await asyncio.sleep(0.1)
            if killed_at and log.read_text().count("Application startup complete") > startups:
                respawn_s = time.perf_counter() - killed_at[0]
                return

    async def both() -> float:
        w = asyncio.create_task(watch())
        elapsed = await run()
        await w
        return elapsed

    asyncio.run(both())
    after = workers_of(proc.pid)
    t_kill = killed_at[0]
    per_s: dict[int, list[int]] = {}
    for t, status in tally.events:
        sec = int(t - start)
        per_s.setdefault(sec, [0, 0])[0 if status == 200 else 1] += 1
    timeline = ", ".join(f"{s}s {ok}/{bad}" for s, (ok, bad) in sorted(per_s.items()))
    after_kill_ok = sum(1 for t, st in tally.events if t > t_kill and st == 200)
    kinds = {st: len(v) for st, v in tally.by_status.items() if st != 200}
    ok = after_kill_ok > 0 and respawn_s == respawn_s and len(after) == len(before)
    lines = [
        f"Closed-loop load, {args.connections} connections, 256² V2, {args.duration:g} s, "
        f"{args.workers} workers; SIGKILL to worker pid {victim} at t = {args.kill_after:g} s.",
        "",
        f"- requests: {tally.total}, ok {tally.count(200)}, failed {tally.failed} "
        f"({', '.join(f'{_kind(k)}: {v}' for k, v in kinds.items()) or 'none'})",
        f"- answered after the kill: {after_kill_ok} ok (the surviving worker)",
        f"- respawn: the replacement worker logged startup {respawn_s:.1f} s after the kill "
        f"(workers before {before}, after {after})",
        f"- per second (ok/failed): {timeline}",
    ]
    return lines, ok


def _kind(status: int) -> str:
    return {-1: "timeout", -2: "connection error"}.get(status, f"HTTP {status}")


def burst(model: Path, args: argparse.Namespace, tmp: Path) -> tuple[list[str], bool]:
    from hairseg_serving.testing import stop_server

    rows, verdict, cap = [], True, None
    for limit in (args.max_inflight, 0):
        proc, url, _ = start(model, args, tmp / f"burst-{limit}", limit)
        try:
            if cap is None:
                cap = capacity(url, args)
            rate = args.factor * cap
            tally = Tally()
            elapsed = asyncio.run(
                open_loop(url, rate, args.duration, tally, args.timeout, args.max_connections)
            )
        finally:
            stop_server(proc, timeout_s=60)
        ok, shed = tally.by_status.get(200, []), tally.by_status.get(503, [])
        others = {k: len(v) for k, v in tally.by_status.items() if k not in (200, 503)}
        rows.append(
            f"| {limit or 'off'} | {rate:.0f} | {tally.total} | {elapsed:.1f} | {len(ok)} | "
            f"{len(ok) / elapsed:.0f} | {_ms(ok, 50)} | {_ms(ok, 99)} | {len(shed)} "
            f"({tally.json_503} JSON) | {_ms(shed, 50)} | {_ms(shed, 99)} | "
            f"{', '.join(f'{_kind(k)}: {v}' for k, v in others.items()) or '0'} | {loadavg()} |"
        )
        print(rows[-1], flush=True)
        if limit:
            verdict = not others and len(shed) > 0 and tally.json_503 == len(shed)
    lines = [
        f"Capacity (closed loop, {args.capacity_connections} connections, 256² V2): {cap:.0f} "
        f"req/s; burst = open-loop arrivals at {args.factor:g} × capacity for "
        f"{args.duration:g} s, client timeout {args.timeout:g} s, ≤ {args.max_connections} "
        f"connections; shedding on (`--max-inflight {args.max_inflight}` per worker) and off.",
        "",
        "| max_inflight | offered req/s | requests | s | 200 | 200/s | 200 p50 ms | 200 p99 ms | 503 | 503 p50 ms | 503 p99 ms | other | load avg |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
        *rows,
    ]
    return lines, verdict


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["soak", "kill", "burst"])
    parser.add_argument("--model", type=Path, default=None, help="ONNX file (default: exported)")
    parser.add_argument("--variant", choices=["fp32", "int8"], default="fp32")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-inflight", type=int, default=16)
    parser.add_argument("--duration", type=float, default=None, help="seconds (soak 600)")
    parser.add_argument("--capacity-connections", type=int, default=16)
    parser.add_argument("--capacity-seconds", type=float, default=10.0)
    parser.add_argument("--load", type=float, default=0.8, help="soak: fraction of capacity")
    parser.add_argument("--window", type=float, default=60.0, help="soak: seconds per row")
    parser.add_argument("--connections", type=int, default=8, help="kill: closed-loop clients")
    parser.add_argument("--kill-after", type=float, default=10.0)
    parser.add_argument("--factor", type=float, default=4.0, help="burst: × capacity")
    parser.add_argument("--timeout", type=float, default=5.0, help="burst: client timeout, s")
    parser.add_argument("--max-connections", type=int, default=512)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    if args.duration is None:
        args.duration = {"soak": 600.0, "kill": 30.0, "burst": 10.0}[args.mode]
    if args.mode == "soak":
        args.window = min(args.window, args.duration)
    load_before = loadavg()
    with tempfile.TemporaryDirectory(prefix="hairseg-faults-") as tmp_name:
        tmp = Path(tmp_name)
        model, what = model_to_serve(args.model, tmp, args.variant)
        if args.mode == "burst":
            lines, ok = burst(model, args, tmp)
        else:
            from hairseg_serving.testing import stop_server

            proc, url, log = start(model, args, tmp / "server", args.max_inflight)
            try:
                if args.mode == "soak":
                    lines, ok = soak(url, proc, args)
                else:
                    lines, ok = kill(url, proc, log, args)
            finally:
                stop_server(proc, timeout_s=60)
    text = "\n".join(
        [
            *section_start(f"{args.mode}", "bench/serve_faults.py"),
            f"Model: {what}. Server: `hairseg serve --workers {args.workers}`, one ORT thread "
            f"each, max_inflight {args.max_inflight}, on 127.0.0.1 with the client on the same "
            f"2 cores. Load average (1/5/15 min) before: {load_before}; after: {loadavg()}.",
            "",
            *lines,
            "",
        ]
    )
    print(text)
    if args.write_docs:
        write_docs(REPO / "docs" / "BENCHMARKS.md", text, DOCS_HEADING)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
