"""KFP components called directly (``component.python_func``), as the pipelines-components
catalogue tests them: real core code, real files, artifacts built on temp paths."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("kfp")

from hairseg_components import DEFAULT_REGISTRY, image_ref
from hairseg_components.data import generate_data
from hairseg_components.monitoring import drift_check
from hairseg_components.runtime import ints_back, stage_config
from kfp.dsl import HTML, Dataset, Metrics

from hairseg.errors import HairsegError


def test_image_ref_is_registry_and_package_version() -> None:
    from hairseg import __version__

    assert image_ref() == f"{DEFAULT_REGISTRY}:{__version__}"
    assert image_ref("localhost:5000/ml/hairseg/", "1.2.3+g1a2b3c4") == (
        "localhost:5000/ml/hairseg:1.2.3-g1a2b3c4"
    )
    for bad in ("", "Upper/case", "repo:tag", "repo@sha256:abc", "a//b"):
        with pytest.raises(HairsegError, match="not an image repository"):
            image_ref(bad)


def test_ints_back_restores_struct_numbers() -> None:
    assert ints_back({"a": 1.0, "b": [2.0, 0.5], "c": {"d": 3.0}, "e": "x", "f": True}) == {
        "a": 1,
        "b": [2, 0.5],
        "c": {"d": 3},
        "e": "x",
        "f": True,
    }


def test_stage_config_is_strict() -> None:
    from hairseg.data.generate import DataParams

    cfg = stage_config("data", {"n_train": 3.0, "image_size": 64.0}, DataParams)
    assert (cfg.n_train, cfg.image_size) == (3, 64)
    with pytest.raises(HairsegError, match="unknown key.*'n_trian'"):
        stage_config("data", {"n_trian": 3}, DataParams)
    with pytest.raises(HairsegError, match=r"data.image_size must be between"):
        stage_config("data", {"image_size": 8}, DataParams)


def test_validate_data_fails_the_step_on_a_missing_dataset(tmp_path: Path) -> None:
    from hairseg_components.data import validate_data
    from kfp.dsl import Artifact

    def out(name: str, cls: type = Dataset):
        return cls(name=name, uri=str(tmp_path / name))

    with pytest.raises(HairsegError, match="dataset folder not found"):
        validate_data.python_func(
            dataset=Dataset(name="dataset", uri=str(tmp_path / "missing")),
            data_params={},
            validate_params={},
            image_stats=out("image_stats"),
            validation_metrics=out("metrics", Metrics),
            data_docs=out("data_docs", HTML),
            validation_report=out("report", Artifact),
        )


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    root = tmp_path_factory.mktemp("data")
    dataset = Dataset(name="dataset", uri=str(root / "dataset"))
    generate_data.python_func(
        data_params={"n_train": 12.0, "n_val": 0, "n_test": 12, "image_size": 64, "seed": 7},
        dataset=dataset,
    )
    return dataset


def test_generate_data_writes_a_dataset_folder(tiny_dataset: Dataset) -> None:
    from hairseg.data.manifest import read_manifest

    manifest = read_manifest(tiny_dataset.path)
    assert manifest["split"].value_counts().to_dict() == {"train": 12, "test": 12}
    assert len(list(Path(tiny_dataset.path, "images").glob("*.png"))) == 24
    assert tiny_dataset.metadata["n_train"] == 12
    assert tiny_dataset.metadata["image_size"] == 64
    assert len(tiny_dataset.metadata["manifest_sha256"]) == 64


@pytest.mark.parametrize(("shift", "drifted"), [("none", False), ("dark", True)])
def test_drift_check_on_real_statistics(
    tiny_dataset: Dataset, tmp_path: Path, shift: str, drifted: bool
) -> None:
    """Reference: the training split's image statistics; current: an inference log of the
    same images (no shift) or darkened ones (``hairseg monitor simulate --shift dark``)."""
    from hairseg.data.stats import compute_image_stats, write_stats
    from hairseg.stages.monitor import simulate_stage

    reference = tmp_path / "image_stats.parquet"
    write_stats(compute_image_stats(tiny_dataset.path), reference)
    log = tmp_path / "inference_log"
    simulate_stage(Path(tiny_dataset.path), log, shift=shift, split="train")
    report = HTML(name="drift_report", uri=str(tmp_path / "drift_report.html"))
    metrics = Metrics(name="drift_metrics", uri=str(tmp_path / "metrics"))
    summary = Dataset(name="drift_json", uri=str(tmp_path / "drift.json"))
    result = drift_check.python_func(
        reference_stats=Dataset(name="ref", uri=str(reference)),
        current_log=Dataset(name="cur", uri=str(log)),
        monitor_params={"min_rows": 10.0, "drift_share": 0.5},
        drift_report=report,
        drift_metrics=metrics,
        drift_json=summary,
    )
    assert result is drifted
    assert metrics.metadata["drifted"] == float(drifted)
    assert metrics.metadata["n_reference"] == 12.0 and metrics.metadata["n_current"] == 12.0
    assert "<html" in Path(report.path).read_text()[:2000].lower()
    doc = json.loads(Path(summary.path).read_text())
    assert doc["drifted"] is drifted
    if drifted:
        assert "brightness" in doc["drifted_columns"]


def test_drift_check_rejects_too_few_rows(tiny_dataset: Dataset, tmp_path: Path) -> None:
    from hairseg.data.stats import compute_image_stats, write_stats

    reference = tmp_path / "image_stats.parquet"
    write_stats(compute_image_stats(tiny_dataset.path), reference)
    log = tmp_path / "log.parquet"
    pd.read_parquet(reference).head(3).assign(request_id=["a", "b", "c"]).to_parquet(log)
    with pytest.raises(HairsegError, match="min_rows|rows"):
        drift_check.python_func(
            reference_stats=Dataset(name="ref", uri=str(reference)),
            current_log=Dataset(name="cur", uri=str(log)),
            monitor_params={"min_rows": 10},
            drift_report=HTML(name="r", uri=str(tmp_path / "r.html")),
            drift_metrics=Metrics(name="m", uri=str(tmp_path / "m")),
            drift_json=Dataset(name="j", uri=str(tmp_path / "j.json")),
        )
