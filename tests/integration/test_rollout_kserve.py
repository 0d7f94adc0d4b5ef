"""The KServe backend in Knative mode against a fake Kubernetes API server and Prometheus
(kube_support.py; Standard mode: test_rollout_kserve_standard.py).

Faked, because neither can run here: the Kubernetes API server (a loopback HTTP server
speaking the REST paths the real ``kubernetes`` client calls — GET/PATCH on
``/apis/serving.kserve.io/v1beta1/namespaces/NS/inferenceservices/NAME`` with
``application/merge-patch+json``, GET on KServe's config map — plus a few lines that play
the KServe controller: a new revision per ``storageUri``, traffic per
``canaryTrafficPercent``) and Prometheus (``/api/v1/query`` answering scripted vectors per
``revision_name``). Real: the ``kubernetes`` client, the MLflow registry (SQLite), the
pre-traffic gate (``python -m hairseg_serving`` on loopback) and the mirrored requests (real predictor
servers standing in for the ``prev``/``latest`` tag URLs).
"""

from __future__ import annotations

import json
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from hairseg import registry
from hairseg.errors import HairsegError
from hairseg.rollout.config import KServeConfig, PolicyConfig, RolloutConfig
from hairseg.rollout.engine import Outcome, run_rollout
from hairseg.rollout.kserve_backend import STATE_ANNOTATION, KServeBackend
from hairseg.rollout.servers import PredictorProcess

import rollout_support as rs  # isort: skip
from kube_support import (  # isort: skip
    KCFG,
    NAME,
    NS,
    POLICY,
    FakePrometheus,
    fake_cluster,
    inference_service,
)

pytestmark = pytest.mark.slow


class FakeKube:
    """One InferenceService and the behaviour of the KServe controller we rely on."""

    def __init__(self, storage_uri: str, *, mode: str | None = "Serverless") -> None:
        self.isvc = inference_service(storage_uri, mode, "onnx")
        self.configmap_mode = "Serverless"
        self.patches: list[dict[str, Any]] = []
        self.revisions: list[tuple[str, str]] = []  # (name, storageUri)
        self.rolled_out: str | None = None
        self.previous: str | None = None
        self.failing_uris: set[str] = set()
        self.tag_urls: dict[str, str] = {}  # revision -> URL of a real predictor
        self.lock = threading.Lock()
        self.reconcile()

    def reconcile(self) -> None:
        predictor = self.isvc["spec"]["predictor"]
        uri = predictor["model"]["storageUri"]
        if not self.revisions or self.revisions[-1][1] != uri:
            self.revisions.append((f"{NAME}-predictor-{len(self.revisions) + 1:05d}", uri))
        latest, latest_uri = self.revisions[-1]
        failed = latest_uri in self.failing_uris
        ready = [r for r, u in self.revisions if u not in self.failing_uris]
        latest_ready = ready[-1] if ready else None
        canary = predictor.get("canaryTrafficPercent")
        status: dict[str, Any] = {
            "latestCreatedRevision": latest,
            "latestReadyRevision": latest_ready,
        }
        if not failed and self.rolled_out is None:
            self.rolled_out = latest
        if not failed and latest != self.rolled_out and canary in (None, 100):
            self.previous, self.rolled_out = self.rolled_out, latest
        if failed or latest == self.rolled_out:
            traffic = [
                {
                    "revisionName": self.rolled_out,
                    "percent": 100,
                    "latestRevision": latest == self.rolled_out,
                }
            ]
        else:
            traffic = [
                {
                    "revisionName": latest,
                    "percent": canary,
                    "latestRevision": True,
                    "tag": "latest",
                },
                {
                    "revisionName": self.rolled_out,
                    "percent": 100 - canary,
                    "latestRevision": False,
                    "tag": "prev",
                },
            ]
            for t in traffic:
                t["url"] = self.tag_urls.get(
                    t["revisionName"], f"http://{t['tag']}-{NAME}.{NS}.example.com"
                )
        status["traffic"] = traffic
        status["latestRolledoutRevision"] = self.rolled_out
        if self.previous:
            status["previousRolledoutRevision"] = self.previous
        conditions = [{"type": "Ready", "status": "False" if failed else "True"}]
        if failed:
            conditions.append(
                {
                    "type": "PredictorReady",
                    "status": "False",
                    "reason": "RevisionFailed",
                    "message": "container exited",
                }
            )
        self.isvc["status"] = {"components": {"predictor": status}, "conditions": conditions}

    def traffic(self) -> dict[str, int]:
        return {
            t["revisionName"]: t["percent"]
            for t in self.isvc["status"]["components"]["predictor"]["traffic"]
        }

    def state(self) -> dict[str, Any] | None:
        raw = (self.isvc["metadata"].get("annotations") or {}).get(STATE_ANNOTATION)
        return json.loads(raw) if raw else None

    def steps(self) -> list[tuple[Any, Any]]:
        """(canaryTrafficPercent, storageUri) of every spec patch; None = removed / not set."""
        out = []
        for p in self.patches:
            pred = p.get("spec", {}).get("predictor")
            if pred is not None:
                out.append(
                    (
                        pred.get("canaryTrafficPercent"),
                        pred.get("model", {}).get("storageUri"),
                    )
                )
        return out


