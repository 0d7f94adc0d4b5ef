"""Shared test set-up: no telemetry, no network, few threads (CI has 2 cores)."""

from __future__ import annotations

import os

# Set before any heavy library is imported by a test module.
for _key, _value in {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DVC_NO_ANALYTICS": "1",
    "DO_NOT_TRACK": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "FEAST_USAGE": "False",
    "OMP_NUM_THREADS": "1",
    "TQDM_DISABLE": "1",
}.items():
    os.environ.setdefault(_key, _value)
