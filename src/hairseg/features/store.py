"""Pure functions over the Feast repo: apply, materialise, point-in-time reads, slices.

DVC stages (``hairseg features …``) and KFP components call these; they take the repo
folder and return data or small summaries. ``feast apply`` runs in a subprocess: Feast's
apply imports the definitions module, changes the working directory and may call
``sys.exit``, none of which belongs in a caller's process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hairseg.errors import EXIT_USAGE, HairsegError
from hairseg.features.online import INFERENCE_STATS_COLUMNS
from hairseg.monitoring.inference_log import STAT_FIELDS

if TYPE_CHECKING:
    from feast import FeatureStore

__all__ = [
    "EVAL_SLICE_COLUMNS",
    "IMAGE_STATS_FEATURES",
    "FeaturesConfig",
    "apply_repo",
    "eval_slices",
    "feature_store",
    "historical_image_features",
    "materialize",
    "training_frame",
]

IMAGE_STATS_VIEW = "image_stats_v1"
IMAGE_STATS_FEATURES: tuple[str, ...] = (*STAT_FIELDS, "face_count", "hair_colour_family", "split")
# The push source's offline file, relative to the repo (as in feature_definitions.py).
INFERENCE_STATS_FILE = "data/inference_stats.parquet"
# Where materialisation starts when no start is given: before any event we store.
MATERIALIZE_FROM = datetime(2000, 1, 1, tzinfo=UTC)

# artifacts/eval_slices.parquet: one row per image, categorical slice labels.
EVAL_SLICE_COLUMNS: dict[str, str] = {
    "image_id": "string",
    "split": "string",
    "brightness_bucket": "string",  # dark | normal | bright
    "coverage_bucket": "string",  # low | medium | high (labelled hair fraction)
    "hair_colour_family": "string",  # as generated; "unknown" when the source has none
    "face_count_bucket": "string",  # 0 | 1 | 2+ | unknown (face detector not run)
}


@dataclass(frozen=True)
class FeaturesConfig:
    """``params.yaml`` section ``features``."""

    repo: Path = Path("feature_repo")
    n_customers: int = 200
    seed: int = 20261122
    brightness_edges: tuple[float, float] = (0.35, 0.65)
    coverage_edges: tuple[float, float] = (0.05, 0.1)


def _feast_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("FEAST_USAGE", "False")
    env.setdefault("DO_NOT_TRACK", "1")
    return env


def _check_repo(repo_path: Path, config_file: Path | None) -> Path:
    yaml_file = config_file or repo_path / "feature_store.yaml"
    if not repo_path.is_dir():
        raise HairsegError(f"feature repo {repo_path} is not a folder", exit_code=EXIT_USAGE)
    if not yaml_file.is_file():
        raise HairsegError(f"no Feast config {yaml_file}", exit_code=EXIT_USAGE)
    return yaml_file


def feature_store(repo_path: str | Path, config_file: str | Path | None = None) -> FeatureStore:
    """A ``feast.FeatureStore`` for the repo (default config: ``feature_store.yaml``)."""
    from feast import FeatureStore

    repo_path = Path(repo_path).resolve()
    yaml_file = _check_repo(repo_path, Path(config_file).resolve() if config_file else None)
    return FeatureStore(repo_path=str(repo_path), fs_yaml_file=yaml_file)


def _source_uri(store: FeatureStore, source: Any) -> str:
    from feast.infra.offline_stores.file_source import FileSource

    return FileSource.get_uri_for_file_path(store.config.repo_path, source.path)


def _ensure_inference_stats_file(repo_path: Path) -> None:
    """Create the (empty) local offline file behind the push source: Feast validates it
    on apply and appends to it on push. (On object storage it is provisioned beside the
    bucket.)"""
    path = repo_path / INFERENCE_STATS_FILE
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    empty = pd.DataFrame({c: pd.Series(dtype=t) for c, t in INFERENCE_STATS_COLUMNS.items()})
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(pa.Table.from_pandas(empty, preserve_index=False), tmp)
    tmp.replace(path)


def apply_repo(repo_path: str | Path, config_file: str | Path | None = None) -> dict[str, Any]:
    """Run ``feast apply`` on the repo and check every local source file exists.

    Returns a summary: project, entities, feature views with their features, services.
    """
    repo_path = Path(repo_path).resolve()
    yaml_file = _check_repo(repo_path, Path(config_file).resolve() if config_file else None)
    _ensure_inference_stats_file(repo_path)
    cmd = [sys.executable, "-m", "feast.cli.cli", "-c", str(repo_path)]
    cmd += ["-f", str(yaml_file), "apply"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_feast_env(), check=False)
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout).strip().splitlines() if ln.strip()]
        last = lines[-1] if lines else f"exit code {proc.returncode}"
        hint = ""
        if "FileNotFoundError" in last:
            hint = (
                " (image stats come from `dvc repro validate`, customers from "
                "`hairseg features demo-customers`)"
            )
        raise HairsegError(f"feast apply failed in {repo_path}: {last}{hint}")
    store = feature_store(repo_path, yaml_file)
    missing = []
    for view in store.list_feature_views():
        uri = _source_uri(store, view.batch_source)
        if "://" not in uri and not Path(uri).exists():
            missing.append(f"{view.name} <- {uri}")
    if missing:
        raise HairsegError(
            "feature source file(s) missing: "
            + "; ".join(missing)
            + " (run `dvc repro validate` for image stats, "
            "`hairseg features demo-customers` for customers)"
        )
    return _registry_summary(store)


def _registry_summary(store: FeatureStore) -> dict[str, Any]:
    return {
        "project": store.project,
        "entities": sorted(e.name for e in store.list_entities()),
        "feature_views": {
            v.name: [f.name for f in v.features]
            for v in sorted(store.list_feature_views(), key=lambda v: v.name)
        },
        "feature_services": sorted(s.name for s in store.list_feature_services()),
    }


def materialize(
    repo_path: str | Path,
    end_date: datetime | None = None,
    start_date: datetime | None = None,
    config_file: str | Path | None = None,
    views: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Load offline rows with event time in [start, end] into the online store.

    Defaults: start :data:`MATERIALIZE_FROM`, end now, every view with a batch file. The
    summary counts, per view, the offline rows in range and how many of their entity keys
    the online store now answers (read back, not assumed).
    """
    end_date = end_date or datetime.now(UTC)
    start_date = start_date or MATERIALIZE_FROM
    if end_date.tzinfo is None or start_date.tzinfo is None:
        raise HairsegError("materialize dates must be timezone-aware", exit_code=EXIT_USAGE)
    if start_date >= end_date:
        raise HairsegError(
            f"materialize start {start_date.isoformat()} is not before end {end_date.isoformat()}",
            exit_code=EXIT_USAGE,
        )
    store = feature_store(repo_path, config_file)
    all_views = {v.name: v for v in store.list_feature_views()}
    if not all_views:
        raise HairsegError(f"no feature views registered in {repo_path}: run apply first")
    names = list(views) if views else sorted(all_views)
    unknown = sorted(set(names) - set(all_views))
    if unknown:
        raise HairsegError(
            f"unknown feature view(s) {unknown}; registered: {sorted(all_views)}",
            exit_code=EXIT_USAGE,
        )
    store.materialize(start_date=start_date, end_date=end_date, feature_views=names)
    summary: dict[str, Any] = {}
    for name in names:
        view = all_views[name]
        uri = _source_uri(store, view.batch_source)
        frame = pd.read_parquet(uri)
        ts = pd.to_datetime(frame[view.batch_source.timestamp_field], utc=True)
        in_range = frame[(ts >= start_date) & (ts < end_date)]
        key = view.entity_columns[0].name
        keys = in_range[key].dropna().astype(str).unique().tolist()
        online = 0
        if keys:
            first = view.features[0].name
            got = store.get_online_features(
                features=[f"{name}:{first}"], entity_rows=[{key: k} for k in keys]
            ).to_dict()
            online = sum(v is not None for v in got[first])
        summary[name] = {"offline_rows": len(in_range), "entities": len(keys), "online": online}
    return summary


