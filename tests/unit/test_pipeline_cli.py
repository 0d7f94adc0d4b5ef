"""``hairseg pipeline upload|run|compile`` against real and fake KFP API endpoints.

There is no Kubeflow Pipelines API server here, so a tiny loopback HTTP server speaks the
handful of KFP v2beta1 REST endpoints that the real ``kfp.Client`` calls (healthz,
pipelines list/upload/upload_version/versions, experiments list/create, runs create). It
is a fake at the client boundary only: the CLI entry point (``hairseg.cli.main``, which
turns errors into one line and an exit code), our KFP glue and ``kfp.Client`` with its
generated ``kfp_server_api`` run unchanged and talk HTTP to it. It enforces bearer auth and
answers a duplicate version name with HTTP 409 the way the KFP API server does. The
unreachable-host checks run the CLI as a real subprocess; the rest call ``main()`` in
process (same code path, without paying the interpreter start-up for every command).
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from cli_support import run_cli, run_subprocess  # isort: skip
from http_fakes import JsonHandler, serve  # isort: skip

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class FakeKfp:
    """State of the fake API server; ``auth`` = None (open), "all", or "api" (healthz open)."""

    token: str | None = None
    auth: str | None = None
    login_page: bool = False  # answer like an auth proxy that redirects to a login page
    pipelines: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    experiments: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    uploads: list[bytes] = field(default_factory=list)


def _filter_name(query: dict[str, list[str]]) -> str | None:
    raw = query.get("filter", [None])[0]
    if not raw:
        return None
    predicates = json.loads(raw).get("predicates", [])
    return next((p.get("string_value") or p.get("stringValue") for p in predicates), None)


def _make_handler(state: FakeKfp) -> type[BaseHTTPRequestHandler]:
    class Handler(JsonHandler):
        def _authorised(self, path: str) -> bool:
            if state.auth is None or (state.auth == "api" and path.endswith("/healthz")):
                return True
            return self.headers.get("Authorization") == f"Bearer {state.token}"

        def _route(self, method: str) -> None:
            url = urlparse(self.path)
            query = parse_qs(url.query)
            body = b""
            if "Content-Length" in self.headers:
                body = self.rfile.read(int(self.headers["Content-Length"]))
            if state.login_page:
                return self._send_bytes(200, b"<html><body>Sign in</body></html>", "text/html")
            if not self._authorised(url.path):
                return self._send(401, {"error": "Unauthorized", "code": 16, "message": "no"})
            p = url.path.removeprefix("/apis/v2beta1")
            if method == "GET" and p == "/healthz":
                return self._send(200, {"commit_sha": "fake", "multi_user": False})
            if method == "GET" and p == "/pipelines":
                name = _filter_name(query)
                found = [v for v in state.pipelines.values() if v["display_name"] == name]
                return self._send(
                    200, {"pipelines": found, "total_size": len(found)} if found else {}
                )
            if method == "POST" and p == "/pipelines/upload":
                name = query["name"][0]
                pid = str(uuid.uuid4())
                state.pipelines[pid] = {"pipeline_id": pid, "display_name": name}
                state.versions[pid] = [
                    {
                        "pipeline_id": pid,
                        "pipeline_version_id": str(uuid.uuid4()),
                        "display_name": name,
                    }
                ]
                state.uploads.append(body)
                return self._send(200, state.pipelines[pid])
            if method == "POST" and p == "/pipelines/upload_version":
                pid, name = query["pipelineid"][0], query["name"][0]
                if any(v["display_name"] == name for v in state.versions.get(pid, [])):
                    return self._send(
                        409,
                        {
                            "error": f"Failed to upload pipeline version: pipeline version {name} already exists",
                            "code": 6,
                            "message": f"pipeline version {name} already exists",
                        },
                    )
                version = {
                    "pipeline_id": pid,
                    "pipeline_version_id": str(uuid.uuid4()),
                    "display_name": name,
                }
                state.versions.setdefault(pid, []).append(version)
                state.uploads.append(body)
                return self._send(200, version)
            if method == "GET" and p.startswith("/pipelines/") and p.endswith("/versions"):
                pid = p.split("/")[2]
                name = _filter_name(query)
                found = [
                    v for v in state.versions.get(pid, []) if name in (None, v["display_name"])
                ]
                return self._send(200, {"pipeline_versions": found[-1:]} if found else {})
            if method == "GET" and p == "/experiments":
                name = _filter_name(query)
                found = [e for e in state.experiments.values() if e["display_name"] == name]
                return self._send(200, {"experiments": found} if found else {})
            if method == "POST" and p == "/experiments":
                exp = json.loads(body)
                exp["experiment_id"] = str(uuid.uuid4())
                state.experiments[exp["experiment_id"]] = exp
                return self._send(200, exp)
            if method == "POST" and p == "/runs":
                run = json.loads(body)
                run["run_id"] = str(uuid.uuid4())
                state.runs.append(run)
                return self._send(200, run)
            return self._send(404, {"error": f"no route {method} {url.path}", "code": 5})

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

    return Handler


@pytest.fixture
def fake_kfp() -> Iterator[tuple[str, FakeKfp]]:
    state = FakeKfp()
    server, url = serve(_make_handler(state))
    try:
        yield url, state
    finally:
        server.shutdown()
        server.server_close()


def hairseg_subprocess(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess, run from the project root, without the caller's KFP_*."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("KFP_")}
    return run_subprocess(*args, cwd=ROOT, env={**base, **(env or {})}, timeout=120)


@pytest.fixture
def hairseg(monkeypatch: pytest.MonkeyPatch):
    """``hairseg ARGS`` through ``hairseg.cli.main`` in this process, from the project root."""
    for key in [k for k in os.environ if k.startswith("KFP_")]:
        monkeypatch.delenv(key)
    return lambda *args, env=None: run_cli(*args, cwd=ROOT, env=env)


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("hairseg: error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_upload_to_unreachable_host_fails_in_one_line() -> None:
    result = hairseg_subprocess("pipeline", "upload", "--host", "http://127.0.0.1:9")
    line = assert_one_line_error(result, "127.0.0.1:9", "connection refused")
    assert result.returncode == 1, line


def test_upload_with_unresolvable_host_names_dns() -> None:
    result = hairseg_subprocess("pipeline", "upload", "--host", "http://kfp.invalid:8080")
    assert_one_line_error(result, "kfp.invalid", "does not resolve")


def test_upload_without_host_is_a_usage_error(hairseg) -> None:
    result = hairseg("pipeline", "upload")
    assert_one_line_error(result, "--host", "KFP_HOST")
    assert result.returncode == 2


def test_upload_creates_pipeline_then_version_exists_is_a_clear_error(fake_kfp, hairseg) -> None:
    host, state = fake_kfp
    first = hairseg("pipeline", "upload", "--version-name", "0.1.0+gtest", env={"KFP_HOST": host})
    assert first.returncode == 0, first.stderr
    assert "created pipeline and uploaded hairseg-training version 0.1.0+gtest" in first.stdout
    (pipeline,) = state.pipelines.values()
    assert pipeline["display_name"] == "hairseg-training"
    names = [v["display_name"] for v in state.versions[pipeline["pipeline_id"]]]
    assert names[-1] == "0.1.0+gtest"
    # what went over the wire is the compiled pipeline spec, with the version in its name
    assert b"hairseg training 0.1.0" in state.uploads[-1]
    assert b"platforms:" in state.uploads[-1]

    again = hairseg("pipeline", "upload", "--version-name", "0.1.0+gtest", "--host", host)
    line = assert_one_line_error(again, "0.1.0+gtest", "already exists")
    assert again.returncode == 3, line

    other = hairseg("pipeline", "upload", "--version-name", "0.1.0+gother", "--host", host)
    assert other.returncode == 0, other.stderr
    assert other.stdout.startswith("uploaded hairseg-training version 0.1.0+gother")
    assert len(state.pipelines) == 1


@pytest.mark.parametrize("scope", ["all", "api"])
def test_upload_with_bad_token_is_an_auth_error(fake_kfp, hairseg, scope: str) -> None:
    """scope 'all': healthz needs auth too (caught by our preflight); 'api': only the API
    does, so the 401 comes back through kfp.Client's generated API client."""
    host, state = fake_kfp
    state.token, state.auth = "right-token", scope
    bad = hairseg("pipeline", "upload", "--host", host, env={"KFP_TOKEN": "wrong-token"})
    assert_one_line_error(bad, "HTTP 401", "--token")
    assert not state.pipelines
    good = hairseg("pipeline", "upload", "--host", host, "--token", "right-token")
    assert good.returncode == 0, good.stderr


