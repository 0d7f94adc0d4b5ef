"""The drift pipeline ``hairseg-drift``: inference statistics vs training statistics, and
retraining when they drifted.

reference (training image stats, parquet) + current (inference log) → drift check
    → if drifted: the whole ``hairseg-training`` pipeline (nested, same parameters)

The Evidently report renders in the UI; the pipeline returns ``drifted``. Scheduled as a
recurring run, it is the cluster form of the cron line ``hairseg monitor drift`` (exit 3)
→ ``dvc repro``.
"""

from collections.abc import Mapping
from typing import Any

from hairseg_components import BASE_IMAGE
from hairseg_components.monitoring import drift_check
from kfp import dsl

from hairseg_pipelines.training import SECTIONS as TRAINING_SECTIONS
from hairseg_pipelines.training import build_training_pipeline
from hairseg_pipelines.versioning import DRIFT_PIPELINE, pipeline, section_defaults, step

__all__ = ["SECTIONS", "build_drift_pipeline"]

SECTIONS = ("monitor", *TRAINING_SECTIONS)


def build_drift_pipeline(params: Mapping[str, Any], *, image: str = BASE_IMAGE) -> Any:
    """The ``hairseg-drift`` pipeline with defaults from ``params`` (``params.yaml``)."""
    d = section_defaults(params, SECTIONS)
    training = build_training_pipeline(params, image=image)
    t = {name: spec.default for name, spec in training.component_spec.inputs.items()}

    @pipeline(
        DRIFT_PIPELINE,
        "Evidently drift check of inference image statistics against the training "
        "statistics (hairseg monitor drift); when they drifted, the hairseg-training "
        "pipeline runs.",
    )
    def hairseg_drift(
        reference_stats_uri: str,
        inference_log_uri: str,
        monitor_params: dict = d["monitor"],
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
        rollout_backend: str = t["rollout_backend"],
        mlflow_tracking_uri: str = t["mlflow_tracking_uri"],
        feast_repo: str = t["feast_repo"],
        feast_config: str = t["feast_config"],
        git_commit: str = "",
    ) -> bool:
        reference = dsl.importer(
            artifact_uri=reference_stats_uri,
            artifact_class=dsl.Dataset,
            reimport=False,
        ).set_display_name("reference stats")
        current = dsl.importer(
            artifact_uri=inference_log_uri,
            artifact_class=dsl.Dataset,
            reimport=True,
        ).set_display_name("inference log")
        drift = step(
            drift_check(
                reference_stats=reference.output,
                current_log=current.output,
                monitor_params=monitor_params,
            ),
            image,
            "drift check",
            cache=False,  # the inference log keeps growing under one URI
        )
        with dsl.If(drift.outputs["Output"] == True, name="drifted"):  # noqa: E712
            training(
                data_params=data_params,
                validate_params=validate_params,
                features_params=features_params,
                model_params=model_params,
                train_params=train_params,
                quantize_params=quantize_params,
                evaluate_params=evaluate_params,
                priors_params=priors_params,
                gate_params=gate_params,
                register_params=register_params,
                rollout_params=rollout_params,
                rollout_backend=rollout_backend,
                mlflow_tracking_uri=mlflow_tracking_uri,
                feast_repo=feast_repo,
                feast_config=feast_config,
                git_commit=git_commit,
            ).set_display_name("retrain")
        return drift.outputs["Output"]

    return hairseg_drift
