"""Paths and helpers shared by the tests in tests/infra (Terraform, HCL, checkov)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TF_ROOT = REPO_ROOT / "infra" / "terraform"
MODULES = TF_ROOT / "modules"
ENVS = TF_ROOT / "envs"
CLUSTER_MODULES = ("aws-gpu-cluster", "gcp-gpu-cluster", "azure-gpu-cluster")
AWS_PROVIDER = Path("registry.terraform.io") / "hashicorp" / "aws"


def find_provider_mirror() -> Path | None:
    """First directory holding registry.terraform.io/hashicorp/aws: the env var, then usual places."""
    candidates = [
        os.environ.get("HAIRSEG_TF_PROVIDER_MIRROR", ""),
        "/opt/tf-plugins",
        str(Path.home() / ".terraform.d" / "plugins"),
        str(Path.home() / ".local" / "share" / "terraform" / "plugins"),
        "/usr/local/share/terraform/plugins",
        "/usr/share/terraform/plugins",
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / AWS_PROVIDER).is_dir():
            return Path(candidate)
    return None


def run_terraform(
    terraform: str, args: list[str], cwd: Path, env: dict[str, str], timeout: int = 240
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [terraform, *args, "-no-color"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
