"""The promotion gate: a pure decision on measured numbers, with its reasons.

The candidate passes when

- its test IoU ≥ the champion's IoU − ``iou_tolerance`` (skipped when there is no
  champion yet) and ≥ ``min_iou`` (an absolute floor, so a first model cannot be junk), and
- its ONNX Runtime p50 latency at batch 1 ≤ ``latency_budget_ms``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from hairseg.errors import EXIT_USAGE, HairsegError

__all__ = ["GateConfig", "GateDecision", "decide"]


@dataclass(frozen=True)
class GateConfig:
    """``params.yaml`` section ``gate``."""

    iou_tolerance: float = 0.01
    min_iou: float = 0.5
    latency_budget_ms: float = 50.0
    latency_metric: str = "latency_ms_b1_p50"

    def __post_init__(self) -> None:
        if self.iou_tolerance < 0 or self.latency_budget_ms <= 0 or not 0 <= self.min_iou <= 1:
            raise HairsegError(
                "gate: iou_tolerance must be >= 0, latency_budget_ms > 0, min_iou in [0, 1]; "
                f"got {self.iou_tolerance}, {self.latency_budget_ms}, {self.min_iou}",
                exit_code=EXIT_USAGE,
            )


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict and every reason behind it (failures and passes alike)."""

    passed: bool
    reasons: list[str] = field(default_factory=list)
    candidate_iou: float = float("nan")
    champion_iou: float | None = None
    candidate_latency_ms: float = float("nan")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(
    candidate_iou: float,
    candidate_latency_ms: float,
    champion_iou: float | None,
    cfg: GateConfig,
) -> GateDecision:
    """Apply the gate. ``champion_iou`` is ``None`` when no champion exists."""
    for name, value in (("candidate IoU", candidate_iou), ("latency", candidate_latency_ms)):
        if value != value:  # NaN: a measurement is missing
            raise HairsegError(f"gate: {name} is not a number", exit_code=EXIT_USAGE)
    reasons: list[str] = []
    passed = True
    if champion_iou is None:
        reasons.append("no champion yet: IoU compared with the floor only")
    else:
        bar = champion_iou - cfg.iou_tolerance
        ok = candidate_iou >= bar
        passed &= ok
        reasons.append(
            f"IoU {candidate_iou:.4f} {'>=' if ok else '<'} champion {champion_iou:.4f} "
            f"- tolerance {cfg.iou_tolerance} = {bar:.4f}"
        )
    ok = candidate_iou >= cfg.min_iou
    passed &= ok
    reasons.append(f"IoU {candidate_iou:.4f} {'>=' if ok else '<'} floor {cfg.min_iou}")
    ok = candidate_latency_ms <= cfg.latency_budget_ms
    passed &= ok
    reasons.append(
        f"latency {candidate_latency_ms:.2f} ms {'<=' if ok else '>'} budget "
        f"{cfg.latency_budget_ms} ms"
    )
    return GateDecision(
        passed=bool(passed),
        reasons=reasons,
        candidate_iou=float(candidate_iou),
        champion_iou=None if champion_iou is None else float(champion_iou),
        candidate_latency_ms=float(candidate_latency_ms),
    )