@pytest.fixture(scope="session")
def template(tmp_path_factory) -> tuple[Path, dict[str, int], Path]:
    return rs.shared_template(tmp_path_factory)


@pytest.fixture()
def env(template, tmp_path):
    servers: list[ThreadingHTTPServer] = []

    def make(
        candidate: str,
        *,
        mode: str | None = "Serverless",
        kcfg: KServeConfig = KCFG,
        policy: PolicyConfig = POLICY,
    ):
        c = fake_cluster(
            template, tmp_path, candidate, lambda uri: FakeKube(uri, mode=mode), servers
        )
        sleeps: list[float] = []
        backend = KServeBackend(kcfg, policy, c.models, sleep=sleeps.append, **c.clients)
        cfg = RolloutConfig(backend="kserve", policy=policy, kserve=kcfg)
        return dict(
            uri=c.uri, models=c.models, kube=c.kube, prom=c.prom, backend=backend, cfg=cfg,
            versions=template[1], sleeps=sleeps,
        )  # fmt: skip

    yield make
    for s in servers:
        s.shutdown()


def _interrupt(e: dict, rollout_id: str, *, phase: str, step_index: int, percent: int):
    """Leave the cluster as a rollout killed at ``percent`` would (traffic shifted, the state
    it annotated): (candidate, champion, state)."""
    cand, champ = e["models"].resolve("models:/hairseg@candidate"), e["models"].champion()
    state = {
        "rollout_id": rollout_id, "backend": "kserve", "candidate": cand.as_dict(),
        "stable": champ.as_dict(), "phase": phase, "step_index": step_index, "percent": percent,
        "holds": 0, "steps": [], "started_at": "x",
    }  # fmt: skip
    e["backend"].shift(cand, champ, percent, state)
    return cand, champ, state


def _healthy(prom: FakePrometheus, kube: FakeKube, canary: dict[str, float]) -> None:
    """Script Prometheus: stable revision 1 healthy, every later revision gets ``canary``."""
    prom.series[f"{NAME}-predictor-00001"] = {"requests": 900, "errors": 0, "p95_ms": 40.0}
    for i in range(2, 6):
        prom.series[f"{NAME}-predictor-{i:05d}"] = canary


def test_good_candidate_promoted_with_exact_patches(env, tmp_path):
    e = env("good")
    kube, prom, models = e["kube"], e["prom"], e["models"]
    _healthy(prom, kube, {"requests": 120, "errors": 1, "p95_ms": 55.0})
    cand = models.resolve("models:/hairseg@candidate")
    champ_uri = models.storage_uri(models.champion())
    cand_uri = models.storage_uri(cand)
    assert cand_uri != champ_uri and cand_uri.startswith(("file:", "/"))

    result = run_rollout(e["cfg"], e["backend"], models, reports_dir=tmp_path / "reports")

    assert result.outcome == Outcome.PROMOTED, result.reasons
    assert kube.steps() == [(10, cand_uri), (50, cand_uri), (100, None)]
    # The steady state the manifests declare: 100 % on the (now candidate) model.
    assert kube.isvc["spec"]["predictor"]["canaryTrafficPercent"] == 100
    assert kube.isvc["spec"]["predictor"]["model"]["storageUri"] == cand_uri
    assert kube.traffic() == {f"{NAME}-predictor-00002": 100}
    # Every patch carries the state; the first turns tag routing on.
    assert all(STATE_ANNOTATION in p["metadata"]["annotations"] for p in kube.patches)
    assert (
        kube.patches[0]["metadata"]["annotations"]["serving.kserve.io/enable-tag-routing"] == "true"
    )
    assert kube.state()["phase"] == "done" and kube.state()["outcome"] == "promoted"
    # MLflow: champion moved to the candidate, old champion tagged.
    assert registry.get_version(e["uri"], registry.CHAMPION).version == cand.version
    assert registry.get_version_number(e["uri"], e["versions"]["stable"]).tags[
        "superseded_by"
    ] == str(cand.version)
    # Prometheus was asked about both revisions, by revision label, over the window.
    assert any(
        'revision_name="hairseg-predictor-00002"' in q and "[60s]" in q for q in prom.queries
    )
    assert any(
        q.startswith("histogram_quantile(0.95") and "revision_app_request_latencies_bucket" in q
        for q in prom.queries
    )
    assert e["sleeps"].count(60) == 2  # one analysis window per analysed step
    steps = result.record["steps"]
    assert steps[0]["details"]["canary_revision"] == f"{NAME}-predictor-00002"
    assert steps[0]["details"]["stable_revision"] == f"{NAME}-predictor-00001"
    assert steps[0]["observation"]["canary"] == {
        "requests": 120,
        "errors": 1,
        "p95_ms": 55.0,
        "error_rate": round(1 / 120, 6),
    }


