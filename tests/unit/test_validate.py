"""The Great Expectations gate: the demo passes; each defect is rejected by name and id.

Runs real GX 1.x (file context in a temp folder) over the real statistics table. Datasets
are tiny (64² demo portraits) and built per test from one generated template.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from hairseg.cli import main
from hairseg.data.generate import DataParams, generate_dataset
from hairseg.data.manifest import read_manifest, write_manifest
from hairseg.data.stats import STATS_COLUMNS, compute_image_stats
from hairseg.data.validate import ValidateParams, validate_dataset
from hairseg.imaging import decode_image, encode_jpeg, read_image

PARAMS = ValidateParams(min_side=32)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    params = DataParams(seed=21, image_size=64, n_train=6, n_val=3, n_test=3)
    return generate_dataset(tmp_path_factory.mktemp("demo") / "data", params).path


@pytest.fixture
def dataset(template: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(template, tmp_path / "data"))


def _tree_digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _by_check(report) -> dict[str, list[str]]:
    return {f.check: f.ids for f in report.failures}


def test_demo_dataset_passes_and_is_not_modified(dataset: Path, tmp_path: Path) -> None:
    before = _tree_digest(dataset)
    report = validate_dataset(dataset, PARAMS, reports_dir=tmp_path / "reports")
    assert report.success, [f.line() for f in report.failures]
    assert _tree_digest(dataset) == before
    assert (tmp_path / "reports" / "data_docs" / "index.html").is_file()
    result = json.loads((tmp_path / "reports" / "result.json").read_text())
    assert result["success"] is True and result["metrics"]["n_images"] == 12
    assert result["great_expectations"]["success"] is True
    assert report.notices == ["face_count left null: no face detector (run `hairseg models fetch`)"]


def test_each_defect_is_rejected_with_its_reason_and_ids(dataset: Path, tmp_path: Path) -> None:
    manifest = read_manifest(dataset)
    path = {row.id: dataset / row.image_path for row in manifest.itertuples()}
    mask = {row.id: dataset / row.mask_path for row in manifest.itertuples()}
    # corrupt image: a truncated PNG
    data = path["demo-train-00000"].read_bytes()
    path["demo-train-00000"].write_bytes(data[: len(data) // 2])
    # non-binary mask: a soft edge of 128s
    m = cv2.imread(str(mask["demo-train-00001"]), cv2.IMREAD_UNCHANGED)
    m[:4, :] = 128
    cv2.imwrite(str(mask["demo-train-00001"]), m)
    # mask of the wrong size
    cv2.imwrite(str(mask["demo-train-00002"]), np.zeros((32, 32), np.uint8))
    # leakage: an exact copy of a train image in test, and a JPEG re-encoded copy in val
    shutil.copy(path["demo-train-00003"], path["demo-test-00000"])
    reencoded = decode_image(encode_jpeg(read_image(path["demo-train-00004"]), quality=70))
    cv2.imwrite(str(path["demo-val-00000"]), cv2.cvtColor(reencoded, cv2.COLOR_RGB2BGR))
    # coverage out of range: every pixel labelled hair
    cv2.imwrite(str(mask["demo-train-00005"]), np.full((64, 64), 255, np.uint8))
    # duplicate id: a second manifest row with an existing id
    dup = manifest[manifest["id"] == "demo-test-00001"]
    write_manifest(pd.concat([manifest, dup]), dataset)
    before = _tree_digest(dataset)

    report = validate_dataset(dataset, PARAMS, reports_dir=tmp_path / "reports")

    assert not report.success
    checks = _by_check(report)
    assert checks["corrupt image"] == ["demo-train-00000"]
    assert checks["non-binary mask"] == ["demo-train-00001"]
    assert checks["mask wrong size"] == ["demo-train-00002"]
    assert checks["leakage across splits"] == [
        "demo-test-00000", "demo-train-00003", "demo-train-00004", "demo-val-00000",
    ]  # fmt: skip
    assert checks["coverage out of range"] == ["demo-train-00005"]
    assert checks["unique ids"] == ["demo-test-00001"]
    assert _tree_digest(dataset) == before
    saved = json.loads((tmp_path / "reports" / "result.json").read_text())
    assert {f["check"] for f in saved["failures"]} == set(checks)


def test_empty_split_is_rejected(dataset: Path) -> None:
    manifest = read_manifest(dataset)
    write_manifest(manifest[manifest["split"] != "val"], dataset)
    report = validate_dataset(dataset, PARAMS)
    (failure,) = report.failures
    assert failure.check == "empty split" and "val" in failure.line()


def test_an_eval_only_set_passes_with_required_splits(dataset: Path) -> None:
    """datasets/real_portraits has only a test split: ``required_splits`` says so."""
    manifest = read_manifest(dataset)
    write_manifest(manifest[manifest["split"] == "test"], dataset)
    assert _by_check(validate_dataset(dataset, PARAMS)) == {"empty split": []}
    report = validate_dataset(dataset, replace(PARAMS, required_splits=("test",)))
    assert report.success, [f.line() for f in report.failures]


def test_face_count_expectation_uses_the_counter(dataset: Path) -> None:
    """A counter that finds no face in one image fails 'face count out of range' (mostly=1)."""
    strict = ValidateParams(min_side=32, face_mostly=1.0)
    first = read_image(dataset / "images" / "demo-train-00000.png")
    report = validate_dataset(
        dataset, strict, face_counter=lambda rgb: 0 if np.array_equal(rgb, first) else 1
    )
    assert _by_check(report) == {"face count out of range": ["demo-train-00000"]}
    assert report.stats["face_count"].sum() == 11


def test_stats_table_schema_is_stable(dataset: Path) -> None:
    """The columns Feast's image_stats_v1 reads, typed; reruns give identical bytes."""
    a = compute_image_stats(dataset)
    b = compute_image_stats(dataset)
    assert list(a.columns) == list(STATS_COLUMNS)
    assert str(a["event_timestamp"].dt.tz) == "UTC"
    assert a["face_count"].isna().all() and a["hair_coverage"].between(0, 1).all()
    pd.testing.assert_frame_equal(a, b)


def test_cli_exits_1_listing_failures(dataset: Path, tmp_path: Path, capsys) -> None:
    mask = dataset / "masks" / "demo-val-00001.png"
    cv2.imwrite(str(mask), np.full((64, 64), 7, np.uint8))
    params = tmp_path / "params.yaml"
    params.write_text("validate:\n  min_side: 32\n")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "data", "validate", str(dataset), "--params", str(params), "--no-faces",
                "--reports", str(out / "reports"), "--stats-out", str(out / "stats.parquet"),
                "--metrics-out", str(out / "metrics.json"),
            ]
        )  # fmt: skip
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "FAILED non-binary mask [mask_binary]: 1 image(s): demo-val-00001" in err
    assert "hairseg: error: dataset" in err and "non-binary mask" in err.splitlines()[-1]
    assert json.loads((out / "metrics.json").read_text())["non_binary_masks"] == 1
    assert len(pd.read_parquet(out / "stats.parquet")) == 12


def test_cli_rejects_a_missing_dataset(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "validate", str(tmp_path / "nope"), "--no-faces"])
    assert exit_info.value.code == 2
    assert "dataset folder not found" in capsys.readouterr().err
