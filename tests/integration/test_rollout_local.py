"""The local backend end to end: real loopback predictor servers (``python -m
hairseg_serving``), real tiny ONNX models, a real SQLite MLflow registry. Nothing is faked.

Each faulty candidate is a faulty model (see rollout_support): it must be rolled back
automatically with ``champion`` unchanged, while the stable server answers every request
sent to it.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from hairseg import registry
from hairseg.rollout.config import LocalConfig, PolicyConfig, RolloutConfig
from hairseg.rollout.engine import Outcome, run_rollout
from hairseg.rollout.local_backend import LocalBackend, read_local_state
from hairseg.rollout.models import ModelRegistry

import rollout_support as rs  # isort: skip

pytestmark = pytest.mark.slow

# Loopback p95 over a few dozen requests on a shared 2-core box is noise (9 ms vs 2 ms has
# been seen for two identical nets under load), so the latency rule is switched off except
# in the one test about it, which allows 4x against a model that is ~10x slower.
POLICY = PolicyConfig(
    steps=(20, 50, 100), min_requests=6, min_mirrored=3, max_error_rate=0.05,
    max_p95_ratio=1000.0, max_p95_ms=5000.0, max_disagreement=0.2, max_holds=1,
)  # fmt: skip
LATENCY_POLICY = replace(POLICY, max_p95_ratio=4.0)
CFG = RolloutConfig(
    policy=POLICY,
    local=LocalConfig(mirror_fraction=0.5, max_requests_per_step=200, seed=11),
)


@pytest.fixture(scope="session")
def template(tmp_path_factory) -> tuple[Path, dict[str, int], Path]:
    return rs.shared_template(tmp_path_factory)


def _setup(template, tmp_path: Path, candidate: str):
    db, versions, dataset = template
    uri = rs.fresh_registry(
        db, tmp_path / "reg", champion=versions["stable"], candidate=versions[candidate]
    )
    models = ModelRegistry(uri, tmp_path / "cache")
    backend = LocalBackend(
        CFG.local, CFG.policy, models, dataset=dataset, state_path=tmp_path / "state.json"
    )
    return uri, versions, models, backend


def _stable_answered_everything(record: dict) -> None:
    assert record["steps"], "no step was analysed"
    for step in record["steps"]:
        stable = step["observation"]["stable"]
        assert stable["requests"] > 0
        assert stable["errors"] == 0, step
        assert step["details"]["stable_mirror_errors"] == 0, step


def _alias_and_traffic_agree(uri: str, state_path: Path) -> int:
    champion = registry.get_version(uri, registry.CHAMPION)
    saved = read_local_state(state_path)
    assert saved["rollout"]["phase"] == "done"
    assert saved["traffic"]["canary"] is None and saved["traffic"]["canary_percent"] == 0
    assert saved["traffic"]["stable"]["version"] == champion.version
    return champion.version


def test_good_candidate_is_promoted(template, tmp_path):
    uri, versions, models, backend = _setup(template, tmp_path, "good")
    result = run_rollout(
        CFG,
        backend,
        models,
        reports_dir=tmp_path / "reports",
        candidate_uri="models:/hairseg@candidate",
    )
    assert result.outcome == Outcome.PROMOTED, result.reasons
    assert result.exit_code == 0
    assert _alias_and_traffic_agree(uri, tmp_path / "state.json") == versions["good"]
    record = result.record
    assert [s["decision"]["action"] for s in record["steps"]] == ["step_up", "promote"]
    assert [s["percent"] for s in record["steps"]] == [20, 50]
    for step in record["steps"]:
        assert step["observation"]["canary"]["requests"] >= POLICY.min_requests
        assert step["observation"]["mirrored"] >= POLICY.min_mirrored
        assert step["observation"]["disagreement"] <= POLICY.max_disagreement
    _stable_answered_everything(record)
    tags = registry.get_version(uri, registry.CHAMPION).tags
    assert tags["rollout"] == "promoted"
    assert json.loads(tags["rollout.steps"])[0]["percent"] == 20
    old = registry.get_version_number(uri, versions["stable"]).tags
    assert old["superseded_by"] == str(versions["good"])
    on_disk = json.loads(Path(result.record_path).read_text())
    assert on_disk["outcome"] == "promoted"
    assert (tmp_path / "reports" / "latest.md").read_text().count("| 20 |") == 1


@pytest.mark.parametrize(
    ("candidate", "reason"),
    [
        ("errors", "error rate"),
        ("slow", "x stable"),
        ("garbage", "mask disagreement"),
    ],
)
def test_bad_candidate_is_rolled_back(template, tmp_path, candidate, reason):
    uri, versions, models, backend = _setup(template, tmp_path, candidate)
    cfg = replace(CFG, policy=LATENCY_POLICY) if candidate == "slow" else CFG
    result = run_rollout(cfg, backend, models, reports_dir=tmp_path / "reports")
    assert result.outcome == Outcome.ROLLED_BACK, result.reasons
    assert result.exit_code == 3
    assert any(reason in r for r in result.reasons), result.reasons
    # Rolled back at the first step: the bad model never had more than its canary share.
    assert [s["percent"] for s in result.record["steps"]] == [20]
    assert _alias_and_traffic_agree(uri, tmp_path / "state.json") == versions["stable"]
    _stable_answered_everything(result.record)
    tags = registry.get_version_number(uri, versions[candidate]).tags
    assert tags["rollout"] == "rolled_back"
    assert reason in tags["rollout.reason"]
    assert registry.get_version(uri, registry.CANDIDATE).version == versions[candidate]


def test_corrupt_candidate_never_gets_traffic(template, tmp_path):
    uri, versions, models, backend = _setup(template, tmp_path, "corrupt")
    result = run_rollout(CFG, backend, models, reports_dir=tmp_path / "reports")
    assert result.outcome == Outcome.REJECTED
    assert result.exit_code == 4
    assert "INVALID_PROTOBUF" in result.reasons[0] or "cannot load" in result.reasons[0]
    assert result.record["steps"] == []
    assert not (tmp_path / "state.json").exists(), "no traffic state may be written"
    assert registry.get_version(uri, registry.CHAMPION).version == versions["stable"]
    assert registry.get_version_number(uri, versions["corrupt"]).tags["rollout"] == "rejected"


def test_candidate_equal_to_champion_is_a_noop(template, tmp_path):
    db, versions, dataset = template
    uri = rs.fresh_registry(
        db, tmp_path / "reg", champion=versions["good"], candidate=versions["good"]
    )
    models = ModelRegistry(uri, tmp_path / "cache")
    backend = LocalBackend(
        CFG.local, POLICY, models, dataset=dataset, state_path=tmp_path / "s.json"
    )
    result = run_rollout(CFG, backend, models, reports_dir=tmp_path / "reports")
    assert result.outcome == Outcome.NOTHING
    assert "already champion" in result.reasons[0]
    assert (
        json.loads((tmp_path / "reports" / "latest.json").read_text())["outcome"] == Outcome.NOTHING
    )


def test_missing_dataset_is_a_usage_error(template, tmp_path):
    uri, versions, models, _ = _setup(template, tmp_path, "good")
    backend = LocalBackend(CFG.local, POLICY, models, dataset=tmp_path / "nope")
    with pytest.raises(Exception, match="dataset folder .* not found") as info:
        run_rollout(CFG, backend, models, reports_dir=tmp_path / "reports")
    assert info.value.exit_code == 2
    assert registry.get_version(uri, registry.CHAMPION).version == versions["stable"]


def test_no_candidate_alias_is_a_noop(template, tmp_path):
    db, versions, dataset = template
    uri = rs.fresh_registry(
        db, tmp_path / "reg", champion=versions["stable"], candidate=versions["good"]
    )
    registry.client(uri).delete_registered_model_alias(registry.MODEL_NAME, registry.CANDIDATE)
    models = ModelRegistry(uri, tmp_path / "cache")
    backend = LocalBackend(
        CFG.local, POLICY, models, dataset=dataset, state_path=tmp_path / "s.json"
    )
    result = run_rollout(CFG, backend, models, reports_dir=tmp_path / "reports")
    assert result.outcome == Outcome.NOTHING and result.exit_code == 0
    assert "points at no version" in result.reasons[0]
    assert result.metrics()["promoted"] == 0


def test_real_photos_are_replayed_to_both_servers_every_step(template, tmp_path):
    """With ``rollout.local.real_photos`` set, each step sends every photo of that set to
    canary and stable; the step's disagreement is the worse of the two samples'."""
    db, versions, _dataset = template
    photos = rs.make_dataset(tmp_path / "photos", n_test=4)
    uri = rs.fresh_registry(
        db, tmp_path / "reg", champion=versions["stable"], candidate=versions["good"]
    )
    models = ModelRegistry(uri, tmp_path / "cache")
    cfg = RolloutConfig(policy=POLICY, local=replace(CFG.local, real_photos=str(photos)))
    backend = LocalBackend(
        cfg.local, cfg.policy, models, dataset=_dataset, state_path=tmp_path / "state.json"
    )
    result = run_rollout(cfg, backend, models, reports_dir=tmp_path / "reports")
    assert result.outcome == Outcome.PROMOTED, result.reasons
    for step in result.record["steps"]:
        details, obs = step["details"], step["observation"]
        assert details["real_photo_mirrored"] == 4
        assert details["real_photo_stable_errors"] == 0
        real, traffic = details["real_photo_disagreement"], details["traffic_disagreement"]
        assert real is not None and 0.0 <= real <= POLICY.max_disagreement
        assert obs["disagreement"] == pytest.approx(
            max(real, traffic), abs=1e-6
        )  # recorded rounded
