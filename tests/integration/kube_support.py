"""A loopback Kubernetes API server and Prometheus for the KServe rollout backends.

Faked, because neither can run here. The API server speaks the REST paths the real
``kubernetes`` client calls (GET/PATCH on
``/apis/serving.kserve.io/v1beta1/namespaces/NS/inferenceservices/NAME`` with
``application/merge-patch+json``, GET on KServe's config map); a small controller object
plays the part of KServe. :class:`FakeStandardKube` reproduces what KServe 0.20+'s
predictor reconciler does with ``spec.canary`` in Standard mode (read from
``pkg/controller/v1beta1/inferenceservice/components/predictor.go``):

- each ``spec.canary[i]`` gets a Deployment ``{isvc}-{predictor.name}-predictor``; the stable
  predictor's is ``{isvc}-predictor`` or ``{isvc}-{spec.predictor.name}-predictor``;
- ``status.canaryStatuses[i] = {name, ready: Deployment has available replicas,
  trafficPercent}`` and the condition ``CanaryPredictorReady`` (``AllCanariesReady`` /
  ``CanariesNotReady``), cleared when there are no canaries;
- Deployments no entry names any more are deleted (orphan clean-up);
- ``metadata.generation`` counts spec changes; ``status.observedGeneration`` follows.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from hairseg.rollout.config import KServeConfig, PolicyConfig
from hairseg.rollout.kserve_backend import STATE_ANNOTATION, PrometheusClient
from hairseg.rollout.models import ModelRegistry

from http_fakes import JsonHandler, serve  # isort: skip

NS, NAME = "hairseg", "hairseg"
ISVC_PATH = f"/apis/serving.kserve.io/v1beta1/namespaces/{NS}/inferenceservices/{NAME}"
CM_PATH = "/api/v1/namespaces/kserve/configmaps/inferenceservice-config"


def inference_service(
    storage_uri: str, mode: str | None, model_format: str, **predictor: Any
) -> dict[str, Any]:
    """The InferenceService as applied: ``mode`` is the deploymentMode annotation (None: none)."""
    annotations = {} if mode is None else {"serving.kserve.io/deploymentMode": mode}
    model = {"modelFormat": {"name": model_format}, "storageUri": storage_uri}
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": NAME, "namespace": NS, "annotations": annotations},
        "spec": {"predictor": {**predictor, "model": model}},
    }


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (what the API server does for merge-patch+json)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def kube_server(kube: Any) -> tuple[ThreadingHTTPServer, str]:
    """Serve ``kube.isvc`` (GET, merge-PATCH → ``kube.reconcile()``) and KServe's config map."""

    class Handler(JsonHandler):
        def do_GET(self) -> None:
            path = urlparse(self.path).path
            if path == ISVC_PATH:
                with kube.lock:
                    return self._send(200, kube.isvc)
            if path == CM_PATH:
                deploy = {}
                if kube.configmap_mode:
                    deploy["defaultDeploymentMode"] = kube.configmap_mode
                return self._send(
                    200,
                    {
                        "kind": "ConfigMap",
                        "apiVersion": "v1",
                        "metadata": {"name": "inferenceservice-config"},
                        "data": {"deploy": json.dumps(deploy)},
                    },
                )
            self._send(404, {"kind": "Status", "code": 404, "reason": "NotFound"})

        def do_PATCH(self) -> None:
            if urlparse(self.path).path != ISVC_PATH:
                return self._send(404, {"kind": "Status", "code": 404})
            if self.headers["Content-Type"] != "application/merge-patch+json":
                return self._send(
                    415, {"kind": "Status", "code": 415, "message": self.headers["Content-Type"]}
                )
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with kube.lock:
                kube.patches.append(body)
                before = copy.deepcopy(kube.isvc.get("spec"))
                kube.isvc = merge_patch(kube.isvc, body)
                if kube.isvc.get("spec") != before:
                    meta = kube.isvc["metadata"]
                    meta["generation"] = int(meta.get("generation") or 1) + 1
                # The API server answers with the object as stored, before the controller runs.
                answer = copy.deepcopy(kube.isvc)
                kube.reconcile()
                self._send(200, answer)

    return serve(Handler)


