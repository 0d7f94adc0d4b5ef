"""The compiled pipelines: current with the source, strictly valid, wired as designed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from hairseg import __version__
from hairseg.config import load_params
from hairseg.gpu_nodes import GPU_RESOURCE, NODE_LABEL, TOLERATION

ROOT = Path(__file__).resolve().parents[2]
pytest.importorskip("kfp")

from hairseg_components import BASE_IMAGE, image_ref  # noqa: E402
from hairseg_pipelines.compile import PIPELINES, compile_to_text, load_compiled  # noqa: E402
from hairseg_pipelines.training import SECTIONS  # noqa: E402
from hairseg_pipelines.versioning import compiled_path  # noqa: E402


@pytest.fixture(scope="module")
def params() -> dict[str, Any]:
    return load_params(ROOT / "params.yaml")


@pytest.fixture(scope="module")
def training(params: dict[str, Any]) -> tuple[Any, dict[str, Any], str]:
    text = compiled_path("hairseg-training", ROOT).read_text()
    spec, platform = load_compiled(text)
    assert platform is not None
    return spec, platform, text


@pytest.mark.parametrize("name", PIPELINES)
def test_committed_yaml_is_current_with_the_source(name: str, params: dict[str, Any]) -> None:
    """Fails when pipelines/, components/ or params.yaml changed without a recompile."""
    path = compiled_path(name, ROOT)
    assert path.name == f"{name}-v{__version__}.yaml"
    assert path.is_file(), f"{path} missing: run `hairseg pipeline compile`"
    fresh = compile_to_text(name, params, BASE_IMAGE)
    assert path.read_text() == fresh, f"{path} is stale: run `hairseg pipeline compile`"


def test_compile_is_deterministic(params: dict[str, Any]) -> None:
    first = compile_to_text("hairseg-training", params, BASE_IMAGE)
    assert compile_to_text("hairseg-training", params, BASE_IMAGE) == first


@pytest.mark.parametrize("name", PIPELINES)
def test_compiled_yaml_parses_strictly(name: str) -> None:
    spec, platform = load_compiled(compiled_path(name, ROOT).read_text())
    # the GPU placement of the (nested) train step; hairseg-batch runs on CPU nodes
    assert (platform is not None) == (name != "hairseg-batch")
    assert spec.pipeline_info.name == name
    assert spec.pipeline_info.display_name.endswith(__version__)
    assert spec.schema_version == "2.1.0"


def test_strict_parse_rejects_unknown_fields() -> None:
    text = compiled_path("hairseg-training", ROOT).read_text()
    docs = list(yaml.safe_load_all(text))
    docs[0]["pipelineInfo"]["bogus"] = 1
    with pytest.raises(Exception, match="bogus"):
        load_compiled(yaml.safe_dump_all(docs))
    docs = list(yaml.safe_load_all(text))
    executor = next(
        iter(docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"].values())
    )
    executor["nodeSelectr"] = {}
    with pytest.raises(Exception, match="nodeSelectr"):
        load_compiled(yaml.safe_dump_all(docs))


def _tasks(spec: Any) -> dict[str, Any]:
    """Every task in the DAG, nested ones (inside dsl.If) included, by task name."""
    out = dict(spec.root.dag.tasks)
    for component in spec.components.values():
        if component.WhichOneof("implementation") == "dag":
            out.update(component.dag.tasks)
    return out


def test_training_dag_order_and_gate(training: tuple[Any, dict[str, Any], str]) -> None:
    spec, _, _ = training
    tasks = _tasks(spec)
    expected = {
        "generate-data": [],
        "validate-data": ["generate-data"],
        "build-features": ["validate-data"],
        "train-model": ["build-features", "generate-data", "validate-data"],
        "quantize-model": ["generate-data", "train-model"],
        "evaluate-model": ["build-features", "generate-data", "quantize-model"],
        "gate-model": ["evaluate-model", "quantize-model", "train-model"],
    }
    for name, deps in expected.items():
        assert sorted(tasks[name].dependent_tasks) == deps, name
    # register and rollout run only when the gate's bool output is true
    (condition_name,) = [n for n in spec.root.dag.tasks if n.startswith("condition")]
    condition = spec.root.dag.tasks[condition_name]
    assert condition.trigger_policy.condition == (
        "inputs.parameter_values['pipelinechannel--gate-model-Output'] == true"
    )
    inner = spec.components[condition.component_ref.name].dag.tasks
    assert set(inner) == {"register-model", "canary-rollout"}
    assert list(inner["canary-rollout"].dependent_tasks) == ["register-model"]


def test_caching_and_retries(training: tuple[Any, dict[str, Any], str]) -> None:
    spec, _, _ = training
    tasks = _tasks(spec)
    cached = {n for n, t in tasks.items() if t.caching_options.enable_cache}
    assert cached == {"generate-data", "validate-data", "build-features", "quantize-model"}
    retried = {
        n: t.retry_policy.max_retry_count
        for n, t in tasks.items()
        if t.retry_policy.max_retry_count
    }
    assert retried == {"register-model": 2, "canary-rollout": 2}


def test_train_step_requests_a_gpu_on_the_terraform_gpu_pool(
    training: tuple[Any, dict[str, Any], str],
) -> None:
    spec, platform, _ = training
    executors = spec.deployment_spec.fields["executors"].struct_value.fields
    train = executors["exec-train-model"].struct_value.fields["container"].struct_value
    accelerator = train.fields["resources"].struct_value.fields["accelerator"].struct_value
    assert accelerator.fields["resourceType"].string_value == GPU_RESOURCE
    assert accelerator.fields["resourceCount"].string_value == "1"
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(k8s) == {"exec-train-model", "exec-build-features"}
    assert "nodeSelector" not in k8s["exec-build-features"]  # only training goes to the GPU pool
    (config_map,) = k8s["exec-build-features"]["configMapAsEnv"]
    assert config_map["configMapName"] == "hairseg-feast" and config_map["optional"] is True
    assert {e["envVar"] for e in config_map["keyToEnv"]} == {
        "FEAST_REGISTRY_URI",
        "FEAST_REDIS_CONNECTION_STRING",
        "HAIRSEG_FEATURE_SOURCE_ROOT",
    }
    # the node contract the Terraform GPU pools set (tests/infra/test_gpu_node_contract.py)
    assert k8s["exec-train-model"]["nodeSelector"]["labels"] == dict([NODE_LABEL])
    assert k8s["exec-train-model"]["tolerations"] == [TOLERATION]


def test_every_step_runs_in_the_versioned_project_image(
    training: tuple[Any, dict[str, Any], str], params: dict[str, Any]
) -> None:
    spec, _, _ = training
    executors = spec.deployment_spec.fields["executors"].struct_value.fields
    containers = [
        e.struct_value.fields["container"].struct_value
        for e in executors.values()
        if "container" in e.struct_value.fields
    ]
    assert len(containers) == 9
    for container in containers:
        assert container.fields["image"].string_value == f"ghcr.io/hairseg/hairseg:{__version__}"
        command = " ".join(v.string_value for v in container.fields["command"].list_value.values)
        assert "pip install" not in command  # the image has everything
    other = compile_to_text(
        "hairseg-training", params, image_ref("registry.example.com:5000/ml/hairseg")
    )
    assert f"registry.example.com:5000/ml/hairseg:{__version__}" in other
    assert "ghcr.io/hairseg" not in other


def _normalise(value: Any) -> Any:
    """protobuf Struct has only doubles: 12 comes back as 12.0."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    return value


