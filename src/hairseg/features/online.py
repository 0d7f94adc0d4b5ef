"""Online feature access for the serving path.

:class:`OnlineFeatures` keeps one ``feast.FeatureStore`` for the life of the predictor
(building it parses the registry); each request then costs one online-store read.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from hairseg.errors import EXIT_USAGE, HairsegError

__all__ = [
    "CUSTOMER_PROFILE_FEATURES",
    "INFERENCE_STATS_COLUMNS",
    "CustomerProfile",
    "OnlineFeatures",
    "push_inference_log",
    "to_push_frame",
]

CUSTOMER_PROFILE_VIEW = "customer_profile_v1"
CUSTOMER_PROFILE_FEATURES: tuple[str, ...] = (
    "preferred_shade",
    "preferred_intensity",
    "consent_monitoring",
    "consent_personalisation",
)
INFERENCE_STATS_PUSH = "inference_stats_push"

# Columns of the inference_stats_v1 batch source, in file order. `image_id` is the join
# key of the `image` entity: a served image is identified by its request id.
INFERENCE_STATS_COLUMNS: dict[str, str] = {
    "image_id": "string",
    "request_id": "string",
    "customer_id": "string",
    "model_version": "string",
    "event_timestamp": "datetime64[us, UTC]",
    "width": "Int64",
    "height": "Int64",
    "brightness": "float64",
    "contrast": "float64",
    "sharpness": "float64",
    "saturation": "float64",
    "hue_mean": "float64",
    "hair_coverage": "float64",
}


@dataclass(frozen=True)
class CustomerProfile:
    """A customer's try-on preferences and consents (feature view customer_profile_v1)."""

    customer_id: str
    preferred_shade: str | None
    preferred_intensity: float | None
    consent_monitoring: bool
    consent_personalisation: bool


def to_push_frame(rows: pd.DataFrame | Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Shape inference records (the inference-log schema) as the push source expects.

    Adds ``image_id`` (= ``request_id``) when absent, fills optional columns with nulls,
    orders the columns like the batch source and makes timestamps UTC.
    """
    df = pd.DataFrame(rows) if not isinstance(rows, pd.DataFrame) else rows.copy()
    if df.empty:
        raise HairsegError("no inference statistics to push (0 rows)", exit_code=EXIT_USAGE)
    if "request_id" not in df.columns:
        raise HairsegError("inference statistics lack the 'request_id' column")
    if "image_id" not in df.columns:
        df["image_id"] = df["request_id"]
    if "event_timestamp" not in df.columns:
        df["event_timestamp"] = pd.Timestamp.now(tz="UTC")
    unknown = sorted(set(df.columns) - set(INFERENCE_STATS_COLUMNS))
    if unknown:
        raise HairsegError(
            f"unknown inference statistics column(s) {unknown}; "
            f"accepted: {sorted(INFERENCE_STATS_COLUMNS)}"
        )
    for column in INFERENCE_STATS_COLUMNS:
        if column not in df.columns:
            df[column] = None
    df["event_timestamp"] = pd.to_datetime(df["event_timestamp"], utc=True)
    try:
        return df[list(INFERENCE_STATS_COLUMNS)].astype(INFERENCE_STATS_COLUMNS)
    except (TypeError, ValueError) as exc:
        raise HairsegError(f"inference statistics have a wrongly typed column: {exc}") from None


class OnlineFeatures:
    """Read customer profiles and push inference statistics through one FeatureStore.

    ``repo_path`` is the feature repo folder (holding ``feature_store.yaml``) on which
    ``hairseg features apply`` has run. Thread-safe for concurrent requests.
    """

    def __init__(self, repo_path: str | Path, *, config_file: str | Path | None = None) -> None:
        from feast import FeatureStore  # heavy; imported once, at predictor load

        repo_path = Path(repo_path)
        if not (repo_path / "feature_store.yaml").is_file() and config_file is None:
            raise HairsegError(
                f"{repo_path} is not a Feast repo (no feature_store.yaml)", exit_code=EXIT_USAGE
            )
        self.repo_path = repo_path
        self.store = FeatureStore(
            repo_path=str(repo_path), fs_yaml_file=Path(config_file) if config_file else None
        )
        try:
            self.store.get_feature_view(CUSTOMER_PROFILE_VIEW)
        except Exception as exc:  # Feast raises several types for "not registered"
            raise HairsegError(
                f"feature view {CUSTOMER_PROFILE_VIEW} is not registered in {repo_path} "
                f"({type(exc).__name__}); run `hairseg features build` first"
            ) from None
        self._features = [f"{CUSTOMER_PROFILE_VIEW}:{name}" for name in CUSTOMER_PROFILE_FEATURES]
        self._push_lock = threading.Lock()  # the file offline store rewrites one file

    def customer_profile(self, customer_id: str) -> CustomerProfile | None:
        """The customer's profile, or None for an unknown (or not materialised) customer."""
        response = self.store.get_online_features(
            features=self._features, entity_rows=[{"customer_id": str(customer_id)}]
        ).to_dict()
        values = {name: response[name][0] for name in CUSTOMER_PROFILE_FEATURES}
        if all(value is None for value in values.values()):
            return None
        intensity = values["preferred_intensity"]
        return CustomerProfile(
            customer_id=str(customer_id),
            preferred_shade=values["preferred_shade"],
            preferred_intensity=None if intensity is None else float(intensity),
            # Consent absent means no consent.
            consent_monitoring=bool(values["consent_monitoring"]),
            consent_personalisation=bool(values["consent_personalisation"]),
        )

    def push_inference_stats(self, rows: pd.DataFrame | Sequence[Mapping[str, Any]]) -> int:
        """Push per-request statistics to the online and offline stores; returns the row count."""
        from feast.data_source import PushMode

        df = to_push_frame(rows)
        with self._push_lock:
            self.store.push(INFERENCE_STATS_PUSH, df, to=PushMode.ONLINE_AND_OFFLINE)
        return len(df)


PUSH_LEDGER = ".feast_pushed.json"


def push_inference_log(
    repo_path: str | Path, log_dir: str | Path, *, config_file: str | Path | None = None
) -> dict[str, int]:
    """Push the inference-log parts not pushed before to ``inference_stats_push``.

    A ledger (``LOG_DIR/.feast_pushed.json``) lists the parts already pushed; it is updated
    after each successful push, so a crash in between re-pushes that batch (at least once).
    Returns the number of parts and rows pushed.
    """
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    log_dir = Path(log_dir)
    if not log_dir.is_dir():
        raise HairsegError(f"inference log {log_dir} does not exist", exit_code=EXIT_USAGE)
    ledger = log_dir / PUSH_LEDGER
    done: set[str] = set(json.loads(ledger.read_text())) if ledger.is_file() else set()
    parts = [p for p in sorted(log_dir.glob("part-*.parquet")) if p.name not in done]
    if not parts:
        return {"parts": 0, "rows": 0}
    try:
        frame = pa.concat_tables([pq.read_table(p) for p in parts]).to_pandas()
    except (OSError, pa.ArrowInvalid) as exc:
        raise HairsegError(
            f"inference log {log_dir} has an unreadable part: {exc}", exit_code=EXIT_USAGE
        ) from None
    rows = OnlineFeatures(repo_path, config_file=config_file).push_inference_stats(frame)
    tmp = ledger.with_name(f"{ledger.name}.tmp")
    tmp.write_text(json.dumps(sorted(done | {p.name for p in parts}), indent=0))
    tmp.replace(ledger)
    return {"parts": len(parts), "rows": rows}
