"""Manifest schema: required columns enforced, metadata columns filled, atomic write."""

from __future__ import annotations

import pandas as pd
import pytest

from hairseg.data.manifest import MANIFEST_COLUMNS, read_manifest, write_manifest
from hairseg.errors import HairsegError


def test_round_trip_adds_metadata_columns(tmp_path) -> None:
    row = {
        "id": "a", "image_path": "images/a.png", "mask_path": "masks/a.png", "split": "train",
        "source": "test", "licence": "CC0", "width": 4, "height": 4,
    }  # fmt: skip
    write_manifest(pd.DataFrame([row]), tmp_path)
    df = read_manifest(tmp_path)
    assert list(df.columns) == list(MANIFEST_COLUMNS)
    assert df.loc[0, "id"] == "a" and pd.isna(df.loc[0, "hair_style"])
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.parquet"]


def test_missing_columns_are_named(tmp_path) -> None:
    with pytest.raises(HairsegError, match="image_path"):
        write_manifest(pd.DataFrame([{"id": "a"}]), tmp_path)
    with pytest.raises(HairsegError, match="no manifest.parquet"):
        read_manifest(tmp_path)
