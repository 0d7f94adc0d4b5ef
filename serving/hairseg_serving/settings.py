"""The ``serve:`` section of ``params.yaml`` as a typed, validated dataclass.

Every limit the predictor enforces lives here so that ``params.yaml``, ``hairseg serve``
flags and ``python -m hairseg_serving`` flags all configure one object.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from hairseg.config import load_params, section
from hairseg.errors import EXIT_USAGE, HairsegError
from hairseg.imaging import DEFAULT_MAX_PIXELS
from hairseg.priors import PriorsConfig
from hairseg.tryon import TIERS, parse_shade

__all__ = ["OUTPUT_CHOICES", "TIER_CHOICES", "TRYON_FORMATS", "ServeConfig", "load_serve_config"]

OUTPUT_CHOICES = ("mask", "tryon", "both")
TRYON_FORMATS = ("jpeg", "png")
TIER_CHOICES = tuple(TIERS)  # fast, standard, premium (hairseg.tryon.TIERS)


@dataclass(frozen=True)
class ServeConfig:
    """How the predictor serves; defaults suit a 2-core laptop and a 1-CPU pod alike."""

    model_name: str = "hairseg"
    host: str = "127.0.0.1"  # the container sets 0.0.0.0
    port: int = 8080
    workers: int = 1  # uvicorn worker processes (each loads the model)
    intra_op_threads: int = 1  # ONNX Runtime threads per worker; 1 = no spinning threads
    threshold: float = 0.5
    # Limits that keep one request from taking the server down.
    max_body_bytes: int = 16 * 1024 * 1024
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_instances: int = 16
    # Load shedding: inference requests (V1/V2) in flight per worker beyond which a new
    # one is answered at once with 503 + JSON + Retry-After instead of queueing into a
    # timeout; 0 = no limit. Health and metrics are never shed. docs/CAPACITY.md sizes it.
    max_inflight: int = 16
    # Micro-batching: concurrent requests are run through the network together, up to
    # max_batch_size images; batch_window_ms > 0 waits that long for a batch to fill.
    max_batch_size: int = 1  # CPU default; on a GPU batching pays (overlays/gpu: 16)
    batch_window_ms: float = 0.0
    # Try-on defaults when neither the request nor the customer profile says.
    default_color: str = "auburn"
    default_intensity: float = 0.7
    default_output: Literal["mask", "tryon", "both"] = "mask"
    # Try-on quality tier when the request does not say: fast (bilinear matte), standard
    # (grey guided filter), premium (second network pass on the hair + colour guided filter).
    default_tier: Literal["fast", "standard", "premium"] = "standard"
    jpeg_quality: int = 90
    png_compression: int = 1  # masks: fast compression; 0-9
    # Feast online store (customer profiles) and the monitoring log; "" switches off.
    feature_repo: str = ""
    feature_cache_seconds: float = 30.0
    inference_log_dir: str = ""
    log_anonymous: bool = False  # log statistics of requests without a consenting customer
    grace_period_s: int = 25  # below the pod's terminationGracePeriodSeconds (30)
    access_log: bool = True
    # The real-photo priors fused into the hair probability: params.yaml's top-level
    # ``priors:`` section (shared with evaluation), not a ``serve:`` key.
    priors: PriorsConfig = field(default_factory=PriorsConfig)

    def __post_init__(self) -> None:
        checks: list[tuple[bool, str]] = [
            (bool(self.model_name.strip()), "model_name must not be empty"),
            (0 < self.port < 65536, f"port must be 1-65535, got {self.port}"),
            (1 <= self.workers <= 64, f"workers must be 1-64, got {self.workers}"),
            (self.intra_op_threads >= 0, "intra_op_threads must be >= 0 (0 = ORT default)"),
            (0.0 < self.threshold < 1.0, f"threshold must be in (0, 1), got {self.threshold}"),
            (self.max_body_bytes >= 1024, "max_body_bytes must be >= 1024"),
            (self.max_pixels >= 1, "max_pixels must be >= 1"),
            (1 <= self.max_instances <= 1024, "max_instances must be 1-1024"),
            (
                self.max_inflight >= 0,
                f"max_inflight must be >= 0 (0 = off), got {self.max_inflight}",
            ),
            (1 <= self.max_batch_size <= 256, "max_batch_size must be 1-256"),
            (0.0 <= self.batch_window_ms <= 100.0, "batch_window_ms must be 0-100"),
            (
                0.0 <= self.default_intensity <= 1.0,
                f"default_intensity must be in [0, 1], got {self.default_intensity}",
            ),
            (1 <= self.jpeg_quality <= 100, "jpeg_quality must be 1-100"),
            (0 <= self.png_compression <= 9, "png_compression must be 0-9"),
            (self.feature_cache_seconds >= 0, "feature_cache_seconds must be >= 0"),
            (self.grace_period_s >= 0, "grace_period_s must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise HairsegError(f"serve config: {message}", exit_code=EXIT_USAGE)
        if self.default_output not in OUTPUT_CHOICES:
            raise HairsegError(
                f"serve config: default_output must be one of {OUTPUT_CHOICES}",
                exit_code=EXIT_USAGE,
            )
        if self.default_tier not in TIER_CHOICES:
            raise HairsegError(
                f"serve config: default_tier must be one of {TIER_CHOICES}, got {self.default_tier!r}",
                exit_code=EXIT_USAGE,
            )
        try:
            parse_shade(self.default_color)
        except HairsegError as exc:
            raise HairsegError(
                f"serve config: default_color: {exc}", exit_code=EXIT_USAGE
            ) from None

    def replace(self, **changes: Any) -> ServeConfig:
        """A copy with ``changes`` applied (``None`` values are ignored)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def load_serve_config(params_path: str | Path | None = None, **overrides: Any) -> ServeConfig:
    """Read ``serve:`` (and the shared ``priors:``) from ``params_path`` (if it exists) and
    apply non-None ``overrides``."""
    params: dict[str, Any] = {}
    if params_path is not None and Path(params_path).is_file():
        params = load_params(params_path)
    serve = dict(params.get("serve") or {})
    if "priors" in serve:
        raise HairsegError(
            "params serve.priors: the priors are the top-level priors: section "
            "(shared with evaluation), not a serve: key",
            exit_code=EXIT_USAGE,
        )
    config = section(params, "serve", ServeConfig)
    config = dataclasses.replace(config, priors=section(params, "priors", PriorsConfig))
    return config.replace(**overrides)