def _entity_frame(entity_df: pd.DataFrame, key: str) -> pd.DataFrame:
    missing = [c for c in (key, "event_timestamp") if c not in entity_df.columns]
    if missing:
        raise HairsegError(
            f"entity frame lacks column(s) {missing}; it needs {key} and event_timestamp",
            exit_code=EXIT_USAGE,
        )
    if entity_df.empty:
        raise HairsegError("entity frame has no rows", exit_code=EXIT_USAGE)
    out = entity_df[[key, "event_timestamp"]].copy()
    out[key] = out[key].astype("string")
    out["event_timestamp"] = pd.to_datetime(out["event_timestamp"], utc=True)
    return out


def historical_image_features(
    repo_path: str | Path,
    entity_df: pd.DataFrame,
    features: Sequence[str] = IMAGE_STATS_FEATURES,
    config_file: str | Path | None = None,
) -> pd.DataFrame:
    """Point-in-time join of ``image_stats_v1`` onto ``entity_df`` (image_id, event_timestamp).

    Each row gets the latest feature values with event time at or before its own (nulls
    when there is none); rows come back in ``entity_df`` order, none dropped.
    """
    unknown = sorted(set(features) - set(IMAGE_STATS_FEATURES))
    if unknown:
        raise HairsegError(
            f"unknown image feature(s) {unknown}; accepted: {list(IMAGE_STATS_FEATURES)}",
            exit_code=EXIT_USAGE,
        )
    store = feature_store(repo_path, config_file)
    entities = _entity_frame(entity_df, "image_id")
    refs = [f"{IMAGE_STATS_VIEW}:{name}" for name in features]
    return _point_in_time(store, entities, refs)


