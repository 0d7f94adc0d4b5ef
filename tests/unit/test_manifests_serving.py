"""The predictor's kustomize manifests and Dockerfile, validated statically (no cluster).

- Rendering: ``kubectl kustomize`` when it is installed; always also our own composer,
  which implements exactly the kustomize features the manifests use (resources,
  namespace, strategic-merge patches on custom resources: maps merge, lists replace;
  JSON 6902 patches) and fails on anything else. Where both run, they must agree.
- Core objects (ServiceAccount, ConfigMap) against the Kubernetes OpenAPI schema with
  ``kubernetes-validate --strict``.
- The InferenceService and ServingRuntime field by field against the kserve SDK's model
  classes (and the Kubernetes client's for embedded core types): every key must be a
  known attribute, and the model must round-trip to the same document.
- Our own rules: Serverless mode (Standard in overlays/standard), probes on the served port, the runtime and model format
  line up, the mounted params plus the runtime's args parse (through the container's own
  parser) into the ``ServeConfig`` the pod serves, the ConfigMap is params.yaml's ``serve:``
  (generated), GPU limits, node selector and toleration (the node contract) in the GPU
  overlay only.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kserve
import kubernetes.client.models as k8s_models
import kubernetes_validate
import pytest
import yaml
from hairseg_serving.configmap import render
from hairseg_serving.settings import ServeConfig, load_serve_config

from hairseg.config import load_params, section
from hairseg.gpu_nodes import GPU_RESOURCE, NODE_LABEL, TOLERATION

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "serving" / "manifests"
TARGETS = ["base", "overlays/cpu", "overlays/gpu", "overlays/standard"]
K8S_VERSION = "1.31.0"
SUPPORTED_KUSTOMIZATION_KEYS = {"apiVersion", "kind", "namespace", "resources", "patches"}


# -- a small kustomize -------------------------------------------------------------------


def _merge(base: Any, patch: Any) -> Any:
    """Strategic merge as kustomize applies it to custom resources (no merge keys)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            elif key in out:
                out[key] = _merge(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
        return out
    return copy.deepcopy(patch)  # scalars and lists are replaced


def _pointer(path: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in path.lstrip("/").split("/")]


def _json6902(doc: dict, ops: list[dict]) -> dict:
    doc = copy.deepcopy(doc)
    for op in ops:
        *parents, last = _pointer(op["path"])
        node: Any = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        key: Any = int(last) if isinstance(node, list) and last != "-" else last
        if op["op"] == "replace":
            node[key]
            node[key] = op["value"]
        elif op["op"] == "add":
            if isinstance(node, list):
                node.insert(len(node) if last == "-" else key, op["value"])
            else:
                node[key] = op["value"]
        elif op["op"] == "remove":
            del node[key]
        else:
            raise AssertionError(f"JSON patch op {op['op']!r} is not implemented here")
    return doc


def _matches(doc: dict, target: dict) -> bool:
    group, _, version = doc["apiVersion"].rpartition("/")
    return (
        target.get("kind", doc["kind"]) == doc["kind"]
        and target.get("name", doc["metadata"]["name"]) == doc["metadata"]["name"]
        and target.get("group", group) == group
        and target.get("version", version) == version
    )


def compose(directory: Path) -> list[dict]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unsupported = set(kustomization) - SUPPORTED_KUSTOMIZATION_KEYS
    assert not unsupported, f"{directory}: the test composer does not implement {unsupported}"
    docs: list[dict] = []
    for resource in kustomization.get("resources", []):
        path = directory / resource
        if path.is_dir():
            docs += compose(path)
        else:
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    for patch in kustomization.get("patches", []):
        if "path" in patch:
            smp = yaml.safe_load((directory / patch["path"]).read_text())
            assert "." in smp["apiVersion"].split("/")[0], (
                "strategic merge of built-in kinds (merge keys) is not implemented here"
            )
            target = {"kind": smp["kind"], "name": smp["metadata"]["name"]}
            hits = [i for i, d in enumerate(docs) if _matches(d, target)]
            assert len(hits) == 1, f"patch {patch['path']} matches {len(hits)} resources"
            docs[hits[0]] = _merge(docs[hits[0]], smp)
        else:
            ops = yaml.safe_load(patch["patch"])
            hits = [i for i, d in enumerate(docs) if _matches(d, patch["target"])]
            assert hits, f"JSON patch target {patch['target']} matches nothing"
            for i in hits:
                docs[i] = _json6902(docs[i], ops)
    if "namespace" in kustomization:
        for doc in docs:
            doc["metadata"]["namespace"] = kustomization["namespace"]
    return docs


def _kubectl_kustomize(directory: Path) -> list[dict] | None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return None
    proc = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60
    )
    if proc.returncode != 0:
        return None
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def _key(doc: dict) -> tuple[str, str]:
    return doc["kind"], doc["metadata"]["name"]


