"""The cluster backends: one KServe InferenceService, in either deployment mode.

KServe runs an InferenceService in one of two modes (annotation
``serving.kserve.io/deploymentMode``, else ``status.deploymentMode``, else the
``defaultDeploymentMode`` of KServe's config map); :func:`select_backend` reads it and picks:

- **Knative** (``Serverless`` before KServe 0.15): :class:`KServeBackend`. KServe splits
  traffic between the previously rolled-out revision and the latest one with
  ``spec.predictor.canaryTrafficPercent``. Metrics come from Knative's queue-proxy series
  (labelled by ``revision_name``); mask disagreement from mirroring test images to the
  ``prev`` and ``latest`` tag URLs of tag routing (``serving.kserve.io/enable-tag-routing``).
- **Standard** (``RawDeployment`` before 0.15; the default since 0.17):
  :class:`KServeStandardBackend`. ``canaryTrafficPercent`` is ignored there; KServe 0.20 added
  ``spec.canary``, a list of named canaries (``predictor.name`` + ``trafficPercent``), each
  with its own Deployment and Service ``{isvc}-{name}-predictor``, reported in
  ``status.canaryStatuses`` and the ``CanaryPredictorReady`` condition. Promotion renames the
  stable predictor to the canary's name and drops the entry (no restart: the canary's
  Deployment becomes the stable one); rollback drops the entry. Metrics come from the
  predictor's own series (``hairseg_requests_total``, ``hairseg_request_seconds``) selected
  by the pods of each Deployment; mirroring goes to the two Services.

Each step is one JSON merge-patch on the InferenceService (``application/merge-patch+json``)
carrying the traffic change *and* the rollout state in the annotation
``hairseg.io/rollout-state`` — traffic and state change atomically.

The Kubernetes API is reached through ``kubernetes.client.CustomObjectsApi`` (and
``CoreV1Api`` for KServe's config map); this module never imports ``kserve``.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hairseg.errors import EXIT_USAGE, HairsegError
from hairseg.rollout.config import KServeConfig, PolicyConfig
from hairseg.rollout.models import ModelRef, ModelRegistry
from hairseg.rollout.policy import ArmMetrics, StepObservation
from hairseg.rollout.servers import PredictorProcess, smoke_test
from hairseg.rollout.traffic import (
    PredictError,
    PredictorClient,
    TrafficImage,
    load_traffic_sample,
    mask_disagreement,
)

__all__ = [
    "GROUP",
    "PLURAL",
    "STATE_ANNOTATION",
    "VERSION",
    "KServeBackend",
    "KServeStandardBackend",
    "PrometheusClient",
    "deployment_queries",
    "revision_queries",
    "select_backend",
]

log = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
STATE_ANNOTATION = "hairseg.io/rollout-state"
MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
TAG_ROUTING_ANNOTATION = "serving.kserve.io/enable-tag-routing"
# KServe < 0.15 says Serverless/RawDeployment; newer releases Knative/Standard.
KNATIVE_MODES = ("Serverless", "Knative")
STANDARD_MODES = ("RawDeployment", "Standard")
# KServe's built-in default when neither the ISVC nor the config map names a mode (0.17+).
BUILTIN_DEFAULT_MODE = "Standard"
CANARY_CONDITION = "CanaryPredictorReady"
# Canary entries this backend writes are named after the candidate version: v<N>.
CANARY_NAME = re.compile(r"^v[0-9]+$")
KSERVE_NAMESPACE, KSERVE_CONFIGMAP = "kserve", "inferenceservice-config"


def revision_queries(namespace: str, revision: str, window_s: int) -> dict[str, str]:
    """PromQL for one Knative revision over the last ``window_s`` seconds.

    Knative's queue-proxy exports ``revision_app_request_count`` (labels ``namespace_name``,
    ``revision_name``, ``response_code_class``…) and the ``revision_app_request_latencies``
    histogram in milliseconds for every request that reached the user container.
    """
    sel = f'namespace_name="{namespace}",revision_name="{revision}"'
    w = f"{int(window_s)}s"
    return {
        "requests": f"sum(increase(revision_app_request_count{{{sel}}}[{w}]))",
        "errors": f'sum(increase(revision_app_request_count{{{sel},response_code_class="5xx"}}[{w}]))',
        "p95_ms": "histogram_quantile(0.95, sum by (le) "
        f"(rate(revision_app_request_latencies_bucket{{{sel}}}[{w}])))",
    }


class PrometheusClient:
    """Instant queries against the Prometheus HTTP API (``GET /api/v1/query``)."""

    def __init__(self, base_url: str, *, timeout_s: float = 15.0) -> None:
        import httpx

        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(timeout=timeout_s)

    def scalar(self, query: str) -> float | None:
        """The single value of an instant vector query (None for an empty result or NaN)."""
        import httpx

        url = f"{self.base_url}/api/v1/query"
        try:
            resp = self._client.get(url, params={"query": query})
        except httpx.HTTPError as exc:
            raise HairsegError(f"Prometheus at {self.base_url} unreachable: {exc}") from None
        try:
            body = resp.json()
        except ValueError:
            raise HairsegError(
                f"Prometheus answered HTTP {resp.status_code} with non-JSON: {resp.text[:200]}"
            ) from None
        if resp.status_code != 200 or body.get("status") != "success":
            raise HairsegError(
                f"Prometheus query failed (HTTP {resp.status_code}): "
                f"{body.get('errorType', '')} {body.get('error', '')} — query: {query}"
            )
        data = body.get("data", {})
        if data.get("resultType") not in ("vector", "scalar"):
            raise HairsegError(f"Prometheus returned {data.get('resultType')!r} for {query}")
        result = data.get("result") or []
        if data["resultType"] == "scalar":
            result = [{"value": result}]
        if not result:
            return None
        if len(result) > 1:
            raise HairsegError(f"Prometheus returned {len(result)} series for {query}; expected 1")
        value = float(result[0]["value"][1])
        return None if math.isnan(value) or math.isinf(value) else value

    def close(self) -> None:
        self._client.close()


class KServeBackend:
    """Canary steps on a KServe InferenceService; metrics from Prometheus."""

    name = "kserve"

    def __init__(
        self,
        cfg: KServeConfig,
        policy: PolicyConfig,
        models: ModelRegistry,
        *,
        custom_api: Any,
        core_api: Any | None = None,
        prometheus: PrometheusClient | None = None,
        dataset: str | Path | None = None,
        split: str = "test",
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        start_timeout_s: float = 120.0,
    ) -> None:
        self.cfg = cfg
        self.policy = policy
        self.models = models
        self.api = custom_api
        self.core_api = core_api
        self.prometheus = prometheus or PrometheusClient(cfg.prometheus_url)
        self.dataset = Path(dataset) if dataset else None
        self.split = split
        self.sleep = sleep
        self.clock = clock
        self.start_timeout_s = start_timeout_s
        self._sample: list[TrafficImage] | None = None
        self._revisions: dict[str, str | None] = {"canary": None, "stable": None}

    # -- Kubernetes access ----------------------------------------------------------------
    @property
    def _where(self) -> str:
        return f"InferenceService {self.cfg.namespace}/{self.cfg.name}"

    def _get(self) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        try:
            return self.api.get_namespaced_custom_object(
                GROUP, VERSION, self.cfg.namespace, PLURAL, self.cfg.name
            )
        except ApiException as exc:
            if exc.status == 404:
                raise HairsegError(
                    f"{self._where} not found: apply serving/manifests first", exit_code=EXIT_USAGE
                ) from None
            raise HairsegError(f"cannot read {self._where}: {exc.status} {exc.reason}") from None

    def _patch(self, body: dict[str, Any]) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        log.info("patch %s: %s", self._where, json.dumps(body)[:400])
        try:
            return self.api.patch_namespaced_custom_object(
                GROUP, VERSION, self.cfg.namespace, PLURAL, self.cfg.name, body
            )
        except ApiException as exc:
            raise HairsegError(
                f"cannot patch {self._where}: {exc.status} {exc.reason} {str(exc.body)[:200]}"
            ) from None

    def _state_patch(self, state: dict[str, Any] | None) -> dict[str, Any]:
        value = None if state is None else json.dumps(state, sort_keys=True, default=str)
        return {"metadata": {"annotations": {STATE_ANNOTATION: value}}}

    # -- protocol -------------------------------------------------------------------------
    def deployment_mode(self, isvc: dict[str, Any] | None = None) -> tuple[str, str]:
        """``(mode, where it came from)``: the annotation, status, config map or default."""
        isvc = isvc if isvc is not None else self._get()
        mode = (isvc.get("metadata", {}).get("annotations") or {}).get(MODE_ANNOTATION)
        if mode:
            return str(mode), f"annotation {MODE_ANNOTATION}"
        mode = (isvc.get("status") or {}).get("deploymentMode")
        if mode:
            return str(mode), "status.deploymentMode"
        return self._default_mode()

    modes: tuple[str, ...] = KNATIVE_MODES

    def preflight(self) -> None:
        isvc = self._get()
        mode, source = self.deployment_mode(isvc)
        if mode not in self.modes:
            raise HairsegError(
                f"{self._where} runs in KServe deployment mode {mode!r} ({source}); the "
                f"{type(self).__name__} drives {'/'.join(self.modes)} only "
                "(build it with hairseg.rollout.kserve_backend.select_backend)",
                exit_code=EXIT_USAGE,
            )
        model = (isvc.get("spec", {}).get("predictor") or {}).get("model")
        if not isinstance(model, dict) or "storageUri" not in model:
            raise HairsegError(
                f"{self._where} has no spec.predictor.model.storageUri; the rollout swaps "
                "model versions through it (see serving/manifests)",
                exit_code=EXIT_USAGE,
            )

    def _default_mode(self) -> tuple[str, str]:
        where = f"config map {KSERVE_NAMESPACE}/{KSERVE_CONFIGMAP}"
        if self.core_api is None:
            return BUILTIN_DEFAULT_MODE, "KServe's built-in default (config map not consulted)"
        from kubernetes.client.exceptions import ApiException

        try:
            cm = self.core_api.read_namespaced_config_map(KSERVE_CONFIGMAP, KSERVE_NAMESPACE)
        except ApiException as exc:
            raise HairsegError(
                f"cannot read {where} to learn KServe's default deployment mode "
                f"({exc.status} {exc.reason}); set annotation {MODE_ANNOTATION} on {self._where}"
            ) from None
        data = cm.data if hasattr(cm, "data") else cm.get("data")
        try:
            deploy = json.loads((data or {}).get("deploy") or "{}")
        except json.JSONDecodeError:
            raise HairsegError(f"{where} key 'deploy' is not JSON") from None
        mode = deploy.get("defaultDeploymentMode")
        if not mode:
            return BUILTIN_DEFAULT_MODE, f"KServe's built-in default ({where} names none)"
        return str(mode), f"{where} deploy"

    def load_state(self) -> dict[str, Any] | None:
        raw = (self._get().get("metadata", {}).get("annotations") or {}).get(STATE_ANNOTATION)
        if not raw:
            return None
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            raise HairsegError(
                f"annotation {STATE_ANNOTATION} on {self._where} is not JSON; remove it "
                "(kubectl annotate isvc ... hairseg.io/rollout-state-) after checking traffic"
            ) from None

    def save_state(self, state: dict[str, Any]) -> None:
        self._patch(self._state_patch(state))

    def sample(self) -> list[TrafficImage]:
        if self._sample is None:
            self._sample = (
                load_traffic_sample(self.dataset, self.split) if self.dataset is not None else []
            )
        return self._sample

    def gate(self, candidate: ModelRef, stable: ModelRef) -> dict[str, Any]:
        """Load the candidate in the real serving code on loopback; one smoke request."""
        from hairseg import imaging

        sample = self.sample()
        if sample:
            image, image_id = sample[0].data, sample[0].id
        else:  # no dataset given: a deterministic synthetic image
            rng = np.random.default_rng(0)
            image, image_id = imaging.encode_png(rng.integers(0, 256, (64, 64, 3), np.uint8)), "-"
        h, w = imaging.decode_image(image).shape[:2]
        with PredictorProcess(
            self.models.fetch_onnx(candidate),
            label=f"candidate (v{candidate.version})",
            model_name=self.cfg.model_name,
            start_timeout_s=self.start_timeout_s,
        ) as server:
            latency = smoke_test(server, image, (h, w))
        return {"smoke_image": image_id, "smoke_latency_ms": round(latency, 2)}

    def shift(self, candidate: ModelRef, stable: ModelRef, percent: int, state: dict) -> None:
        body = self._state_patch(state)
        body["metadata"]["annotations"][TAG_ROUTING_ANNOTATION] = "true"
        body["spec"] = {
            "predictor": {
                "canaryTrafficPercent": percent,
                "model": {
                    "storageUri": self.models.storage_uri(candidate, self.cfg.storage_uri_template)
                },
            }
        }
        self._patch(body)
        predictor = self._wait(f"canary at {percent}%", lambda p: _canary_share(p) == percent)
        self._revisions = {
            "canary": predictor.get("latestReadyRevision"),
            "stable": _stable_revision(predictor),
        }

    def promote(self, candidate: ModelRef, stable: ModelRef, state: dict) -> None:
        # 100 (not a removed field): the steady state serving/manifests declares, so a
        # `kubectl diff` against the manifests shows only the storageUri.
        body = self._state_patch(state)
        body["spec"] = {"predictor": {"canaryTrafficPercent": 100}}
        self._patch(body)
        self._wait("all traffic on the candidate", lambda p: _canary_share(p) == 100)

    def rollback(self, candidate: ModelRef, stable: ModelRef, state: dict) -> None:
        # 1. Traffic first: every request back on the stable revision at once.
        body = self._state_patch(state)
        body["spec"] = {"predictor": {"canaryTrafficPercent": 0}}
        self._patch(body)
        # The candidate's revision may have failed: its conditions do not matter here, only
        # that the latest created revision carries no traffic any more.
        self._wait(
            "all traffic back on stable",
            lambda p: _share_of(p, p.get("latestCreatedRevision")) == 0,
            settled=False,
        )
        # 2. Then the spec: storageUri back to the champion's at 100 %. KServe rolls out a
        # fresh revision of the champion model and moves traffic once it is ready.
        body = self._state_patch(state)
        body["spec"] = {
            "predictor": {
                "canaryTrafficPercent": 100,
                "model": {
                    "storageUri": self.models.storage_uri(stable, self.cfg.storage_uri_template)
                },
            }
        }
        self._patch(body)
        self._wait("the champion's spec rolled out", lambda p: _canary_share(p) == 100)

    def observe(self, percent: int) -> tuple[StepObservation, dict[str, Any]]:
        """Wait one analysis window, then read both revisions' metrics from Prometheus."""
        canary_rev, stable_rev = self._revisions["canary"], self._revisions["stable"]
        if not canary_rev or not stable_rev:
            raise HairsegError(f"{self._where} status names no canary/stable revision pair")
        self.sleep(self.cfg.analysis_window_s)
        canary = self._arm(canary_rev)
        stable = self._arm(stable_rev)
        mirrored, disagreement, mirror_details = self._mirror()
        details = {
            "canary_revision": canary_rev,
            "stable_revision": stable_rev,
            "window_s": self.cfg.analysis_window_s,
            **mirror_details,
        }
        return StepObservation(canary, stable, mirrored, disagreement), details

    def close(self) -> None:
        self.prometheus.close()

    # -- helpers --------------------------------------------------------------------------
    def _arm(self, revision: str) -> ArmMetrics:
        return self._arm_metrics(
            revision_queries(self.cfg.namespace, revision, self.cfg.analysis_window_s)
        )

    def _arm_metrics(self, queries: dict[str, str]) -> ArmMetrics:
        """One arm's window from its ``requests``, ``errors`` and ``p95_ms`` queries: errors
        capped at the requests, no p95 without requests."""
        requests = round(self.prometheus.scalar(queries["requests"]) or 0.0)
        errors = min(requests, round(self.prometheus.scalar(queries["errors"]) or 0.0))
        p95 = self.prometheus.scalar(queries["p95_ms"]) if requests else None
        return ArmMetrics(requests=requests, errors=errors, p95_ms=p95)

    def _mirror(self) -> tuple[int, float | None, dict[str, Any]]:
        """Send test images to the ``latest`` and ``prev`` tag URLs; mean 1 - IoU."""
        if self.cfg.mirror_requests <= 0:
            return 0, None, {"mirror": "off (rollout.kserve.mirror_requests: 0)"}
        predictor = _predictor_status(self._get())
        urls = {t.get("tag"): t.get("url") for t in predictor.get("traffic") or []}
        if not urls.get("latest") or not urls.get("prev"):
            return 0, None, {"mirror": "no prev/latest tag URLs in status (tag routing off?)"}
        sample = self.sample()
        if not sample:
            return 0, None, {"mirror": "no dataset to mirror"}
        return self._compare_masks(sample, "latest", "prev", urls)

    def _compare_masks(
        self, sample: list[Any], canary_role: str, stable_role: str, urls: dict[str, Any]
    ) -> tuple[int, float | None, dict[str, Any]]:
        """Send ``cfg.mirror_requests`` sample images to both URLs and compare the masks:
        (compared, mean 1 - IoU or None, details with failures per role and the URLs)."""
        canary = PredictorClient(urls[canary_role], self.cfg.model_name)
        stable = PredictorClient(urls[stable_role], self.cfg.model_name)
        scores: list[float] = []
        failures = {canary_role: 0, stable_role: 0}
        try:
            for i in range(self.cfg.mirror_requests):
                image = sample[i % len(sample)]
                try:
                    a, _ = canary.predict_mask(image.data)
                except PredictError:
                    failures[canary_role] += 1
                    continue
                try:
                    b, _ = stable.predict_mask(image.data)
                except PredictError:
                    failures[stable_role] += 1
                    continue
                scores.append(mask_disagreement(a, b))
        finally:
            canary.close()
            stable.close()
        details = {"mirror_failures": failures, "mirror_urls": urls}
        return len(scores), (float(np.mean(scores)) if scores else None), details

    def _wait(
        self, what: str, done: Callable[[dict[str, Any]], bool], *, settled: bool = True
    ) -> dict[str, Any]:
        """Poll the ISVC until ``done(predictor status)``.

        ``settled``: also require the latest created revision to be the latest ready one and
        the ISVC Ready; a failed latest revision is then an error (not worth waiting for).
        """
        deadline = self.clock() + self.cfg.ready_timeout_s
        while True:
            isvc = self._get()
            predictor = _predictor_status(isvc)
            if not settled:
                if done(predictor):
                    return predictor
            else:
                failed = _failed_condition(isvc)
                if failed:
                    raise HairsegError(
                        f"{self._where} is not ready while waiting for {what}: {failed}"
                    )
                latest_ready = predictor.get("latestReadyRevision")
                is_latest = latest_ready and latest_ready == predictor.get("latestCreatedRevision")
                if is_latest and _is_ready(isvc) and done(predictor):
                    return predictor
            if self.clock() > deadline:
                raise HairsegError(
                    f"{self._where}: timed out after {self.cfg.ready_timeout_s:.0f} s waiting "
                    f"for {what} (traffic: {predictor.get('traffic')})"
                )
            self.sleep(self.cfg.poll_interval_s)


