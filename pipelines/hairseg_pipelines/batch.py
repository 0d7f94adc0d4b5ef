"""The batch-prediction pipeline ``hairseg-batch``: ``hairseg predict`` over shards.

list inputs → N shards → ``dsl.ParallelFor`` (at most :data:`PARALLELISM` at once):
predict one shard each → aggregate the shards' tables into one artifact

The aggregate step's Markdown (counts, failure kinds, hair-coverage histogram, failed
inputs) and Metrics render in the UI; the pipeline returns the number of failed inputs.
A bad input is a failed row, never a failed step.
"""

from collections.abc import Mapping
from typing import Any

from hairseg_components import BASE_IMAGE
from hairseg_components.batch import aggregate_predictions, list_batch_inputs, predict_shard
from kfp import dsl

from hairseg_pipelines.training import CLUSTER_MLFLOW_URI
from hairseg_pipelines.versioning import BATCH_PIPELINE, pipeline, section_defaults, step

__all__ = ["PARALLELISM", "SECTIONS", "build_batch_pipeline"]

SECTIONS = ("batch",)
# Shard steps running at once (a compile-time setting of dsl.ParallelFor).
PARALLELISM = 4


def build_batch_pipeline(params: Mapping[str, Any], *, image: str = BASE_IMAGE) -> Any:
    """The ``hairseg-batch`` pipeline with defaults from ``params`` (``params.yaml``)."""
    d = section_defaults(params, SECTIONS)

    @pipeline(
        BATCH_PIPELINE,
        "batch prediction (hairseg predict) over a folder, glob or bucket, in n_shards "
        f"shards, {PARALLELISM} at a time; one results table and a summary.",
    )
    def hairseg_batch(
        src: str,
        model_uri: str = "models:/hairseg@champion",
        n_shards: int = 8,
        batch_params: dict = d["batch"],
        mlflow_tracking_uri: str = CLUSTER_MLFLOW_URI,
    ) -> int:
        listed = step(
            list_batch_inputs(src=src, n_shards=n_shards),
            image,
            "list inputs",
            cache=False,  # the folder or bucket may have changed
        )
        with dsl.ParallelFor(listed.outputs["Output"], parallelism=PARALLELISM) as shard:
            predicted = step(
                predict_shard(
                    listing=listed.outputs["listing"],
                    shard=shard,
                    model_uri=model_uri,
                    batch_params=batch_params,
                    mlflow_tracking_uri=mlflow_tracking_uri,
                ),
                image,
                "predict shard",
                cache=False,  # models:/…@alias may point elsewhere now
            )
            predicted.set_cpu_request("2").set_memory_request("4G")
        aggregated = step(
            aggregate_predictions(shards=dsl.Collected(predicted.outputs["predictions"])),
            image,
            "aggregate",
            cache=False,
        )
        return aggregated.outputs["Output"]

    return hairseg_batch
