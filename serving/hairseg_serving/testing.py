"""A tiny, real ONNX model under the hairseg artifact contract, for tests and smoke checks.

Two convolutions (3→4 channels 3×3 + ReLU, then 4→1 1×1) whose fixed weights call dark
pixels "hair": small enough to build in milliseconds with the ``onnx`` package alone,
real enough that the server runs it through ONNX Runtime exactly as the trained network.
Also a synthetic portrait (light background, skin-toned face, dark hair) to send it, and
the loopback launcher the serving tests and ``bench/serve_load.py`` share.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["free_port", "start_server", "stop_server", "synthetic_portrait", "write_tiny_model"]


def write_tiny_model(path: str | Path, *, size: int = 64, version: str | None = None) -> Path:
    """Write the tiny model to ``path`` (input ``image`` (N,3,S,S), output ``logits``)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w1 = np.full((4, 3, 3, 3), -1.0 / 27.0, dtype=np.float32)
    w1[1:] *= np.array([0.5, 1.0, 1.5], dtype=np.float32)[:, None, None, None]
    b1 = np.array([0.0, 0.1, 0.2, 0.3], dtype=np.float32)
    w2 = np.full((1, 4, 1, 1), 2.0, dtype=np.float32)
    b2 = np.array([-0.5], dtype=np.float32)
    nodes = [
        helper.make_node("Conv", ["image", "w1", "b1"], ["h"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Conv", ["r", "w2", "b2"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "hairseg_tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1, size, size])],
        [
            numpy_helper.from_array(w1, "w1"),
            numpy_helper.from_array(b1, "b1"),
            numpy_helper.from_array(w2, "w2"),
            numpy_helper.from_array(b2, "b2"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    props = {"hairseg.input_size": str(size), "hairseg.arch": "tiny_test"}
    if version:
        props["hairseg.model_version"] = version
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def synthetic_portrait(height: int = 256, width: int = 256, *, seed: int = 0) -> np.ndarray:
    """An RGB ``uint8`` portrait: background, face and a dark hair cap, with mild noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cy, cx = height * 0.55, width * 0.5
    img = np.empty((height, width, 3), dtype=np.float32)
    img[:] = (205, 215, 225)  # background
    hair = ((yy - cy * 0.85) / (height * 0.42)) ** 2 + ((xx - cx) / (width * 0.36)) ** 2 <= 1.0
    face = ((yy - cy) / (height * 0.30)) ** 2 + ((xx - cx) / (width * 0.24)) ** 2 <= 1.0
    img[hair] = (55, 38, 28)
    img[face & (yy > cy - height * 0.12)] = (222, 182, 150)
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (bind to port 0, read it back)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    model: Path,
    workdir: Path,
    *extra: str,
    ready_timeout_s: float = 300.0,
    env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen, str, Path]:
    """``hairseg serve`` on a free loopback port, run in ``workdir`` with ``extra`` flags
    (and ``env`` added to the environment); returns (process, base URL, log file) once
    ``/v2/health/ready`` answers 200."""
    import httpx

    port = free_port()
    log_path = Path(workdir) / f"server-{port}.log"
    env = {
        **os.environ,
        "FEAST_USAGE": "False",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        **(env or {}),
    }
    cmd = [sys.executable, "-m", "hairseg", "serve", "--model", str(model), "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--params", str(Path(workdir) / "no-params.yaml"), *extra]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=workdir, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + ready_timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"server exited {proc.returncode}:\n{log_path.read_text()[-3000:]}"
            )
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return proc, url, log_path
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(
        f"server not ready in {ready_timeout_s:g} s:\n{log_path.read_text()[-3000:]}"
    )


def stop_server(proc: subprocess.Popen, timeout_s: float = 40.0) -> int:
    """SIGTERM, then wait for the exit code (kill and raise if it does not stop)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    return proc.returncode
