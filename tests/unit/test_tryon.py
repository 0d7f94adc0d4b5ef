"""Recolour: changes hair only, honours intensity, rejects unknown shades."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from hairseg.errors import HairsegError
from hairseg.tryon import parse_shade, recolour


def _scene() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    rgb = rng.integers(40, 200, (64, 64, 3), dtype=np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[8:30, 10:50] = 255
    return rgb, mask


def test_recolour_changes_hair_and_leaves_everything_outside_the_feather_unchanged() -> None:
    rgb, mask = _scene()
    out = recolour(rgb, mask, "copper", intensity=1.0, feather_px=3)
    outside = cv2.dilate(mask, np.ones((7, 7), np.uint8)) == 0
    assert np.array_equal(out[outside], rgb[outside])
    inside = mask > 0
    assert np.abs(out[inside].astype(int) - rgb[inside]).mean() > 10


def test_intensity_zero_is_identity_and_bounds_are_checked() -> None:
    rgb, mask = _scene()
    assert np.array_equal(recolour(rgb, mask, "#ff0000", intensity=0.0), rgb)
    with pytest.raises(HairsegError, match="between 0 and 1"):
        recolour(rgb, mask, "teal", intensity=1.5)


def test_parse_shade_accepts_names_and_hex_and_names_the_choices_on_error() -> None:
    assert parse_shade("Rose Gold").rgb == (214, 142, 130)
    assert parse_shade("#0A0B0c").rgb == (10, 11, 12)
    with pytest.raises(HairsegError, match="unknown colour 'mauve'.*copper"):
        parse_shade("mauve")
