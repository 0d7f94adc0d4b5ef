"""The canary analysis: a pure function from measured samples to a decision.

Given what the canary and the stable revision did during one step (request counts, errors,
p95 latency) and how far their masks disagree on mirrored requests, :func:`decide` says
what to do next, with the reasons:

- ``rollback`` — a threshold is breached, or the step stayed undecided too long;
- ``hold`` — not enough evidence yet (too few canary or mirrored requests);
- ``step_up`` — all checks pass; move to the next traffic step;
- ``promote`` — all checks pass and the next step is 100 %.

Properties the tests check (tests/unit/test_rollout_policy.py, with hypothesis): it never
promotes or steps up on too few samples or with an error rate above the threshold, never
names a traffic share above 100, and worse canary metrics never yield a better decision.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from hairseg.rollout.config import PolicyConfig

__all__ = ["Action", "ArmMetrics", "Decision", "StepObservation", "decide"]


class Action(StrEnum):
    ROLLBACK = "rollback"
    HOLD = "hold"
    STEP_UP = "step_up"
    PROMOTE = "promote"

    @property
    def rank(self) -> int:
        """Order from worst to best outcome for the candidate (for monotonicity)."""
        return _RANK[self]


_RANK = {Action.ROLLBACK: 0, Action.HOLD: 1, Action.STEP_UP: 2, Action.PROMOTE: 3}


@dataclass(frozen=True)
class ArmMetrics:
    """What one revision (canary or stable) did during a step."""

    requests: int
    errors: int
    p95_ms: float | None  # None: no successful request to time

    def __post_init__(self) -> None:
        if self.requests < 0 or not 0 <= self.errors <= self.requests:
            raise ValueError(f"need 0 <= errors <= requests, got {self.errors}/{self.requests}")
        if self.p95_ms is not None and self.p95_ms < 0:
            raise ValueError(f"p95_ms must be >= 0, got {self.p95_ms}")

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "error_rate": round(self.error_rate, 6)}


@dataclass(frozen=True)
class StepObservation:
    """Canary vs stable during one step, plus mask disagreement on mirrored requests.

    ``disagreement`` is the mean of ``1 - IoU(canary mask, stable mask)`` over ``mirrored``
    requests that both answered (None when none was mirrored).
    """

    canary: ArmMetrics
    stable: ArmMetrics
    mirrored: int = 0
    disagreement: float | None = None

    def __post_init__(self) -> None:
        if self.mirrored < 0:
            raise ValueError("mirrored must be >= 0")
        if self.disagreement is not None and not 0.0 <= self.disagreement <= 1.0:
            raise ValueError(f"disagreement must be in [0, 1], got {self.disagreement}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "canary": self.canary.as_dict(),
            "stable": self.stable.as_dict(),
            "mirrored": self.mirrored,
            "disagreement": None if self.disagreement is None else round(self.disagreement, 6),
        }


@dataclass(frozen=True)
class Decision:
    """What to do after a step: the action, the canary share it leads to, and why."""

    action: Action
    next_percent: int
    reasons: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": str(self.action),
            "next_percent": self.next_percent,
            "reasons": list(self.reasons),
        }


def decide(obs: StepObservation, step_index: int, cfg: PolicyConfig, *, holds: int = 0) -> Decision:
    """Decide what follows step ``cfg.steps[step_index]`` given ``obs``.

    ``holds`` is how many times this step was already held; after ``cfg.max_holds`` holds
    an undecided step rolls back (a canary that never gets enough traffic is not promoted).
    """
    steps = cfg.steps
    if not 0 <= step_index < len(steps) - 1:
        raise ValueError(
            f"step_index {step_index} is not an analysed step (steps {list(steps)}; the last, "
            "100, is the promotion)"
        )
    current = steps[step_index]
    canary, stable = obs.canary, obs.stable
    failures: list[str] = []
    missing: list[str] = []
    passed: list[str] = []

    # Errors: roll back as soon as the step's error budget is certainly spent, i.e. even if
    # every remaining request up to min_requests succeeded the rate would exceed the limit.
    budget = cfg.max_error_rate * max(canary.requests, cfg.min_requests)
    if canary.errors > budget:
        failures.append(
            f"canary error rate {canary.error_rate:.2%} ({canary.errors}/{canary.requests}) "
            f"exceeds max_error_rate {cfg.max_error_rate:.2%}"
        )
    else:
        passed.append(f"canary errors {canary.errors}/{canary.requests} within budget")

    enough = canary.requests >= cfg.min_requests
    if not enough:
        missing.append(f"canary has {canary.requests} < min_requests {cfg.min_requests} requests")

    # Latency: judged only on a full sample (a p95 of three requests is noise).
    if enough and canary.p95_ms is not None:
        if canary.p95_ms > cfg.max_p95_ms:
            failures.append(
                f"canary p95 {canary.p95_ms:.1f} ms exceeds max_p95_ms {cfg.max_p95_ms:.1f}"
            )
        elif stable.p95_ms is not None and stable.p95_ms > 0:
            ratio = canary.p95_ms / stable.p95_ms
            if ratio > cfg.max_p95_ratio:
                failures.append(
                    f"canary p95 {canary.p95_ms:.1f} ms is {ratio:.2f}x stable "
                    f"{stable.p95_ms:.1f} ms (max_p95_ratio {cfg.max_p95_ratio})"
                )
            else:
                passed.append(f"p95 {canary.p95_ms:.1f} ms = {ratio:.2f}x stable")
        else:
            passed.append(f"p95 {canary.p95_ms:.1f} ms (no stable p95 to compare)")
    elif enough:
        # Requests but no successful one: the error check above has already failed it
        # unless max_error_rate is 1; with nothing timed there is no evidence.
        missing.append("no successful canary request to time")

    # Mask disagreement with stable on mirrored requests.
    if obs.mirrored >= cfg.min_mirrored and obs.disagreement is not None:
        if obs.disagreement > cfg.max_disagreement:
            failures.append(
                f"mask disagreement with stable {obs.disagreement:.3f} (1-IoU over "
                f"{obs.mirrored} mirrored) exceeds max_disagreement {cfg.max_disagreement}"
            )
        else:
            passed.append(f"mask disagreement {obs.disagreement:.3f} over {obs.mirrored} mirrored")
    elif cfg.min_mirrored > 0:
        missing.append(f"{obs.mirrored} < min_mirrored {cfg.min_mirrored} mirrored requests")

    if failures:
        return Decision(Action.ROLLBACK, 0, tuple(failures))
    if missing:
        if holds >= cfg.max_holds:
            return Decision(
                Action.ROLLBACK,
                0,
                (f"step {current}% undecided after {holds} holds", *missing),
            )
        return Decision(Action.HOLD, current, tuple(missing))
    nxt = steps[step_index + 1]
    if nxt >= 100:
        return Decision(Action.PROMOTE, 100, tuple(passed))
    return Decision(Action.STEP_UP, nxt, tuple(passed))
