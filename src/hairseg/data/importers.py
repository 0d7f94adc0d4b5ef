"""Converters from public hair-segmentation datasets into the hairseg dataset format.

Supported layouts (as distributed by their authors):

- **CelebAMask-HQ** (Lee et al., 2020)::

      SRC/CelebA-HQ-img/<n>.jpg                         1024×1024 RGB
      SRC/CelebAMask-HQ-mask-anno/<k>/<n:05d>_hair.png  512×512 per-part masks, k = n // 2000
      SRC/CelebA-HQ-to-CelebA-mapping.txt               optional: gives CelebA's official split
      SRC/CelebAMask-HQ-attribute-anno.txt              optional: hair colour/style attributes

  The hair part becomes 255; an image without a ``_hair.png`` has no hair (the release
  omits empty parts). Masks are 512² while images are 1024²: we **resize the image down
  to the mask's size** (area interpolation) rather than upsample the mask, so labels stay
  exactly as annotated and the dataset is 4× smaller; training runs at 256² anyway.
  Resized images are stored as JPEG (quality 95). Licence: non-commercial research and
  educational use only (the CelebA agreement).

- **Figaro1k** (Svanera et al., 2016)::

      SRC/Original/{Training,Testing}/FrameNNNNN-org.jpg
      SRC/GT/{Training,Testing}/FrameNNNNN-gt.pbm      (or -gt.png) white = hair

  ``Testing`` becomes our test split; ``Training`` is split into train/val by a hash of
  the id. The hair-style class comes from the frame number (150 images per class).
  Images are copied byte for byte. Licence: research use (see the dataset page).

Splits that are not given by the source are assigned by ``sha256(id)``, so they do not
depend on file order or on the machine. Bad input (missing folder, no images, a mask
without an image) is one :class:`HairsegError` naming the problem.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from hairseg.data.generate import replace_dir
from hairseg.data.manifest import write_manifest
from hairseg.errors import EXIT_USAGE, HairsegError, ImageDecodeError
from hairseg.imaging import decode_image, encode_jpeg, write_png

__all__ = [
    "CELEBAMASK_LICENCE",
    "FIGARO_LICENCE",
    "IMPORTERS",
    "ImportResult",
    "import_celebamask_hq",
    "import_figaro1k",
]

CELEBAMASK_LICENCE = (
    "CelebAMask-HQ: non-commercial research and educational use only (CelebA agreement)"
)
FIGARO_LICENCE = "Figaro1k: research use only (University of Brescia)"
FIGARO_STYLES = ("straight", "wavy", "curly", "kinky", "braids", "dreadlocks", "short")
_CELEBA_COLOURS = {
    "Black_Hair": "black",
    "Brown_Hair": "brown",
    "Blond_Hair": "blonde",
    "Gray_Hair": "grey",
}
# CelebA's official partition by original image index (0-based): train / val / test.
_CELEBA_TRAIN_END, _CELEBA_VAL_END = 162_770, 182_637


@dataclass(frozen=True)
class ImportResult:
    path: Path
    counts: dict[str, int]


def _hash_split(image_id: str, val_fraction: float, test_fraction: float) -> str:
    bucket = int(hashlib.sha256(image_id.encode()).hexdigest()[:8], 16) / 0x1_0000_0000
    if bucket < test_fraction:
        return "test"
    if bucket < test_fraction + val_fraction:
        return "val"
    return "train"


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise HairsegError(f"{what} not found: {path}", exit_code=EXIT_USAGE)
    return path


def _binary_mask(path: Path) -> np.ndarray:
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise HairsegError(f"mask is not a readable image: {path}")
    return np.where(mask > 127, 255, 0).astype(np.uint8)


def _decode(path: Path) -> tuple[bytes, np.ndarray]:
    data = path.read_bytes()
    try:
        return data, decode_image(data)
    except ImageDecodeError as exc:
        raise HairsegError(f"{path}: {exc.message}") from None


def _write_dataset(
    dest: Path,
    rows: list[dict[str, object]],
    build: Callable[[dict[str, object], Path], dict[str, object]],
    *,
    overwrite: bool,
    progress: bool,
    desc: str,
) -> ImportResult:
    """Run ``build(row, staging)`` for every row into a temp folder, then swap it in."""
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())) and not overwrite:
        raise HairsegError(
            f"{dest} exists and is not empty; pass --overwrite", exit_code=EXIT_USAGE
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.import-", dir=dest.parent))
    try:
        out = [
            build(row, staging)
            for row in tqdm(rows, desc=desc, unit="img", disable=None if progress else True)
        ]
        df = pd.DataFrame(out)
        write_manifest(df, staging)
        replace_dir(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    counts = df["split"].value_counts().to_dict()
    return ImportResult(path=dest, counts={k: int(v) for k, v in counts.items()})


# --------------------------------------------------------------------------- CelebAMask-HQ


def _celeba_split_map(src: Path) -> dict[int, str]:
    mapping = src / "CelebA-HQ-to-CelebA-mapping.txt"
    if not mapping.is_file():
        return {}
    splits = {}
    for line in mapping.read_text().splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
            orig = int(parts[1])
            splits[int(parts[0])] = (
                "train" if orig < _CELEBA_TRAIN_END else "val" if orig < _CELEBA_VAL_END else "test"
            )
    return splits


def _celeba_attributes(src: Path) -> dict[int, dict[str, str | None]]:
    path = src / "CelebAMask-HQ-attribute-anno.txt"
    if not path.is_file():
        return {}
    lines = path.read_text().splitlines()
    if len(lines) < 2:
        return {}
    names = lines[1].split()
    attrs: dict[int, dict[str, str | None]] = {}
    for line in lines[2:]:
        parts = line.split()
        if len(parts) != len(names) + 1:
            continue
        on = {n for n, v in zip(names, parts[1:], strict=True) if v == "1"}
        colours = [c for a, c in _CELEBA_COLOURS.items() if a in on]
        style = "bald" if "Bald" in on else "fringe" if "Bangs" in on else "wavy" if "Wavy_Hair" in on else "straight" if "Straight_Hair" in on else None  # fmt: skip
        attrs[int(Path(parts[0]).stem)] = {
            "hair_colour_family": colours[0] if len(colours) == 1 else None,
            "hair_style": style,
        }
    return attrs


def import_celebamask_hq(
    src: str | Path,
    dest: str | Path,
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    overwrite: bool = False,
    progress: bool = False,
) -> ImportResult:
    """Convert a CelebAMask-HQ release folder (see module docstring)."""
    src, dest = Path(src), Path(dest)
    _require_dir(src, "CelebAMask-HQ folder")
    img_dir = _require_dir(src / "CelebA-HQ-img", "CelebAMask-HQ image folder CelebA-HQ-img/")
    anno_dir = _require_dir(
        src / "CelebAMask-HQ-mask-anno", "CelebAMask-HQ mask folder CelebAMask-HQ-mask-anno/"
    )
    images = {int(p.stem): p for p in img_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png") and p.stem.isdigit()}  # fmt: skip
    if not images:
        raise HairsegError(f"no images (<n>.jpg) in {img_dir}", exit_code=EXIT_USAGE)
    hair = {}
    for path in anno_dir.glob("*/*_hair.png"):
        match = re.fullmatch(r"(\d+)_hair", path.stem)
        if match:
            hair[int(match.group(1))] = path
    orphans = sorted(set(hair) - set(images))
    if orphans:
        raise HairsegError(
            f"{len(orphans)} hair mask(s) without an image, e.g. {hair[orphans[0]]} "
            f"(expected {img_dir}/{orphans[0]}.jpg)",
            exit_code=EXIT_USAGE,
        )
    # The annotation resolution (512 in the release), read from any part mask.
    any_part = next(anno_dir.glob("*/*.png"), None)
    part = cv2.imread(str(any_part), cv2.IMREAD_UNCHANGED) if any_part else None
    anno_side = int(part.shape[0]) if part is not None else 512
    official = _celeba_split_map(src)
    attrs = _celeba_attributes(src)
    rows = []
    for n in sorted(images):
        image_id = f"celebamask-{n:05d}"
        rows.append(
            {
                "n": n,
                "id": image_id,
                "split": official.get(n) or _hash_split(image_id, val_fraction, test_fraction),
                **attrs.get(n, {}),
            }
        )

    def build(row: dict[str, object], staging: Path) -> dict[str, object]:
        n = int(row.pop("n"))  # type: ignore[arg-type]
        image_id = str(row["id"])
        _, rgb = _decode(images[n])
        if n in hair:
            mask = _binary_mask(hair[n])
        else:  # no hair part annotated: no hair (at the release's annotation resolution)
            mask = np.zeros((min(anno_side, rgb.shape[0]), min(anno_side, rgb.shape[1])), np.uint8)
        h, w = mask.shape
        if rgb.shape[:2] != (h, w):
            rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
        (staging / "images").mkdir(exist_ok=True)
        (staging / "images" / f"{image_id}.jpg").write_bytes(encode_jpeg(rgb, quality=95))
        write_png(staging / "masks" / f"{image_id}.png", mask)
        return {
            **row,
            "image_path": f"images/{image_id}.jpg",
            "mask_path": f"masks/{image_id}.png",
            "source": "celebamask-hq",
            "licence": CELEBAMASK_LICENCE,
            "width": w,
            "height": h,
        }

    return _write_dataset(
        dest, rows, build, overwrite=overwrite, progress=progress, desc="celebamask-hq"
    )


# --------------------------------------------------------------------------- Figaro1k


def _figaro_style(frame: int) -> str | None:
    index = (frame - 1) // 150
    return FIGARO_STYLES[index] if 0 <= index < len(FIGARO_STYLES) else None


def import_figaro1k(
    src: str | Path,
    dest: str | Path,
    *,
    val_fraction: float = 0.1,
    overwrite: bool = False,
    progress: bool = False,
) -> ImportResult:
    """Convert a Figaro1k folder (see module docstring)."""
    src, dest = Path(src), Path(dest)
    _require_dir(src, "Figaro1k folder")
    _require_dir(src / "Original", "Figaro1k image folder Original/")
    _require_dir(src / "GT", "Figaro1k mask folder GT/")
    rows = []
    for part, default_split in (("Training", None), ("Testing", "test")):
        img_dir, gt_dir = src / "Original" / part, src / "GT" / part
        if not img_dir.is_dir():
            continue
        images = {}
        for p in img_dir.iterdir():
            if m := re.fullmatch(r"Frame(\d+)-org", p.stem, flags=re.IGNORECASE):
                images[int(m.group(1))] = p
        masks = {}
        if gt_dir.is_dir():
            for p in gt_dir.iterdir():
                if m := re.fullmatch(r"Frame(\d+)-gt", p.stem, flags=re.IGNORECASE):
                    masks[int(m.group(1))] = p
        if orphans := sorted(set(masks) - set(images)):
            raise HairsegError(
                f"mask without an image: {masks[orphans[0]]} "
                f"(expected {img_dir}/Frame{orphans[0]:05d}-org.jpg)",
                exit_code=EXIT_USAGE,
            )
        if missing := sorted(set(images) - set(masks)):
            raise HairsegError(
                f"image without a mask: {images[missing[0]]} "
                f"(expected {gt_dir}/Frame{missing[0]:05d}-gt.pbm)",
                exit_code=EXIT_USAGE,
            )
        for frame in sorted(images):
            image_id = f"figaro-{frame:05d}"
            rows.append(
                {
                    "id": image_id,
                    "split": default_split or _hash_split(image_id, val_fraction, 0.0),
                    "hair_style": _figaro_style(frame),
                    "_image": images[frame],
                    "_mask": masks[frame],
                }
            )
    if not rows:
        raise HairsegError(
            f"no images (FrameNNNNN-org.jpg) under {src}/Original/{{Training,Testing}}",
            exit_code=EXIT_USAGE,
        )

    def build(row: dict[str, object], staging: Path) -> dict[str, object]:
        image_file, mask_file = Path(row.pop("_image")), Path(row.pop("_mask"))  # type: ignore[arg-type]
        data, rgb = _decode(image_file)
        mask = _binary_mask(mask_file)
        if mask.shape != rgb.shape[:2]:
            raise HairsegError(
                f"{mask_file} is {mask.shape[1]}x{mask.shape[0]} but its image is "
                f"{rgb.shape[1]}x{rgb.shape[0]}",
            )
        image_id = str(row["id"])
        ext = image_file.suffix.lower()
        (staging / "images").mkdir(exist_ok=True)
        (staging / "images" / f"{image_id}{ext}").write_bytes(data)
        write_png(staging / "masks" / f"{image_id}.png", mask)
        return {
            **row,
            "image_path": f"images/{image_id}{ext}",
            "mask_path": f"masks/{image_id}.png",
            "source": "figaro1k",
            "licence": FIGARO_LICENCE,
            "width": rgb.shape[1],
            "height": rgb.shape[0],
        }

    return _write_dataset(
        dest, rows, build, overwrite=overwrite, progress=progress, desc="figaro1k"
    )


IMPORTERS: dict[str, Callable[..., ImportResult]] = {
    "celebamask-hq": import_celebamask_hq,
    "figaro1k": import_figaro1k,
}
