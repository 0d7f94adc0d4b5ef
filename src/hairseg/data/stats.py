"""The per-image statistics table: one row per manifest entry.

It is the input of the validation gate (``hairseg.data.validate``) and the offline source
of the Feast feature view ``image_stats_v1`` (``artifacts/image_stats.parquet``).

Every row is computed from the files alone, so the table is a pure function of the dataset
bytes: reruns are byte-stable. ``event_timestamp`` is therefore not "now" but a fixed
date (:data:`DATASET_EPOCH`, or the manifest's own ``captured_at`` column when a source
provides one), which is what Feast needs for point-in-time joins.

Images that fail to decode or masks that are not binary do not raise here: they become
rows with ``decodes = False`` / ``mask_binary = False`` so the validation gate can list
every offending id at once.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from hairseg.data.manifest import read_manifest
from hairseg.errors import ImageDecodeError
from hairseg.imaging import decode_image, image_statistics, read_mask

__all__ = [
    "DATASET_EPOCH",
    "DUPLICATE_COLUMNS",
    "STATS_COLUMNS",
    "FaceCounter",
    "add_duplicate_columns",
    "compute_image_stats",
    "hamming",
    "perceptual_hash",
    "write_stats",
]

# The event time of every row whose source gives none. A constant keeps the table
# byte-stable; it lies in the past so Feast point-in-time joins see every row.
DATASET_EPOCH = pd.Timestamp("2026-01-01T00:00:00Z")

# Counts faces in an RGB uint8 image (see hairseg.mediapipe_models.FaceDetector).
FaceCounter = Callable[[np.ndarray], int]

STATS_COLUMNS: dict[str, str] = {
    "image_id": "string",
    "split": "string",
    "event_timestamp": "datetime64[ns, UTC]",
    "source": "string",
    "hair_colour_family": "string",
    # validity
    "decodes": "bool",
    "decode_error": "string",
    "channels": "Int64",
    "mask_decodes": "bool",
    # null where not applicable: mask unreadable, or image unreadable (size unknown)
    "mask_binary": "boolean",
    "mask_matches_size": "boolean",
    "manifest_size_matches": "boolean",
    # ImageStats (hairseg.imaging.image_statistics)
    "width": "Int64",
    "height": "Int64",
    "brightness": "Float64",
    "contrast": "Float64",
    "sharpness": "Float64",
    "saturation": "Float64",
    "hue_mean": "Float64",
    "hair_coverage": "Float64",
    # content: exact duplicates and near duplicates (re-encoded, resized)
    "content_sha256": "string",
    "phash": "string",
    "face_count": "Int64",
}
# Added by add_duplicate_columns (dataset-wide, so not part of the per-image computation).
DUPLICATE_COLUMNS: dict[str, str] = {"duplicate_of": "string", "leaks_with": "string"}


def perceptual_hash(rgb: np.ndarray, bits: int = 16) -> str:
    """DCT perceptual hash (pHash) of an image as a hex string of ``bits``² bits.

    The image is reduced to luma at ``4·bits``², its 2-D DCT taken and the lowest
    ``bits``×``bits`` frequencies (DC excluded from the median) compared with their
    median. Re-encoding, mild blur and resizing flip only a few bits; different images
    differ in about half of them.
    """
    luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    side = 4 * bits
    small = cv2.resize(luma, (side, side), interpolation=cv2.INTER_AREA)
    low = cv2.dct(small)[:bits, :bits]
    median = np.median(low.ravel()[1:])
    packed = np.packbits((low > median).ravel())
    return packed.tobytes().hex()


def hamming(a: str, b: str) -> int:
    """Number of differing bits between two hex hashes of equal length."""
    return int.bit_count(int(a, 16) ^ int(b, 16))


def _channels(data: bytes) -> int | None:
    try:
        with Image.open(io.BytesIO(data)) as img:
            return len(img.getbands())
    except Exception:
        return None


def _row(
    dataset: Path, entry: pd.Series, face_counter: FaceCounter | None, max_pixels: int
) -> dict[str, object]:
    row: dict[str, object] = {name: None for name in STATS_COLUMNS}
    row.update(
        image_id=entry["id"],
        split=entry["split"],
        source=entry["source"],
        hair_colour_family=entry["hair_colour_family"],
        decodes=False,
        mask_decodes=False,
    )
    # The mask is checked on its own, so a bad image and a bad mask are separate findings.
    errors = []
    mask = None
    try:
        mask = read_mask(dataset / entry["mask_path"])
        row["mask_decodes"] = True
        row["mask_binary"] = bool(np.isin(mask, (0, 255)).all())
    except ImageDecodeError as exc:
        errors.append(f"mask: {exc.message}")
    rgb = None
    try:
        data = (dataset / entry["image_path"]).read_bytes()
        row["channels"] = _channels(data)
        rgb = decode_image(data, max_pixels=max_pixels)
        row["decodes"] = True
    except OSError as exc:
        errors.append(f"cannot read {entry['image_path']}: {exc.strerror or exc}")
    except ImageDecodeError as exc:
        errors.append(exc.message)
    row["decode_error"] = "; ".join(errors) or None
    if rgb is None:
        return row
    row["content_sha256"] = hashlib.sha256(rgb.tobytes()).hexdigest()
    row["phash"] = perceptual_hash(rgb)
    height, width = rgb.shape[:2]
    row["manifest_size_matches"] = (int(entry["width"]), int(entry["height"])) == (width, height)
    if mask is not None:
        row["mask_matches_size"] = mask.shape == (height, width)
    stats = image_statistics(rgb, mask if row["mask_matches_size"] else None)
    row.update(stats.as_dict())
    if face_counter is not None:
        row["face_count"] = int(face_counter(rgb))
    return row


def compute_image_stats(
    dataset_dir: str | Path,
    *,
    face_counter: FaceCounter | None = None,
    max_pixels: int = 16_777_216,
    progress: bool = False,
) -> pd.DataFrame:
    """Compute the statistics table of a dataset folder (see :data:`STATS_COLUMNS`).

    ``face_counter`` (e.g. :class:`hairseg.mediapipe_models.FaceDetector`) fills
    ``face_count``; without one the column is null. The dataset is only read.
    """
    dataset = Path(dataset_dir)
    manifest = read_manifest(dataset)
    rows = [
        _row(dataset, entry, face_counter, max_pixels)
        for _, entry in tqdm(
            manifest.iterrows(),
            total=len(manifest),
            desc="image stats",
            unit="img",
            disable=None if progress else True,
        )
    ]
    df = pd.DataFrame(rows, columns=list(STATS_COLUMNS))
    if "captured_at" in manifest.columns:
        df["event_timestamp"] = pd.to_datetime(manifest["captured_at"].to_numpy(), utc=True)
    else:
        df["event_timestamp"] = DATASET_EPOCH
    df = df.astype(STATS_COLUMNS)
    return df.sort_values("image_id", kind="stable").reset_index(drop=True)


def add_duplicate_columns(df: pd.DataFrame, max_distance: int) -> pd.DataFrame:
    """Mark near-duplicates by perceptual-hash distance (exact copies have distance 0).

    ``duplicate_of``: the closest other image of the *same* split within ``max_distance``
    bits; ``leaks_with``: the closest image of *another* split within it (train/val/test
    leakage). Ties go to the smaller id, so the result is deterministic.
    """
    df = df.copy()
    for column, dtype in DUPLICATE_COLUMNS.items():
        df[column] = pd.Series([pd.NA] * len(df), dtype=dtype, index=df.index)
    hashed = df[df["phash"].notna()]
    if len(hashed) < 2:
        return df
    bits = np.stack(
        [np.unpackbits(np.frombuffer(bytes.fromhex(h), dtype=np.uint8)) for h in hashed["phash"]]
    ).astype(np.int32)
    distance = bits @ (1 - bits).T + (1 - bits) @ bits.T
    np.fill_diagonal(distance, np.iinfo(np.int32).max)
    ids = hashed["image_id"].to_numpy()
    splits = hashed["split"].to_numpy()
    order = np.argsort(ids, kind="stable")
    for row, (index, split) in enumerate(zip(hashed.index, splits, strict=True)):
        near = distance[row] <= max_distance
        if not near.any():
            continue
        for column, pick in (("duplicate_of", splits == split), ("leaks_with", splits != split)):
            candidates = near & pick
            if candidates.any():
                best = min(order[candidates[order]], key=lambda j: distance[row, j])
                df.loc[index, column] = ids[best]
    return df


def write_stats(df: pd.DataFrame, path: str | Path) -> Path:
    """Write the table to parquet atomically (temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    df.to_parquet(tmp, index=False)
    tmp.replace(path)
    return path
