"""Terraform CLI checks: fmt over every module and env; init, validate and
`terraform test` (mock_provider "aws", plan only) for the AWS cluster module,
the one root whose provider is in the offline mirror."""

from __future__ import annotations

from pathlib import Path

from tfhelpers import TF_ROOT, run_terraform


def test_fmt_is_clean(terraform_bin: str, terraform_env: dict[str, str]) -> None:
    result = run_terraform(
        terraform_bin,
        ["fmt", "-check", "-recursive", "-diff", str(TF_ROOT)],
        TF_ROOT,
        terraform_env,
    )
    assert result.returncode == 0, (
        f"run `terraform fmt -recursive infra/terraform`:\n{result.stdout}"
    )


def test_aws_module_validates(
    aws_module_initialised: Path, terraform_bin: str, terraform_env: dict[str, str]
) -> None:
    result = run_terraform(terraform_bin, ["validate"], aws_module_initialised, terraform_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "The configuration is valid" in result.stdout


def test_aws_module_terraform_test_passes(
    aws_module_initialised: Path, terraform_bin: str, terraform_env: dict[str, str]
) -> None:
    result = run_terraform(terraform_bin, ["test"], aws_module_initialised, terraform_env, 300)
    assert result.returncode == 0, result.stdout + result.stderr
    # Guard against an empty suite passing: every run block must have run and passed.
    runs = list((aws_module_initialised / "tests").glob("*.tftest.hcl"))
    declared = sum(p.read_text().count('\nrun "') for p in runs)
    assert declared >= 10
    assert f"Success! {declared} passed, 0 failed." in result.stdout, result.stdout