class FakeStandardKube:
    """One InferenceService in Standard mode and KServe's ``spec.canary`` reconciler."""

    def __init__(self, storage_uri: str, *, mode: str | None = "Standard") -> None:
        self.isvc = inference_service(storage_uri, mode, "hairseg-onnx", minReplicas=2)
        self.isvc["metadata"]["generation"] = 1
        self.configmap_mode: str | None = "Standard"
        self.patches: list[dict[str, Any]] = []
        self.deployments: dict[str, str] = {}  # name -> storageUri of its pods
        self.created: list[str] = []  # every Deployment ever created, in order
        self.failing_uris: set[str] = set()  # pods of these never become available
        self.knows_canary = True  # False: a KServe < 0.20 CRD prunes spec.canary
        self.lock = threading.Lock()
        self.reconcile()

    def reconcile(self) -> None:
        spec = self.isvc["spec"]
        if not self.knows_canary:
            spec.pop("canary", None)
        predictor = spec["predictor"]
        stable = _deployment(predictor.get("name"))
        expected = {stable: predictor["model"]["storageUri"]}
        statuses = []
        for entry in spec.get("canary") or []:
            cname = entry["predictor"]["name"]
            # buildCanaryPredictor: the stable predictor overlaid with the entry's.
            uri = merge_patch(predictor, entry["predictor"])["model"]["storageUri"]
            expected[_deployment(cname)] = uri
            statuses.append(
                {
                    "name": cname,
                    "ready": uri not in self.failing_uris,
                    "trafficPercent": int(entry["trafficPercent"]),
                }
            )
        for name, uri in expected.items():
            if self.deployments.get(name) != uri:
                if name not in self.deployments:
                    self.created.append(name)
                self.deployments[name] = uri
        for name in list(self.deployments):
            if name not in expected:
                del self.deployments[name]
        stable_ready = self.deployments[stable] not in self.failing_uris
        conditions = [
            {"type": "PredictorReady", "status": str(stable_ready)},
            {"type": "Ready", "status": str(stable_ready)},
        ]
        if statuses:
            all_ready = all(s["ready"] for s in statuses)
            conditions.append(
                {
                    "type": "CanaryPredictorReady",
                    "status": str(all_ready),
                    "reason": "AllCanariesReady" if all_ready else "CanariesNotReady",
                }
            )
        status: dict[str, Any] = {
            "deploymentMode": "Standard",
            "observedGeneration": self.isvc["metadata"]["generation"],
            "conditions": conditions,
            "components": {"predictor": {"url": f"http://{stable}.{NS}.svc.cluster.local"}},
        }
        if statuses:
            status["canaryStatuses"] = statuses
        self.isvc["status"] = status

    def state(self) -> dict[str, Any] | None:
        raw = (self.isvc["metadata"].get("annotations") or {}).get(STATE_ANNOTATION)
        return json.loads(raw) if raw else None

    def canary(self) -> list[tuple[str, int, str]]:
        """``(name, trafficPercent, storageUri)`` of the entries now in ``spec.canary``."""
        return [
            (e["predictor"]["name"], e["trafficPercent"], e["predictor"]["model"]["storageUri"])
            for e in self.isvc["spec"].get("canary") or []
        ]

    def steps(self) -> list[Any]:
        """What each spec patch did: ``("canary", name, %, uri)``, ``("promote", name, uri)``
        or ``("remove",)``."""
        out: list[Any] = []
        for p in self.patches:
            spec = p.get("spec")
            if spec is None:
                continue
            if spec.get("canary"):
                (e,) = spec["canary"]
                out.append(
                    (
                        "canary",
                        e["predictor"]["name"],
                        e["trafficPercent"],
                        e["predictor"]["model"]["storageUri"],
                    )
                )
            elif "predictor" in spec:
                pred = spec["predictor"]
                out.append(("promote", pred.get("name"), pred["model"]["storageUri"]))
            else:
                out.append(("remove",))
        return out


def _deployment(predictor_name: str | None) -> str:
    return f"{NAME}-{predictor_name}-predictor" if predictor_name else f"{NAME}-predictor"


def pod_of(deployment: str) -> str:
    """A pod name as a ReplicaSet names them: ``<deployment>-<rs hash>-<5 chars>``."""
    return f"{deployment}-6f7d9c8b5-k2x4q"


