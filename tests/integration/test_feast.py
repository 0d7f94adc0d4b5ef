"""The Feast repo for real: `feast apply`, materialize, online and point-in-time reads, push.

A temporary copy of ``feature_repo/`` (same definitions, same feature_store.yaml) reads
tiny Parquet files written here: image statistics from ``image_statistics`` on random
images (one image with two versions, to see the point-in-time join pick the right one) and
the seeded demo customers. Nothing is faked: apply runs the Feast CLI, the online store is
SQLite and the offline store the Parquet files.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from contextlib import chdir
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hairseg.cli import main
from hairseg.errors import HairsegError
from hairseg.features import (
    EVAL_SLICE_COLUMNS,
    OnlineFeatures,
    historical_image_features,
    training_frame,
)
from hairseg.features.store import IMAGE_STATS_FEATURES, feature_store
from hairseg.imaging import image_statistics
from hairseg.monitoring.inference_log import InferenceLogWriter

from cli_support import run_cli  # isort: skip

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PARAMS = ROOT / "params.yaml"
T0 = pd.Timestamp("2026-01-01T00:00:00Z")
T1 = pd.Timestamp("2026-03-01T00:00:00Z")  # img-0000 is re-captured (brighter) at T1


def _image_stats(n: int = 24, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        rgb = (rng.random((32, 32, 3)) * rng.uniform(40, 255)).astype(np.uint8)
        mask = np.where(rng.random((32, 32)) < rng.uniform(0.05, 0.5), 255, 0).astype(np.uint8)
        rows.append(
            {
                "image_id": f"img-{i:04d}",
                "split": "train" if i % 4 else "test",
                "event_timestamp": T0,
                "hair_colour_family": ["black", "brown", "blonde", None][i % 4],
                "face_count": [1, 0, 2, None][i % 4],
                **image_statistics(rgb, mask).as_dict(),
            }
        )
    later = dict(rows[0], event_timestamp=T1, brightness=0.95)
    df = pd.DataFrame([*rows, later])
    return df.astype(
        {"image_id": "string", "split": "string", "hair_colour_family": "string"}
        | {"face_count": "Int64", "width": "Int64", "height": "Int64"}
        | {"event_timestamp": "datetime64[ns, UTC]"}
    )


def _cli(cwd: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The CLI in this process (tests/cli_support.py): exit code, stdout, stderr."""
    result = run_cli(*args, cwd=cwd)
    return result.returncode, result.stdout, result.stderr


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("feast")
    shutil.copytree(
        ROOT / "feature_repo", root / "feature_repo", ignore=shutil.ignore_patterns("data")
    )
    (root / "artifacts").mkdir()
    _image_stats().to_parquet(root / "artifacts" / "image_stats.parquet", index=False)
    return root