@pytest.fixture(scope="module", params=TARGETS)
def rendered(request) -> tuple[str, dict[tuple[str, str], dict]]:
    docs = compose(MANIFESTS / request.param)
    return request.param, {_key(d): d for d in docs}


def test_composer_agrees_with_kubectl_kustomize():
    compared = 0
    for target in TARGETS:
        expected = _kubectl_kustomize(MANIFESTS / target)
        if expected is None:
            continue
        ours = compose(MANIFESTS / target)
        assert sorted(ours, key=_key) == sorted(expected, key=_key), target
        compared += 1
    if compared == 0:
        pytest.skip("kubectl (kustomize) is not installed; rendered with the test composer only")


# -- schema validation ---------------------------------------------------------------------


def test_core_objects_pass_strict_kubernetes_schema(rendered):
    _, docs = rendered
    core = [
        d
        for d in docs.values()
        if "." not in d["apiVersion"].split("/")[0] or d["apiVersion"] == "v1"
    ]
    assert {d["kind"] for d in core} >= {"ServiceAccount", "ConfigMap"}
    for doc in core:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def _model_class(name: str) -> type:
    cls = getattr(kserve, name, None) or getattr(k8s_models, name, None)
    assert cls is not None, f"no model class {name}"
    return cls


def strict_load(data: Any, type_name: str, where: str) -> Any:
    """Deserialize like the SDK's ApiClient, but fail on unknown keys and wrong types."""
    if data is None:
        return None
    if type_name.startswith("list["):
        assert isinstance(data, list), f"{where}: expected a list"
        return [strict_load(v, type_name[5:-1], f"{where}[{i}]") for i, v in enumerate(data)]
    if type_name.startswith("dict("):
        value_type = re.match(r"dict\(([^,]*), (.*)\)", type_name).group(2)
        assert isinstance(data, dict), f"{where}: expected a mapping"
        return {k: strict_load(v, value_type, f"{where}.{k}") for k, v in data.items()}
    if type_name in ("str", "int", "bool", "float"):
        expected = {"str": str, "int": int, "bool": bool, "float": (int, float)}[type_name]
        assert isinstance(data, expected) and not (type_name == "int" and isinstance(data, bool)), (
            f"{where}: {data!r} is not {type_name}"
        )
        return data
    if type_name == "object":
        return data
    cls = _model_class(type_name)
    assert isinstance(data, dict), f"{where}: expected an object for {type_name}"
    by_json = {json_key: attr for attr, json_key in cls.attribute_map.items()}
    unknown = sorted(set(data) - set(by_json))
    assert not unknown, f"{where}: unknown field(s) {unknown} for {type_name}"
    kwargs = {
        by_json[k]: strict_load(v, cls.openapi_types[by_json[k]], f"{where}.{k}")
        for k, v in data.items()
    }
    return cls(**kwargs)


@pytest.mark.parametrize(
    ("kind", "model"),
    [("InferenceService", "V1beta1InferenceService"), ("ServingRuntime", "V1alpha1ServingRuntime")],
)
def test_kserve_resources_match_the_sdk_models(rendered, kind, model):
    _, docs = rendered
    (doc,) = [d for d in docs.values() if d["kind"] == kind]
    obj = strict_load(doc, model, kind)
    assert _drop_sdk_defaults(kserve.ApiClient().sanitize_for_serialization(obj), doc) == doc


def _drop_sdk_defaults(value: Any, doc: Any) -> Any:
    """The SDK fills some required container fields with "" (V1beta1ModelSpec.name)."""
    if isinstance(value, dict) and isinstance(doc, dict):
        return {
            k: _drop_sdk_defaults(v, doc.get(k))
            for k, v in value.items()
            if not (k not in doc and v == "")
        }
    if isinstance(value, list) and isinstance(doc, list) and len(value) == len(doc):
        return [_drop_sdk_defaults(v, d) for v, d in zip(value, doc, strict=True)]
    return value