def test_error_rate_rolls_back_traffic_then_spec(env, tmp_path):
    e = env("good")
    kube, prom, models = e["kube"], e["prom"], e["models"]
    _healthy(prom, kube, {"requests": 100, "errors": 9, "p95_ms": 50.0})
    champ_uri = models.storage_uri(models.champion())
    cand = models.resolve("models:/hairseg@candidate")

    result = run_rollout(e["cfg"], e["backend"], models, reports_dir=tmp_path / "reports")

    assert result.outcome == Outcome.ROLLED_BACK and result.exit_code == 3
    assert "error rate" in result.reasons[0]
    # 10 % canary, then traffic back to stable (0), then the spec back to the champion.
    assert kube.steps() == [(10, models.storage_uri(cand)), (0, None), (100, champ_uri)]
    assert kube.isvc["spec"]["predictor"]["model"]["storageUri"] == champ_uri
    assert kube.isvc["spec"]["predictor"]["canaryTrafficPercent"] == 100
    assert kube.traffic() == {f"{NAME}-predictor-00003": 100}  # a fresh revision of the champion
    assert kube.state()["outcome"] == "rolled_back"
    assert registry.get_version(e["uri"], registry.CHAMPION).version == e["versions"]["stable"]
    assert registry.get_version_number(e["uri"], cand.version).tags["rollout"] == "rolled_back"


def test_corrupt_candidate_sends_zero_patches(env, tmp_path):
    e = env("corrupt")
    result = run_rollout(e["cfg"], e["backend"], e["models"], reports_dir=tmp_path / "reports")
    assert result.outcome == Outcome.REJECTED and result.exit_code == 4
    assert e["kube"].patches == []
    assert registry.get_version(e["uri"], registry.CHAMPION).version == e["versions"]["stable"]


@pytest.mark.parametrize("mode", ["RawDeployment", "Standard"])
def test_knative_backend_refuses_standard_mode_up_front(env, tmp_path, mode):
    """Built directly (not through select_backend) on a Standard ISVC: 0 patches."""
    e = env("good", mode=mode)
    with pytest.raises(HairsegError, match="drives Serverless/Knative only") as info:
        run_rollout(e["cfg"], e["backend"], e["models"], reports_dir=tmp_path / "reports")
    assert info.value.exit_code == 2
    assert e["kube"].patches == []


def test_mode_from_kserve_configmap_when_not_annotated(env, tmp_path):
    e = env("good", mode=None)
    e["kube"].configmap_mode = "RawDeployment"
    with pytest.raises(HairsegError, match=r"inferenceservice-config"):
        e["backend"].preflight()
    e["kube"].configmap_mode = "Serverless"
    e["backend"].preflight()  # no error


def test_abort_of_interrupted_rollout_restores_champion(env, tmp_path):
    """A rollout killed at 50 % (state annotation says so) is rolled back by --abort."""
    e = env("good")
    kube, models = e["kube"], e["models"]
    _, champ, _ = _interrupt(e, "killed", phase="analysing", step_index=1, percent=50)
    assert kube.traffic() == {f"{NAME}-predictor-00002": 50, f"{NAME}-predictor-00001": 50}
    kube.patches.clear()

    result = run_rollout(
        e["cfg"], e["backend"], models, reports_dir=tmp_path / "reports", abort=True
    )

    assert result.outcome == Outcome.ABORTED and result.exit_code == 0 and result.resumed
    assert kube.steps() == [(0, None), (100, models.storage_uri(champ))]
    assert kube.traffic() == {f"{NAME}-predictor-00003": 100}
    assert kube.state()["phase"] == "done"
    assert registry.get_version(e["uri"], registry.CHAMPION).version == champ.version


