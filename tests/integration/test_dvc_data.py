"""Real `dvc repro` of the `data` and `validate` stages in a temp copy of the repo.

The copy takes the repo's own dvc.yaml stages and params (data section shrunk to 12/4/4
images at 64²), records the tiny dataset with a real `dvc add data`, then deletes data/ and
.dvc/cache to look like a fresh clone. `dvc repro` must regenerate the data offline,
verify it against data.dvc, validate it, and a second `dvc repro` must run nothing but the
cheap `data` check (whose byte-stable provenance keeps `validate` skipped). Changed data
params then fail loudly, naming the differing key, or expected vs actual hash.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _run(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DVC_NO_ANALYTICS": "1",
        "GX_ANALYTICS_ENABLED": "false",
        "TQDM_DISABLE": "1",
    }
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(
        REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    mine = {name: stages[name] for name in ("data", "validate")}
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": mine}, sort_keys=False))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"].update(seed=7, n_train=12, n_val=4, n_test=4, image_size=64)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(root, "git", "init", "-q")
    _run(root, "dvc", "init", "-q")
    _run(root, "dvc", "config", "core.analytics", "false")
    _run(root, "hairseg", "data", "generate", "data")
    _run(root, "dvc", "add", "-q", "data")
    shutil.rmtree(root / "data")
    shutil.rmtree(root / ".dvc" / "cache", ignore_errors=True)
    return root


def test_repro_from_a_fresh_clone_then_nothing_to_do_then_loud_mismatch(project: Path) -> None:
    record = yaml.safe_load((project / "data.dvc").read_text())["outs"][0]

    first = _run(project, "dvc", "repro")
    assert "Running stage 'data'" in first.stdout and "Running stage 'validate'" in first.stdout
    provenance = json.loads((project / "artifacts" / "data_provenance.json").read_text())
    assert provenance["method"] == "generated" and provenance["data_md5"] == record["md5"]
    stats = pd.read_parquet(project / "artifacts" / "image_stats.parquet")
    assert len(stats) == 20 and stats["decodes"].all()
    metrics = json.loads((project / "metrics" / "validation.json").read_text())
    assert metrics["success"] is True
    assert metrics["split_counts"] == {"train": 12, "val": 4, "test": 4}
    assert (project / "reports" / "validation" / "data_docs" / "index.html").is_file()
    assert json.loads(_run(project, "dvc", "status", "--json", "data.dvc").stdout) == {}

    stats_bytes = (project / "artifacts" / "image_stats.parquet").read_bytes()
    second = _run(project, "dvc", "repro")
    assert "Stage 'validate' didn't change, skipping" in second.stdout
    assert "Running stage 'validate'" not in second.stdout
    assert (project / "artifacts" / "image_stats.parquet").read_bytes() == stats_bytes
    status = json.loads(_run(project, "dvc", "status", "--json").stdout)
    assert status == {"data": ["always changed"]}, status

    # Changed data params: the present data no longer matches them -> one clear error.
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["data"]["seed"] = 8
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    failed = _run(project, "dvc", "repro", check=False)
    assert failed.returncode != 0
    assert "seed: data has 7, params.yaml has 8" in failed.stderr + failed.stdout
    assert (project / "artifacts" / "image_stats.parquet").read_bytes() == stats_bytes

    # ...and on a fresh clone, regeneration cannot match data.dvc: expected vs actual hash,
    # and no half-written data/ is left behind.
    shutil.rmtree(project / "data")
    failed = _run(project, "dvc", "repro", check=False)
    assert failed.returncode != 0
    assert f"expected {record['md5']}, got " in failed.stderr + failed.stdout
    assert not (project / "data").exists()
