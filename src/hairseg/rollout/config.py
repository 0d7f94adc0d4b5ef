"""The ``rollout:`` section of ``params.yaml`` as typed dataclasses.

One config drives both backends: the policy thresholds are shared, and each backend has
its own small sub-section (``local:``, ``kserve:``). Validation happens here, once, so a
bad value fails before any traffic moves.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from hairseg.config import require, section
from hairseg.errors import EXIT_USAGE, HairsegError

__all__ = ["KServeConfig", "LocalConfig", "PolicyConfig", "RolloutConfig", "load_rollout_config"]


_POLICY = "rollout.policy."  # the prefix of PolicyConfig's messages


@dataclass(frozen=True)
class PolicyConfig:
    """Thresholds of the canary analysis (see :mod:`hairseg.rollout.policy`).

    ``steps`` are the canary traffic percentages; the last must be 100 (the promotion).
    Each step below 100 is analysed on at least ``min_requests`` canary requests (and
    ``min_mirrored`` mirrored requests for the mask comparison) before stepping up.
    """

    steps: tuple[int, ...] = (10, 50, 100)
    min_requests: int = 50
    min_mirrored: int = 10
    max_error_rate: float = 0.01
    max_p95_ratio: float = 2.0
    max_p95_ms: float = 1000.0
    max_disagreement: float = 0.10
    max_holds: int = 3

    def __post_init__(self) -> None:
        steps, got = self.steps, f"got {list(self.steps)}"
        increasing = all(0 < s <= 100 for s in steps) and all(
            a < b for a, b in itertools.pairwise(steps)
        )
        counts = ("min_requests", "min_mirrored", "max_holds")
        require(
            [
                (
                    bool(steps) and steps[-1] == 100,
                    f"{_POLICY}steps must end with 100 (the promotion), {got}",
                ),
                (
                    increasing,
                    f"{_POLICY}steps must be strictly increasing percentages in 1..100, {got}",
                ),
                *((getattr(self, n) >= 0, f"{_POLICY}{n} must be >= 0") for n in counts),
                (self.min_requests >= 1, f"{_POLICY}min_requests must be >= 1"),
                (
                    0.0 <= self.max_error_rate <= 1.0,
                    f"{_POLICY}max_error_rate must be in [0, 1], got {self.max_error_rate}",
                ),
                (
                    0.0 <= self.max_disagreement <= 1.0,
                    f"{_POLICY}max_disagreement must be in [0, 1], got {self.max_disagreement}",
                ),
                (
                    self.max_p95_ratio > 0 and self.max_p95_ms > 0,
                    f"{_POLICY}max_p95_ratio and max_p95_ms must be > 0",
                ),
            ]
        )


@dataclass(frozen=True)
class LocalConfig:
    """The embedded backend: two loopback predictor servers and a replayed traffic sample."""

    split: Literal["train", "val", "test"] = "test"
    max_requests_per_step: int = 2000  # bound: a step never sends more than this
    mirror_fraction: float = 0.25  # share of canary requests also sent to stable
    seed: int = 20261122  # the traffic split is a seeded hash of the request index
    server_start_timeout_s: float = 60.0
    request_timeout_s: float = 30.0
    # A real-photo set (datasets/real_portraits) whose 'test' images are also sent to both
    # canary and stable at every step; "" = off. The step's disagreement is the worse of
    # the replayed traffic's and the real photos'.
    real_photos: str = ""

    def __post_init__(self) -> None:
        require(
            [
                (
                    self.max_requests_per_step >= 1,
                    "rollout.local.max_requests_per_step must be >= 1",
                ),
                (
                    0.0 < self.mirror_fraction <= 1.0,
                    f"rollout.local.mirror_fraction must be in (0, 1], got {self.mirror_fraction}",
                ),
            ]
        )


@dataclass(frozen=True)
class KServeConfig:
    """The cluster backend: one InferenceService (Knative or Standard mode) + Prometheus."""

    namespace: str = "hairseg"
    name: str = "hairseg"
    prometheus_url: str = "http://prometheus-operated.monitoring.svc:9090"
    analysis_window_s: int = 300  # each step observes this long before reading metrics
    poll_interval_s: float = 10.0
    ready_timeout_s: float = 600.0
    # Tag routing exposes the prev/latest revisions at their own URLs; the rollout mirrors
    # ``mirror_requests`` test images to both to measure mask disagreement.
    mirror_requests: int = 20
    # storageUri of a version: {artifact_uri} (the registry's artifact location, e.g.
    # s3://bucket/…/artifacts), {version}, {uri} or {source} fill the template.
    storage_uri_template: str = "{artifact_uri}"
    model_name: str = "hairseg"  # the predictor's model name in the V1 URL (mirroring)
    # Standard mode: the pod label Prometheus puts on scraped series (the predictor's own
    # hairseg_requests_total / hairseg_request_seconds), and where each predictor
    # Deployment's Service answers (mirroring): {service} and {namespace} fill it.
    pod_label: str = "pod"
    service_url_template: str = "http://{service}.{namespace}.svc.cluster.local"

    def __post_init__(self) -> None:
        if self.analysis_window_s < 1 or self.poll_interval_s <= 0 or self.ready_timeout_s <= 0:
            raise HairsegError(
                "rollout.kserve analysis_window_s, poll_interval_s and ready_timeout_s must be > 0",
                exit_code=EXIT_USAGE,
            )


@dataclass(frozen=True)
class RolloutConfig:
    """The whole ``rollout:`` section."""

    backend: Literal["local", "kserve"] = "local"
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    local: LocalConfig = field(default_factory=LocalConfig)
    kserve: KServeConfig = field(default_factory=KServeConfig)


def load_rollout_config(params: Mapping[str, Any]) -> RolloutConfig:
    """Read ``params['rollout']`` strictly (unknown keys and bad values are errors)."""
    return section(params, "rollout", RolloutConfig)