def training_frame(
    repo_path: str | Path,
    entity_df: pd.DataFrame,
    service: str = "training_v1",
    config_file: str | Path | None = None,
) -> pd.DataFrame:
    """Point-in-time training frame from a feature service (default ``training_v1``)."""
    store = feature_store(repo_path, config_file)
    services = {s.name: s for s in store.list_feature_services()}
    if service not in services:
        raise HairsegError(
            f"unknown feature service {service!r}; registered: {sorted(services)}",
            exit_code=EXIT_USAGE,
        )
    entities = _entity_frame(entity_df, "image_id")
    return _point_in_time(store, entities, services[service])


_ROW = "__hairseg_row"


def _point_in_time(store: FeatureStore, entities: pd.DataFrame, features: Any) -> pd.DataFrame:
    """``get_historical_features``, one output row per entity row, in entity order.

    Feast's file (dask) offline store drops an entity row whose only feature rows lie in
    its future instead of returning nulls; a training set must not lose rows silently, so
    the result is joined back onto the entity frame.
    """
    keyed = entities.assign(**{_ROW: np.arange(len(entities))})
    got = store.get_historical_features(entity_df=keyed, features=features).to_df()
    values = got.drop(columns=[c for c in entities.columns if c in got.columns])
    out = keyed.merge(values, on=_ROW, how="left", validate="one_to_one")
    return out.sort_values(_ROW).drop(columns=_ROW).reset_index(drop=True)


def _bucket(values: pd.Series, edges: tuple[float, float], labels: tuple[str, str, str]) -> Any:
    lo, hi = edges
    v = pd.to_numeric(values, errors="coerce").astype("float64").to_numpy()
    out = np.where(v < lo, labels[0], np.where(v < hi, labels[1], labels[2])).astype(object)
    out[np.isnan(v)] = "unknown"
    return out


def eval_slices(
    repo_path: str | Path,
    entity_df: pd.DataFrame,
    *,
    brightness_edges: tuple[float, float] = (0.35, 0.65),
    coverage_edges: tuple[float, float] = (0.05, 0.1),
    config_file: str | Path | None = None,
) -> pd.DataFrame:
    """Evaluation slices per image (:data:`EVAL_SLICE_COLUMNS`) read from the store."""
    for name, (lo, hi) in (("brightness", brightness_edges), ("coverage", coverage_edges)):
        if not lo < hi:
            raise HairsegError(f"{name} edges must increase, got {[lo, hi]}", exit_code=EXIT_USAGE)
    feats = historical_image_features(
        repo_path,
        entity_df,
        ("brightness", "hair_coverage", "face_count", "hair_colour_family", "split"),
        config_file,
    )
    faces = pd.to_numeric(feats["face_count"], errors="coerce").astype("float64").to_numpy()
    face_bucket = np.select(
        [np.isnan(faces), faces >= 2, faces >= 1], ["unknown", "2+", "1"], default="0"
    ).astype(object)
    out = pd.DataFrame(
        {
            "image_id": feats["image_id"],
            "split": feats["split"],
            "brightness_bucket": _bucket(
                feats["brightness"], brightness_edges, ("dark", "normal", "bright")
            ),
            "coverage_bucket": _bucket(
                feats["hair_coverage"], coverage_edges, ("low", "medium", "high")
            ),
            "hair_colour_family": feats["hair_colour_family"].fillna("unknown"),
            "face_count_bucket": face_bucket,
        }
    ).astype(EVAL_SLICE_COLUMNS)
    return out.sort_values("image_id", kind="stable").reset_index(drop=True)
