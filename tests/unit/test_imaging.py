"""The shared pre/post-processing: decode limits, normalisation, mask upsampling, stats."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from hairseg import imaging
from hairseg.errors import ImageDecodeError


def _encode(arr: np.ndarray, fmt: str, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode=mode).save(buf, format=fmt)
    return buf.getvalue()


def test_decode_round_trips_png_and_converts_gray_and_alpha() -> None:
    rgb = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    assert np.array_equal(imaging.decode_image(_encode(rgb, "PNG")), rgb)
    gray = imaging.decode_image(_encode(rgb[..., 0], "PNG"))
    assert gray.shape == (20, 30, 3) and np.array_equal(gray[..., 1], rgb[..., 0])
    rgba = np.dstack([rgb, np.full((20, 30), 7, np.uint8)])
    assert np.array_equal(imaging.decode_image(_encode(rgba, "PNG")), rgb)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "empty"),
        (b"definitely not an image", "not a decodable image"),
    ],
)
def test_decode_rejects_garbage(payload: bytes, message: str) -> None:
    with pytest.raises(ImageDecodeError, match=message):
        imaging.decode_image(payload)


def test_decode_rejects_truncated_jpeg_and_pixel_bombs() -> None:
    rgb = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    jpeg = _encode(rgb, "JPEG")
    with pytest.raises(ImageDecodeError, match="truncated"):
        imaging.decode_image(jpeg[: len(jpeg) // 2])
    with pytest.raises(ImageDecodeError, match="limit is 1000 pixels"):
        imaging.decode_image(jpeg, max_pixels=1000)


def test_preprocess_normalises_and_masks_upsample_to_input_size() -> None:
    rgb = np.full((10, 20, 3), 255, np.uint8)
    batch = imaging.preprocess([rgb, rgb], size=8)
    assert batch.shape == (2, 3, 8, 8) and batch.dtype == np.float32
    np.testing.assert_allclose(batch[0, :, 0, 0], (1 - imaging.MEAN) / imaging.STD, rtol=1e-6)
    logits = np.full((1, 1, 4, 4), -5.0, np.float32)
    logits[0, 0, :, :2] = 5.0  # left half is hair
    (mask,) = imaging.logits_to_masks(logits, [(8, 16)])
    assert mask.shape == (8, 16) and set(np.unique(mask)) == {0, 255}
    assert mask[:, :7].min() == 255 and mask[:, 9:].max() == 0


def test_image_statistics_orders_bright_over_dark_and_measures_coverage() -> None:
    dark = imaging.image_statistics(np.full((16, 16, 3), 20, np.uint8))
    mask = np.zeros((16, 16), np.uint8)
    mask[:4] = 255
    bright = imaging.image_statistics(np.full((16, 16, 3), 230, np.uint8), mask)
    assert bright.brightness > dark.brightness
    assert dark.hair_coverage is None and bright.hair_coverage == pytest.approx(0.25)
    assert dark.contrast == pytest.approx(0.0) and dark.sharpness == pytest.approx(0.0)