def test_run_starts_a_run_of_the_uploaded_version_and_prints_its_url(fake_kfp, hairseg) -> None:
    host, state = fake_kfp
    env = {"KFP_HOST": host}
    missing = hairseg("pipeline", "run", "--version", "latest", env=env)
    assert_one_line_error(missing, "hairseg-training", "hairseg pipeline upload")

    assert hairseg("pipeline", "upload", "--version-name", "v-run", env=env).returncode == 0
    result = hairseg(
        "pipeline",
        "run",
        "--version",
        "v-run",
        "--experiment",
        "nightly",
        "--param",
        "data.n_train=7",
        "--param",
        "mlflow_tracking_uri=http://mlflow:5000",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    (run,) = state.runs
    assert result.stdout.strip() == (
        f"started run {run['run_id']} in experiment 'nightly': {host}/#/runs/details/{run['run_id']}"
    )
    (exp,) = state.experiments.values()
    assert exp["display_name"] == "nightly" and run["experiment_id"] == exp["experiment_id"]
    pid = run["pipeline_version_reference"]["pipeline_id"]
    version = state.versions[pid][-1]
    assert (
        run["pipeline_version_reference"]["pipeline_version_id"] == version["pipeline_version_id"]
    )
    values = run["runtime_config"]["parameters"]
    assert values["mlflow_tracking_uri"] == "http://mlflow:5000"
    # a section override keeps the rest of the section's params.yaml defaults
    assert values["data_params"]["n_train"] == 7
    assert values["data_params"]["seed"] == 20261122

    unknown = hairseg("pipeline", "run", "--param", "epochs=3", env=env)
    assert_one_line_error(unknown, "epochs", "not a parameter")
    assert unknown.returncode == 2
    bad_section = hairseg("pipeline", "run", "--param", "nosuch.key=3", env=env)
    assert_one_line_error(bad_section, "'nosuch' is not a params section")


def test_compile_check_detects_a_stale_file(tmp_path: Path, hairseg) -> None:
    """--check compares the committed YAML with a fresh compile, byte for byte."""
    result = hairseg("pipeline", "compile", "--root", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert hairseg("pipeline", "compile", "--root", str(tmp_path), "--check").returncode == 0
    path = next((tmp_path / "pipelines" / "compiled").glob("hairseg-training-v*.yaml"))
    path.write_text(path.read_text().replace("hairseg training", "hairseg trainin"))
    stale = hairseg("pipeline", "compile", "--root", str(tmp_path), "--check")
    assert_one_line_error(stale, str(path), "hairseg pipeline compile")


def test_compile_rejects_a_bad_registry(tmp_path: Path, hairseg) -> None:
    result = hairseg(
        "pipeline", "compile", "--root", str(tmp_path), "--registry", "Bad Registry:tag"
    )
    assert_one_line_error(result, "'Bad Registry:tag'", "image repository")
    assert result.returncode == 2


def test_a_login_page_instead_of_the_api_is_a_clear_error(fake_kfp, hairseg) -> None:
    host, state = fake_kfp
    state.login_page = True
    result = hairseg("pipeline", "upload", "--host", host)
    assert_one_line_error(result, "text/html", "instead of the KFP API", "--token")


def test_a_host_that_never_answers_times_out_clearly() -> None:
    """A listening socket that accepts and never responds: the preflight times out."""
    import socket

    from hairseg_pipelines import kfp_api

    from hairseg.errors import HairsegError

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        host = f"http://127.0.0.1:{server.getsockname()[1]}"
        with pytest.raises(HairsegError, match=r"cannot reach .* connection timed out"):
            kfp_api.connect(host, timeout_s=0.5)
