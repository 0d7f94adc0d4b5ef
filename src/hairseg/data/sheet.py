"""A contact sheet of a dataset: each image above its mask overlay, for eyeballing data."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from hairseg.data.manifest import read_manifest
from hairseg.errors import EXIT_USAGE, HairsegError
from hairseg.imaging import read_image, read_mask, write_png

__all__ = ["contact_sheet"]


def contact_sheet(
    dataset: str | Path, out: str | Path, *, count: int = 24, columns: int = 8, tile: int = 160
) -> Path:
    """Write a PNG grid of ``count`` images spread evenly over the manifest (by id).

    Each cell is the image (top) and the image with hair tinted magenta (bottom), so both
    what the network sees and what the mask claims are visible at once.
    """
    if count < 1 or columns < 1 or tile < 16:
        raise HairsegError("count and columns must be >= 1 and tile >= 16", exit_code=EXIT_USAGE)
    dataset = Path(dataset)
    manifest = read_manifest(dataset)
    if manifest.empty:
        raise HairsegError(f"{dataset} has no images", exit_code=EXIT_USAGE)
    picks = np.linspace(0, len(manifest) - 1, num=min(count, len(manifest))).round().astype(int)
    cells = []
    for row in manifest.iloc[picks].itertuples():
        rgb = cv2.resize(
            read_image(dataset / row.image_path), (tile, tile), interpolation=cv2.INTER_AREA
        )
        mask = cv2.resize(
            read_mask(dataset / row.mask_path), (tile, tile), interpolation=cv2.INTER_NEAREST
        )
        overlay = rgb.copy()
        hair = mask > 127
        overlay[hair] = (0.4 * overlay[hair] + 0.6 * np.array([255, 0, 255])).astype(np.uint8)
        cells.append(np.concatenate([rgb, overlay], axis=0))
    while len(cells) % columns:
        cells.append(np.zeros_like(cells[0]))
    rows = [np.concatenate(cells[i : i + columns], axis=1) for i in range(0, len(cells), columns)]
    write_png(out, np.concatenate(rows, axis=0))
    return Path(out)
