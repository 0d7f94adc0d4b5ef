"""hairseg.batch: listing (local and fsspec), sharding, compaction and resume, in-process."""

from __future__ import annotations

from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import pytest
from hairseg_serving.testing import synthetic_portrait, write_tiny_model

from hairseg import imaging
from hairseg.batch import (
    BatchConfig,
    InputItem,
    _frame,
    _parts_dir,
    _write_parquet_atomic,
    compact,
    list_inputs,
    parse_shard,
    read_results,
    render_summary,
    results_path,
    run_batch,
    select,
    summarise,
)
from hairseg.data.manifest import read_manifest
from hairseg.errors import HairsegError

pytest.importorskip("onnxruntime")

ONE = BatchConfig(workers=1)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("m") / "tiny.onnx", size=32, version="t-1")


def _jpeg(path: Path, seed: int = 0, size: tuple[int, int] = (96, 80)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(imaging.encode_jpeg(synthetic_portrait(*size, seed=seed)))
    return path


def test_listing_is_recursive_sorted_skips_hidden_and_keeps_ids_unique(tmp_path: Path) -> None:
    _jpeg(tmp_path / "b.jpg")
    _jpeg(tmp_path / "a.jpg")
    _jpeg(tmp_path / "a.png")  # same stem as a.jpg
    _jpeg(tmp_path / "sub" / "c d.jpeg")
    _jpeg(tmp_path / ".hidden" / "x.jpg")
    _jpeg(tmp_path / ".y.jpg")
    (tmp_path / "notes.txt").write_text("not an image: listed, fails later")
    items = list_inputs(str(tmp_path))
    assert [it.id for it in items] == ["a.jpg", "a.png", "b", "notes", "sub__c_d"]
    assert items[2].uri == str(tmp_path / "b.jpg")
    assert [it.id for it in list_inputs(str(tmp_path / "*.jpg"))] == ["a", "b"]
    assert [it.id for it in list_inputs(str(tmp_path / "**" / "*.jpeg"))] == ["sub__c_d"]
    assert [it.id for it in list_inputs(str(tmp_path / "b.jpg"))] == ["b"]
    with pytest.raises(HairsegError, match="no such input"):
        list_inputs(str(tmp_path / "missing"))


def test_listing_and_prediction_through_an_fsspec_uri(tmp_path: Path, model: Path) -> None:
    """memory:// stands in for s3:// gs:// az://: the same fsspec calls, no network."""
    fs = fsspec.filesystem("memory")
    for i in range(3):
        fs.pipe(f"/bucket/photos/p{i}.jpg", imaging.encode_jpeg(synthetic_portrait(64, 64, seed=i)))
    items = list_inputs("memory://bucket/photos")
    assert [(it.id, it.uri) for it in items] == [
        (f"p{i}", f"memory:///bucket/photos/p{i}.jpg")
        for i in range(3)  # memory:// roots at /
    ]
    summary = run_batch(items, tmp_path / "out", model, ONE)
    assert (summary.n_ok, summary.n_failed) == (3, 0)
    assert (tmp_path / "out" / "masks" / "p2.png").is_file()


def test_shards_partition_the_listing_and_limit_applies_after() -> None:
    items = [InputItem(f"i{n:02d}", f"/x/{n}") for n in range(11)]
    shards = [select(items, (i, 3)) for i in range(3)]
    ids = [it.id for shard in shards for it in shard]
    assert sorted(ids) == [it.id for it in items] and len(set(ids)) == 11
    assert [len(s) for s in shards] == [4, 4, 3]
    assert [it.id for it in select(items, (1, 3), limit=2)] == ["i01", "i04"]
    assert select(items, (0, 1), limit=0) == []
    assert parse_shard("2/4") == (2, 4) and parse_shard(None) == (0, 1)
    for bad in ("4/4", "1/0", "a/b", "-1/3", "1"):
        with pytest.raises(HairsegError, match="i/n"):
            parse_shard(bad)


def test_compaction_keeps_the_latest_row_per_id_and_drops_parts(tmp_path: Path) -> None:
    def row(i: str, status: str, at: str) -> dict:
        return {"id": i, "uri": i, "status": status, "finished_at": at, "model_version": "v"}

    _write_parquet_atomic(
        _frame([row("a", "failed", "1"), row("b", "ok", "1")]), results_path(tmp_path)
    )
    parts = _parts_dir(tmp_path, (0, 1))
    _write_parquet_atomic(_frame([row("a", "ok", "2")]), parts / "part-1.parquet")
    _write_parquet_atomic(
        _frame([row("a", "ok", "2"), row("c", "failed", "3")]), parts / "part-2.parquet"
    )
    df = compact(tmp_path)
    assert list(zip(df["id"], df["status"], strict=True)) == [
        ("a", "ok"),
        ("b", "ok"),
        ("c", "failed"),
    ]
    assert not list(parts.glob("*.parquet"))
    assert read_results(tmp_path).equals(df)
    assert compact(tmp_path).equals(df)  # idempotent


def test_rerun_skips_done_redoes_failed_and_missing(tmp_path: Path, model: Path) -> None:
    src, dest = tmp_path / "src", tmp_path / "out"
    for i in range(4):
        _jpeg(src / f"p{i}.jpg", seed=i)
    (src / "p9.jpg").write_bytes(b"")
    first = run_batch(list_inputs(str(src)), dest, model, ONE)
    assert (first.n_processed, first.n_ok, first.n_failed) == (5, 4, 1)
    assert first.failures == [("p9", "image is empty (0 bytes)")]
    before = pd.read_parquet(results_path(dest)).set_index("id")

    _jpeg(src / "p9.jpg", seed=9)  # the failed file is fixed
    (dest / "masks" / "p1.png").unlink()  # an output went missing
    _jpeg(src / "p5.jpg", seed=5)  # a new file
    second = run_batch(list_inputs(str(src)), dest, model, ONE)
    assert (second.n_selected, second.n_skipped, second.n_processed) == (6, 3, 3)
    assert (second.n_ok, second.n_failed) == (6, 0)
    after = pd.read_parquet(results_path(dest))
    assert after["id"].is_unique and len(after) == 6
    after = after.set_index("id")
    assert after.loc["p0", "finished_at"] == before.loc["p0", "finished_at"]  # skipped
    assert after.loc["p1", "finished_at"] != before.loc["p1", "finished_at"]  # redone
    assert (dest / "masks" / "p1.png").is_file()

    third = run_batch(list_inputs(str(src)), dest, model, ONE)
    assert (third.n_skipped, third.n_processed) == (6, 0)


def test_a_different_model_redoes_everything(tmp_path: Path, model: Path) -> None:
    _jpeg(tmp_path / "src" / "a.jpg")
    run_batch(list_inputs(str(tmp_path / "src")), tmp_path / "out", model, ONE)
    other = write_tiny_model(tmp_path / "other.onnx", size=32, version="t-2")
    again = run_batch(list_inputs(str(tmp_path / "src")), tmp_path / "out", other, ONE)
    assert again.n_processed == 1
    assert pd.read_parquet(results_path(tmp_path / "out"))["model_version"].tolist() == ["t-2"]


def test_rows_carry_stats_confidence_timings_and_masks_match_offline(
    tmp_path: Path, model: Path
) -> None:
    from hairseg.inference import OnnxSegmenter

    path = _jpeg(tmp_path / "src" / "a.jpg", size=(120, 90))
    cfg = BatchConfig(workers=1, tryon_shade="teal")
    run_batch(list_inputs(str(tmp_path / "src")), tmp_path / "out", model, cfg)
    (row,) = pd.read_parquet(results_path(tmp_path / "out")).to_dict("records")
    mask = imaging.read_mask(tmp_path / "out" / row["mask_path"])
    rgb = imaging.read_image(path)
    assert np.array_equal(mask, OnnxSegmenter(model).predict([rgb])[0])
    assert (row["width"], row["height"], row["status"]) == (90, 120, "ok")
    assert row["hair_coverage"] == pytest.approx(np.count_nonzero(mask) / mask.size)
    assert 0.5 <= row["confidence"] <= 1.0
    assert row["model_version"] == "t-1"
    assert row["total_ms"] >= row["infer_ms"] > 0
    tryon = imaging.read_image(tmp_path / "out" / row["tryon_path"])
    assert tryon.shape == rgb.shape


def test_as_dataset_writes_the_dataset_format_with_confidence(tmp_path: Path, model: Path) -> None:
    src = tmp_path / "src"
    _jpeg(src / "a.jpg", seed=1)
    (src / "b.webp").write_bytes(_webp(synthetic_portrait(64, 64, seed=2)))
    (src / "bad.jpg").write_bytes(b"\xff\xd8 nope")
    summary = run_batch(list_inputs(str(src)), tmp_path / "ds", model, ONE, as_dataset=True)
    assert (summary.n_ok, summary.n_failed) == (2, 1)
    manifest = read_manifest(tmp_path / "ds")
    assert manifest["id"].tolist() == ["a", "b"]
    assert set(manifest["source"]) == {"pseudo"} and set(manifest["split"]) == {"train"}
    assert manifest["image_path"].tolist() == ["images/a.jpg", "images/b.png"]  # webp → png
    assert manifest["confidence"].between(0.5, 1.0).all()
    for r in manifest.itertuples():
        img = imaging.read_image(tmp_path / "ds" / r.image_path)
        assert imaging.read_mask(tmp_path / "ds" / r.mask_path).shape == img.shape[:2]
        assert (r.width, r.height) == (img.shape[1], img.shape[0])


def _webp(rgb: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="WEBP", lossless=True)
    return buf.getvalue()


def test_summary_counts_failure_kinds_and_histogram() -> None:
    df = _frame(
        [
            {"id": "a", "status": "ok", "hair_coverage": 0.05, "confidence": 0.9, "total_ms": 3.0},
            {"id": "b", "status": "ok", "hair_coverage": 0.35, "confidence": 0.7, "total_ms": 5.0},
            {"id": "c", "status": "failed", "error": "image is empty (0 bytes)"},
            {"id": "d", "status": "failed", "error": "image is 9x9 = 81 pixels; the limit is 9"},
        ]
    )
    stats = summarise(df)
    assert (stats["n"], stats["n_ok"], stats["n_failed"]) == (4, 2, 2)
    assert stats["failure_kinds"] == {"empty_file": 1, "too_many_pixels": 1}
    assert (
        stats["coverage_histogram"]["0.0-0.1"] == 1 and stats["coverage_histogram"]["0.3-0.4"] == 1
    )
    assert sum(stats["coverage_histogram"].values()) == 2
    text = render_summary(stats, df)
    assert "| 4 | 2 | 2 |" in text and "| c | image is empty (0 bytes) |" in text


def test_teacher_declined_rows_are_final_and_not_failures(tmp_path: Path) -> None:
    """A ``skipped`` row (the pseudo-label teacher declined the image) counts as declined,
    not failed, and a rerun with the same teacher does not redo it; another teacher
    version does. An ``ok`` row whose mask is gone is redone."""
    from hairseg.batch import _done_ids

    (tmp_path / "masks").mkdir()
    (tmp_path / "images").mkdir()
    for name in ("masks/a.png", "images/a.png"):
        (tmp_path / name).write_bytes(b"x")
    rows = [
        {"id": "a", "status": "ok", "mask_path": "masks/a.png", "image_path": "images/a.png"},
        {"id": "b", "status": "ok", "mask_path": "masks/b.png", "image_path": "images/b.png"},
        {"id": "c", "status": "skipped", "error": "no face detected (MediaPipe face detector)"},
        {"id": "d", "status": "failed", "error": "image is empty (0 bytes)"},
    ]
    df = _frame(
        [{**r, "model_version": "teacher-1", "hair_coverage": 0.2, "total_ms": 9.0} for r in rows]
    )
    assert _done_ids(df, tmp_path, "teacher-1", as_dataset=True) == {"a", "c"}
    assert _done_ids(df, tmp_path, "teacher-2", as_dataset=True) == set()
    stats = summarise(df)
    assert (stats["n_ok"], stats["n_failed"], stats["n_declined"]) == (2, 1, 1)
    assert stats["failure_kinds"] == {"empty_file": 1}
    assert "| c |" not in render_summary(stats, df)  # a declined image is not a failure