def _predictor_status(isvc: dict[str, Any]) -> dict[str, Any]:
    return ((isvc.get("status") or {}).get("components") or {}).get("predictor") or {}


def _conditions(isvc: dict[str, Any]) -> list[dict[str, Any]]:
    return list((isvc.get("status") or {}).get("conditions") or [])


def _is_ready(isvc: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in _conditions(isvc))


def _failed_condition(isvc: dict[str, Any]) -> str | None:
    """A predictor condition that says the new revision failed (not merely in progress)."""
    for c in _conditions(isvc):
        if (
            c.get("type") in ("PredictorReady", "LatestDeploymentReady")
            and c.get("status") == "False"
            and c.get("reason") in _FAILED_REASONS
        ):
            return f"{c.get('type')}: {c.get('reason')} {c.get('message', '')}".strip()
    return None


_FAILED_REASONS = ("RevisionFailed", "RevisionMissing", "ContainerMissing")


def _canary_share(predictor: dict[str, Any]) -> int | None:
    """The share of the latest revision in ``status.components.predictor.traffic``."""
    traffic = predictor.get("traffic") or []
    latest = predictor.get("latestReadyRevision")
    share = 0
    found = False
    for t in traffic:
        if t.get("latestRevision") or (latest and t.get("revisionName") == latest):
            share += int(t.get("percent") or 0)
            found = True
    return share if found else None


