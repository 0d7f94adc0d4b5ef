"""The KServe backend in Standard mode (``spec.canary``, KServe >= 0.20) at the API boundary.

Faked (kube_support.py): the Kubernetes API server with KServe's ``spec.canary`` reconciler,
and Prometheus answering the predictor's own ``hairseg_requests_total`` /
``hairseg_request_seconds`` series by pod. Real: the ``kubernetes`` client, the MLflow
registry (SQLite), the pre-traffic gate (``python -m hairseg_serving`` on loopback), the mirrored requests
(real predictor servers standing in for the two Services) and, for the SIGKILL case, the
``hairseg rollout`` CLI in a subprocess reading a kubeconfig.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from hairseg import registry
from hairseg.errors import HairsegError
from hairseg.rollout.config import KServeConfig, PolicyConfig, RolloutConfig
from hairseg.rollout.engine import Outcome, run_rollout
from hairseg.rollout.kserve_backend import (
    STATE_ANNOTATION,
    KServeBackend,
    KServeStandardBackend,
    select_backend,
)
from hairseg.rollout.servers import PredictorProcess

import rollout_support as rs  # isort: skip
from kube_support import KCFG as KSERVE_CFG  # isort: skip
from kube_support import (  # isort: skip
    NAME,
    NS,
    POLICY,
    FakeStandardKube,
    fake_cluster,
    kubeconfig,
    pod_of,
)

pytestmark = pytest.mark.slow

STABLE_DEP = f"{NAME}-predictor"

KCFG = dataclasses.replace(KSERVE_CFG, ready_timeout_s=2)


@pytest.fixture(scope="session")
def template(tmp_path_factory):
    return rs.shared_template(tmp_path_factory)


@pytest.fixture()
def env(template, tmp_path):
    servers = []

    def make(candidate: str, *, kcfg: KServeConfig = KCFG, policy: PolicyConfig = POLICY, **kw):
        c = fake_cluster(template, tmp_path, candidate, FakeStandardKube, servers)
        sleeps: list[float] = []
        backend = select_backend(kcfg, policy, c.models, sleep=sleeps.append, **c.clients, **kw)
        cand = c.models.resolve("models:/hairseg@candidate")
        return dict(
            uri=c.uri, models=c.models, kube=c.kube, prom=c.prom, backend=backend, sleeps=sleeps,
            cfg=RolloutConfig(backend="kserve", policy=policy, kserve=kcfg), versions=template[1],
            cand=cand, champ=c.models.champion(), kurl=c.kurl, purl=c.purl,
            dataset=c.clients["dataset"], canary_dep=f"{NAME}-v{cand.version}-predictor",
        )  # fmt: skip

    yield make
    for s in servers:
        s.shutdown()


def _script(e, canary: dict[str, float]) -> None:
    """Stable pods healthy; the canary Deployment's pod gets ``canary``; health-check noise."""
    prom = e["prom"]
    prom.series[pod_of(STABLE_DEP)] = {"requests": 900, "errors": 0, "p95_ms": 40.0}
    prom.series[pod_of(e["canary_dep"])] = canary


def _champion(e) -> int:
    return registry.get_version(e["uri"], registry.CHAMPION).version


def test_select_backend_follows_the_deployment_mode(env):
    e = env("good")
    assert isinstance(e["backend"], KServeStandardBackend)
    kube = e["kube"]
    from kubernetes import client

    api = client.ApiClient(client.Configuration(host=e["kurl"]))
    kw = dict(custom_api=client.CustomObjectsApi(api), core_api=client.CoreV1Api(api))
    picks = {}
    for mode in ("Serverless", "Knative", "RawDeployment", "Standard", None):
        kube.isvc["metadata"]["annotations"].pop("serving.kserve.io/deploymentMode", None)
        kube.isvc["status"].pop("deploymentMode", None)
        if mode:
            kube.isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] = mode
        kube.configmap_mode = None  # unannotated, no config map default: KServe's (Standard)
        picks[mode] = type(select_backend(KCFG, POLICY, e["models"], **kw)).__name__
    assert picks == {
        "Serverless": "KServeBackend",
        "Knative": "KServeBackend",
        "RawDeployment": "KServeStandardBackend",
        "Standard": "KServeStandardBackend",
        None: "KServeStandardBackend",
    }
    kube.configmap_mode = "Serverless"
    assert type(select_backend(KCFG, POLICY, e["models"], **kw)) is KServeBackend
    kube.isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] = "ModelMesh"
    with pytest.raises(HairsegError, match="'ModelMesh'") as info:
        select_backend(KCFG, POLICY, e["models"], **kw)
    assert info.value.exit_code == 2 and kube.patches == []