@pytest.fixture(scope="module")
def built(world: Path) -> dict:
    """`hairseg features demo-customers` (a real process) + `hairseg features build`."""
    proc = subprocess.run(
        [str(ROOT / ".venv/bin/hairseg"), "features", "demo-customers", "--params", str(PARAMS),
         "--n", "20", "--out", "feature_repo/data/customers.parquet"],
        cwd=world, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    # build runs `feast apply` in its own process; the rest runs here.
    with chdir(world):
        try:
            main(["features", "build", "--params", str(PARAMS), "--repo", "feature_repo"])
        except SystemExit as exc:
            assert exc.code == 0
    return json.loads((world / "artifacts" / "features_summary.json").read_text())


def test_apply_registers_the_fixed_names_and_materialize_fills_the_online_store(
    built: dict,
) -> None:
    registry = built["registry"]
    assert registry["entities"] == ["customer", "image"]
    assert set(registry["feature_views"]) == {
        "image_stats_v1",
        "customer_profile_v1",
        "inference_stats_v1",
    }
    assert registry["feature_views"]["image_stats_v1"] == list(IMAGE_STATS_FEATURES)
    assert registry["feature_services"] == ["serving_v1", "training_v1"]
    assert built["materialized"]["image_stats_v1"] == {
        "offline_rows": 25,
        "entities": 24,
        "online": 24,
    }
    assert built["materialized"]["customer_profile_v1"]["online"] == 20


def test_online_profile_matches_the_customer_table(world: Path, built: dict) -> None:
    online = OnlineFeatures(world / "feature_repo")
    table = pd.read_parquet(world / "feature_repo" / "data" / "customers.parquet")
    for _, row in table.iloc[[0, 7, 19]].iterrows():
        profile = online.customer_profile(row["customer_id"])
        assert profile is not None
        assert profile.preferred_shade == row["preferred_shade"]
        assert profile.preferred_intensity == pytest.approx(row["preferred_intensity"])
        assert profile.consent_monitoring == bool(row["consent_monitoring"])
        assert profile.consent_personalisation == bool(row["consent_personalisation"])
    assert online.customer_profile("cust-9999") is None


def test_online_image_features_are_the_latest_version(world: Path, built: dict) -> None:
    store = feature_store(world / "feature_repo")
    got = store.get_online_features(
        features=["image_stats_v1:brightness", "image_stats_v1:face_count"],
        entity_rows=[{"image_id": "img-0000"}, {"image_id": "img-0003"}],
    ).to_dict()
    assert got["brightness"][0] == pytest.approx(0.95)
    assert got["face_count"] == [1, None]


def test_point_in_time_join_picks_the_version_valid_at_each_row(world: Path, built: dict) -> None:
    entities = pd.DataFrame(
        {
            "image_id": ["img-0000", "img-0000", "img-0000", "img-0001"],
            "event_timestamp": [
                T0 - pd.Timedelta(days=1),
                T0 + pd.Timedelta(days=1),
                T1 + pd.Timedelta(days=1),
                T1,
            ],
        }
    )
    df = historical_image_features(world / "feature_repo", entities, ("brightness", "split"))
    assert df["image_id"].tolist() == entities["image_id"].tolist()  # no row lost, same order
    first = _image_stats().iloc[0]["brightness"]
    assert pd.isna(df.loc[0, "brightness"])  # before the image existed
    assert df.loc[1, "brightness"] == pytest.approx(first)
    assert df.loc[2, "brightness"] == pytest.approx(0.95)
    assert df.loc[3, "split"] == "train"

    frame = training_frame(world / "feature_repo", entities)
    assert set(IMAGE_STATS_FEATURES) <= set(frame.columns)
    with pytest.raises(HairsegError, match="unknown feature service 'training_v9'"):
        training_frame(world / "feature_repo", entities, service="training_v9")
    with pytest.raises(HairsegError, match=r"lacks column\(s\) \['event_timestamp'\]"):
        historical_image_features(world / "feature_repo", entities[["image_id"]])


def test_eval_slices_table(world: Path, built: dict) -> None:
    slices = pd.read_parquet(world / "artifacts" / "eval_slices.parquet")
    assert list(slices.columns) == list(EVAL_SLICE_COLUMNS)
    assert len(slices) == 25 and slices["image_id"].nunique() == 24
    assert set(slices["brightness_bucket"]) <= {"dark", "normal", "bright"}
    assert set(slices["coverage_bucket"]) <= {"low", "medium", "high"}
    faces = slices.set_index("image_id")["face_count_bucket"]
    assert faces["img-0001"] == "0" and faces["img-0002"] == "2+" and faces["img-0003"] == "unknown"
    assert slices.set_index("image_id").loc["img-0003", "hair_colour_family"] == "unknown"
    assert built["eval_slices"]["split"] == {"test": 7, "train": 18}


def test_push_reaches_online_and_offline_stores(world: Path, built: dict) -> None:
    online = OnlineFeatures(world / "feature_repo")
    now = pd.Timestamp.now(tz="UTC").floor("s")
    rows = [
        {
            "request_id": f"req-{i}",
            "customer_id": None if i == 2 else f"cust-{i:04d}",
            "model_version": "7",
            "event_timestamp": now,
            **image_statistics(np.full((16, 24, 3), 40 * i, np.uint8)).as_dict(),
            "hair_coverage": 0.1 * i,
        }
        for i in range(3)
    ]
    assert online.push_inference_stats(rows) == 3
    got = online.store.get_online_features(
        features=["inference_stats_v1:hair_coverage", "inference_stats_v1:model_version"],
        entity_rows=[{"image_id": "req-1"}, {"image_id": "req-2"}],
    ).to_dict()
    assert got["hair_coverage"] == pytest.approx([0.1, 0.2])
    assert got["model_version"] == ["7", "7"]
    offline = pd.read_parquet(world / "feature_repo" / "data" / "inference_stats.parquet")
    assert sorted(r for r in offline["request_id"] if r.startswith("req-")) == [
        "req-0",
        "req-1",
        "req-2",
    ]
    hist = online.store.get_historical_features(
        entity_df=pd.DataFrame({"image_id": ["req-0"], "event_timestamp": [now]}),
        features=["inference_stats_v1:width"],
    ).to_df()
    assert hist["width"].tolist() == [24]
    with pytest.raises(
        HairsegError, match=r"unknown inference statistics column\(s\) \['pixels'\]"
    ):
        online.push_inference_stats([{**rows[0], "pixels": [1, 2]}])


def test_cli_bad_input(world: Path, built: dict, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _cli(
        world, capsys, "features", "eval-slices", "--params", str(PARAMS),
        "--repo", "feature_repo", "--image-stats", "artifacts/nope.parquet",
    )  # fmt: skip
    assert code == 2
    assert err.strip() == (
        "hairseg: error: image statistics artifacts/nope.parquet not found "
        "(the `validate` DVC stage writes it)"
    )
    code, _, err = _cli(
        world, capsys, "features", "materialize", "--params", str(PARAMS),
        "--repo", "feature_repo", "--end", "next tuesday",
    )  # fmt: skip
    assert code == 2 and "--end 'next tuesday' is not an ISO date/time" in err
    code, _, err = _cli(
        world, capsys, "features", "online", "--params", str(PARAMS),
        "--repo", "feature_repo", "cust-9999",
    )  # fmt: skip
    assert code == 1 and "no online profile for customer 'cust-9999'" in err
    code, out, _ = _cli(
        world, capsys, "features", "online", "--params", str(PARAMS),
        "--repo", "feature_repo", "cust-0001",
    )  # fmt: skip
    assert code == 0 and json.loads(out)["customer_id"] == "cust-0001"
    code, _, err = _cli(
        world, capsys, "features", "apply", "--params", str(PARAMS), "--repo", "no_such_repo"
    )
    assert code == 2 and "feature repo" in err and "no_such_repo is not a folder" in err


def test_cluster_config_reads_redis_and_object_storage_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Parses feature_store.cluster.yaml and the definitions as `feast apply` would on the
    cluster; the Redis server and bucket themselves cannot run here (nothing connects)."""
    from feast.repo_config import load_repo_config

    env = {
        "FEAST_REGISTRY_URI": "s3://hairseg-artifacts/feast/registry.db",
        "FEAST_REDIS_CONNECTION_STRING": "redis-master.feast.svc.cluster.local:6379,password=pw",
        "HAIRSEG_FEATURE_SOURCE_ROOT": "s3://hairseg-artifacts/features/",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    repo = ROOT / "feature_repo"
    config = load_repo_config(repo, repo / "feature_store.cluster.yaml")
    assert config.online_store.type == "redis"
    assert config.online_store.connection_string == env["FEAST_REDIS_CONNECTION_STRING"]
    assert config.registry.path == env["FEAST_REGISTRY_URI"]
    spec = importlib.util.spec_from_file_location(
        "hairseg_cluster_definitions", repo / "feature_definitions.py"
    )
    assert spec is not None and spec.loader is not None
    definitions = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(definitions)
    root = "s3://hairseg-artifacts/features"
    assert definitions.image_stats_source.path == f"{root}/image_stats.parquet"
    assert definitions.customer_profile_source.path == f"{root}/customers.parquet"
    assert definitions.inference_stats_batch_source.path == f"{root}/inference_stats.parquet"


def test_online_features_on_an_unapplied_repo_says_what_to_run(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "feature_repo", tmp_path / "repo", ignore=shutil.ignore_patterns("data"))
    with pytest.raises(HairsegError, match="customer_profile_v1 is not registered.*features build"):
        OnlineFeatures(tmp_path / "repo")
    with pytest.raises(HairsegError, match="is not a Feast repo"):
        OnlineFeatures(tmp_path)


def test_push_log_sends_each_inference_log_part_once(
    world: Path, built: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    log = world / "inference_log"
    with InferenceLogWriter(log, flush_every=2) as writer:
        for i in range(3):
            stats = image_statistics(np.full((8, 8, 3), 60 * i, np.uint8)).as_dict()
            writer.append({"request_id": f"log-{i}", "model_version": "7", **stats})
    args = ["features", "push-log", "--params", str(PARAMS), "--repo", "feature_repo"]
    code, out, err = _cli(world, capsys, *args, "--log", "inference_log")
    assert code == 0, err
    assert out.strip() == "pushed 3 rows from 2 new part(s) of inference_log"
    code, out, _ = _cli(world, capsys, *args, "--log", "inference_log")
    assert code == 0 and out.strip() == "pushed 0 rows from 0 new part(s) of inference_log"
    online = OnlineFeatures(world / "feature_repo")
    got = online.store.get_online_features(
        features=["inference_stats_v1:brightness"], entity_rows=[{"image_id": "log-2"}]
    ).to_dict()
    assert got["brightness"] == [pytest.approx(120 / 255)]
    offline = pd.read_parquet(world / "feature_repo" / "data" / "inference_stats.parquet")
    assert sorted(r for r in offline["request_id"] if r.startswith("log-")) == [
        "log-0",
        "log-1",
        "log-2",
    ]
    code, _, err = _cli(world, capsys, *args, "--log", "nowhere")
    assert code == 2 and "inference log nowhere does not exist" in err
