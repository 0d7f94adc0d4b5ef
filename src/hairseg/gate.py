"""The promotion gate: a pure decision on measured numbers, with its reasons.

The candidate passes when

- its test IoU ≥ the champion's IoU − ``iou_tolerance`` (skipped when there is no
  champion yet) and ≥ ``min_iou`` (an absolute floor, so a first model cannot be junk), and
- its ONNX Runtime p50 latency at batch 1 ≤ ``latency_budget_ms``, and
- when real-photo scores are given (:class:`RealPhotoScores`, from
  :meth:`hairseg.evaluate.RealPhotoEvaluation.summary` on ``datasets/real_portraits``):
  it does not regress on real photos against the champion's scores on the same set
  (IoU drop ≤ ``real_tolerance``; hair outside the head boxes and inner face marked hair
  grow by ≤ ``real_tolerance``), and, with ``real_enforce_floors``, it meets the absolute
  targets ``real_min_iou``, ``real_max_outside_head``, ``real_max_inner_face``.

Without real-photo scores those checks are skipped and say so in the reasons.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from hairseg.errors import EXIT_USAGE, HairsegError

__all__ = ["GateConfig", "GateDecision", "RealPhotoScores", "decide"]


@dataclass(frozen=True)
class GateConfig:
    """``params.yaml`` section ``gate``."""

    iou_tolerance: float = 0.01
    min_iou: float = 0.5
    latency_budget_ms: float = 50.0
    latency_metric: str = "latency_ms_b1_p50"
    # Real photos (datasets/real_portraits); the floors are issue 11's acceptance targets.
    real_min_iou: float = 0.60  # IoU on the coarse masks
    real_max_outside_head: float = 0.10  # predicted hair outside the head boxes (pooled)
    real_max_inner_face: float = 0.05  # inner face marked hair (mean per photo)
    real_tolerance: float = 0.02  # allowed regression vs the champion on each of the three
    real_enforce_floors: bool = True  # False: only the regression vs the champion counts

    def __post_init__(self) -> None:
        if self.iou_tolerance < 0 or self.latency_budget_ms <= 0 or not 0 <= self.min_iou <= 1:
            raise HairsegError(
                "gate: iou_tolerance must be >= 0, latency_budget_ms > 0, min_iou in [0, 1]; "
                f"got {self.iou_tolerance}, {self.latency_budget_ms}, {self.min_iou}",
                exit_code=EXIT_USAGE,
            )
        shares = (self.real_min_iou, self.real_max_outside_head, self.real_max_inner_face)
        if self.real_tolerance < 0 or not all(0 <= v <= 1 for v in shares):
            raise HairsegError(
                "gate: real_tolerance must be >= 0 and real_min_iou, real_max_outside_head, "
                f"real_max_inner_face in [0, 1]; got {self.real_tolerance}, {shares}",
                exit_code=EXIT_USAGE,
            )


@dataclass(frozen=True)
class RealPhotoScores:
    """A model's headline numbers on the real-photo set."""

    iou: float
    outside_head: float
    inner_face: float

    @classmethod
    def from_summary(cls, summary: Mapping[str, Any]) -> RealPhotoScores:
        """From :meth:`hairseg.evaluate.RealPhotoEvaluation.summary` (``real_*`` keys)."""
        missing = [
            k for k in ("real_iou", "real_outside_head", "real_inner_face") if k not in summary
        ]
        if missing:
            raise HairsegError(
                f"gate: real-photo summary lacks {', '.join(missing)}", exit_code=EXIT_USAGE
            )
        return cls(
            iou=float(summary["real_iou"]),
            outside_head=float(summary["real_outside_head"]),
            inner_face=float(summary["real_inner_face"]),
        )


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict and every reason behind it (failures and passes alike)."""

    passed: bool
    reasons: list[str] = field(default_factory=list)
    candidate_iou: float = float("nan")
    champion_iou: float | None = None
    candidate_latency_ms: float = float("nan")
    candidate_real: dict[str, float] | None = None
    champion_real: dict[str, float] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(
    candidate_iou: float,
    candidate_latency_ms: float,
    champion_iou: float | None,
    cfg: GateConfig,
    *,
    candidate_real: RealPhotoScores | None = None,
    champion_real: RealPhotoScores | None = None,
) -> GateDecision:
    """Apply the gate. ``champion_iou`` is ``None`` when no champion exists.

    ``candidate_real`` / ``champion_real``: both models' scores on the real-photo set
    (measured on the same set by the same code); ``champion_real`` is ``None`` when there
    is no champion or it was not measured.
    """
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
    if candidate_real is None:
        reasons.append("real photos: not measured, real-photo checks skipped")
    else:
        ok, real_reasons = _real_checks(candidate_real, champion_real, cfg)
        passed &= ok
        reasons += real_reasons
    return GateDecision(
        passed=bool(passed),
        reasons=reasons,
        candidate_iou=float(candidate_iou),
        champion_iou=None if champion_iou is None else float(champion_iou),
        candidate_latency_ms=float(candidate_latency_ms),
        candidate_real=None if candidate_real is None else asdict(candidate_real),
        champion_real=None if champion_real is None else asdict(champion_real),
    )


def _real_checks(
    cand: RealPhotoScores, champ: RealPhotoScores | None, cfg: GateConfig
) -> tuple[bool, list[str]]:
    for name, value in asdict(cand).items():
        if value != value:
            raise HairsegError(f"gate: real-photo {name} is not a number", exit_code=EXIT_USAGE)
    passed, reasons = True, []
    tol = cfg.real_tolerance
    # (label, candidate, champion, higher is better, floor/ceiling)
    metrics = (
        ("IoU", cand.iou, None if champ is None else champ.iou, True, cfg.real_min_iou),
        ("hair outside head", cand.outside_head, None if champ is None else champ.outside_head,
         False, cfg.real_max_outside_head),
        ("inner face hair", cand.inner_face, None if champ is None else champ.inner_face,
         False, cfg.real_max_inner_face),
    )  # fmt: skip
    for label, value, ref, higher_better, limit in metrics:
        if ref is not None:
            bar = ref - tol if higher_better else ref + tol
            ok = value >= bar if higher_better else value <= bar
            passed &= ok
            sign = (">=" if ok else "<") if higher_better else ("<=" if ok else ">")
            reasons.append(
                f"real photos: {label} {value:.4f} {sign} champion {ref:.4f} "
                f"{'-' if higher_better else '+'} tolerance {tol} = {bar:.4f}"
            )
        ok = value >= limit if higher_better else value <= limit
        sign = (">=" if ok else "<") if higher_better else ("<=" if ok else ">")
        if cfg.real_enforce_floors:
            passed &= ok
            reasons.append(f"real photos: {label} {value:.4f} {sign} target {limit}")
        else:
            reasons.append(f"real photos: {label} {value:.4f} {sign} target {limit} (not enforced)")
    if champ is None:
        reasons.append("real photos: no champion scores, regression not checked")
    return passed, reasons
