"""The Feast feature repo from Python: apply, materialise, point-in-time and online reads.

Feast itself is imported inside the functions, so importing this package stays cheap.
"""

from hairseg.features.customers import demo_customers, write_customers
from hairseg.features.online import CustomerProfile, OnlineFeatures, push_inference_log
from hairseg.features.store import (
    EVAL_SLICE_COLUMNS,
    FeaturesConfig,
    apply_repo,
    eval_slices,
    feature_store,
    historical_image_features,
    materialize,
    training_frame,
)

__all__ = [
    "EVAL_SLICE_COLUMNS",
    "CustomerProfile",
    "FeaturesConfig",
    "OnlineFeatures",
    "apply_repo",
    "demo_customers",
    "eval_slices",
    "feature_store",
    "historical_image_features",
    "materialize",
    "push_inference_log",
    "training_frame",
    "write_customers",
]