def test_good_candidate_promoted_through_spec_canary(env, tmp_path):
    e = env("good")
    kube, models, cand = e["kube"], e["models"], e["cand"]
    _script(e, {"requests": 120, "errors": 1, "p95_ms": 55.0})
    cand_uri, champ_uri = models.storage_uri(cand), models.storage_uri(e["champ"])
    cname = f"v{cand.version}"

    result = run_rollout(e["cfg"], e["backend"], models, reports_dir=tmp_path / "reports")

    assert result.outcome == Outcome.PROMOTED, result.reasons
    assert kube.steps() == [
        ("canary", cname, 10, cand_uri),
        ("canary", cname, 50, cand_uri),
        ("promote", cname, cand_uri),
    ]
    spec = kube.isvc["spec"]
    assert "canary" not in spec and spec["predictor"]["name"] == cname
    assert spec["predictor"]["model"]["storageUri"] == cand_uri
    # Promotion without restart: the canary's Deployment became the stable one; the old
    # stable Deployment was deleted; no third Deployment was ever created.
    assert kube.deployments == {e["canary_dep"]: cand_uri}
    assert kube.created == [STABLE_DEP, e["canary_dep"]]
    assert champ_uri not in kube.deployments.values()
    # The canary entry carried the whole model spec (KServe requires an implementation).
    assert kube.patches[0]["spec"]["canary"][0]["predictor"]["model"]["modelFormat"] == {
        "name": "hairseg-onnx"
    }
    assert all(STATE_ANNOTATION in p["metadata"]["annotations"] for p in kube.patches)
    assert kube.state()["phase"] == "done" and kube.state()["outcome"] == "promoted"
    assert _champion(e) == cand.version
    # Metrics: the predictor's own series by pod, never Knative's queue-proxy.
    queries = e["prom"].queries
    assert queries and not any("revision_app_request" in q for q in queries)
    assert any(
        f'pod=~"{e["canary_dep"]}-[a-z0-9]+-[a-z0-9]+"' in q and "hairseg_requests_total" in q
        for q in queries
    )
    assert any(q.startswith("1000 * histogram_quantile(0.95") for q in queries)
    steps = result.record["steps"]
    assert steps[0]["details"]["canary_deployment"] == e["canary_dep"]
    assert steps[0]["details"]["stable_deployment"] == STABLE_DEP
    assert steps[0]["observation"]["canary"]["requests"] == 120
    assert steps[0]["observation"]["stable"] == {
        "requests": 900,
        "errors": 0,
        "p95_ms": 40.0,
        "error_rate": 0.0,
    }
    assert e["sleeps"].count(60) == 2
    assert result.record["gate"]["deployment_mode"] == "Standard"


@pytest.mark.parametrize(
    ("canary", "reason"),
    [
        ({"requests": 100, "errors": 9, "p95_ms": 50.0}, "error rate"),
        ({"requests": 100, "errors": 0, "p95_ms": 400.0}, "p95"),
    ],
    ids=["errors", "latency"],
)
def test_bad_metrics_roll_back_by_removing_the_entry(env, tmp_path, canary, reason):
    e = env("good")
    kube, models, cand = e["kube"], e["models"], e["cand"]
    _script(e, canary)
    champ_uri = models.storage_uri(e["champ"])

    result = run_rollout(e["cfg"], e["backend"], models, reports_dir=tmp_path / "reports")

    assert result.outcome == Outcome.ROLLED_BACK and result.exit_code == 3
    assert reason in result.reasons[0]
    assert kube.steps() == [
        ("canary", f"v{cand.version}", 10, models.storage_uri(cand)),
        ("remove",),
    ]
    assert "canary" not in kube.isvc["spec"] and "canaryStatuses" not in kube.isvc["status"]
    assert kube.deployments == {STABLE_DEP: champ_uri}  # the canary Deployment is gone
    assert kube.state()["outcome"] == "rolled_back"
    assert _champion(e) == e["versions"]["stable"]
    assert registry.get_version_number(e["uri"], cand.version).tags["rollout"] == "rolled_back"


