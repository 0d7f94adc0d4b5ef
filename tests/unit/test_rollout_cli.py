"""``hairseg rollout`` answers bad input with one readable line and exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml


def _rollout(tmp_path: Path, *args: str, env: dict[str, str] | None = None):
    return subprocess.run(
        [sys.executable, "-m", "hairseg", "rollout", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_bad_rollout_params_fail_in_one_line(tmp_path):
    (tmp_path / "params.yaml").write_text(
        yaml.safe_dump({"rollout": {"policy": {"steps": [50, 10, 100]}}})
    )
    result = _rollout(tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "hairseg: error: rollout.policy.steps must be strictly increasing percentages "
        "in 1..100, got [50, 10, 100]"
    ]


def test_kserve_backend_without_credentials_is_a_usage_error(tmp_path):
    result = _rollout(
        tmp_path,
        "--backend",
        "kserve",
        env={"KUBECONFIG": str(tmp_path / "missing"), "HOME": str(tmp_path)},
    )
    assert result.returncode == 2, result.stderr
    assert "hairseg: error: no Kubernetes credentials" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_backend_is_rejected_by_the_parser(tmp_path):
    result = _rollout(tmp_path, "--backend", "docker")
    assert result.returncode == 2
    assert "'docker' is not one of 'local', 'kserve'" in result.stderr