class FakePrometheus:
    """``/api/v1/query`` answering scripted series.

    Knative queries select ``revision_name="R"``: ``series[R]``. Standard-mode queries
    select pods by regex (``pod=~"..."``): every scripted pod the regex matches in full
    (PromQL regexes are anchored), summed; p95 the worst pod's. A query that restricts
    ``endpoint`` to anything but the inference endpoints matches nothing.
    """

    def __init__(self) -> None:
        self.series: dict[str, dict[str, float]] = {}
        self.queries: list[str] = []

    def _key(self, query: str) -> str:
        if query.startswith(("histogram_quantile(0.95", "1000 * histogram_quantile(0.95")):
            return "p95_ms"
        if 'response_code_class="5xx"' in query or 'code=~"5.."' in query:
            return "errors"
        return "requests"

    def answer(self, query: str) -> list[dict[str, Any]]:
        self.queries.append(query)
        key = self._key(query)
        rev = re.search(r'revision_name="([^"]+)"', query)
        if rev:
            values = self.series.get(rev.group(1))
            if values is None:
                return []
            return [{"metric": {}, "value": [1700000000.0, str(values[key])]}]
        pods = re.search(r'pod=~"([^"]+)"', query)
        endpoint = re.search(r'endpoint=~"([^"]+)"', query)
        if not pods or not endpoint or endpoint.group(1) != "v1|v2":
            return []
        hits = [v for p, v in self.series.items() if re.fullmatch(pods.group(1), p)]
        if not hits:
            return []
        value = max(h[key] for h in hits) if key == "p95_ms" else sum(h[key] for h in hits)
        return [{"metric": {}, "value": [1700000000.0, str(value)]}]


def prom_server(prom: FakePrometheus) -> tuple[ThreadingHTTPServer, str]:
    class Handler(JsonHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            if url.path != "/api/v1/query":
                return self._send_bytes(404, b"", "text/plain")
            result = prom.answer(parse_qs(url.query)["query"][0])
            self._send(
                200, {"status": "success", "data": {"resultType": "vector", "result": result}}
            )

    return serve(Handler)


def kubeconfig(url: str) -> dict[str, Any]:
    """A kubeconfig that points the ``kubernetes`` client at ``url`` (for CLI subprocesses)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": url}}],
        "users": [{"name": "fake", "user": {"token": "not-a-secret"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
        "current-context": "fake",
    }


# -- what both backends' tests set up ------------------------------------------------------

# A fast policy (three steps, no mirroring) and a backend config that polls at once.
POLICY = PolicyConfig(
    steps=(10, 50, 100), min_requests=20, min_mirrored=0, max_error_rate=0.02,
    max_p95_ratio=2.0, max_p95_ms=1000.0, max_disagreement=0.2, max_holds=1,
)  # fmt: skip
KCFG = KServeConfig(
    namespace=NS, name=NAME, analysis_window_s=60, poll_interval_s=0.01, ready_timeout_s=5,
    mirror_requests=0,
)  # fmt: skip


@dataclass
class FakeCluster:
    """A fresh registry (champion ``stable``, candidate ``candidate``) and, on loopback, the
    fake API server serving ``kube`` and the fake Prometheus; ``clients`` are the real
    ``kubernetes`` / Prometheus clients pointed at them (backend keyword arguments)."""

    uri: str
    models: ModelRegistry
    kube: Any
    prom: FakePrometheus
    kurl: str
    purl: str
    clients: dict[str, Any]


def fake_cluster(
    template: tuple[Path, dict[str, int], Path],
    tmp_path: Path,
    candidate: str,
    make_kube: Callable[[str], Any],
    servers: list[ThreadingHTTPServer],
) -> FakeCluster:
    """Set up one test's cluster; the servers started go to ``servers`` (to shut down)."""
    import rollout_support as rs  # torch + onnx: only the tests that roll out need them
    from kubernetes import client

    db, versions, dataset = template
    uri = rs.fresh_registry(
        db, tmp_path / "reg", champion=versions["stable"], candidate=versions[candidate]
    )
    models = ModelRegistry(uri, tmp_path / "cache")
    kube = make_kube(models.storage_uri(models.champion()))
    ksrv, kurl = kube_server(kube)
    prom = FakePrometheus()
    psrv, purl = prom_server(prom)
    servers.extend([ksrv, psrv])
    api = client.ApiClient(client.Configuration(host=kurl))
    clients = {
        "custom_api": client.CustomObjectsApi(api),
        "core_api": client.CoreV1Api(api),
        "prometheus": PrometheusClient(purl),
        "dataset": dataset,
    }
    return FakeCluster(uri, models, kube, prom, kurl, purl, clients)