def _share_of(predictor: dict[str, Any], revision: str | None) -> int:
    """The traffic percentage ``revision`` receives (0 when it is not in the split)."""
    return sum(
        int(t.get("percent") or 0)
        for t in predictor.get("traffic") or []
        if revision and t.get("revisionName") == revision
    )


def _stable_revision(predictor: dict[str, Any]) -> str | None:
    """The revision serving the non-canary share (KServe: ``previousRolledoutRevision``)."""
    latest = predictor.get("latestReadyRevision")
    for t in predictor.get("traffic") or []:
        if not t.get("latestRevision") and t.get("revisionName") != latest:
            return t.get("revisionName")
    return predictor.get("previousRolledoutRevision")


# -- Standard mode ---------------------------------------------------------------------------


def deployment_queries(
    namespace: str, deployment: str, window_s: int, *, pod_label: str = "pod"
) -> dict[str, str]:
    """PromQL for the pods of one predictor Deployment over the last ``window_s`` seconds.

    The predictor exports ``hairseg_requests_total{endpoint,code}`` and the
    ``hairseg_request_seconds{endpoint}`` histogram (seconds); Prometheus adds ``namespace``
    and ``pod`` when it scrapes the pods (KServe's ``enable-prometheus-scraping``). A
    Deployment's pods are named ``<deployment>-<replica set hash>-<pod hash>``; PromQL
    regexes are anchored, so ``hairseg-predictor-…`` never matches ``hairseg-v7-predictor-…``.
    Only inference endpoints (v1, v2) count, not health checks or scrapes.
    """
    # A DNS label needs no escaping (and PromQL strings reject "\-").
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", deployment):
        raise HairsegError(f"{deployment!r} is not a Kubernetes Deployment name")
    pods = f"{deployment}-[a-z0-9]+-[a-z0-9]+"
    sel = f'namespace="{namespace}",{pod_label}=~"{pods}",endpoint=~"v1|v2"'
    w = f"{int(window_s)}s"
    return {
        "requests": f"sum(increase(hairseg_requests_total{{{sel}}}[{w}]))",
        "errors": f'sum(increase(hairseg_requests_total{{{sel},code=~"5.."}}[{w}]))',
        "p95_ms": "1000 * histogram_quantile(0.95, sum by (le) "
        f"(rate(hairseg_request_seconds_bucket{{{sel}}}[{w}])))",
    }