def test_parameters_mirror_params_yaml(
    training: tuple[Any, dict[str, Any], str], params: dict[str, Any]
) -> None:
    from google.protobuf import json_format

    spec, _, _ = training
    inputs = spec.root.input_definitions.parameters
    for section in SECTIONS:
        default = json_format.MessageToDict(inputs[f"{section}_params"].default_value)
        assert default == _normalise(params[section]), section
    assert inputs["mlflow_tracking_uri"].default_value.string_value.startswith("http://mlflow.")
    assert inputs["rollout_backend"].default_value.string_value == "kserve"


def test_dockerfile_builds_the_image_from_the_lock() -> None:
    """Static checks of the root Dockerfile (no Docker engine here): every COPY source
    exists and survives .dockerignore, dependencies come from the lock, the project is
    installed without re-resolving them, and the image has what the steps need."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    ignore = (ROOT / ".dockerignore").read_text().split("\n")
    included = [line[1:] for line in ignore if line.startswith("!")]
    for source in re.findall(r"^COPY (?!--from)(\S+)", dockerfile, flags=re.M):
        assert (ROOT / source).exists(), source
        assert any(
            source == inc or inc.startswith(source.rstrip("/") + "/") or inc == f"{source}/**"
            for inc in included
        ), f"{source} is excluded by .dockerignore"
    assert "uv pip sync" in dockerfile and "requirements.lock" in dockerfile
    assert re.search(r"uv pip install .*--no-deps \.", dockerfile)
    assert "HAIRSEG_GIT_COMMIT=${GIT_COMMIT}" in dockerfile
    # a non-root step must be able to write the launcher's artifact mount points
    assert re.search(r"^USER 1000$", dockerfile, flags=re.M)
    assert "chown 1000:1000 /gcs /minio /s3 /oci" in dockerfile
    # everything the wheel packages must be in the build context
    pyproject = (ROOT / "pyproject.toml").read_text()
    packages = re.search(r"packages = \[(.*?)\]", pyproject, flags=re.S)
    assert packages
    for package in re.findall(r'"([^"]+)"', packages.group(1)):
        assert re.search(rf"^COPY {re.escape(package.split('/')[0])}", dockerfile, flags=re.M) or (
            re.search(rf"^COPY {re.escape(package)} ", dockerfile, flags=re.M)
        ), package


def test_drift_pipeline_retrains_behind_the_drift_decision() -> None:
    spec, platform = load_compiled(compiled_path("hairseg-drift", ROOT).read_text())
    tasks = spec.root.dag.tasks
    importers = [n for n, t in tasks.items() if n.startswith("importer")]
    assert len(importers) == 2
    (condition_name,) = [n for n in tasks if n.startswith("condition")]
    condition = tasks[condition_name]
    assert condition.trigger_policy.condition == (
        "inputs.parameter_values['pipelinechannel--drift-check-Output'] == true"
    )
    (retrain,) = spec.components[condition.component_ref.name].dag.tasks.values()
    assert retrain.task_info.name == "retrain"
    nested = spec.components[retrain.component_ref.name].dag.tasks
    assert {"generate-data", "train-model", "gate-model"} <= set(nested)
    # the nested training step keeps its GPU placement
    assert platform is not None
    assert "exec-train-model" in platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert spec.root.dag.outputs.parameters["Output"].value_from_parameter.producer_subtask == (
        "drift-check"
    )


def test_batch_pipeline_shards_in_a_bounded_parallel_for(params: dict[str, Any]) -> None:
    from google.protobuf import json_format
    from hairseg_pipelines.batch import PARALLELISM

    spec, _ = load_compiled(compiled_path("hairseg-batch", ROOT).read_text())
    tasks = spec.root.dag.tasks
    assert set(tasks) == {"list-batch-inputs", "for-loop-1", "aggregate-predictions"}, set(tasks)
    loop = tasks["for-loop-1"]
    assert loop.iterator_policy.parallelism_limit == PARALLELISM
    assert loop.parameter_iterator.items.input_parameter.endswith("list-batch-inputs-Output")
    (shard_task,) = spec.components[loop.component_ref.name].dag.tasks.values()
    assert shard_task.task_info.name == "predict shard"
    collected = tasks["aggregate-predictions"].inputs.artifacts["shards"]
    assert collected.task_output_artifact.producer_task == "for-loop-1"
    assert spec.root.dag.outputs.parameters["Output"].value_from_parameter.producer_subtask == (
        "aggregate-predictions"
    )
    inputs = spec.root.input_definitions.parameters
    default = json_format.MessageToDict(inputs["batch_params"].default_value)
    assert default == _normalise(params["batch"])
    assert not inputs["src"].HasField("default_value")  # required
