"""Prometheus metrics of the predictor, exposed on ``/metrics`` beside KServe's own
(``request_preprocess_seconds``, ``request_predict_seconds``, ``request_postprocess_seconds``).

With ``--workers > 1`` each worker process keeps its own registry and ``/metrics`` shows the
worker that answered; on Kubernetes we run one worker per pod and scale pods instead.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "BATCH_SIZE",
    "FEATURE_LOOKUPS",
    "INFERENCE_LOG_RECORDS",
    "IN_FLIGHT",
    "REQUESTS",
    "REQUEST_SECONDS",
    "STAGES",
    "STAGE_SECONDS",
]

STAGES = ("decode", "infer", "postprocess", "encode")

# Sub-millisecond to seconds: a 256² request spends ~0.1-5 ms per stage on a CPU.
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

STAGE_SECONDS = Histogram(
    "hairseg_stage_seconds",
    "Time per request spent in each predictor stage (decode, infer, postprocess, encode).",
    ["stage"],
    buckets=_BUCKETS,
)
REQUEST_SECONDS = Histogram(
    "hairseg_request_seconds",
    "Wall time of an HTTP request, from the first byte read to the response start.",
    ["endpoint"],
    buckets=_BUCKETS,
)
REQUESTS = Counter(
    "hairseg_requests_total",
    "HTTP requests by endpoint (v1, v2, health, metrics, other) and status code.",
    ["endpoint", "code"],
)
IN_FLIGHT = Gauge(
    "hairseg_inflight_requests",
    "Inference requests (V1/V2) this worker is handling now; serve.max_inflight caps it.",
)
BATCH_SIZE = Histogram(
    "hairseg_batch_size",
    "Images per network run (micro-batching merges concurrent requests).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
FEATURE_LOOKUPS = Counter(
    "hairseg_feature_lookups_total",
    "Customer-profile lookups in the Feast online store by result (hit, miss, cached, error).",
    ["result"],
)
INFERENCE_LOG_RECORDS = Counter(
    "hairseg_inference_log_records_total",
    "Per-request statistics records appended to the monitoring log.",
)
