"""The promotion gate, table-tested: every row is (inputs, expected verdict, reason fragment)."""

from __future__ import annotations

import pytest

from hairseg.errors import HairsegError
from hairseg.gate import GateConfig, RealPhotoScores, decide

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


GOOD_REAL = RealPhotoScores(iou=0.70, outside_head=0.05, inner_face=0.02)


@pytest.mark.parametrize(
    ("candidate", "champion", "passed", "fragment"),
    [
        (GOOD_REAL, None, True, "no champion scores, regression not checked"),
        (GOOD_REAL, GOOD_REAL, True, "IoU 0.7000 >= champion 0.7000 - tolerance 0.02"),
        # Regressions beyond the tolerance, one metric at a time.
        (RealPhotoScores(0.67, 0.05, 0.02), GOOD_REAL, False, "IoU 0.6700 < champion"),
        (RealPhotoScores(0.70, 0.08, 0.02), GOOD_REAL, False, "hair outside head 0.0800 >"),
        (RealPhotoScores(0.70, 0.05, 0.045), GOOD_REAL, False, "inner face hair 0.0450 >"),
        # Within the tolerance: passes.
        (RealPhotoScores(0.69, 0.065, 0.03), GOOD_REAL, True, "<= champion 0.0500 + tolerance"),
        # The absolute targets (issue 11): each one alone fails a candidate.
        (RealPhotoScores(0.59, 0.05, 0.02), None, False, "IoU 0.5900 < target 0.6"),
        (RealPhotoScores(0.70, 0.11, 0.02), None, False, "hair outside head 0.1100 > target 0.1"),
        (RealPhotoScores(0.70, 0.05, 0.06), None, False, "inner face hair 0.0600 > target 0.05"),
        # Better than a bad champion still fails the targets.
        (RealPhotoScores(0.20, 0.30, 0.04), RealPhotoScores(0.14, 0.32, 0.05), False, "> target"),
    ],
)
def test_gate_real_photo_table(
    candidate: RealPhotoScores, champion: RealPhotoScores | None, passed: bool, fragment: str
) -> None:
    decision = decide(0.8, 5.0, 0.79, CFG, candidate_real=candidate, champion_real=champion)
    assert decision.passed is passed, decision.reasons
    assert any(fragment in reason for reason in decision.reasons), decision.reasons
    assert decision.as_dict()["candidate_real"]["iou"] == candidate.iou


def test_gate_real_photo_targets_can_be_advisory() -> None:
    cfg = GateConfig(latency_budget_ms=10.0, real_enforce_floors=False)
    bad = RealPhotoScores(0.14, 0.32, 0.05)
    decision = decide(0.8, 5.0, 0.79, cfg, candidate_real=bad, champion_real=bad)
    assert decision.passed, decision.reasons
    assert any("(not enforced)" in r for r in decision.reasons)
    worse = RealPhotoScores(0.10, 0.32, 0.05)  # a regression still fails
    assert not decide(0.8, 5.0, 0.79, cfg, candidate_real=worse, champion_real=bad).passed


def test_gate_without_real_scores_keeps_the_old_behaviour() -> None:
    decision = decide(0.8, 5.0, 0.79, CFG)
    assert decision.passed
    assert any("real-photo checks skipped" in r for r in decision.reasons)
    assert decision.candidate_real is None


def test_real_scores_from_summary_and_bad_values() -> None:
    scores = RealPhotoScores.from_summary(
        {"real_iou": 0.5, "real_outside_head": 0.2, "real_inner_face": 0.01, "real_n_images": 28}
    )
    assert scores == RealPhotoScores(0.5, 0.2, 0.01)
    with pytest.raises(HairsegError, match="real_inner_face"):
        RealPhotoScores.from_summary({"real_iou": 0.5, "real_outside_head": 0.2})
    with pytest.raises(HairsegError, match="not a number"):
        decide(0.8, 5.0, None, CFG, candidate_real=RealPhotoScores(float("nan"), 0.1, 0.1))
    with pytest.raises(HairsegError, match="real_tolerance"):
        GateConfig(real_tolerance=-0.1)