def test_strict_load_rejects_a_misspelt_field():
    with pytest.raises(AssertionError, match=r"unknown field\(s\) \['minReplica'\]"):
        strict_load({"minReplica": 1}, "V1beta1PredictorSpec", "spec.predictor")


# -- our own rules -------------------------------------------------------------------------


def test_inference_service_contract(rendered, tmp_path):
    target, docs = rendered
    isvc = docs["InferenceService", "hairseg"]
    runtime = docs["ServingRuntime", "hairseg-onnx"]
    annotations = isvc["metadata"]["annotations"]
    predictor = isvc["spec"]["predictor"]
    assert 1 <= predictor["minReplicas"] <= predictor["maxReplicas"]
    assert predictor["scaleTarget"] > 0
    if target == "overlays/standard":
        # Plain Deployment + HPA: no Knative knobs, and the rollout uses spec.canary.
        assert annotations["serving.kserve.io/deploymentMode"] == "Standard"
        assert predictor["scaleMetric"] in {"cpu", "memory"}
        assert "canaryTrafficPercent" not in predictor and "canary" not in isvc["spec"]
        assert not any(k.startswith("autoscaling.knative.dev/") for k in annotations)
        assert annotations["serving.kserve.io/enable-prometheus-scraping"] == "true"
    else:
        assert annotations["serving.kserve.io/deploymentMode"] == "Serverless"
        assert predictor["scaleMetric"] in {"concurrency", "rps", "cpu", "memory"}
        assert 0 <= predictor["canaryTrafficPercent"] <= 100
    assert predictor["serviceAccountName"] in {
        name for kind, name in docs if kind == "ServiceAccount"
    }
    model = predictor["model"]
    assert model["storageUri"].startswith(("s3://", "gs://", "https://"))
    assert model["runtime"] == runtime["metadata"]["name"]
    formats = {(f["name"], f["version"]) for f in runtime["spec"]["supportedModelFormats"]}
    assert (model["modelFormat"]["name"], model["modelFormat"]["version"]) in formats
    (container,) = runtime["spec"]["containers"]
    assert container["name"] == "kserve-container"
    port = container["ports"][0]["containerPort"]
    assert f"--http_port={port}" in container["args"] and "--model=/mnt/models" in container["args"]
    assert "--host=0.0.0.0" in container["args"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": port}
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["securityContext"]["runAsNonRoot"] is True
    assert not container["image"].endswith(":latest")
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"] for v in runtime["spec"]["volumes"]}
    assert set(mounts) <= volumes
    grace = isvc["spec"]["predictor"]["terminationGracePeriodSeconds"]
    assert (
        mounts["serve-params"] == "/etc/hairseg"
        and "--params=/etc/hairseg/params.yaml" in container["args"]
    )
    cfg = served_config(docs, tmp_path)
    assert cfg.host == "0.0.0.0" and cfg.port == port
    assert cfg.grace_period_s < grace  # drain before the kubelet kills the pod
    assert str(Path(cfg.inference_log_dir)).startswith(mounts["inference-log"])
    assert cfg.feature_repo == "/app/feature_repo"  # serving/Dockerfile copies the repo there


def served_config(docs: dict[tuple[str, str], dict], tmp_path: Path) -> ServeConfig:
    """What the pod serves: the mounted ConfigMap with the ServingRuntime's args on top,
    through the container's own parser (``python -m hairseg_serving``)."""
    from hairseg_serving.__main__ import build_parser
    from hairseg_serving.flags import argparse_overrides

    params = tmp_path / "params.yaml"
    params.write_text(docs["ConfigMap", "hairseg-serve-params"]["data"]["params.yaml"])
    args = docs["ServingRuntime", "hairseg-onnx"]["spec"]["containers"][0]["args"]
    argv = [a.replace("{{.Name}}", "hairseg") for a in args] + [f"--params={params}"]
    parsed = build_parser().parse_args(argv)
    return load_serve_config(parsed.params, **argparse_overrides(parsed))  # strict: no unknown keys


def test_configmap_is_generated_from_params_yaml():
    """One source: the ConfigMap's serve: is params.yaml's (python -m hairseg_serving.configmap)."""
    text = (MANIFESTS / "base" / "configmap.yaml").read_text()
    assert text == render((REPO / "params.yaml").read_text()), (
        "serving/manifests/base/configmap.yaml is stale: run python -m hairseg_serving.configmap"
    )
    mounted = yaml.safe_load(yaml.safe_load(text)["data"]["params.yaml"])
    assert mounted == {"serve": load_params(REPO / "params.yaml")["serve"]}


def test_gpu_only_in_the_gpu_overlay(rendered):
    target, docs = rendered
    predictor = docs["InferenceService", "hairseg"]["spec"]["predictor"]
    resources = predictor["model"]["resources"]
    image = docs["ServingRuntime", "hairseg-onnx"]["spec"]["containers"][0]["image"]
    if target == "overlays/gpu":
        assert resources["limits"][GPU_RESOURCE] == "1"
        assert resources["requests"][GPU_RESOURCE] == resources["limits"][GPU_RESOURCE]
        assert predictor["nodeSelector"] == dict([NODE_LABEL])  # the node contract
        assert predictor["tolerations"] == [TOLERATION]
        assert image.endswith("-gpu")
        args = docs["ServingRuntime", "hairseg-onnx"]["spec"]["containers"][0]["args"]
        assert "--max_batch_size=16" in args and "--model=/mnt/models" in args
        # The rest of the base survives the patch.
        assert predictor["model"]["storageUri"] and predictor["minReplicas"] >= 1
    else:
        assert GPU_RESOURCE not in str(resources)
        assert "nodeSelector" not in predictor and "tolerations" not in predictor
        assert not image.endswith("-gpu")


def _capacity_plan() -> dict[str, dict]:
    """The ``capacity-plan`` block of docs/CAPACITY.md: what each target must carry."""
    text = (REPO / "docs" / "CAPACITY.md").read_text()
    block = text.split("# capacity-plan:", 1)[1].split("```", 1)[0]
    return yaml.safe_load(block.split("\n", 1)[1])


def test_autoscaling_matches_the_capacity_plan(rendered):
    """docs/CAPACITY.md derives pods, concurrency target and shedding limit from the
    measured per-core throughput; the rendered manifests must say the same."""
    target, docs = rendered
    name = {"base": "base", "overlays/cpu": "cpu", "overlays/gpu": "gpu"}.get(target)
    if name is None:
        pytest.skip(f"{target}: an HPA on CPU, not the Knative plan of docs/CAPACITY.md")
    plan = _capacity_plan()[name]
    isvc = docs["InferenceService", "hairseg"]
    predictor = isvc["spec"]["predictor"]
    for key in ("scaleMetric", "scaleTarget", "minReplicas", "maxReplicas"):
        assert predictor[key] == plan[key], (target, key)
    annotations = isvc["metadata"]["annotations"]
    assert (
        annotations["autoscaling.knative.dev/target-utilization-percentage"]
        == plan["targetUtilization"]
    )
    assert "containerConcurrency" not in predictor  # our pods shed; no queue-proxy queue
    params = yaml.safe_load(docs["ConfigMap", "hairseg-serve-params"]["data"]["params.yaml"])
    cfg = section(params, "serve", ServeConfig)
    args = docs["ServingRuntime", "hairseg-onnx"]["spec"]["containers"][0]["args"]
    workers = [int(a.split("=", 1)[1]) for a in args if a.startswith("--workers=")]
    assert (workers[-1] if workers else cfg.workers) == plan["workers"], target
    assert cfg.max_inflight == plan["max_inflight"], target


# -- Dockerfile ------------------------------------------------------------------------------


def test_dockerfile_is_multistage_non_root_and_installs_from_the_lock():
    text = (REPO / "serving" / "Dockerfile").read_text()
    lines = [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")
    ]
    froms = [ln for ln in lines if ln.upper().startswith("FROM ")]
    assert len(froms) >= 2, "multi-stage build expected"
    assert all(":latest" not in f for f in froms)
    final_stage = text[text.rfind("\nFROM ") :]
    user = re.findall(r"^USER\s+(\S+)", final_stage, re.M)
    assert user and user[-1] not in {"root", "0"}
    assert re.search(r"--constraint\s+requirements\.lock", text) and ".[serving]" in text
    assert 'CMD ["python", "-m", "hairseg_serving"]' in text
    assert "EXPOSE 8080" in text
    for src in re.findall(r"^COPY\s+(?!--from)(?:--\S+\s+)*(.+)\s+\S+$", text, re.M):
        for part in src.split():
            assert (REPO / part).exists(), f"COPY source {part} does not exist"
