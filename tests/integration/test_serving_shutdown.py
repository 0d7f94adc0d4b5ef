"""Graceful shutdown with KServe's multi-worker mode: ``hairseg serve --workers 2`` on
loopback, requests in flight, then SIGTERM. Every request in flight must complete, the
process must exit 0, and each worker must flush its inference log on the way out.
(Real server, real model; nothing faked.)"""

from __future__ import annotations

import base64
import signal
import threading
import time

import httpx
import pytest
from hairseg_serving.testing import start_server, synthetic_portrait, write_tiny_model

from hairseg import imaging
from hairseg.monitoring.inference_log import read_inference_log

pytestmark = pytest.mark.slow

IMAGES_PER_REQUEST = 12
REQUESTS = 4


def test_sigterm_drains_in_flight_requests_and_flushes_every_worker(tmp_path):
    model = write_tiny_model(tmp_path / "tiny.onnx", size=64, version="tiny-2")
    params = tmp_path / "params.yaml"
    params.write_text(f"serve:\n  log_anonymous: true\n  max_instances: {IMAGES_PER_REQUEST}\n")
    log_dir = tmp_path / "inference_log"
    proc, url, _ = start_server(
        model,
        tmp_path,
        "--workers", "2",
        "--params", str(params),
        "--feature-repo", "",
        "--inference-log-dir", str(log_dir),
    )  # fmt: skip
    try:
        # Heavy requests (12 try-ons of 640x640 each) so that they are still running when
        # the signal arrives.
        image = base64.b64encode(imaging.encode_png(synthetic_portrait(640, 640))).decode()
        body = {"instances": [{"image_b64": image, "output": "both"}] * IMAGES_PER_REQUEST}
        results: dict[int, object] = {}

        def send(i: int) -> None:
            try:
                r = httpx.post(
                    f"{url}/v1/models/hairseg:predict",
                    json=body,
                    headers={"X-Request-Id": f"drain-{i}"},
                    timeout=120,
                )
                results[i] = (r.status_code, len(r.json().get("predictions", [])))
            except httpx.HTTPError as exc:
                results[i] = exc

        threads = [threading.Thread(target=send, args=(i,)) for i in range(REQUESTS)]
        for t in threads:
            t.start()
        time.sleep(1.0)  # all connections accepted, the work under way
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(timeout=120)
        assert proc.wait(timeout=60) == 0
        assert time.monotonic() - signalled < 45
    finally:
        if proc.poll() is None:
            proc.kill()
    assert results == {i: (200, IMAGES_PER_REQUEST) for i in range(REQUESTS)}
    log = read_inference_log(log_dir)
    drained = log[log["request_id"].str.startswith("drain-")]
    assert len(drained) == REQUESTS * IMAGES_PER_REQUEST  # one record per image, all flushed
    assert set(drained["model_version"]) == {"tiny-2"}
    # Every worker that served wrote its own part files (the name carries its pid), all
    # of them from worker processes, none from the parent (which serves nothing).
    pids = {p.name.split("-")[2] for p in log_dir.glob("part-*.parquet")}
    assert pids and str(proc.pid) not in pids
