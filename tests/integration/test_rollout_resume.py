"""A rollout killed mid-way (SIGKILL of the CLI process) is resumed or cleanly rolled back
by running the command again; the champion alias and the traffic agree afterwards.

Real: the ``hairseg rollout`` CLI in a subprocess, its loopback predictor servers, the
SQLite MLflow registry. The kill lands while the second step (50 %) is being analysed,
right after the first step's record was persisted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from hairseg import registry
from hairseg.rollout.local_backend import read_local_state
from hairseg.rollout.servers import SERVE_COMMAND

import rollout_support as rs  # isort: skip

pytestmark = pytest.mark.slow

PARAMS = {
    "rollout": {
        "backend": "local",
        "policy": {
            "steps": [10, 50, 100],
            "min_requests": 10,
            "min_mirrored": 3,
            "max_error_rate": 0.05,
            "max_p95_ratio": 1000.0,  # latency is noise here; tested in test_rollout_local
            "max_p95_ms": 5000.0,
            "max_disagreement": 0.2,
            "max_holds": 1,
        },
        "local": {"mirror_fraction": 0.5, "max_requests_per_step": 400, "seed": 5},
    }
}


@pytest.fixture(scope="session")
def template(tmp_path_factory) -> tuple[Path, dict[str, int], Path]:
    return rs.shared_template(tmp_path_factory)


def _cli(work: Path, uri: str, dataset: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "hairseg", "rollout",
        "--backend", "local", "--tracking-uri", uri, "--dataset", str(dataset),
        "--params", str(work / "params.yaml"), "--state", str(work / "state.json"),
        "--reports-dir", str(work / "reports"), *extra,
    ]  # fmt: skip


def _run(work: Path, cmd: list[str], timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=timeout)


def _kill_during_second_step(work: Path, cmd: list[str]) -> dict:
    proc = subprocess.Popen(cmd, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    state_path = work / "state.json"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"rollout ended before the kill: {proc.stdout.read().decode()[-800:]}")
            try:
                saved = read_local_state(state_path)["rollout"]
            except Exception:  # written atomically, but be tolerant while polling
                saved = None
            if saved and len(saved["steps"]) >= 1 and saved["percent"] == 50:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=10)
                return read_local_state(state_path)
            time.sleep(0.01)
        pytest.fail("the first step was never persisted")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def _no_orphan_servers(marker: str) -> None:
    """The killed CLI's predictor servers died with it (PR_SET_PDEATHSIG)."""
    deadline = time.monotonic() + 15
    while True:
        alive = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if marker in cmdline and SERVE_COMMAND[-1] in cmdline:
                alive.append(pid)
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not alive, f"orphaned predictor servers: {alive}"


def _agree(uri: str, state_path: Path) -> int:
    champion = registry.get_version(uri, registry.CHAMPION).version
    saved = read_local_state(state_path)
    assert saved["rollout"]["phase"] == "done"
    assert saved["traffic"] == {
        "stable": saved["traffic"]["stable"],
        "canary": None,
        "canary_percent": 0,
    }
    assert saved["traffic"]["stable"]["version"] == champion
    return champion


@pytest.mark.parametrize("then", ["resume", "abort"])
def test_killed_rollout_is_resumed_or_rolled_back(template, tmp_path, then):
    db, versions, dataset = template
    work = tmp_path / "work"
    work.mkdir()
    (work / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    uri = rs.fresh_registry(
        db, tmp_path / "reg", champion=versions["stable"], candidate=versions["good"]
    )

    killed = _kill_during_second_step(work, _cli(work, uri, dataset))
    assert killed["rollout"]["phase"] == "analysing"
    assert killed["traffic"]["canary_percent"] == 50
    assert killed["rollout"]["steps"][0]["decision"]["action"] == "step_up"
    assert registry.get_version(uri, registry.CHAMPION).version == versions["stable"]
    _no_orphan_servers(str(work))

    if then == "resume":  # what an operator looks at first
        status = _run(work, _cli(work, uri, dataset, "--status"), timeout=120)
        assert status.returncode == 0 and '"phase": "analysing"' in status.stdout

    extra = ("--abort",) if then == "abort" else ()
    again = _run(work, _cli(work, uri, dataset, *extra))
    assert again.returncode == 0, again.stdout + again.stderr
    record = json.loads((work / "reports" / "latest.json").read_text())
    assert record["rollout_id"] == killed["rollout"]["rollout_id"]  # the same rollout, finished
    if then == "resume":
        assert "rollout promoted" in again.stdout
        assert record["outcome"] == "promoted" and record["resumed_at"]
        # The step persisted before the kill is kept; the 50 % step was analysed again.
        assert [s["percent"] for s in record["steps"]] == [10, 50]
        assert _agree(uri, work / "state.json") == versions["good"]
    else:
        assert "rollout aborted" in again.stdout
        assert record["outcome"] == "aborted" and record["reasons"] == ["aborted by operator"]
        assert _agree(uri, work / "state.json") == versions["stable"]
        tags = registry.get_version_number(uri, versions["good"]).tags
        assert tags["rollout"] == "aborted"

        # Running it once more changes nothing: no rollout is in flight any more.
        final = _run(work, _cli(work, uri, dataset, "--abort"), timeout=120)
        assert final.returncode == 0 and "no rollout in progress" in final.stdout
        assert _agree(uri, work / "state.json") == versions["stable"]
