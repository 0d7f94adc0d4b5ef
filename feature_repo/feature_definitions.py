"""hairseg feature definitions: entities, sources, versioned feature views and services.

Names are versioned (``_v1``): a breaking change adds ``_v2`` beside ``_v1`` so training
and serving can move over one at a time. Sources are Parquet files; relative paths
resolve against this folder. ``HAIRSEG_FEATURE_SOURCE_ROOT`` (read once, at
``feast apply`` time) moves the sources to object storage on a cluster, e.g.
``s3://bucket/features`` (see feature_store.cluster.yaml).
"""

import os
from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource
from feast.types import Bool, Float64, Int64, String

_ROOT = os.environ.get("HAIRSEG_FEATURE_SOURCE_ROOT", "").rstrip("/")


def _source_path(local: str, name: str) -> str:
    return f"{_ROOT}/{name}" if _ROOT else local


image = Entity(
    name="image",
    join_keys=["image_id"],
    description="An image: a dataset image (manifest id) or a served one (its request id).",
)
customer = Entity(
    name="customer",
    join_keys=["customer_id"],
    description="A try-on customer (demo ids cust-0000 ...).",
)

# Written by the `validate` DVC stage (hairseg.data.stats.compute_image_stats).
image_stats_source = FileSource(
    name="image_stats_source",
    path=_source_path("../artifacts/image_stats.parquet", "image_stats.parquet"),
    timestamp_field="event_timestamp",
    description="Per-image statistics of the training dataset.",
)

# Written by `hairseg features demo-customers` (seeded, deterministic).
customer_profile_source = FileSource(
    name="customer_profile_source",
    path=_source_path("data/customers.parquet", "customers.parquet"),
    timestamp_field="event_timestamp",
    description="Customer try-on preferences and consents.",
)

# Offline copy of every pushed inference record. hairseg.features creates it (empty, with
# this schema) on apply; Feast appends to it on push to the offline store.
inference_stats_batch_source = FileSource(
    name="inference_stats_batch_source",
    path=_source_path("data/inference_stats.parquet", "inference_stats.parquet"),
    timestamp_field="event_timestamp",
)
inference_stats_push = PushSource(
    name="inference_stats_push",
    batch_source=inference_stats_batch_source,
    description="Per-request image statistics from the predictor (never images).",
)

_IMAGE_STATS_FIELDS = [
    Field(name="width", dtype=Int64),
    Field(name="height", dtype=Int64),
    Field(name="brightness", dtype=Float64, description="mean luma in [0, 1]"),
    Field(name="contrast", dtype=Float64, description="std of luma in [0, 1]"),
    Field(name="sharpness", dtype=Float64, description="log1p(variance of the Laplacian)"),
    Field(name="saturation", dtype=Float64, description="mean HSV saturation in [0, 1]"),
    Field(name="hue_mean", dtype=Float64, description="circular mean hue in [0, 1)"),
]

image_stats_v1 = FeatureView(
    name="image_stats_v1",
    entities=[image],
    ttl=timedelta(0),  # dataset images do not expire
    schema=[
        *_IMAGE_STATS_FIELDS,
        Field(name="hair_coverage", dtype=Float64, description="labelled hair fraction"),
        Field(name="face_count", dtype=Int64, description="faces found (null: not run)"),
        Field(name="hair_colour_family", dtype=String),
        Field(name="split", dtype=String),
    ],
    source=image_stats_source,
    online=True,
    tags={"owner": "features", "consumer": "training,evaluation,drift"},
)

customer_profile_v1 = FeatureView(
    name="customer_profile_v1",
    entities=[customer],
    ttl=timedelta(0),
    schema=[
        Field(name="preferred_shade", dtype=String, description="a hairseg.tryon.SHADES name"),
        Field(name="preferred_intensity", dtype=Float64, description="recolour strength 0..1"),
        Field(name="consent_monitoring", dtype=Bool),
        Field(name="consent_personalisation", dtype=Bool),
    ],
    source=customer_profile_source,
    online=True,
    tags={"owner": "features", "consumer": "serving"},
)

inference_stats_v1 = FeatureView(
    name="inference_stats_v1",
    entities=[image],
    ttl=timedelta(days=30),
    schema=[
        Field(name="request_id", dtype=String),
        Field(name="customer_id", dtype=String),
        Field(name="model_version", dtype=String),
        *_IMAGE_STATS_FIELDS,
        Field(name="hair_coverage", dtype=Float64, description="predicted hair fraction"),
    ],
    source=inference_stats_push,
    online=True,
    tags={"owner": "monitoring", "consumer": "drift"},
)

training_v1 = FeatureService(
    name="training_v1",
    features=[image_stats_v1],
    description="Image statistics for training sets and evaluation slices.",
)
serving_v1 = FeatureService(
    name="serving_v1",
    features=[customer_profile_v1],
    description="What the predictor reads per request: the customer's try-on profile.",
)
