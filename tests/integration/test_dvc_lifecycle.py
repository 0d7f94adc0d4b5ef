"""Real `dvc repro` of the whole local pipeline, lifecycle stages included, on tiny params.

A temp copy of the repo (src/, dvc.yaml, params.yaml with the pipeline's ``--tiny``
overrides: 12/4/4 images at 64², one epoch) runs: data → validate → train → quantize →
evaluate → gate → register against a real SQLite MLflow in the copy's .hairseg/ (the
session fixture ``dvc_lifecycle``, shared with the lineage-parity test). Then:

1. one evaluation parameter changes: only evaluate and what follows re-run;
2. new data (`dvc add data`): train re-runs and fine-tunes from the champion, and its
   MLflow params say so.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from lifecycle_runs import LIFECYCLE, DvcRun
from lifecycle_runs import run as _run

pytestmark = pytest.mark.slow


def _ran(out: str) -> set[str]:
    return {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage '")}


def _mlflow_params(root: Path, run_id: str) -> dict[str, str]:
    from mlflow import MlflowClient

    uri = f"sqlite:///{root / '.hairseg' / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri).get_run(run_id).data.params


def test_repro_then_eval_change_then_new_data_fine_tunes(dvc_lifecycle: DvcRun) -> None:
    project = dvc_lifecycle.project  # after its first `dvc repro` (lifecycle_runs.py)
    assert set(LIFECYCLE) <= _ran(dvc_lifecycle.stdout)
    registered = json.loads((project / "metrics" / "register.json").read_text())
    assert registered["version"] == 1
    assert registered["aliases"] == ["candidate", "champion"]
    assert registered["tags"]["pipeline_run_id"] == "dvc-local"
    data_md5 = yaml.safe_load((project / "data.dvc").read_text())["outs"][0]["md5"]
    assert registered["tags"]["data_md5"] == data_md5
    # No pool images in this copy: the pseudo_label stage says so, training used none.
    assert "pseudo_label" in _ran(dvc_lifecycle.stdout)
    pool = project / "artifacts" / "pseudo_pool"
    reason = json.loads((pool / "unavailable.json").read_text())["reason"]
    assert "images of datasets/real_portraits_pool are absent" in reason
    assert registered["tags"]["pseudo_data_md5"] == "none"
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
    params["data"]["seed"] += 1
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(project, "hairseg", "data", "generate", "data", "--overwrite")
    _run(project, "dvc", "add", "-q", "data")
    third = _run(project, "dvc", "repro")
    assert "train" in _ran(third.stdout)
    run = json.loads((project / "artifacts" / "train_run.json").read_text())
    assert run["init_source"] == "models:/hairseg@champion (v1)"
    assert _mlflow_params(project, run["run_id"])["init_source"] == run["init_source"]
    assert json.loads((project / "metrics" / "train.json").read_text())["from_champion"] is True
