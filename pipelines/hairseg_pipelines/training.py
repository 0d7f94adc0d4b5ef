"""The training pipeline ``hairseg-training``: the DAG ``dvc repro`` runs, as KFP steps.

data → validate → features → train → quantize → evaluate → gate
    → if the gate passed: register → canary rollout

Every step is a component from :mod:`hairseg_components` calling the same core function
as the matching ``hairseg`` command / DVC stage. Parameters mirror ``params.yaml``: one
``dict`` per section (defaults are that section at compile time), plus where the MLflow
server and Feast repo are.
"""


from collections.abc import Mapping
from typing import Any

from hairseg_components import BASE_IMAGE
from hairseg_components.data import generate_data
from kfp import dsl

from hairseg_pipelines.versioning import PIPELINE_VERSION, TRAINING_PIPELINE

__all__ = ["CLUSTER_MLFLOW_URI", "SECTIONS", "build_training_pipeline"]

# The in-cluster MLflow service the ml-platform Terraform module installs
# (output `mlflow.tracking_uri`).
CLUSTER_MLFLOW_URI = "http://mlflow.mlflow.svc.cluster.local:5000"

# params.yaml sections that become pipeline parameters (``<section>_params``).
SECTIONS = ("data",)


def _defaults(params: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: dict(params.get(name) or {}) for name in SECTIONS}


def _step(task: Any, image: str, display_name: str, *, cache: bool) -> Any:
    """Image, name and caching every task gets."""
    return task.set_container_image(image).set_display_name(display_name).set_caching_options(cache)


def build_training_pipeline(
    params: Mapping[str, Any],
    *,
    image: str = BASE_IMAGE,
    tracking_uri: str = CLUSTER_MLFLOW_URI,
) -> Any:
    """The ``hairseg-training`` pipeline with defaults from ``params`` (``params.yaml``)."""
    d = _defaults(params)

    @dsl.pipeline(
        name=TRAINING_PIPELINE,
        display_name=f"hairseg training {PIPELINE_VERSION}",
        description=(
            f"hairseg {PIPELINE_VERSION}: demo data -> validate -> features -> train -> quantize "
            "-> evaluate -> gate -> (gate passed) register -> canary rollout. Same core "
            "functions as `dvc repro`."
        ),
    )
    def hairseg_training(
        data_params: dict = d["data"],
        mlflow_tracking_uri: str = tracking_uri,
        git_commit: str = "",
    ) -> None:
        data = _step(generate_data(data_params=data_params), image, "data", cache=True)

    return hairseg_training
