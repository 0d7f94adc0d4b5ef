"""Inference log (writer/reader) and the Evidently drift decision on statistics frames."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hairseg.errors import HairsegError
from hairseg.monitoring.drift import EXIT_DRIFT, MonitorConfig, check_drift, load_reference
from hairseg.monitoring.inference_log import (
    INFERENCE_LOG_SCHEMA,
    InferenceLogWriter,
    read_inference_log,
)

COLUMNS = ("brightness", "contrast", "sharpness", "saturation", "hue_mean", "hair_coverage")


def _record(i: int, **over: object) -> dict[str, object]:
    rec: dict[str, object] = {
        "request_id": f"r-{i}",
        "customer_id": None if i % 2 else f"cust-{i:04d}",
        "model_version": "3",
        "width": 64,
        "height": 48,
        "brightness": 0.4,
        "contrast": 0.2,
        "sharpness": 5.0,
        "saturation": 0.3,
        "hue_mean": 0.1,
        "hair_coverage": 0.25,
    }
    rec.update(over)
    return rec


def test_concurrent_appends_all_reach_disk_in_whole_parts(tmp_path: Path) -> None:
    writer = InferenceLogWriter(tmp_path, flush_every=64, flush_seconds=60)

    def worker(base: int) -> None:
        for i in range(250):
            writer.append(_record(base + i))

    threads = [threading.Thread(target=worker, args=(k * 1000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    df = read_inference_log(tmp_path)
    assert len(df) == 1000
    assert df["request_id"].is_unique
    assert list(df.columns) == INFERENCE_LOG_SCHEMA.names
    assert df["event_timestamp"].dt.tz is not None
    assert df["customer_id"].isna().sum() == 500
    parts = sorted(tmp_path.iterdir())
    assert all(p.name.startswith("part-") and p.suffix == ".parquet" for p in parts)
    assert len(parts) >= 1000 // 64


def test_quiet_server_is_flushed_by_the_timer(tmp_path: Path) -> None:
    with InferenceLogWriter(tmp_path, flush_every=1000, flush_seconds=0.1) as writer:
        writer.append(_record(1))
        deadline = time.monotonic() + 10
        while not list(tmp_path.glob("part-*.parquet")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(read_inference_log(tmp_path)) == 1


def test_records_with_images_or_missing_stats_are_refused(tmp_path: Path) -> None:
    with InferenceLogWriter(tmp_path) as writer:
        with pytest.raises(HairsegError, match=r"unknown field\(s\) \['image'\]"):
            writer.append({**_record(1), "image": b"\x89PNG"})
        with pytest.raises(HairsegError, match="lacks field"):
            writer.append({"request_id": "x"})
    with pytest.raises(HairsegError, match="closed"):
        writer.append(_record(2))


def test_one_malformed_record_does_not_cost_the_buffer(tmp_path: Path) -> None:
    with InferenceLogWriter(tmp_path, flush_every=100) as writer:
        writer.append(_record(1))
        writer.append(_record(2, brightness="very bright"))
        writer.append(_record(3))
    assert read_inference_log(tmp_path)["request_id"].tolist() == ["r-1", "r-3"]


def test_missing_or_empty_log_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(HairsegError, match="does not exist") as exc:
        read_inference_log(tmp_path / "nope")
    assert exc.value.exit_code == 2
    with pytest.raises(HairsegError, match="holds no part") as exc:
        read_inference_log(tmp_path)
    assert exc.value.exit_code == 2


def _stats(n: int, seed: int, *, dark: float = 0.0, blur: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "brightness": rng.beta(5, 5, n) * (1 - dark),
            "contrast": rng.gamma(4, 0.04, n) * (1 - dark),
            "sharpness": rng.normal(6, 1, n) - blur,
            "saturation": rng.beta(2, 4, n),
            "hue_mean": rng.uniform(0, 1, n),
            "hair_coverage": rng.beta(2, 6, n),
        }
    )


@pytest.fixture(scope="module")
def cfg() -> MonitorConfig:
    return MonitorConfig(columns=COLUMNS, min_rows=50)


def test_same_distribution_is_not_drift(cfg: MonitorConfig) -> None:
    result = check_drift(_stats(400, 1), _stats(300, 2), cfg)
    assert not result.drifted and result.exit_code == 0
    assert result.share < cfg.drift_share
    assert set(result.columns) == set(COLUMNS)
    assert all(0.0 <= c.score <= 1.0 for c in result.columns.values())


def test_darker_blurrier_batch_is_drift_and_names_its_columns(
    cfg: MonitorConfig, tmp_path: Path
) -> None:
    result = check_drift(_stats(400, 1), _stats(300, 3, dark=0.4, blur=2.0), cfg, tmp_path)
    assert result.drifted and result.exit_code == EXIT_DRIFT
    assert {"brightness", "contrast", "sharpness"} <= set(result.drifted_columns)
    assert "saturation" not in result.drifted_columns
    assert result.share == pytest.approx(len(result.drifted_columns) / len(COLUMNS))
    assert result.evidently_drifted_count == len(result.drifted_columns)
    metrics = json.loads(json.dumps(result.to_metrics()))
    assert metrics["drifted"] is True and metrics["n_current"] == 300
    assert result.report_html_path is not None and result.report_html_path.stat().st_size > 10_000
    report = json.loads(result.report_json_path.read_text())  # type: ignore[union-attr]
    assert report["decision"]["drifted_columns"] == result.drifted_columns


def test_too_few_rows_missing_and_non_numeric_columns_are_bad_input(cfg: MonitorConfig) -> None:
    with pytest.raises(HairsegError, match=r"has 20 non-null value\(s\).*min_rows = 50") as exc:
        check_drift(_stats(400, 1), _stats(20, 2), cfg)
    assert exc.value.exit_code == 2
    with pytest.raises(HairsegError, match=r"current data lacks drift column\(s\) \['sharpness'\]"):
        check_drift(_stats(400, 1), _stats(100, 2).drop(columns="sharpness"), cfg)
    words = _stats(100, 2).assign(brightness="dark")
    with pytest.raises(HairsegError, match="'brightness' must be numeric"):
        check_drift(_stats(400, 1), words, cfg)
    nulls = _stats(100, 2).assign(hair_coverage=np.nan)
    with pytest.raises(HairsegError, match="'hair_coverage' has 0 non-null"):
        check_drift(_stats(400, 1), nulls, cfg)


def test_config_is_checked() -> None:
    with pytest.raises(HairsegError, match="drift_share"):
        MonitorConfig(drift_share=0)
    with pytest.raises(HairsegError, match="min_rows"):
        MonitorConfig(min_rows=1)
    with pytest.raises(HairsegError, match="not an Evidently numerical stat test"):
        check_drift(_stats(100, 1), _stats(100, 2), MonitorConfig(stattest="no_such_test"))


def test_corrupt_part_and_empty_reference_split_are_bad_input(tmp_path: Path) -> None:
    (tmp_path / "log").mkdir()
    (tmp_path / "log" / "part-0.parquet").write_bytes(b"not parquet")
    with pytest.raises(HairsegError, match="unreadable part") as exc:
        read_inference_log(tmp_path / "log")
    assert exc.value.exit_code == 2

    reference = tmp_path / "stats.parquet"
    _stats(60, 1).assign(split="train", decodes=True).to_parquet(reference)
    assert len(load_reference(reference, MonitorConfig())) == 60
    with pytest.raises(HairsegError, match=r"no rows in split 'val'.*present: \['train'\]") as exc:
        load_reference(reference, MonitorConfig(reference_split="val"))
    assert exc.value.exit_code == 2
    assert len(load_reference(reference, MonitorConfig(reference_split=""))) == 60
