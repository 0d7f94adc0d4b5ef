"""The import contract (``[tool.importlinter]`` in pyproject.toml), checked with import-linter.

The tree must keep it, and the contract must be able to fail: the same contracts, run on a
throw-away copy of the package layout (put first on ``PYTHONPATH``) with one core -> door
import or one import cycle written into it, report that contract broken.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("hairseg", "hairseg_components", "hairseg_pipelines", "hairseg_serving")


def _lint_imports(cwd: Path, *, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", "pyproject.toml"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _contract_names() -> dict[str, str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {c["id"]: c["name"] for c in config["contracts"]}


def test_the_tree_keeps_the_import_contract() -> None:
    result = _lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
    for name in _contract_names().values():
        assert f"{name} KEPT" in " ".join(result.stdout.split()), name


def _toy_tree(root: Path, modules: dict[str, str]) -> None:
    """The four packages, each with the given modules (dotted name -> source)."""
    for package in PACKAGES:
        (root / package).mkdir()
        (root / package / "__init__.py").write_text("")
    for dotted, source in modules.items():
        (root / (dotted.replace(".", "/") + ".py")).write_text(source)
    (root / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text())


@pytest.mark.parametrize(
    ("modules", "broken_id", "needle"),
    [
        (
            {"hairseg.rollout": "import hairseg_serving.cli\n", "hairseg_serving.cli": ""},
            "core-imports-no-door",
            "hairseg.rollout -> hairseg_serving.cli",
        ),
        (
            {"hairseg.config": "import hairseg.registry\n", "hairseg.registry": "import hairseg.config\n"},
            "no-cycles",
            "No cycles are allowed in hairseg",
        ),
        (
            {"hairseg_components.lifecycle": "import hairseg_pipelines.training\n",
             "hairseg_pipelines.training": ""},
            "doors-stack-one-way",
            "hairseg_components.lifecycle -> hairseg_pipelines.training",
        ),
    ],
    ids=["core-to-door", "cycle", "components-to-pipelines"],
)  # fmt: skip
def test_a_violation_breaks_its_contract(tmp_path, modules, broken_id, needle) -> None:
    _toy_tree(tmp_path, modules)
    result = _lint_imports(tmp_path, pythonpath=tmp_path)
    text = " ".join(result.stdout.split())
    assert result.returncode != 0, result.stdout + result.stderr
    assert f"{_contract_names()[broken_id]} BROKEN" in text, result.stdout
    assert needle in text, result.stdout