def test_mirroring_to_the_services_catches_garbage_masks(env, tmp_path):
    kcfg = KServeConfig(
        namespace=NS, name=NAME, analysis_window_s=1, poll_interval_s=0.01, ready_timeout_s=2,
        mirror_requests=4,
    )  # fmt: skip
    urls: dict[str, str] = {}
    e = env(
        "garbage",
        kcfg=kcfg,
        policy=PolicyConfig(steps=(10, 100), min_requests=20, min_mirrored=3, max_disagreement=0.2),
        service_url=lambda service: urls[service],
    )
    models = e["models"]
    _script(e, {"requests": 100, "errors": 0, "p95_ms": 40.0})
    with (
        PredictorProcess(models.fetch_onnx(e["champ"]), label="stable") as stable,
        PredictorProcess(models.fetch_onnx(e["cand"]), label="canary") as canary,
    ):
        urls.update({STABLE_DEP: stable.base_url, e["canary_dep"]: canary.base_url})
        result = run_rollout(e["cfg"], e["backend"], models, reports_dir=tmp_path / "reports")
    assert result.outcome == Outcome.ROLLED_BACK, result.reasons
    step = result.record["steps"][0]
    assert step["observation"]["mirrored"] == 4 and step["observation"]["disagreement"] > 0.9
    assert step["details"]["mirror_urls"] == {"canary": canary.base_url, "stable": stable.base_url}
    assert "mask disagreement" in result.reasons[0]
    assert e["kube"].deployments == {STABLE_DEP: models.storage_uri(e["champ"])}


@pytest.mark.parametrize("why", ["pods never available", "KServe < 0.20"])
def test_canary_ready_never_arriving_rolls_back(env, tmp_path, why):
    e = env("good")
    kube, models, cand = e["kube"], e["models"], e["cand"]
    if why == "pods never available":
        kube.failing_uris.add(models.storage_uri(cand))
        expected = r"CanaryPredictorReady=False \(CanariesNotReady\)"
    else:
        kube.knows_canary = False  # the CRD prunes spec.canary: no condition ever appears
        expected = "no CanaryPredictorReady condition"
    with pytest.raises(HairsegError, match=expected) as info:
        run_rollout(e["cfg"], e["backend"], models, reports_dir=tmp_path / "reports")
    assert "rolled back, champion unchanged" in str(info.value)
    assert kube.steps()[-1] == ("remove",)
    assert "canary" not in kube.isvc["spec"]
    assert kube.deployments == {STABLE_DEP: models.storage_uri(e["champ"])}
    assert kube.state()["outcome"] == "rolled_back"
    assert _champion(e) == e["versions"]["stable"]
    assert e["prom"].queries == []  # nothing was analysed on a canary that never came up


def test_lingering_canary_entry_is_removed_before_a_new_rollout(env, tmp_path):
    """A ``v<N>`` entry no rollout state accounts for (the run died before its state, or a
    hand edit): removed first, then the rollout runs from scratch."""
    e = env("good")
    kube, models, cand = e["kube"], e["models"], e["cand"]
    stale = {
        "predictor": {"name": "v99", "model": {"storageUri": "s3://gone/v99"}},
        "trafficPercent": 30,
    }
    with kube.lock:
        kube.isvc["spec"]["canary"] = [stale]
        kube.isvc["metadata"]["generation"] += 1
        kube.isvc["metadata"]["annotations"][STATE_ANNOTATION] = json.dumps(
            {"rollout_id": "old", "phase": "done", "outcome": "promoted"}
        )
        kube.reconcile()
    assert f"{NAME}-v99-predictor" in kube.deployments
    _script(e, {"requests": 120, "errors": 0, "p95_ms": 45.0})

    result = run_rollout(e["cfg"], e["backend"], models, reports_dir=tmp_path / "reports")

    assert result.outcome == Outcome.PROMOTED, result.reasons
    assert kube.steps()[0] == ("remove",)  # before any traffic moved
    assert kube.patches[0] == {"spec": {"canary": None}}  # the state annotation untouched
    assert result.record["gate"]["removed_lingering_canaries"] == ["v99"]
    assert kube.deployments == {e["canary_dep"]: models.storage_uri(cand)}
    assert _champion(e) == cand.version


