"""The training pipeline ``hairseg-training``: the DAG ``dvc repro`` runs, as KFP steps.

data → validate → features → train (GPU) → quantize → evaluate → gate
    → if the gate passed: register → canary rollout

Every step is a component from :mod:`hairseg_components` running the same ``hairseg``
command / core function as the matching DVC stage. Parameters mirror ``params.yaml``:
one ``dict`` per section (``train_params`` = section ``train``; defaults are the file's
values at compile time), plus where MLflow and the Feast repo are and the git commit
(lineage).
"""

from collections.abc import Mapping
from typing import Any

from hairseg_components import BASE_IMAGE
from hairseg_components.data import generate_data, validate_data
from hairseg_components.features import build_features
from hairseg_components.lifecycle import (
    evaluate_model,
    gate_model,
    quantize_model,
    register_model,
    train_model,
)
from hairseg_components.rollout import canary_rollout
from kfp import dsl, kubernetes

from hairseg.gpu_nodes import GPU_RESOURCE, NODE_LABEL, TOLERATION
from hairseg_pipelines.versioning import (
    PIPELINE_VERSION,
    TRAINING_PIPELINE,
    pipeline,
    section_defaults,
    step,
)

__all__ = [
    "CLUSTER_FEAST_REPO",
    "CLUSTER_MLFLOW_URI",
    "FEAST_CONFIG_MAP",
    "SECTIONS",
    "build_training_pipeline",
]

# The in-cluster MLflow service of the ml-platform Terraform module (output `mlflow`).
CLUSTER_MLFLOW_URI = "http://mlflow.mlflow.svc.cluster.local:5000"
# The Feast repo inside the project image (Dockerfile) and its cluster configuration.
CLUSTER_FEAST_REPO = "/opt/hairseg/feature_repo"
CLUSTER_FEAST_CONFIG = "feature_store.cluster.yaml"
# ConfigMap (pipelines namespace) with the Feast settings that config reads from the env.
FEAST_CONFIG_MAP = "hairseg-feast"
# params.yaml sections that become pipeline parameters ``<section>_params``.
SECTIONS = (
    "data",
    "validate",
    "features",
    "model",
    "train",
    "quantize",
    "evaluate",
    "priors",
    "gate",
    "register",
    "rollout",
)


