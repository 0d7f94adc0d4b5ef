"""Paths and helpers shared by the tests in tests/infra (Terraform, HCL, checkov)."""

from __future__ import annotations

import os
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import hcl2

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


@cache
def parse_dir(directory: Path) -> dict[str, list[Any]]:
    """All top-level blocks of the .tf files in one directory, merged by block type."""
    merged: dict[str, list[Any]] = {}
    for tf_file in sorted(directory.glob("*.tf")):
        for block_type, blocks in hcl2.loads(tf_file.read_text()).items():
            merged.setdefault(block_type, []).extend(blocks)
    return merged


def one(value: Any) -> Any:
    """python-hcl2 wraps every attribute value in a one-element list; unwrap it."""
    if isinstance(value, list) and len(value) == 1:
        return value[0]
    return value


def named_blocks(directory: Path, block_type: str) -> dict[str, dict[str, Any]]:
    """{name: body} for single-label blocks (variable, output, module)."""
    return {
        name: body
        for block in parse_dir(directory).get(block_type, [])
        for name, body in block.items()
    }


def locals_of(directory: Path) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for block in parse_dir(directory).get("locals", []):
        merged.update({k: one(v) for k, v in block.items() if not k.startswith("__")})
    return merged
