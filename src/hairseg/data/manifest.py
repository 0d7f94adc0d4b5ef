"""The dataset format every stage reads.

A dataset is a folder::

    DATASET/
      images/<id>.<ext>    RGB images (PNG or JPEG)
      masks/<id>.png       single-channel PNG, 0 = background, 255 = hair
      manifest.parquet     one row per image, columns below

Paths in the manifest are relative to the dataset folder. Generator metadata columns are
null where a source does not know them (e.g. imported public datasets).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd

from hairseg.errors import HairsegError

__all__ = [
    "MANIFEST_COLUMNS",
    "MANIFEST_NAME",
    "METADATA_COLUMNS",
    "REQUIRED_COLUMNS",
    "SLICE_COLUMNS",
    "SPLITS",
    "read_manifest",
    "write_manifest",
]

MANIFEST_NAME = "manifest.parquet"
SPLITS = ("train", "val", "test")

REQUIRED_COLUMNS: dict[str, str] = {
    "id": "string",
    "image_path": "string",
    "mask_path": "string",
    "split": "string",
    "source": "string",
    "licence": "string",
    "width": "int64",
    "height": "int64",
}
# Known for generated data, null for most imported data; evaluation slices by these.
SLICE_COLUMNS: tuple[str, ...] = (
    "hair_colour_family",
    "hair_style",
    "skin_tone",
    "background_kind",
    "lighting",
)
METADATA_COLUMNS: dict[str, str] = {name: "string" for name in SLICE_COLUMNS}
MANIFEST_COLUMNS: dict[str, str] = {**REQUIRED_COLUMNS, **METADATA_COLUMNS}


def read_manifest(dataset: str | Path) -> pd.DataFrame:
    """Read and type-check ``DATASET/manifest.parquet`` (extra columns are kept)."""
    path = Path(dataset) / MANIFEST_NAME
    if not path.is_file():
        raise HairsegError(f"no {MANIFEST_NAME} in dataset folder {dataset}")
    df = pd.read_parquet(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise HairsegError(f"{path} lacks required column(s): {', '.join(missing)}")
    for column in METADATA_COLUMNS:
        if column not in df.columns:
            df[column] = pd.NA
    return df.astype(MANIFEST_COLUMNS)


def write_manifest(df: pd.DataFrame, dataset: str | Path) -> Path:
    """Write the manifest atomically (a crash never leaves a half-written file)."""
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise HairsegError(f"manifest lacks required column(s): {', '.join(missing)}")
    df = df.copy()
    for column in METADATA_COLUMNS:
        if column not in df.columns:
            df[column] = pd.NA
    ordered = list(MANIFEST_COLUMNS) + [c for c in df.columns if c not in MANIFEST_COLUMNS]
    df = (
        df[ordered].astype(MANIFEST_COLUMNS).sort_values("id", kind="stable").reset_index(drop=True)
    )
    dest = Path(dataset)
    dest.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest, prefix=".manifest-", suffix=".parquet")
    os.close(fd)
    try:
        df.to_parquet(tmp, index=False)
        os.replace(tmp, dest / MANIFEST_NAME)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest / MANIFEST_NAME
