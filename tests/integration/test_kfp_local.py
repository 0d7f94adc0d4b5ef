"""The whole pipelines run without a cluster: ``hairseg pipeline run-local`` (kfp.local,
SubprocessRunner) on tiny parameters, against a real SQLite MLflow in a temp folder."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("kfp")

from lifecycle_runs import KfpRun, run_local

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def task_output(run: dict[str, Any], task: str, name: str) -> Any:
    """A task's output parameter, from the executor output kfp.local wrote."""
    doc = json.loads((Path(run["run_dir"]) / task / "executor_output.json").read_text())
    return doc["parameterValues"][name]


def test_training_pipeline_runs_locally_and_registers_a_version(kfp_training: KfpRun) -> None:
    from mlflow import MlflowClient

    run = kfp_training.run  # lifecycle_runs.KFP_ARGS (--tiny ...), shared with the parity test
    steps = {
        "generate-data", "validate-data", "build-features", "train-model", "quantize-model",
        "evaluate-model", "gate-model", "register-model", "canary-rollout",
    }  # fmt: skip
    assert set(run["tasks"]) == steps, run["tasks"]
    out = Path(run["run_dir"])

    # the same kinds of files `dvc repro` produces
    assert "Expectation" in (out / "validate-data" / "data_docs").read_text()
    assert (out / "validate-data" / "validation_report" / "data_docs" / "index.html").is_file()
    assert (out / "validate-data" / "validation_report" / "result.json").is_file()
    onnx = out / "quantize-model" / "onnx_model"
    selected = json.loads((onnx / "selected.json").read_text())
    assert (onnx / selected["file"]).is_file() and (onnx / "weights.pt").is_file()
    evaluation = json.loads((out / "evaluate-model" / "evaluation" / "evaluate.json").read_text())
    assert evaluation["n_images"] == 4 and 0.0 <= evaluation["candidate"]["iou"] <= 1.0
    assert (out / "evaluate-model" / "evaluation" / "plots" / "slice_iou.csv").is_file()
    assert (out / "gate-model" / "model_card").read_text().startswith("#")
    assert "<html" not in (out / "gate-model" / "model_card").read_text()[:50]
    assert (out / "gate-model" / "model_card_html").read_text().startswith("<!doctype html>")
    assert task_output(run, "gate-model", "Output") is True
    train_summary = json.loads((out / "train-model" / "train_files" / "train.json").read_text())
    assert train_summary["epochs_run"] == 1  # --tiny: one epoch
    assert (out / "build-features" / "eval_slices").is_file()

    # a new registered version with lineage tags
    uri = kfp_training.tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    (version,) = client.search_model_versions("name='hairseg'")
    assert task_output(run, "register-model", "Output") == f"models:/hairseg/{version.version}"
    tags = version.tags
    assert tags["pipeline_name"] == "hairseg-training"
    assert tags["pipeline_version"] == "0.1.0"
    assert tags["pipeline_run_id"] not in ("", "local")
    # the commit the run started from (HEAD may have moved on since: it must be an ancestor)
    assert re.fullmatch(r"[0-9a-f]{40}", tags["git_commit"]), tags["git_commit"]
    ancestry = subprocess.run(
        ["git", "-C", str(ROOT), "merge-base", "--is-ancestor", tags["git_commit"], "HEAD"],
        check=False,
    )
    assert ancestry.returncode == 0, f"{tags['git_commit']} is not in HEAD's history"
    assert tags["data_md5"].endswith(".dir")
    assert len(tags["params_hash"]) == 16  # equal to the DVC door's: test_lineage_parity.py
    assert tags["gate"] == "pass"
    assert tags["run_id"] == client.get_run(tags["run_id"]).info.run_id  # the training run
    model = client.get_registered_model("hairseg")
    assert model.aliases == {"candidate": version.version, "champion": version.version}
    # the first version is champion by bootstrap, so the rollout has nothing to canary
    assert task_output(run, "canary-rollout", "Output") == "nothing_to_roll_out"


def test_drift_pipeline_runs_locally_and_skips_retraining_without_drift(tmp_path: Path) -> None:
    """hairseg-drift with its importers: training statistics vs an inference log of the
    same images (no shift), so the nested hairseg-training behind ``drifted`` is skipped.
    (The drifted branch is the training pipeline tested above; drift detection itself is
    tested on darkened images in tests/unit/test_components.py.)"""
    from hairseg.data.generate import DataParams, generate_dataset
    from hairseg.data.stats import compute_image_stats, write_stats
    from hairseg.monitoring.inference_log import InferenceLogWriter
    from hairseg.monitoring.simulate import simulate_inference_records

    dataset = tmp_path / "data"
    generate_dataset(dataset, DataParams(n_train=12, n_val=0, n_test=0, image_size=64))
    stats = write_stats(compute_image_stats(dataset), tmp_path / "image_stats.parquet")
    log = tmp_path / "inference_log"
    records = simulate_inference_records(dataset, shift="none", split="train")
    with InferenceLogWriter(log, flush_every=len(records) + 1) as writer:
        for record in records:
            writer.append(record)
    run = run_local(
        tmp_path,
        "--pipeline", "hairseg-drift",
        "--param", f"reference_stats_uri={stats}",
        "--param", f"inference_log_uri={log}",
        "--param", "monitor.min_rows=10",
    )  # fmt: skip
    assert run["outputs"] == {"Output": False}
    # importers only point at the given URIs (no task folder); no training step ran
    assert set(run["tasks"]) == {"drift-check"}
    report = Path(run["run_dir"]) / "drift-check" / "drift_report"
    html = report.read_text()
    assert "Drift Summary" in html and "brightness" in html  # the Evidently drift report


def test_batch_pipeline_runs_locally_over_shards_and_aggregates(tmp_path: Path) -> None:
    """hairseg-batch over a tiny folder (5 portraits and a zero-byte file) in 3 shards: one
    results table with every input once, failures as rows, the summary in Markdown."""
    import pandas as pd
    from hairseg_serving.testing import synthetic_portrait, write_tiny_model

    from hairseg import imaging

    src = tmp_path / "photos"
    src.mkdir()
    for i in range(5):
        (src / f"p{i}.jpg").write_bytes(imaging.encode_jpeg(synthetic_portrait(96, 80, seed=i)))
    (src / "empty.jpg").write_bytes(b"")
    model = write_tiny_model(tmp_path / "tiny.onnx", size=32, version="tiny-kfp")
    run = run_local(
        tmp_path,
        "--pipeline", "hairseg-batch",
        "--param", f"src={src}",
        "--param", f"model_uri={model}",
        "--param", "n_shards=3",
        "--param", "batch.workers=1",
    )  # fmt: skip
    assert run["outputs"] == {"Output": 1}  # one failed input
    shards = sorted(t for t in run["tasks"] if t.startswith("for-loop"))
    assert len(shards) == 3
    out = Path(run["run_dir"])
    table = pd.read_parquet(out / "aggregate-predictions" / "results" / "results.parquet")
    assert sorted(table["id"]) == ["empty", "p0", "p1", "p2", "p3", "p4"]  # each exactly once
    assert table.set_index("id").loc["empty", "error"] == "image is empty (0 bytes)"
    assert set(table["model_version"]) == {"tiny-kfp"}
    assert table["shard_uri"].nunique() == 3
    for row in table[table["status"] == "ok"].itertuples():
        assert (Path(row.shard_uri) / row.mask_path).is_file()
    summary = (out / "aggregate-predictions" / "summary").read_text()
    assert "| 6 | 5 | 1 |" in summary and "empty_file: 1" in summary
    assert "## Hair coverage" in summary
