"""The promotion gate, table-tested: every row is (inputs, expected verdict, reason fragment)."""

from __future__ import annotations

import pytest

from hairseg.errors import HairsegError
from hairseg.gate import GateConfig, decide

CFG = GateConfig(iou_tolerance=0.01, min_iou=0.5, latency_budget_ms=10.0)


@pytest.mark.parametrize(
    ("candidate_iou", "latency", "champion_iou", "passed", "fragment"),
    [
        (0.80, 5.0, 0.79, True, "IoU 0.8000 >= champion 0.7900"),  # better
        (0.785, 5.0, 0.79, True, ">= champion"),  # worse, but within tolerance
        (0.78, 5.0, 0.79, True, ">= champion"),  # exactly at the tolerance edge
        (0.7799, 5.0, 0.79, False, "< champion 0.7900 - tolerance 0.01"),  # just outside
        (0.90, 10.0, 0.79, True, "latency 10.00 ms <= budget"),  # latency exactly at budget
        (0.90, 10.01, 0.79, False, "latency 10.01 ms > budget 10.0 ms"),  # too slow
        (0.70, 50.0, 0.90, False, "< champion"),  # worse and slower: both reasons
        (0.60, 5.0, None, True, "no champion yet"),  # bootstrap: floor only
        (0.49, 5.0, None, False, "< floor 0.5"),  # bootstrap, below the floor
        (0.45, 5.0, 0.40, False, "< floor 0.5"),  # beats a weak champion, still below floor
    ],
)
def test_gate_table(
    candidate_iou: float,
    latency: float,
    champion_iou: float | None,
    passed: bool,
    fragment: str,
) -> None:
    decision = decide(candidate_iou, latency, champion_iou, CFG)
    assert decision.passed is passed
    assert any(fragment in reason for reason in decision.reasons), decision.reasons
    assert decision.champion_iou == champion_iou


def test_every_failed_check_is_a_reason() -> None:
    decision = decide(0.70, 50.0, 0.90, CFG)
    failures = [r for r in decision.reasons if " < " in r or " > " in r]
    assert len(failures) == 2


def test_missing_measurement_is_an_error() -> None:
    with pytest.raises(HairsegError, match="not a number"):
        decide(float("nan"), 1.0, None, CFG)


@pytest.mark.parametrize(
    "kwargs",
    [{"iou_tolerance": -0.1}, {"latency_budget_ms": 0.0}, {"min_iou": 1.5}],
)
def test_bad_config_is_rejected(kwargs: dict) -> None:
    with pytest.raises(HairsegError) as info:
        GateConfig(**kwargs)
    assert info.value.exit_code == 2
