"""Real `dvc repro` of the whole local pipeline, lifecycle stages included, on tiny params.

A temp copy of the repo (src/, dvc.yaml, params.yaml with 16/6/6 images at 64² and a tiny
2-epoch model) runs: data → validate → … → train → quantize → evaluate → gate → register
against a real SQLite MLflow in the copy's .hairseg/. Then:

1. one evaluation parameter changes: only evaluate and what follows re-run;
2. new data (`dvc add data`): train re-runs and fine-tunes from the champion, and its
   MLflow params say so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LIFECYCLE = ("train", "quantize", "evaluate", "gate", "register")


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DVC_NO_ANALYTICS": "1",
        "GX_ANALYTICS_ENABLED": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "TQDM_DISABLE": "1",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def _ran(out: str) -> set[str]:
    return {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage '")}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__"))
    doc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    keep = ("data", "validate", *LIFECYCLE)
    doc["stages"] = {name: doc["stages"][name] for name in keep}
    # The Feast stages (which add feature-store slices to evaluation) are left out to keep
    # this test fast; tests/integration/test_feast.py and test_kfp_local.py cover them.
    evaluate = doc["stages"]["evaluate"]
    evaluate["cmd"] = evaluate["cmd"].replace(" --slices artifacts/eval_slices.parquet", "")
    evaluate["deps"].remove("artifacts/eval_slices.parquet")
    (root / "dvc.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"].update(seed=7, n_train=16, n_val=6, n_test=6, image_size=64)
    params["model"].update(input_size=64, head_channels=32)
    params["train"].update(
        epochs=2, batch_size=8, crop_size=0, threads=1, bn_recalibration_images=16
    )
    params["quantize"].update(calibration_images=8, max_iou_drop=1.0, threads=1)
    params["evaluate"].update(latency_repeats=3, threads=1)
    params["gate"].update(min_iou=0.0, latency_budget_ms=10_000.0)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _committed_real_photos(root / "datasets" / "real_portraits")
    _run(root, "git", "init", "-q")
    _run(root, "dvc", "init", "-q")
    _run(root, "dvc", "config", "core.analytics", "false")
    _run(root, "hairseg", "data", "generate", "data")
    _run(root, "dvc", "add", "-q", "data")
    return root


def _committed_real_photos(dest: Path) -> None:
    """The real-photo set cut down to its committed (public-domain) images, so the test
    scores the same photos on a fresh clone as after `tools/fetch_real_portraits.py`."""
    from hairseg.data.manifest import read_manifest, write_manifest

    src = REPO / "datasets" / "real_portraits"
    tracked = subprocess.run(
        ["git", "ls-files", "images"], cwd=src, capture_output=True, text=True, check=True
    ).stdout.split()
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("images", "masks"))
    for rel in tracked:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / rel, dest / rel)
    df = read_manifest(src)
    df = df[df["image_path"].isin(tracked)]
    shutil.copytree(src / "masks", dest / "masks")
    write_manifest(df.reset_index(drop=True), dest)


def _mlflow_params(root: Path, run_id: str) -> dict[str, str]:
    from mlflow import MlflowClient

    uri = f"sqlite:///{root / '.hairseg' / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri).get_run(run_id).data.params


def test_repro_then_eval_change_then_new_data_fine_tunes(project: Path) -> None:
    first = _run(project, "dvc", "repro")
    assert set(LIFECYCLE) <= _ran(first.stdout)
    registered = json.loads((project / "metrics" / "register.json").read_text())
    assert registered["version"] == 1
    assert registered["aliases"] == ["candidate", "champion"]
    assert registered["tags"]["pipeline_run_id"] == "dvc-local"
    data_md5 = yaml.safe_load((project / "data.dvc").read_text())["outs"][0]["md5"]
    assert registered["tags"]["data_md5"] == data_md5
    run = json.loads((project / "artifacts" / "train_run.json").read_text())
    assert (
        _mlflow_params(project, run["run_id"])["init_source"] == "scratch (no champion registered)"
    )
    evaluation = json.loads((project / "metrics" / "evaluate.json").read_text())
    assert set(evaluation["models"]) >= {"fp32", "int8"}
    assert 0.0 <= evaluation["candidate"]["iou"] <= 1.0
    assert (project / "reports" / "model_card" / "model_card.md").is_file()
    assert (project / "reports" / "model_card" / "gallery" / "gallery.png").is_file()
    real = evaluation["real_photos"]  # the 6 committed real photos, through OnnxSegmenter
    assert real["candidate"]["real_n_images"] == 6 and "champion" not in real
    assert 0.0 <= real["candidate"]["real_outside_head"] <= 1.0
    gate = json.loads((project / "metrics" / "gate.json").read_text())
    assert gate["candidate_real"]["iou"] == pytest.approx(real["candidate"]["real_iou"])
    card = (project / "reports" / "model_card" / "model_card.md").read_text()
    assert "## Real photos" in card and "(gallery/real_00_worst_" in card
    shown = _run(project, "dvc", "metrics", "show", "--json").stdout
    assert "candidate.iou" in shown or '"iou"' in shown

    # 1. An evaluation parameter changes: evaluation and what follows re-run, nothing before.
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["evaluate"]["threshold"] = 0.4
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    second = _run(project, "dvc", "repro")
    assert _ran(second.stdout) & set(LIFECYCLE) == {"evaluate", "gate", "register"}
    assert json.loads((project / "metrics" / "evaluate.json").read_text())["threshold"] == 0.4
    assert json.loads((project / "metrics" / "register.json").read_text())["version"] == 2
    # With a champion, both are scored on the real photos and the gate compares them.
    real = json.loads((project / "metrics" / "evaluate.json").read_text())["real_photos"]
    assert set(real) >= {"candidate", "champion", "worst"}
    gate = json.loads((project / "metrics" / "gate.json").read_text())
    assert any(r.startswith("real photos: IoU") and "champion" in r for r in gate["reasons"])

    # 2. New data: training re-runs, starting from the champion.
    params["data"]["seed"] = 8
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(project, "hairseg", "data", "generate", "data", "--overwrite")
    _run(project, "dvc", "add", "-q", "data")
    third = _run(project, "dvc", "repro")
    assert "train" in _ran(third.stdout)
    run = json.loads((project / "artifacts" / "train_run.json").read_text())
    assert run["init_source"] == "models:/hairseg@champion (v1)"
    assert _mlflow_params(project, run["run_id"])["init_source"] == run["init_source"]
    assert json.loads((project / "metrics" / "train.json").read_text())["from_champion"] is True
