"""The replayed traffic sample, the deterministic canary split and mask comparison.

Shared by both backends: the local backend routes every sampled request itself; the
KServe backend uses the sample only for mirrored requests (Knative splits live traffic).
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hairseg.errors import EXIT_USAGE, HairsegError
from hairseg.metrics import iou

__all__ = [
    "PredictError",
    "PredictorClient",
    "TrafficImage",
    "load_traffic_sample",
    "mask_disagreement",
    "p95",
    "routes_to_canary",
]


@dataclass(frozen=True)
class TrafficImage:
    """One request's payload: the dataset id and the encoded image bytes."""

    id: str
    data: bytes


def load_traffic_sample(dataset: str | Path, split: str) -> list[TrafficImage]:
    """The ``split`` images of ``dataset`` (manifest order), as encoded bytes."""
    from hairseg.data.manifest import read_manifest

    df = read_manifest(dataset)
    rows = df[df["split"] == split]
    if rows.empty:
        raise HairsegError(
            f"dataset {dataset} has no '{split}' images to replay as rollout traffic "
            f"(splits present: {sorted(df['split'].unique())})",
            exit_code=EXIT_USAGE,
        )
    return [
        TrafficImage(str(r.id), (Path(dataset) / str(r.image_path)).read_bytes())
        for r in rows.itertuples()
    ]


def routes_to_canary(seed: int, index: int, percent: int) -> bool:
    """Whether request ``index`` goes to the canary at ``percent`` %: a seeded hash split.

    The same seed and index always route the same way (reproducible runs), and over many
    indices the canary share converges on ``percent``.
    """
    if percent <= 0:
        return False
    if percent >= 100:
        return True
    digest = hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10_000 < percent * 100


def mask_disagreement(a: np.ndarray, b: np.ndarray) -> float:
    """``1 - IoU`` of two 0/255 masks of the same shape (two empty masks agree fully)."""
    return 1.0 - iou(a, b)


def p95(latencies_ms: Sequence[float]) -> float | None:
    """95th percentile (linear interpolation), or None for no samples."""
    if not latencies_ms:
        return None
    return float(np.percentile(np.asarray(latencies_ms, dtype=np.float64), 95))


class PredictError(Exception):
    """A predictor answered with an error or an unusable prediction."""


class PredictorClient:
    """A V1 client for one predictor URL: send an image, get its mask and the latency.

    Speaks the serving package's V1 contract: ``POST {base}/v1/models/{name}:predict`` with
    ``{"instances": [{"image_b64", "output": "mask"}]}`` → ``predictions[0].mask_png_b64``.
    """

    def __init__(self, base_url: str, model_name: str, *, timeout_s: float = 30.0) -> None:
        import httpx

        self.base_url = base_url.rstrip("/")
        self.model_name = model_name
        self._client = httpx.Client(timeout=timeout_s)

    @property
    def predict_url(self) -> str:
        return f"{self.base_url}/v1/models/{self.model_name}:predict"

    def predict_mask(self, data: bytes) -> tuple[np.ndarray, float]:
        """The mask for encoded image ``data`` and the request latency in ms."""
        import httpx

        body = {"instances": [{"image_b64": base64.b64encode(data).decode(), "output": "mask"}]}
        start = time.perf_counter()
        try:
            resp = self._client.post(self.predict_url, json=body)
        except httpx.HTTPError as exc:
            raise PredictError(f"{self.predict_url}: {type(exc).__name__}: {exc}") from None
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        if resp.status_code != 200:
            raise PredictError(f"{self.predict_url}: HTTP {resp.status_code}: {resp.text[:200]}")
        return _mask_of(resp.json(), self.predict_url), elapsed_ms

    def close(self) -> None:
        self._client.close()


def _mask_of(payload: Any, where: str) -> np.ndarray:
    try:
        encoded = payload["predictions"][0]["mask_png_b64"]
        raw = np.frombuffer(base64.b64decode(encoded), dtype=np.uint8)
        mask = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED)
    except (KeyError, IndexError, TypeError, ValueError, cv2.error) as exc:
        raise PredictError(f"{where}: unusable prediction ({type(exc).__name__}: {exc})") from None
    if mask is None or mask.ndim != 2:
        raise PredictError(f"{where}: mask_png_b64 is not a single-channel PNG")
    return mask
