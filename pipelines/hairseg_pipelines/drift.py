"""The drift pipeline ``hairseg-drift``: inference statistics vs training statistics.

reference (training image stats, parquet) + current (inference log) → drift check; the
Evidently report renders in the UI and the step returns ``drifted`` (a scheduler or
recurring run acts on it, as on ``hairseg monitor drift``'s exit code 3).
"""

from collections.abc import Mapping
from typing import Any

from hairseg_components import BASE_IMAGE
from hairseg_components.monitoring import drift_check
from kfp import dsl

from hairseg_pipelines.versioning import DRIFT_PIPELINE, PIPELINE_VERSION

__all__ = ["SECTIONS", "build_drift_pipeline"]

SECTIONS = ("monitor",)


def build_drift_pipeline(params: Mapping[str, Any], *, image: str = BASE_IMAGE) -> Any:
    """The ``hairseg-drift`` pipeline with ``monitor`` defaults from ``params``."""
    monitor_defaults = dict(params.get("monitor") or {})

    @dsl.pipeline(
        name=DRIFT_PIPELINE,
        display_name=f"hairseg drift {PIPELINE_VERSION}",
        description=(
            f"hairseg {PIPELINE_VERSION}: Evidently drift check of inference image statistics "
            "against the training statistics (hairseg monitor drift)."
        ),
    )
    def hairseg_drift(
        reference_stats_uri: str,
        inference_log_uri: str,
        monitor_params: dict = monitor_defaults,
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
        drift = (
            drift_check(
                reference_stats=reference.output,
                current_log=current.output,
                monitor_params=monitor_params,
            )
            .set_container_image(image)
            .set_display_name("drift check")
            .set_caching_options(False)  # the inference log keeps growing under one URI
        )
        return drift.outputs["Output"]

    return hairseg_drift
