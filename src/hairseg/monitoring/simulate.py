"""Simulated inference traffic: dataset images, optionally shifted, as inference records.

For demos and tests of the drift loop without a running predictor. Each record is built
exactly like the predictor's (``hairseg.imaging.image_statistics`` on the request image);
``hair_coverage`` comes from the ground-truth mask standing in for the predicted one, so
the simulation needs no model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Literal, get_args

import cv2
import numpy as np
import pandas as pd

from hairseg.data.manifest import read_manifest
from hairseg.errors import EXIT_USAGE, HairsegError
from hairseg.imaging import image_statistics, read_image, read_mask

__all__ = ["SHIFTS", "Shift", "apply_shift", "simulate_inference_records"]

Shift = Literal["none", "dark", "blur", "colour"]
SHIFTS: tuple[str, ...] = get_args(Shift)

log = logging.getLogger(__name__)

# A fixed time for simulated events keeps the output a pure function of the inputs.
SIMULATED_AT = pd.Timestamp("2026-06-01T00:00:00Z")


def _dark(rgb: np.ndarray) -> np.ndarray:
    # An under-exposed phone camera: gamma 1.8 then 60 % gain.
    x = rgb.astype(np.float32) / 255.0
    return np.clip(255.0 * 0.6 * x**1.8, 0, 255).astype(np.uint8)


def _blur(rgb: np.ndarray) -> np.ndarray:
    # Out of focus / motion: a Gaussian blur proportional to the image size.
    sigma = max(1.5, 0.012 * max(rgb.shape[:2]))
    return cv2.GaussianBlur(rgb, (0, 0), sigmaX=sigma)


def _colour(rgb: np.ndarray) -> np.ndarray:
    # A different colour mix (a new market, a colour filter): hue rotated by 1/4 turn,
    # saturation raised by half.
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV_FULL).astype(np.int32)
    hsv[..., 0] = (hsv[..., 0] + 64) % 256
    hsv[..., 1] = np.clip(hsv[..., 1] * 3 // 2 + 20, 0, 255)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB_FULL)


_SHIFT_FUNCS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": lambda rgb: rgb,
    "dark": _dark,
    "blur": _blur,
    "colour": _colour,
}


def apply_shift(rgb: np.ndarray, shift: str) -> np.ndarray:
    """Transform an RGB ``uint8`` image by one of :data:`SHIFTS`."""
    if shift not in _SHIFT_FUNCS:
        raise HairsegError(
            f"unknown shift {shift!r}; accepted: {', '.join(SHIFTS)}", exit_code=EXIT_USAGE
        )
    return _SHIFT_FUNCS[shift](rgb)


def simulate_inference_records(
    dataset_dir: str | Path,
    shift: str = "none",
    n: int | None = None,
    seed: int = 0,
    split: str = "test",
    model_version: str = "simulated",
) -> list[dict[str, object]]:
    """``n`` inference records from images of ``split`` (default: each image once).

    Images are drawn without replacement while ``n`` fits the split; beyond that they
    repeat, and repeated values make stat tests over-confident (a warning says so).

    Records follow the inference-log schema (:data:`INFERENCE_LOG_SCHEMA`); request ids are
    ``sim-<shift>-<seed>-<i>`` and event times one second apart from a fixed date.
    """
    if shift not in _SHIFT_FUNCS:
        raise HairsegError(
            f"unknown shift {shift!r}; accepted: {', '.join(SHIFTS)}", exit_code=EXIT_USAGE
        )
    if n is not None and n < 1:
        raise HairsegError(f"number of requests must be >= 1, got {n}", exit_code=EXIT_USAGE)
    dataset = Path(dataset_dir)
    manifest = read_manifest(dataset)
    rows = manifest[manifest["split"] == split] if split else manifest
    if rows.empty:
        raise HairsegError(
            f"dataset {dataset} has no images in split {split!r}; "
            f"splits present: {sorted(manifest['split'].dropna().unique())}",
            exit_code=EXIT_USAGE,
        )
    rng = np.random.default_rng(seed)
    n = len(rows) if n is None else n
    if n <= len(rows):
        picks = rng.permutation(len(rows))[:n]
    else:
        log.warning(
            "%d requests from %d images: images repeat, which inflates stat-test confidence",
            n,
            len(rows),
        )
        picks = rng.integers(0, len(rows), size=n)
    cache: dict[int, dict[str, object]] = {}  # the same image and shift give the same stats
    customers = rng.integers(0, 200, size=n)
    records: list[dict[str, object]] = []
    for i, pick in enumerate(picks.tolist()):
        if pick not in cache:
            entry = rows.iloc[pick]
            rgb = read_image(dataset / entry["image_path"])
            mask = read_mask(dataset / entry["mask_path"])
            cache[pick] = image_statistics(apply_shift(rgb, shift), mask).as_dict()
        records.append(
            {
                "request_id": f"sim-{shift}-{seed}-{i:06d}",
                "customer_id": f"cust-{customers[i]:04d}",
                "model_version": model_version,
                "event_timestamp": (SIMULATED_AT + pd.Timedelta(seconds=i)).to_pydatetime(),
                **cache[pick],
            }
        )
    return records
