"""checkov over infra/terraform, offline, against the accepted-findings file.

A finding that is not in infra/terraform/checkov-accepted.yaml fails the test,
and so does an accepted entry that no longer occurs (the file stays exact).
Every accepted check ID carries a one-line justification.
Run `python tests/infra/test_checkov.py --print-findings` to list current findings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tfhelpers import REPO_ROOT, TF_ROOT

ACCEPTED_FILE = TF_ROOT / "checkov-accepted.yaml"


def checkov_command() -> list[str]:
    binary = Path(sys.executable).parent / "checkov"
    if not binary.exists():
        pytest.skip(f"checkov not installed next to {sys.executable} (install the infra extra)")
    return [
        str(binary),
        "--directory",
        str(TF_ROOT),
        "--framework",
        "terraform",
        "--skip-download",
        "--download-external-modules",
        "false",
        "--compact",
        "--output",
        "json",
    ]


def run_checkov() -> dict:
    env = dict(os.environ)
    # No Prisma/Bridgecrew API calls, no guideline download, no telemetry.
    env.update(BC_SKIP_MAPPING="TRUE", CHECKOV_RUN_SCA_PACKAGE_SCAN_V2="false", LOG_LEVEL="ERROR")
    env.pop("BC_API_KEY", None)
    result = subprocess.run(
        checkov_command(),
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    # Passed checks are kept in the report (no --quiet) to prove what was scanned.
    # checkov exits 1 when any check fails; anything else means it did not run.
    assert result.returncode in (0, 1), (
        f"checkov crashed ({result.returncode}):\n{result.stderr[-3000:]}"
    )
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    terraform = [r for r in reports if r.get("check_type") == "terraform"]
    assert len(terraform) == 1, (
        f"expected one terraform report, got {[r.get('check_type') for r in reports]}"
    )
    return terraform[0]


def finding_key(finding: dict) -> tuple[str, str]:
    return finding["check_id"], f"{finding['file_path'].lstrip('/')}::{finding['resource']}"


def load_accepted() -> tuple[dict[tuple[str, str], str], set[tuple[str, str]]]:
    """({(check_id, resource): why}, the subset checkov reports only in some runs)."""
    document = yaml.safe_load(ACCEPTED_FILE.read_text())
    accepted: dict[tuple[str, str], str] = {}
    intermittent: set[tuple[str, str]] = set()
    for check_id, entry in document["accepted"].items():
        why = entry.get("why", "").strip()
        assert len(why) > 20, f"{check_id}: needs a one-line justification"
        assert entry["resources"], f"{check_id}: lists no resources"
        for resource in entry["resources"]:
            accepted[(check_id, resource)] = why
            if entry.get("intermittent", False):
                intermittent.add((check_id, resource))
    return accepted, intermittent


@pytest.fixture(scope="module")
def report() -> dict:
    return run_checkov()


def test_checkov_scanned_the_modules(report: dict) -> None:
    summary = report["summary"]
    assert summary["parsing_errors"] == 0
    # All three cluster modules (through the envs) and the platform were scanned.
    assert summary["resource_count"] > 100
    scanned_files = {c["file_path"] for c in report["results"]["passed_checks"]}
    for module in ("aws-gpu-cluster", "gcp-gpu-cluster", "azure-gpu-cluster"):
        assert any(f"/modules/{module}/" in f for f in scanned_files), f"{module} not scanned"
    assert summary["passed"] > 300


def test_no_new_checkov_findings(report: dict) -> None:
    accepted, _ = load_accepted()
    found = {finding_key(f): f["check_name"] for f in report["results"]["failed_checks"]}
    new = sorted(set(found) - set(accepted))
    assert not new, (
        "new checkov findings (fix them, or justify them in checkov-accepted.yaml):\n"
        + ("\n".join(f"  {cid} {res}: {found[(cid, res)]}" for cid, res in new))
    )


def test_accepted_findings_still_occur(report: dict) -> None:
    accepted, intermittent = load_accepted()
    found = {finding_key(f) for f in report["results"]["failed_checks"]}
    stale = sorted(set(accepted) - found - intermittent)
    assert not stale, "remove fixed findings from checkov-accepted.yaml:\n" + "\n".join(
        f"  {cid} {res}" for cid, res in stale
    )


if __name__ == "__main__":
    if "--print-findings" in sys.argv:
        for failed in sorted(run_checkov()["results"]["failed_checks"], key=finding_key):
            check_id, resource = finding_key(failed)
            print(f"{check_id}  {resource}  # {failed['check_name']}")
