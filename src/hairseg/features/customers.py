"""The demo customer table behind feature view ``customer_profile_v1``.

Seeded and deterministic: the same ``n`` and ``seed`` give the same bytes, so the
``features`` DVC stage is reproducible.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hairseg.data.stats import write_stats
from hairseg.errors import EXIT_USAGE, HairsegError
from hairseg.tryon import SHADES

__all__ = ["CUSTOMERS_EPOCH", "CUSTOMER_COLUMNS", "demo_customers", "write_customers"]

# Fixed event time (like the dataset statistics) so reruns are byte-stable and every
# profile is visible to point-in-time joins after it.
CUSTOMERS_EPOCH = pd.Timestamp("2026-01-01T00:00:00Z")

CUSTOMER_COLUMNS: dict[str, str] = {
    "customer_id": "string",
    "event_timestamp": "datetime64[ns, UTC]",
    "preferred_shade": "string",
    "preferred_intensity": "float64",
    "consent_monitoring": "bool",
    "consent_personalisation": "bool",
}


def demo_customers(n: int = 200, seed: int = 0) -> pd.DataFrame:
    """``n`` demo customers ``cust-0000``… with a shade, an intensity and two consents."""
    if n < 1 or n > 1_000_000:
        raise HairsegError(f"number of customers must be 1..1000000, got {n}", exit_code=EXIT_USAGE)
    rng = np.random.default_rng(seed)
    shades = sorted(SHADES)
    width = max(4, len(str(n - 1)))
    return pd.DataFrame(
        {
            "customer_id": [f"cust-{i:0{width}d}" for i in range(n)],
            "event_timestamp": CUSTOMERS_EPOCH,
            "preferred_shade": rng.choice(shades, size=n),
            "preferred_intensity": np.round(rng.uniform(0.3, 1.0, size=n), 3),
            "consent_monitoring": rng.random(n) < 0.8,
            "consent_personalisation": rng.random(n) < 0.7,
        }
    ).astype(CUSTOMER_COLUMNS)


def write_customers(df: pd.DataFrame, path: str | Path) -> Path:
    """Write the table atomically (temp file, then rename)."""
    return write_stats(df, path)