def predictor_deployment(isvc_name: str, predictor_name: str | None) -> str:
    """KServe's Deployment/Service name for a predictor variant (``PredictorServiceName``)."""
    return f"{isvc_name}-{predictor_name}-predictor" if predictor_name else f"{isvc_name}-predictor"


class KServeStandardBackend(KServeBackend):
    """Canary steps through ``spec.canary`` (KServe >= 0.20, Standard deployment mode).

    - ``shift``: ``spec.canary = [{predictor: {name: v<N>, model: <stable model, candidate
      storageUri>}, trafficPercent: p}]``; waits for ``canaryStatuses[v<N>]`` ready at ``p``
      and the ``CanaryPredictorReady`` condition.
    - ``promote``: ``spec.predictor.name = v<N>``, the candidate's ``storageUri``, and the
      entry removed, in one patch; KServe keeps the canary's Deployment as the stable one
      and deletes the old stable Deployment.
    - ``rollback``: the entry removed; KServe deletes the canary's Deployment and Service.

    Entries named ``v<N>`` are this backend's; any other entry is someone else's and makes
    the rollout refuse to start. A ``v<N>`` entry with no rollout in flight (a crash before
    the state was written, a manual edit) is removed by the preflight, before a new rollout's
    first canary patch; reading the state (``--status``) leaves it alone.
    """

    name = "kserve"
    modes = STANDARD_MODES

    def __init__(
        self, *args: Any, service_url: Callable[[str], str] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._service_url = service_url or self._cluster_service_url
        self._deployments: dict[str, str | None] = {"canary": None, "stable": None}
        self._removed_lingering: list[str] = []

    def _cluster_service_url(self, service: str) -> str:
        return self.cfg.service_url_template.format(service=service, namespace=self.cfg.namespace)

    # -- protocol -------------------------------------------------------------------------
    def preflight(self) -> None:
        super().preflight()
        isvc = self._get()
        foreign = [
            e.get("predictor", {}).get("name")
            for e in isvc.get("spec", {}).get("canary") or []
            if not CANARY_NAME.match(str(e.get("predictor", {}).get("name") or ""))
        ]
        if foreign:
            raise HairsegError(
                f"{self._where} has spec.canary entries hairseg did not write: {foreign}; "
                "the rollout needs the canary split to itself (remove them: kubectl patch isvc "
                f'{self.cfg.name} --type=json -p \'[{{"op":"remove","path":"/spec/canary"}}]\')',
                exit_code=EXIT_USAGE,
            )
        self._remove_lingering(isvc)

    def _remove_lingering(self, isvc: dict[str, Any]) -> None:
        """Drop ``v<N>`` entries no in-flight rollout owns, before the first canary patch.

        Part of the preflight (a rollout is about to move traffic), never of ``load_state``:
        a status read (``hairseg rollout --status``) must not change the cluster.
        """
        state = self.load_state()
        if state is not None and state.get("phase") not in (None, "done"):
            return  # the resumed rollout owns its entry
        lingering = self._our_entries(isvc)
        if not lingering:
            return
        # No rollout owns them: a run that died between writing the entry and its state
        # (or a hand edit). Remove them before anything else moves.
        log.warning("%s: removing lingering canary entries %s", self._where, lingering)
        patched = self._patch({"spec": {"canary": None}})
        self._wait_standard(
            f"lingering canaries {lingering} removed",
            lambda i: not self._canary_statuses(i),
            patched,
            settled=False,
        )
        self._removed_lingering = lingering

    def gate(self, candidate: ModelRef, stable: ModelRef) -> dict[str, Any]:
        details = super().gate(candidate, stable)
        details["deployment_mode"] = "Standard"
        if self._removed_lingering:
            details["removed_lingering_canaries"] = list(self._removed_lingering)
        return details

    def shift(self, candidate: ModelRef, stable: ModelRef, percent: int, state: dict) -> None:
        isvc = self._get()
        predictor = isvc["spec"]["predictor"]
        cname = _canary_name(candidate)
        model = dict(predictor["model"])
        model["storageUri"] = self.models.storage_uri(candidate, self.cfg.storage_uri_template)
        body = self._state_patch(state)
        body["spec"] = {
            "canary": [{"predictor": {"name": cname, "model": model}, "trafficPercent": percent}]
        }
        patched = self._patch(body)
        self._wait_standard(
            f"canary {cname} ready at {percent}%",
            lambda i: _canary_ready(i, cname, percent),
            patched,
        )
        self._deployments = {
            "canary": predictor_deployment(self.cfg.name, cname),
            "stable": predictor_deployment(self.cfg.name, predictor.get("name")),
        }

    def promote(self, candidate: ModelRef, stable: ModelRef, state: dict) -> None:
        cname = _canary_name(candidate)
        body = self._state_patch(state)
        body["spec"] = {
            "predictor": {
                "name": cname,
                "model": {
                    "storageUri": self.models.storage_uri(candidate, self.cfg.storage_uri_template)
                },
            },
            "canary": None,
        }
        patched = self._patch(body)
        self._wait_standard(
            f"predictor {cname} promoted to stable",
            lambda i: (
                not self._canary_statuses(i)
                and (i.get("spec", {}).get("predictor") or {}).get("name") == cname
            ),
            patched,
        )

    def rollback(self, candidate: ModelRef, stable: ModelRef, state: dict) -> None:
        # Removing the entry sends all traffic back to the stable Deployment at once (the
        # canary's pods may be failing: their state does not matter, only that they leave).
        body = self._state_patch(state)
        body["spec"] = {"canary": None}
        patched = self._patch(body)
        self._wait_standard(
            "canary removed, all traffic on stable",
            lambda i: not self._canary_statuses(i),
            patched,
            settled=False,
        )

    def observe(self, percent: int) -> tuple[StepObservation, dict[str, Any]]:
        canary_dep, stable_dep = self._deployments["canary"], self._deployments["stable"]
        if not canary_dep or not stable_dep:
            raise HairsegError(f"{self._where}: no canary/stable Deployment pair recorded")
        self.sleep(self.cfg.analysis_window_s)
        canary = self._deployment_arm(canary_dep)
        stable = self._deployment_arm(stable_dep)
        mirrored, disagreement, mirror_details = self._mirror_services(canary_dep, stable_dep)
        details = {
            "deployment_mode": "Standard",
            "canary_deployment": canary_dep,
            "stable_deployment": stable_dep,
            "window_s": self.cfg.analysis_window_s,
            **mirror_details,
        }
        return StepObservation(canary, stable, mirrored, disagreement), details

    # -- helpers --------------------------------------------------------------------------
    def _our_entries(self, isvc: dict[str, Any]) -> list[str]:
        return [
            str(e["predictor"]["name"])
            for e in isvc.get("spec", {}).get("canary") or []
            if CANARY_NAME.match(str((e.get("predictor") or {}).get("name") or ""))
        ]

    @staticmethod
    def _canary_statuses(isvc: dict[str, Any]) -> list[dict[str, Any]]:
        return list((isvc.get("status") or {}).get("canaryStatuses") or [])

    def _deployment_arm(self, deployment: str) -> ArmMetrics:
        return self._arm_metrics(
            deployment_queries(
                self.cfg.namespace,
                deployment,
                self.cfg.analysis_window_s,
                pod_label=self.cfg.pod_label,
            )
        )

    def _mirror_services(
        self, canary_service: str, stable_service: str
    ) -> tuple[int, float | None, dict[str, Any]]:
        """Send test images to the canary's and the stable predictor's Services."""
        if self.cfg.mirror_requests <= 0:
            return 0, None, {"mirror": "off (rollout.kserve.mirror_requests: 0)"}
        sample = self.sample()
        if not sample:
            return 0, None, {"mirror": "no dataset to mirror"}
        urls = {
            "canary": self._service_url(canary_service),
            "stable": self._service_url(stable_service),
        }
        return self._compare_masks(sample, "canary", "stable", urls)

    def _wait_standard(
        self,
        what: str,
        done: Callable[[dict[str, Any]], bool],
        patched: dict[str, Any],
        *,
        settled: bool = True,
    ) -> dict[str, Any]:
        """Poll until the controller has seen our patch (``observedGeneration``) and ``done``.

        ``settled``: also require the ISVC Ready (and, with canaries, ``CanaryPredictorReady``).
        """
        generation = int((patched.get("metadata") or {}).get("generation") or 0)
        deadline = self.clock() + self.cfg.ready_timeout_s
        while True:
            isvc = self._get()
            status = isvc.get("status") or {}
            seen = int(status.get("observedGeneration") or 0) >= generation
            if seen and done(isvc) and (not settled or _is_ready(isvc)):
                return isvc
            if self.clock() > deadline:
                cond = next(
                    (c for c in _conditions(isvc) if c.get("type") == CANARY_CONDITION), None
                )
                said = (
                    f"{CANARY_CONDITION}={cond.get('status')} ({cond.get('reason', '')})"
                    if cond
                    else f"no {CANARY_CONDITION} condition (KServe < 0.20 drops spec.canary)"
                )
                raise HairsegError(
                    f"{self._where}: timed out after {self.cfg.ready_timeout_s:.0f} s waiting "
                    f"for {what}: {said}; observedGeneration "
                    f"{status.get('observedGeneration')} of {generation}; canaryStatuses "
                    f"{status.get('canaryStatuses')}"
                )
            self.sleep(self.cfg.poll_interval_s)


def _canary_name(candidate: ModelRef) -> str:
    return f"v{candidate.version}"


def _canary_ready(isvc: dict[str, Any], name: str, percent: int) -> bool:
    ready = any(
        s.get("name") == name
        and s.get("ready") is True
        and int(s.get("trafficPercent") or 0) == percent
        for s in KServeStandardBackend._canary_statuses(isvc)
    )
    cond = any(
        c.get("type") == CANARY_CONDITION and c.get("status") == "True" for c in _conditions(isvc)
    )
    return ready and cond


def select_backend(
    cfg: KServeConfig, policy: PolicyConfig, models: ModelRegistry, **kwargs: Any
) -> KServeBackend:
    """The backend for the InferenceService's deployment mode (Knative or Standard)."""
    service_url = kwargs.pop("service_url", None)
    kwargs.setdefault("prometheus", PrometheusClient(cfg.prometheus_url))
    probe = KServeBackend(cfg, policy, models, **kwargs)
    mode, source = probe.deployment_mode()
    if mode in KNATIVE_MODES:
        log.info("%s: deployment mode %s (%s): Knative canary", probe._where, mode, source)
        return probe
    if mode in STANDARD_MODES:
        log.info("%s: deployment mode %s (%s): spec.canary", probe._where, mode, source)
        return KServeStandardBackend(cfg, policy, models, service_url=service_url, **kwargs)
    raise HairsegError(
        f"{probe._where} runs in KServe deployment mode {mode!r} ({source}); the rollout "
        f"drives {'/'.join(KNATIVE_MODES + STANDARD_MODES)} (or use --backend local)",
        exit_code=EXIT_USAGE,
    )
