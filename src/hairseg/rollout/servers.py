"""Loopback predictor processes: the real serving code in a subprocess.

The process is the serving door's container entry point, ``python -m hairseg_serving``
(:data:`SERVE_COMMAND`), with KServe's flags: the gate checks a candidate in the very
program the cluster runs. The core names that program but never imports it (the import
contract in pyproject.toml); a caller may pass another ``command`` that takes the same flags.

Used by the local backend (stable + canary servers) and by the pre-traffic gate of both
backends: a candidate must load in the serving code and answer a smoke request before any
traffic moves. Children are tied to this process (Linux ``PR_SET_PDEATHSIG``), so a killed
rollout never leaves orphan servers holding ports.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from hairseg.errors import HairsegError
from hairseg.rollout.traffic import PredictError, PredictorClient

__all__ = ["SERVE_COMMAND", "GateError", "PredictorProcess", "free_port", "smoke_test"]

# The predictor program (after the interpreter): the serving door's container entry point.
SERVE_COMMAND: tuple[str, ...] = ("-m", "hairseg_serving")

log = logging.getLogger(__name__)


class GateError(HairsegError):
    """The candidate did not pass the pre-traffic gate (it never received traffic)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is free right now on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    os.setsid()


class PredictorProcess:
    """``python -m hairseg_serving --model MODEL`` on a loopback port, started and stopped
    by us. ``params_path`` supplies the ``serve:`` and ``priors:`` sections (skipped if
    missing, as the cluster's ConfigMap would be); ``command`` replaces :data:`SERVE_COMMAND`."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        label: str,
        model_name: str = "hairseg",
        host: str = "127.0.0.1",
        extra_args: Sequence[str] = (),
        start_timeout_s: float = 60.0,
        request_timeout_s: float = 30.0,
        params_path: str | Path = "params.yaml",
        command: Sequence[str] = SERVE_COMMAND,
    ) -> None:
        self.model_path = Path(model_path)
        self.label = label
        self.model_name = model_name
        self.host = host
        self.port = free_port(host)
        self.extra_args = list(extra_args)
        self.params_path = Path(params_path)
        self.command = list(command)
        self.start_timeout_s = start_timeout_s
        self.request_timeout_s = request_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in __exit__
        self.client: PredictorClient | None = None
        self._deadline = 0.0

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> PredictorProcess:
        """Start the server and wait until it reports the model ready."""
        return self.launch().wait_ready()

    def launch(self) -> PredictorProcess:
        """Start the process without waiting (start several, then wait for each)."""
        # Rollout traffic is synthetic: keep it out of the monitoring log and access log.
        cmd = [
            sys.executable, *self.command, "--log_level", "WARNING",
            "--model", str(self.model_path), "--params", str(self.params_path),
            "--host", self.host, "--http_port", str(self.port),
            "--model_name", self.model_name,
            "--inference_log_dir", "", "--feature_repo", "", "--no_access_log",
            *self.extra_args,
        ]  # fmt: skip
        log.info("starting %s predictor: %s", self.label, " ".join(cmd))
        self.proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
        )
        self._deadline = time.monotonic() + self.start_timeout_s
        return self

    def wait_ready(self) -> PredictorProcess:
        """Wait until the launched server says the model is ready (GateError otherwise)."""
        import httpx

        assert self.proc is not None, "launch() first"
        url = f"{self.base_url}/v1/models/{self.model_name}"
        while True:
            if self.proc.poll() is not None:
                raise GateError(
                    f"{self.label} predictor for {self.model_path} exited with code "
                    f"{self.proc.returncode} before it was ready: {self.output_tail()}"
                )
            with contextlib.suppress(httpx.HTTPError, ValueError):
                resp = httpx.get(url, timeout=2.0)
                if resp.status_code == 200 and resp.json().get("ready") is True:
                    break
            if time.monotonic() > self._deadline:
                self.stop()
                raise GateError(
                    f"{self.label} predictor for {self.model_path} was not ready within "
                    f"{self.start_timeout_s:.0f} s: {self.output_tail()}"
                )
            time.sleep(0.2)
        self.client = PredictorClient(
            self.base_url, self.model_name, timeout_s=self.request_timeout_s
        )
        return self

    def output_tail(self, chars: int = 600) -> str:
        """The last lines the server printed (for error messages)."""
        self._log.seek(0)
        text = self._log.read().decode(errors="replace").strip()
        lines = [line for line in text.splitlines() if line.strip()]
        tail = " | ".join(lines[-4:])
        return tail[-chars:] or "(no output)"

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s)."""
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def __enter__(self) -> PredictorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._log.close()


def smoke_test(server: PredictorProcess, image: bytes, expected_hw: tuple[int, int]) -> float:
    """One real request through ``server``; the mask must match the image size.

    Returns the latency in ms; raises :class:`GateError` with the reason otherwise.
    """
    assert server.client is not None, "server not started"
    try:
        mask, latency_ms = server.client.predict_mask(image)
    except PredictError as exc:
        raise GateError(f"{server.label} failed the smoke request: {exc}") from None
    if mask.shape != expected_hw:
        raise GateError(
            f"{server.label} answered the smoke request with a {mask.shape} mask for a "
            f"{expected_hw} image"
        )
    return latency_ms
