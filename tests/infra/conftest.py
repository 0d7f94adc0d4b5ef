"""Shared fixtures for the offline Terraform checks in tests/infra.

Terraform runs against a local filesystem provider mirror (only hashicorp/aws
is available offline); init happens in a temporary copy of the module so no
.terraform/ directory or lock file is left in the repository.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from tfhelpers import MODULES, find_provider_mirror, run_terraform


@pytest.fixture(scope="session")
def terraform_bin() -> str:
    path = shutil.which("terraform")
    if path is None:
        pytest.skip("terraform binary not on PATH: Terraform CLI checks not run")
    return path


@pytest.fixture(scope="session")
def terraform_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for terraform subprocesses: own CLI config, no cache, no checkpoint calls."""
    env = {k: v for k, v in os.environ.items() if k != "TF_PLUGIN_CACHE_DIR"}
    config_dir = tmp_path_factory.mktemp("tfcli")
    cli_config = config_dir / "terraform.rc"
    mirror = find_provider_mirror()
    if mirror is not None:
        cli_config.write_text(
            "provider_installation {\n"
            "  filesystem_mirror {\n"
            f'    path    = "{mirror}"\n'
            '    include = ["registry.terraform.io/hashicorp/aws"]\n'
            "  }\n"
            "}\n"
        )
    else:
        cli_config.write_text("")
    env.update(
        TF_CLI_CONFIG_FILE=str(cli_config),
        CHECKPOINT_DISABLE="1",
        TF_IN_AUTOMATION="1",
        TF_INPUT="0",
    )
    return env


@pytest.fixture(scope="session")
def aws_module_initialised(
    terraform_bin: str, terraform_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A temporary copy of modules/aws-gpu-cluster after `terraform init -backend=false`."""
    if find_provider_mirror() is None:
        pytest.skip(
            "no Terraform provider mirror with registry.terraform.io/hashicorp/aws found "
            "(set HAIRSEG_TF_PROVIDER_MIRROR): AWS init/validate/test not run"
        )
    workdir = tmp_path_factory.mktemp("aws-gpu-cluster") / "module"
    shutil.copytree(MODULES / "aws-gpu-cluster", workdir)
    result = run_terraform(terraform_bin, ["init", "-backend=false"], workdir, terraform_env)
    assert result.returncode == 0, f"terraform init failed:\n{result.stdout}\n{result.stderr}"
    return workdir