def test_failed_revision_rolls_back(env, tmp_path):
    """The candidate passes the gate but its revision never becomes ready on the cluster."""
    e = env("good")
    kube, models = e["kube"], e["models"]
    cand = models.resolve("models:/hairseg@candidate")
    kube.failing_uris.add(models.storage_uri(cand))
    with pytest.raises(HairsegError, match="RevisionFailed") as info:
        run_rollout(e["cfg"], e["backend"], models, reports_dir=tmp_path / "reports")
    assert "rolled back, champion unchanged" in str(info.value)
    assert kube.isvc["spec"]["predictor"]["model"]["storageUri"] == models.storage_uri(
        models.champion()
    )
    assert kube.state()["outcome"] == "rolled_back"
    assert registry.get_version(e["uri"], registry.CHAMPION).version == e["versions"]["stable"]


def test_mirroring_to_tag_urls_catches_garbage_masks(env, tmp_path, template):
    """prev/latest tag URLs point at real predictor servers (stable and garbage models)."""
    e = env(
        "garbage",
        kcfg=KServeConfig(
            namespace=NS,
            name=NAME,
            analysis_window_s=1,
            poll_interval_s=0.01,
            ready_timeout_s=5,
            mirror_requests=4,
        ),
        policy=PolicyConfig(steps=(10, 100), min_requests=20, min_mirrored=3, max_disagreement=0.2),
    )
    kube, prom, models = e["kube"], e["prom"], e["models"]
    _healthy(prom, kube, {"requests": 100, "errors": 0, "p95_ms": 40.0})
    cand = models.resolve("models:/hairseg@candidate")
    with (
        PredictorProcess(models.fetch_onnx(models.champion()), label="prev") as prev,
        PredictorProcess(models.fetch_onnx(cand), label="latest") as latest,
    ):
        kube.tag_urls = {
            f"{NAME}-predictor-00001": prev.base_url,
            f"{NAME}-predictor-00002": latest.base_url,
        }
        result = run_rollout(e["cfg"], e["backend"], models, reports_dir=tmp_path / "reports")
    assert result.outcome == Outcome.ROLLED_BACK, result.reasons
    obs = result.record["steps"][0]["observation"]
    assert obs["mirrored"] == 4 and obs["disagreement"] > 0.9
    assert "mask disagreement" in result.reasons[0]


def test_run_killed_during_promotion_completes_it(env, tmp_path):
    """Traffic already at 100 % (phase ``promoting``) but the alias not moved: rerun finishes."""
    e = env("good")
    kube, models = e["kube"], e["models"]
    cand, champ, state = _interrupt(
        e, "killed-promoting", phase="promoting", step_index=1, percent=50
    )
    e["backend"].promote(cand, champ, state)  # ... and the process died before the alias moved
    assert registry.get_version(e["uri"], registry.CHAMPION).version == champ.version

    result = run_rollout(e["cfg"], e["backend"], models, reports_dir=tmp_path / "reports")

    assert result.outcome == Outcome.PROMOTED and result.resumed
    assert registry.get_version(e["uri"], registry.CHAMPION).version == cand.version
    assert kube.traffic() == {f"{NAME}-predictor-00002": 100}
    assert kube.isvc["spec"]["predictor"]["model"]["storageUri"] == models.storage_uri(cand)
    assert kube.state()["phase"] == "done"


def test_in_flight_rollout_of_a_withdrawn_candidate_is_rolled_back(env, tmp_path):
    """The candidate alias was removed while its rollout was interrupted: roll it back."""
    e = env("good")
    kube, models = e["kube"], e["models"]
    _, champ, _ = _interrupt(e, "stale", phase="analysing", step_index=0, percent=10)
    registry.client(e["uri"]).delete_registered_model_alias(registry.MODEL_NAME, registry.CANDIDATE)
    kube.patches.clear()

    result = run_rollout(e["cfg"], e["backend"], models, reports_dir=tmp_path / "reports")

    assert result.outcome == Outcome.NOTHING
    assert kube.steps() == [(0, None), (100, models.storage_uri(champ))]
    assert kube.state()["rollout_id"] == "stale" and kube.state()["outcome"] == "aborted"
    stale = json.loads((tmp_path / "reports" / "stale.json").read_text())
    assert "no longer points at a version" in stale["reasons"][0]
    assert registry.get_version(e["uri"], registry.CHAMPION).version == champ.version