def test_status_read_leaves_a_lingering_entry_alone(env, tmp_path, monkeypatch):
    """``load_state`` and ``hairseg rollout --status`` only read: a lingering ``v<N>`` entry
    stays (the preflight of the next real rollout removes it, test above)."""
    e = env("good")
    kube = e["kube"]
    stale = {
        "predictor": {"name": "v99", "model": {"storageUri": "s3://gone/v99"}},
        "trafficPercent": 30,
    }
    done = {"rollout_id": "old", "phase": "done", "outcome": "promoted"}
    with kube.lock:
        kube.isvc["spec"]["canary"] = [stale]
        kube.isvc["metadata"]["generation"] += 1
        kube.isvc["metadata"]["annotations"][STATE_ANNOTATION] = json.dumps(done)
        kube.reconcile()

    assert e["backend"].load_state() == done
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(kubeconfig(e["kurl"])))
    (tmp_path / "params.yaml").write_text(
        yaml.safe_dump(
            {"rollout": {"backend": "kserve", "kserve": {"namespace": NS, "name": NAME}}}
        )
    )
    monkeypatch.chdir(tmp_path)
    from click.testing import CliRunner
    from kubernetes import client
    from kubernetes.config import kube_config

    from hairseg.cli import cli

    # The client reads $KUBECONFIG at import and keeps the loaded config process-wide:
    # point it at this fake API server for this test only.
    kubeconfig_path = str(tmp_path / "kubeconfig")
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", kubeconfig_path)
    monkeypatch.setattr(client.Configuration, "_default", client.Configuration._default)
    shown = CliRunner().invoke(
        cli, ["rollout", "--status", "--tracking-uri", e["uri"], "--params", "params.yaml"]
    )

    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output) == done
    assert kube.patches == []
    assert kube.isvc["spec"]["canary"] == [stale]
    assert f"{NAME}-v99-predictor" in kube.deployments


def test_foreign_canary_entry_is_refused(env, tmp_path):
    e = env("good")
    kube = e["kube"]
    with kube.lock:
        kube.isvc["spec"]["canary"] = [
            {
                "predictor": {"name": "experiment", "model": {"storageUri": "s3://x"}},
                "trafficPercent": 5,
            }
        ]
        kube.reconcile()
    with pytest.raises(HairsegError, match=r"did not write: \['experiment'\]") as info:
        run_rollout(e["cfg"], e["backend"], e["models"], reports_dir=tmp_path / "reports")
    assert info.value.exit_code == 2 and kube.patches == []
    assert _champion(e) == e["versions"]["stable"]


def test_sigkilled_cli_rollout_is_resumed(env, tmp_path):
    """``hairseg rollout`` (kserve backend) SIGKILLed while the 50 % step is analysed; run
    again, it resumes from the state persisted on the ISVC and promotes. (--abort after a
    kill: test_rollout_kserve.py; the engine's paths are shared by both modes.)"""
    e = env("good")
    kube, models, cand = e["kube"], e["models"], e["cand"]
    _script(e, {"requests": 120, "errors": 0, "p95_ms": 45.0})
    work = tmp_path / "work"
    work.mkdir()
    (work / "kubeconfig").write_text(yaml.safe_dump(kubeconfig(e["kurl"])))
    params = {
        "rollout": {
            "backend": "kserve",
            "policy": {"steps": [10, 50, 100], "min_requests": 20, "min_mirrored": 0},
            "kserve": {
                "namespace": NS, "name": NAME, "prometheus_url": e["purl"],
                "analysis_window_s": 2, "poll_interval_s": 0.05, "ready_timeout_s": 30,
                "mirror_requests": 0,
            },
        }
    }  # fmt: skip
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    cmd = [
        sys.executable, "-m", "hairseg", "rollout", "--tracking-uri", e["uri"],
        "--dataset", str(e["dataset"]), "--params", str(work / "params.yaml"),
        "--reports-dir", str(work / "reports"),
    ]  # fmt: skip
    envvars = {**os.environ, "KUBECONFIG": str(work / "kubeconfig")}
    proc = subprocess.Popen(
        cmd, cwd=work, env=envvars, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"rollout ended before the kill: {proc.stdout.read().decode()[-800:]}")
            state = kube.state()
            if state and state.get("percent") == 50 and state.get("steps"):
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=10)
                break
            time.sleep(0.01)
        else:
            pytest.fail("the 50 % step was never reached")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert kube.canary() == [(f"v{cand.version}", 50, models.storage_uri(cand))]
    assert _champion(e) == e["versions"]["stable"]

    done = subprocess.run(cmd, cwd=work, env=envvars, capture_output=True, text=True, timeout=240)

    assert done.returncode == 0, done.stdout[-800:] + done.stderr[-800:]
    state = kube.state()
    assert state["phase"] == "done" and "canary" not in kube.isvc["spec"]
    assert state["outcome"] == "promoted" and state["resumed_at"]
    assert [s["percent"] for s in state["steps"]] == [10, 50]
    assert _champion(e) == cand.version
    assert kube.deployments == {e["canary_dep"]: models.storage_uri(cand)}