def build_training_pipeline(
    params: Mapping[str, Any],
    *,
    image: str = BASE_IMAGE,
    tracking_uri: str = CLUSTER_MLFLOW_URI,
    feast_repo: str = CLUSTER_FEAST_REPO,
    feast_config: str = CLUSTER_FEAST_CONFIG,
    rollout_backend: str = "kserve",
) -> Any:
    """The ``hairseg-training`` pipeline with defaults from ``params`` (``params.yaml``)."""
    d = section_defaults(params, SECTIONS)

    # KFP reads each parameter's default (a params.yaml section) from the signature.
    @pipeline(
        TRAINING_PIPELINE,
        "demo data -> validate (Great Expectations) -> Feast features -> train (GPU) -> "
        "quantize (ONNX int8) -> evaluate -> gate -> (gate passed) register in MLflow -> "
        "canary rollout. Same commands as `dvc repro`.",
    )
    def hairseg_training(
        data_params: dict = d["data"],
        validate_params: dict = d["validate"],
        features_params: dict = d["features"],
        model_params: dict = d["model"],
        train_params: dict = d["train"],
        quantize_params: dict = d["quantize"],
        evaluate_params: dict = d["evaluate"],
        priors_params: dict = d["priors"],
        gate_params: dict = d["gate"],
        register_params: dict = d["register"],
        rollout_params: dict = d["rollout"],
        rollout_backend: str = rollout_backend,
        mlflow_tracking_uri: str = tracking_uri,
        feast_repo: str = feast_repo,
        feast_config: str = feast_config,
        git_commit: str = "",
    ) -> None:
        data = step(generate_data(data_params=data_params), image, "data", cache=True)
        dataset = data.outputs["dataset"]
        validate = step(
            validate_data(
                dataset=dataset, data_params=data_params, validate_params=validate_params
            ),
            image,
            "validate",
            cache=True,
        )
        features = step(
            build_features(
                image_stats=validate.outputs["image_stats"],
                features_params=features_params,
                feast_repo=feast_repo,
                feast_config=feast_config,
            ),
            image,
            "features",
            cache=True,
        )
        # Where the cluster Feast config (feature_store.cluster.yaml) finds its registry,
        # Redis and Parquet sources; optional, so a cluster without it fails in Feast with
        # the variable's name rather than at pod creation.
        kubernetes.use_config_map_as_env(
            features,
            config_map_name=FEAST_CONFIG_MAP,
            config_map_key_to_env={
                "FEAST_REGISTRY_URI": "FEAST_REGISTRY_URI",
                "FEAST_REDIS_CONNECTION_STRING": "FEAST_REDIS_CONNECTION_STRING",
                "HAIRSEG_FEATURE_SOURCE_ROOT": "HAIRSEG_FEATURE_SOURCE_ROOT",
            },
            optional=True,
        )
        # Training reads the champion from MLflow (init) and logs a run: not cached.
        train = step(
            train_model(
                dataset=dataset,
                model_params=model_params,
                train_params=train_params,
                mlflow_tracking_uri=mlflow_tracking_uri,
            ),
            image,
            "train",
            cache=False,
        ).after(validate, features)
        # On a node of the Terraform GPU pools (hairseg.gpu_nodes: the node contract).
        train.set_accelerator_type(GPU_RESOURCE).set_accelerator_limit(1)
        # Fits the smallest GPU nodes the Terraform modules default to (g4dn.xlarge,
        # n1-standard-4 + T4, NC4as_T4_v3: 4 vCPU, 15-28 GiB) next to their daemon sets.
        train.set_cpu_request("2").set_memory_request("8G")
        kubernetes.add_node_selector(train, label_key=NODE_LABEL[0], label_value=NODE_LABEL[1])
        kubernetes.add_toleration(train, **TOLERATION)
        quantize = step(
            quantize_model(
                dataset=dataset,
                model=train.outputs["model"],
                model_params=model_params,
                train_params=train_params,
                quantize_params=quantize_params,
            ),
            image,
            "quantize",
            cache=True,
        )
        # Compares with the current champion (MLflow): not cached.
        evaluate = step(
            evaluate_model(
                dataset=dataset,
                eval_slices=features.outputs["eval_slices"],
                onnx_model=quantize.outputs["onnx_model"],
                evaluate_params=evaluate_params,
                priors_params=priors_params,
                mlflow_tracking_uri=mlflow_tracking_uri,
            ),
            image,
            "evaluate",
            cache=False,
        )
        gate = step(
            gate_model(
                evaluation=evaluate.outputs["evaluation"],
                train_files=train.outputs["train_files"],
                quantize_files=quantize.outputs["quantize_files"],
                onnx_model=quantize.outputs["onnx_model"],
                gate_params=gate_params,
            ),
            image,
            "gate",
            cache=False,
        )
        # kfp.local (2.17) resolves a condition on a component's single return value
        # ("Output") but not on a named output, so the gate returns one bool.
        with dsl.If(gate.outputs["Output"] == True, name="gate-passed"):  # noqa: E712
            register = step(
                register_model(
                    dataset=dataset,
                    onnx_model=quantize.outputs["onnx_model"],
                    evaluation=evaluate.outputs["evaluation"],
                    gate_result=gate.outputs["gate_result"],
                    train_files=train.outputs["train_files"],
                    model_params=model_params,
                    train_params=train_params,
                    quantize_params=quantize_params,
                    register_params=register_params,
                    mlflow_tracking_uri=mlflow_tracking_uri,
                    git_commit=git_commit,
                    pipeline_name=TRAINING_PIPELINE,
                    pipeline_version=PIPELINE_VERSION,
                    pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                ),
                image,
                "register",
                cache=False,
            )
            register.set_retry(num_retries=2, backoff_duration="30s", backoff_factor=2.0)
            rollout = step(
                canary_rollout(
                    dataset=dataset,
                    model_uri=register.outputs["Output"],
                    rollout_params=rollout_params,
                    rollout_backend=rollout_backend,
                    mlflow_tracking_uri=mlflow_tracking_uri,
                ),
                image,
                "canary rollout",
                cache=False,
            )
            # A retry resumes the persisted rollout state (same candidate) where it stopped.
            rollout.set_retry(num_retries=2, backoff_duration="60s", backoff_factor=2.0)

    return hairseg_training
