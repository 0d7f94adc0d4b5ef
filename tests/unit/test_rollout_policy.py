"""The canary policy: table tests and hypothesis properties (pure, no I/O)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hairseg.config import load_params
from hairseg.errors import HairsegError
from hairseg.rollout.config import PolicyConfig, RolloutConfig, load_rollout_config
from hairseg.rollout.policy import Action, ArmMetrics, StepObservation, decide

CFG = PolicyConfig(
    steps=(10, 50, 100),
    min_requests=50,
    min_mirrored=10,
    max_error_rate=0.02,
    max_p95_ratio=2.0,
    max_p95_ms=500.0,
    max_disagreement=0.1,
    max_holds=2,
)


def obs(
    n: int = 100,
    errors: int = 0,
    p95: float | None = 20.0,
    stable_p95: float | None = 20.0,
    mirrored: int = 20,
    disagreement: float | None = 0.01,
) -> StepObservation:
    return StepObservation(
        canary=ArmMetrics(requests=n, errors=errors, p95_ms=p95),
        stable=ArmMetrics(requests=900, errors=0, p95_ms=stable_p95),
        mirrored=mirrored,
        disagreement=disagreement,
    )


@pytest.mark.parametrize(
    ("observation", "step", "holds", "action", "next_percent", "reason_part"),
    [
        (obs(), 0, 0, Action.STEP_UP, 50, "within budget"),
        (obs(), 1, 0, Action.PROMOTE, 100, "mask disagreement"),
        (obs(errors=3), 0, 0, Action.ROLLBACK, 0, "error rate"),
        (obs(errors=2), 0, 0, Action.STEP_UP, 50, "within budget"),  # 2% of 100 is allowed
        # 2 errors in 10 requests: the 50-request budget (1 error) is already spent.
        (obs(n=10, errors=2), 0, 0, Action.ROLLBACK, 0, "error rate"),
        (obs(n=10, errors=1), 0, 0, Action.HOLD, 10, "min_requests"),
        (obs(n=10), 0, 2, Action.ROLLBACK, 0, "undecided after 2 holds"),
        (obs(p95=41.0), 0, 0, Action.ROLLBACK, 0, "x stable"),
        (obs(p95=40.0), 0, 0, Action.STEP_UP, 50, "2.00x stable"),
        (obs(p95=600.0, stable_p95=400.0), 1, 0, Action.ROLLBACK, 0, "max_p95_ms"),
        (obs(p95=30.0, stable_p95=None), 0, 0, Action.STEP_UP, 50, "no stable p95"),
        (obs(disagreement=0.5), 0, 0, Action.ROLLBACK, 0, "disagreement"),
        (obs(mirrored=3), 0, 0, Action.HOLD, 10, "min_mirrored"),
        (obs(mirrored=0, disagreement=None), 1, 0, Action.HOLD, 50, "min_mirrored"),
        (obs(n=100, errors=100, p95=None), 0, 0, Action.ROLLBACK, 0, "error rate"),
    ],
)
def test_decision_table(observation, step, holds, action, next_percent, reason_part):
    decision = decide(observation, step, CFG, holds=holds)
    assert decision.action is action
    assert decision.next_percent == next_percent
    assert any(reason_part in r for r in decision.reasons), decision.reasons


def test_disagreement_not_required_when_min_mirrored_is_zero():
    cfg = dataclasses.replace(CFG, min_mirrored=0)
    decision = decide(obs(mirrored=0, disagreement=None), 0, cfg)
    assert decision.action is Action.STEP_UP


def test_last_step_is_not_analysed():
    with pytest.raises(ValueError, match="not an analysed step"):
        decide(obs(), 2, CFG)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"steps": [10, 50]}, "must end with 100"),
        ({"steps": [50, 10, 100]}, "strictly increasing"),
        ({"steps": [0, 100]}, "strictly increasing"),
        ({"max_error_rate": 1.5}, "max_error_rate"),
        ({"min_requests": 0}, "min_requests"),
        ({"max_p95_ratio": 0}, "max_p95_ratio"),
        ({"bogus": 1}, "unknown key"),
    ],
)
def test_bad_policy_params_are_rejected(overrides, message):
    with pytest.raises(HairsegError, match=message):
        load_rollout_config({"rollout": {"policy": overrides}})


def test_params_yaml_rollout_section_loads(tmp_path):
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    cfg = load_rollout_config(load_params(root / "params.yaml"))
    assert isinstance(cfg, RolloutConfig)
    assert cfg.policy.steps[-1] == 100


# ---- properties -------------------------------------------------------------------------

policies = st.builds(
    PolicyConfig,
    steps=st.lists(st.integers(1, 99), min_size=0, max_size=4, unique=True).map(
        lambda xs: (*sorted(xs), 100)
    ),
    min_requests=st.integers(1, 200),
    min_mirrored=st.integers(0, 50),
    max_error_rate=st.floats(0.0, 1.0),
    max_p95_ratio=st.floats(0.1, 10.0),
    max_p95_ms=st.floats(1.0, 5000.0),
    max_disagreement=st.floats(0.0, 1.0),
    max_holds=st.integers(0, 5),
)


@st.composite
def observations(draw):
    n = draw(st.integers(0, 400))
    errors = draw(st.integers(0, n))
    p95 = draw(st.one_of(st.none(), st.floats(0.0, 10_000.0)))
    stable_p95 = draw(st.one_of(st.none(), st.floats(0.0, 10_000.0)))
    mirrored = draw(st.integers(0, 100))
    disagreement = draw(st.one_of(st.none(), st.floats(0.0, 1.0)))
    return StepObservation(
        canary=ArmMetrics(n, errors, p95),
        stable=ArmMetrics(1000, 0, stable_p95),
        mirrored=mirrored,
        disagreement=disagreement,
    )


@st.composite
def case(draw):
    cfg = draw(policies)
    step = draw(st.integers(0, len(cfg.steps) - 2)) if len(cfg.steps) > 1 else None
    return cfg, step, draw(observations()), draw(st.integers(0, 6))


@settings(max_examples=400, deadline=None)
@given(case())
def test_never_advances_on_excess_errors_or_too_few_samples(c):
    cfg, step, o, holds = c
    if step is None:
        return
    d = decide(o, step, cfg, holds=holds)
    if d.action in (Action.PROMOTE, Action.STEP_UP):
        assert o.canary.error_rate <= cfg.max_error_rate
        assert o.canary.requests >= cfg.min_requests
        assert o.mirrored >= cfg.min_mirrored
        if o.disagreement is not None and o.mirrored >= cfg.min_mirrored:
            assert o.disagreement <= cfg.max_disagreement
        if o.canary.p95_ms is not None:
            assert o.canary.p95_ms <= cfg.max_p95_ms
    assert 0 <= d.next_percent <= 100
    assert d.next_percent in (0, *cfg.steps)
    if d.action is Action.PROMOTE:
        assert d.next_percent == 100
    if d.action is Action.STEP_UP:
        assert d.next_percent == cfg.steps[step + 1] < 100
    if d.action is Action.HOLD:
        assert d.next_percent == cfg.steps[step] and holds < cfg.max_holds
    assert d.reasons


@settings(max_examples=400, deadline=None)
@given(case(), st.data())
def test_worse_metrics_never_give_a_better_decision(c, data):
    cfg, step, o, holds = c
    if step is None:
        return
    extra_errors = data.draw(st.integers(0, o.canary.requests - o.canary.errors))
    p95 = o.canary.p95_ms
    worse_p95 = None if p95 is None else p95 + data.draw(st.floats(0.0, 5000.0))
    s95 = o.stable.p95_ms
    worse_stable = None if s95 is None else s95 * data.draw(st.floats(0.0, 1.0))
    d = o.disagreement
    worse_d = None if d is None else d + data.draw(st.floats(0.0, 1.0 - d))
    worse = StepObservation(
        canary=ArmMetrics(o.canary.requests, o.canary.errors + extra_errors, worse_p95),
        stable=ArmMetrics(o.stable.requests, o.stable.errors, worse_stable),
        mirrored=o.mirrored,
        disagreement=worse_d,
    )
    assert (
        decide(worse, step, cfg, holds=holds).action.rank
        <= decide(o, step, cfg, holds=holds).action.rank
    )


@settings(max_examples=200, deadline=None)
@given(case())
def test_more_holds_never_give_a_better_decision(c):
    cfg, step, o, holds = c
    if step is None:
        return
    assert (
        decide(o, step, cfg, holds=holds + 1).action.rank
        <= decide(o, step, cfg, holds=holds).action.rank
    )
