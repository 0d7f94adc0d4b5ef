"""Tiny real datasets and a tiny trained model for the lifecycle tests.

The dataset is a toy hair problem (a dark striped cap on a noisy light background, with a
face-coloured disc as a distractor), small enough to learn in a few CPU seconds yet real:
it is written in the dataset format (images/, masks/, manifest.parquet) and read back
through the same loaders the pipeline uses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hairseg import imaging
from hairseg.data.manifest import write_manifest

SIZE = 64

STYLES = ("short", "long")
BACKGROUNDS = ("plain", "busy")


def toy_example(rng: np.random.Generator, size: int = SIZE) -> tuple[np.ndarray, np.ndarray, dict]:
    """One image, its 0/255 mask and its slice metadata."""
    busy = rng.random() < 0.5
    img = rng.integers(150, 256, (size, size, 3)).astype(np.uint8)
    if not busy:
        img[:] = rng.integers(170, 240, 3)
    yy, xx = np.mgrid[:size, :size]
    cx, cy = rng.uniform(0.35, 0.65) * size, rng.uniform(0.4, 0.6) * size
    r = rng.uniform(0.18, 0.3) * size
    long_hair = rng.random() < 0.5
    head = (xx - cx) ** 2 + (yy - cy) ** 2 <= r**2
    hair = head & (yy <= cy + (0.6 * r if long_hair else -0.1 * r))
    face = ((xx - cx) ** 2 + (yy - cy - 0.3 * r) ** 2 <= (0.6 * r) ** 2) & ~hair
    colour = rng.integers(20, 90, 3)
    stripes = ((xx + yy) % 4 < 2)[..., None] * 15
    img = np.where(hair[..., None], np.clip(colour + stripes, 0, 255), img).astype(np.uint8)
    img[face] = (224, 172, 140)
    mask = np.where(hair, 255, 0).astype(np.uint8)
    meta = {
        "hair_style": STYLES[int(long_hair)],
        "background_kind": BACKGROUNDS[int(busy)],
        "hair_colour_family": "dark",
        "skin_tone": "medium",
        "lighting": "even",
    }
    return img, mask, meta


def write_example(
    root: Path, image_id: str, img: np.ndarray, mask: np.ndarray, **row: object
) -> dict[str, object]:
    """Write one image + mask pair under ``root`` and return its manifest row (``row``: split,
    source, licence and any other columns)."""
    imaging.write_png(root / "images" / f"{image_id}.png", img)
    imaging.write_png(root / "masks" / f"{image_id}.png", mask)
    height, width = mask.shape[:2]
    return {
        "id": image_id,
        "image_path": f"images/{image_id}.png",
        "mask_path": f"masks/{image_id}.png",
        "width": width,
        "height": height,
        **row,
    }


def make_dataset(root: Path, counts: dict[str, int] | None = None, seed: int = 0) -> Path:
    """Write a toy dataset under ``root`` (default 32 train / 8 val / 8 test images)."""
    counts = counts or {"train": 32, "val": 8, "test": 8}
    rng = np.random.default_rng(seed)
    rows = []
    for split, n in counts.items():
        for i in range(n):
            img, mask, meta = toy_example(rng)
            image_id = f"toy-{split}-{i:03d}"
            rows.append(
                write_example(
                    root, image_id, img, mask, split=split, source="toy", licence="CC0-1.0", **meta
                )
            )
    write_manifest(pd.DataFrame(rows), root)
    return root


def tiny_configs(epochs: int = 6, **train_overrides):
    """A 64-px model config and a fast single-thread training config."""
    from hairseg.model import ModelConfig
    from hairseg.train import TrainConfig

    model_cfg = ModelConfig(input_size=SIZE, head_channels=32)
    train_cfg = TrainConfig(
        init="scratch",
        epochs=epochs,
        batch_size=8,
        lr=5e-3,
        patience=epochs,
        threads=1,
        device="cpu",
        **train_overrides,
    )
    return model_cfg, train_cfg
