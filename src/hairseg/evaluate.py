"""Evaluation on the test split: the candidate (fp32 and int8), the champion and baselines,
all with the same code and the same images.

Every ONNX model runs through :class:`hairseg.inference.OnnxSegmenter` (the serving code
path). Reported per model: mean IoU, Dice and boundary F1 (with a pixel tolerance), IoU per
slice of the manifest's metadata, IoU against the threshold, model size and ONNX Runtime
latency p50/p95 at each batch size. MediaPipe baselines run when their model files exist
and are recorded as unavailable, with the reason, otherwise.

Real photos (:func:`evaluate_real_photos`, on ``datasets/real_portraits``) are scored
through the same segmenter and post-processing: IoU on the coarse masks, the share of
predicted hair outside the head boxes and the share of the inner face marked hair.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from hairseg import imaging
from hairseg.closing import Closing
from hairseg.data.manifest import SLICE_COLUMNS, read_manifest
from hairseg.errors import EXIT_USAGE, HairsegError
from hairseg.inference import OnnxSegmenter
from hairseg.metrics import (
    boundary_f1,
    dice,
    inner_face_counts,
    iou,
    outside_head_counts,
)
from hairseg.priors import PriorsConfig

__all__ = [
    "EvaluateConfig",
    "ModelEvaluation",
    "RealPhotoEvaluation",
    "RealPhotoSet",
    "SelfieSegmenter",
    "TestSet",
    "attach_feature_slices",
    "evaluate_masks",
    "evaluate_onnx",
    "evaluate_real_photos",
    "load_real_set",
    "load_test_set",
    "measure_latency",
    "predict_masks",
    "score_real_photos",
]

log = logging.getLogger(__name__)

# Slice columns that come from the feature store (``artifacts/eval_slices.parquet``, built
# by ``hairseg features build`` with point-in-time reads), on top of the manifest's.
FEATURE_SLICE_COLUMNS: tuple[str, ...] = (
    "brightness_bucket",
    "coverage_bucket",
    "face_count_bucket",
)


@dataclass(frozen=True)
class EvaluateConfig:
    """``params.yaml`` section ``evaluate``."""

    split: str = "test"
    threshold: float = 0.5
    boundary_tolerance_px: int = 2
    sweep_thresholds: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    latency_batch_sizes: tuple[int, ...] = (1, 8)
    latency_warmup: int = 3
    latency_repeats: int = 30
    threads: int = 2
    gallery_best: int = 4  # gallery rows: a few typical cases ...
    gallery_worst: int = 4  # ... and the worst ones
    gallery_shade: str = "copper"
    selfie_dilate_px: int = 7  # person-mask post-filter: grow the person mask first
    # The real-photo set (hairseg.data.real_portraits) scored beside the test split; "" = off.
    real_photos: str = "datasets/real_portraits"
    real_gallery_typical: int = 2  # real-photo gallery rows: typical cases ...
    real_gallery_worst: int = 2  # ... and the worst ones

    def __post_init__(self) -> None:
        if not 0 < self.threshold < 1:
            raise HairsegError(
                f"evaluate.threshold must be in (0, 1), got {self.threshold}", exit_code=2
            )
        if self.latency_repeats < 1 or any(b < 1 for b in self.latency_batch_sizes):
            raise HairsegError("evaluate.latency_repeats and batch sizes must be >= 1", exit_code=2)


@dataclass
class TestSet:
    """The evaluation split in memory, at each image's own resolution."""

    manifest: pd.DataFrame
    images: list[np.ndarray]
    masks: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.images)


@dataclass
class ModelEvaluation:
    """Scores of one model on a :class:`TestSet`."""

    name: str
    per_image: pd.DataFrame  # id, iou, dice, boundary_f1 + slice columns
    iou_by_threshold: dict[float, float] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)
    size_bytes: int | None = None
    predictions: list[np.ndarray] = field(default_factory=list, repr=False)

    def summary(self) -> dict[str, float]:
        out = {
            "iou": float(self.per_image["iou"].mean()),
            "dice": float(self.per_image["dice"].mean()),
            "boundary_f1": float(self.per_image["boundary_f1"].mean()),
        }
        out.update(self.latency_ms)
        if self.size_bytes is not None:
            out["size_mb"] = self.size_bytes / 1e6
        return out

    def slices(self) -> pd.DataFrame:
        """IoU per value of each slice column: rows (model, slice, value, n, iou)."""
        rows = []
        for column in (*SLICE_COLUMNS, *FEATURE_SLICE_COLUMNS):
            if column not in self.per_image:
                continue
            known = self.per_image.dropna(subset=[column])
            for value, group in known.groupby(column, sort=True):
                rows.append(
                    {
                        "model": self.name,
                        "slice": column,
                        "value": str(value),
                        "n": len(group),
                        "iou": float(group["iou"].mean()),
                    }
                )
        return pd.DataFrame(rows, columns=["model", "slice", "value", "n", "iou"])


def attach_feature_slices(per_image: pd.DataFrame, slices: pd.DataFrame) -> pd.DataFrame:
    """Join the feature store's slice labels (by image id) onto per-image scores.

    Row order is kept; an image the feature store does not know gets null labels (and so
    falls out of those slices) rather than failing the evaluation.
    """
    missing = [c for c in ("image_id", *FEATURE_SLICE_COLUMNS) if c not in slices.columns]
    if missing:
        raise HairsegError(
            f"evaluation slices lack column(s) {', '.join(missing)}; "
            "expected the output of `hairseg features build` (artifacts/eval_slices.parquet)",
            exit_code=EXIT_USAGE,
        )
    labels = slices[["image_id", *FEATURE_SLICE_COLUMNS]].drop_duplicates("image_id")
    labels = labels.rename(columns={"image_id": "id"})
    base = per_image.drop(columns=[c for c in FEATURE_SLICE_COLUMNS if c in per_image])
    return base.merge(labels, on="id", how="left", validate="one_to_one")


def load_test_set(dataset: Path, split: str = "test") -> TestSet:
    """Read one split (images at their own resolution) and its manifest rows."""
    df = read_manifest(dataset)
    df = df[df["split"] == split].sort_values("id").reset_index(drop=True)
    if df.empty:
        raise HairsegError(f"dataset {dataset} has no '{split}' images", exit_code=EXIT_USAGE)
    images = [imaging.read_image(Path(dataset) / p) for p in df["image_path"]]
    masks = [imaging.read_mask(Path(dataset) / p) for p in df["mask_path"]]
    return TestSet(df, images, masks)


def evaluate_masks(
    name: str, predictions: Sequence[np.ndarray], test: TestSet, cfg: EvaluateConfig
) -> ModelEvaluation:
    """Score predicted 0/255 masks against the truth, image by image."""
    if len(predictions) != len(test):
        raise ValueError(f"{len(predictions)} predictions for {len(test)} images")
    rows = []
    for pred, truth in zip(predictions, test.masks, strict=True):
        rows.append(
            {
                "iou": iou(pred, truth),
                "dice": dice(pred, truth),
                "boundary_f1": boundary_f1(pred, truth, cfg.boundary_tolerance_px),
            }
        )
    per_image = pd.DataFrame(rows)
    per_image.insert(0, "id", test.manifest["id"].to_numpy())
    for column in SLICE_COLUMNS:
        per_image[column] = test.manifest[column].to_numpy()
    return ModelEvaluation(name=name, per_image=per_image, predictions=list(predictions))


def measure_latency(
    run: Callable[[np.ndarray], Any], batch: np.ndarray, warmup: int, repeats: int
) -> tuple[float, float]:
    """p50 and p95 wall-clock milliseconds of ``run(batch)``."""
    for _ in range(warmup):
        run(batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(batch)
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def evaluate_onnx(
    name: str,
    model_path: Path,
    test: TestSet,
    cfg: EvaluateConfig,
    *,
    person_masks: Sequence[np.ndarray] | None = None,
    priors: PriorsConfig | None = None,
) -> ModelEvaluation:
    """Evaluate an ONNX model under the artifact contract (see :mod:`hairseg.inference`).

    ``person_masks`` (0/255, one per image) restrict the hair mask to the grown person
    region — the MediaPipe selfie post-filter. ``priors`` (``params.yaml`` ``priors:``)
    fuse the real-photo priors exactly as serving does (:meth:`OnnxSegmenter.fuse`).
    """
    seg = _segmenter(model_path, cfg, priors)
    sizes = [img.shape[:2] for img in test.images]
    all_logits = _logits(seg, test.images, name)

    def masks_at(threshold: float) -> list[np.ndarray]:
        masks = imaging.logits_to_masks(all_logits, sizes, threshold=threshold)
        if person_masks is not None:
            masks = [
                apply_person_filter(m, p, cfg.selfie_dilate_px)
                for m, p in zip(masks, person_masks, strict=True)
            ]
        return masks

    result = evaluate_masks(name, masks_at(cfg.threshold), test, cfg)
    result.iou_by_threshold = {
        float(t): float(np.mean([iou(p, m) for p, m in zip(masks_at(t), test.masks, strict=True)]))
        for t in cfg.sweep_thresholds
    }
    result.size_bytes = Path(model_path).stat().st_size
    rng = np.random.default_rng(0)
    for batch_size in cfg.latency_batch_sizes:
        idx = rng.integers(0, len(test), batch_size)
        batch = imaging.preprocess([test.images[i] for i in idx], seg.input_size)
        p50, p95 = measure_latency(seg.logits, batch, cfg.latency_warmup, cfg.latency_repeats)
        result.latency_ms[f"latency_ms_b{batch_size}_p50"] = p50
        result.latency_ms[f"latency_ms_b{batch_size}_p95"] = p95
    return result


def _segmenter(model_path: Path, cfg: EvaluateConfig, priors: PriorsConfig | None) -> OnnxSegmenter:
    return OnnxSegmenter(
        model_path, threshold=cfg.threshold, intra_op_threads=cfg.threads, priors=priors
    )


def _logits(seg: OnnxSegmenter, images: Sequence[np.ndarray], name: str) -> np.ndarray:
    """The segmenter's logits for ``images`` in batches of 8, priors fused (as serving)."""
    logits = []
    try:
        for start in tqdm(range(0, len(images), 8), desc=f"evaluate {name}", leave=False):
            logits.append(seg.fused_logits(images[start : start + 8]))
    finally:
        seg.close()
    return np.concatenate(logits)


def predict_masks(
    model_path: Path,
    images: Sequence[np.ndarray],
    cfg: EvaluateConfig,
    *,
    person_masks: Sequence[np.ndarray] | None = None,
    name: str = "model",
    priors: PriorsConfig | None = None,
) -> list[np.ndarray]:
    """0/255 masks at each image's resolution: the path :func:`evaluate_onnx` scores."""
    seg = _segmenter(model_path, cfg, priors)
    masks = imaging.logits_to_masks(
        _logits(seg, images, name), [img.shape[:2] for img in images], threshold=cfg.threshold
    )
    if person_masks is not None:
        masks = [
            apply_person_filter(m, p, cfg.selfie_dilate_px)
            for m, p in zip(masks, person_masks, strict=True)
        ]
    return masks


@dataclass
class RealPhotoSet:
    """The real-photo evaluation set: images, coarse masks and the label-light boxes."""

    test: TestSet
    head_boxes: list[list[tuple[int, int, int, int]]]  # every visible head, subject first
    inner_face_boxes: list[tuple[int, int, int, int]]  # the subject's

    def __len__(self) -> int:
        return len(self.test)


def load_real_set(dataset: Path | None = None) -> RealPhotoSet:
    """Read ``datasets/real_portraits`` (or another set in its format).

    One clear line when the images are absent (their licences keep most of them out of
    git; ``tools/fetch_real_portraits.py`` re-derives them).
    """
    from hairseg.data import real_portraits

    dataset = Path(dataset) if dataset is not None else real_portraits.EVAL_DIR
    real_portraits.require_images(dataset)
    test = load_test_set(dataset, "test")
    missing = [c for c in ("head_boxes", "inner_x0", "inner_y0", "inner_x1", "inner_y1")
               if c not in test.manifest]  # fmt: skip
    if missing:
        raise HairsegError(
            f"{dataset} is not a real-photo set: its manifest lacks {', '.join(missing)}",
            exit_code=EXIT_USAGE,
        )
    return RealPhotoSet(
        test=test,
        head_boxes=real_portraits.head_boxes(test.manifest),
        inner_face_boxes=real_portraits.inner_face_boxes(test.manifest),
    )


@dataclass
class RealPhotoEvaluation:
    """Scores of one model on the real-photo set."""

    name: str
    per_image: pd.DataFrame  # id, iou, outside_head_share, inner_face_share, pixel counts, slices
    predictions: list[np.ndarray] = field(default_factory=list, repr=False)

    def summary(self) -> dict[str, float]:
        """``real_iou`` (mean), ``real_outside_head`` (pooled over all predicted hair
        pixels, as a user sees it across photos), its per-image mean, and
        ``real_inner_face`` (per-image mean) with its pooled value."""
        df = self.per_image
        predicted = int(df["pred_hair_px"].sum())
        inner_px = int(df["inner_px"].sum())
        return {
            "real_n_images": len(df),
            "real_iou": float(df["iou"].mean()),
            "real_outside_head": float(df["outside_px"].sum() / predicted) if predicted else 0.0,
            "real_outside_head_mean": float(df["outside_head_share"].mean()),
            "real_inner_face": float(df["inner_face_share"].mean()),
            "real_inner_face_pooled": float(df["inner_hair_px"].sum() / inner_px)
            if inner_px
            else 0.0,
            # Pooled over the set: the share of labelled hair found, and of marked hair right.
            "real_recall": float(df["hit_px"].sum() / max(int(df["true_hair_px"].sum()), 1)),
            "real_precision": float(df["hit_px"].sum() / predicted) if predicted else 0.0,
        }

    def worst(self, n: int = 5) -> dict[str, list[dict[str, Any]]]:
        """The ``n`` worst images by each metric (id and value)."""
        df = self.per_image
        out = {}
        for column, ascending in (
            ("iou", True),
            ("outside_head_share", False),
            ("inner_face_share", False),
        ):
            rows = df.sort_values([column, "id"], ascending=[ascending, True]).head(n)
            out[column] = [
                {"id": str(i), column: round(float(v), 4)}
                for i, v in zip(rows["id"], rows[column], strict=True)
            ]
        return out


def score_real_photos(
    name: str, predictions: Sequence[np.ndarray], real: RealPhotoSet
) -> RealPhotoEvaluation:
    """Score predicted 0/255 masks on the real-photo set (pure)."""
    if len(predictions) != len(real):
        raise ValueError(f"{len(predictions)} predictions for {len(real)} images")
    rows = []
    for pred, truth, heads, inner in zip(
        predictions, real.test.masks, real.head_boxes, real.inner_face_boxes, strict=True
    ):
        outside, total = outside_head_counts(pred, heads)
        inner_hair, inner_px = inner_face_counts(pred, inner)
        rows.append(
            {
                "iou": iou(pred, truth),
                "outside_head_share": outside / total if total else 0.0,
                "inner_face_share": inner_hair / inner_px if inner_px else 0.0,
                "pred_hair_px": total,
                "true_hair_px": int(np.count_nonzero(truth > 127)),
                "hit_px": int(np.count_nonzero((pred > 127) & (truth > 127))),
                "outside_px": outside,
                "inner_hair_px": inner_hair,
                "inner_px": inner_px,
            }
        )
    per_image = pd.DataFrame(rows)
    per_image.insert(0, "id", real.test.manifest["id"].to_numpy())
    for column in SLICE_COLUMNS:
        per_image[column] = real.test.manifest[column].to_numpy()
    return RealPhotoEvaluation(name=name, per_image=per_image, predictions=list(predictions))


def evaluate_real_photos(
    name: str,
    model_path: Path,
    real: RealPhotoSet,
    cfg: EvaluateConfig,
    *,
    person_masks: Sequence[np.ndarray] | None = None,
    priors: PriorsConfig | None = None,
) -> RealPhotoEvaluation:
    """Evaluate an ONNX model on real photos through :class:`OnnxSegmenter` (as serving)."""
    masks = predict_masks(
        model_path,
        real.test.images,
        cfg,
        person_masks=person_masks,
        name=f"{name} (real photos)",
        priors=priors,
    )
    return score_real_photos(name, masks, real)


def real_photo_report(
    cfg: EvaluateConfig,
    models: Mapping[str, Path],
    gallery_dir: Path | None = None,
    *,
    gallery_model: str = "candidate",
    priors: PriorsConfig | None = None,
) -> tuple[dict[str, Any] | None, str]:
    """Score each ONNX model of ``models`` (name -> path) on ``cfg.real_photos``.

    Returns ``(report, note)``: ``report`` maps each name to its
    :meth:`RealPhotoEvaluation.summary` plus ``"worst"`` (the ``gallery_model``'s worst
    images by each metric), or is ``None`` when the set is off or its images are absent
    (``note`` then says why in one line, and the pipeline carries on without it). The
    ``gallery_model``'s rows (photo, served mask, mask vs label, try-on) are written to
    ``gallery_dir/real_*.png``.
    """
    if not cfg.real_photos:
        return None, "off (evaluate.real_photos is empty)"
    try:
        real = load_real_set(Path(cfg.real_photos))
    except HairsegError as exc:
        return None, f"unavailable: {exc}"
    report: dict[str, Any] = {}
    evals = {
        name: evaluate_real_photos(name, path, real, cfg, priors=priors)
        for name, path in models.items()
    }
    for name, ev in evals.items():
        report[name] = ev.summary()
    shown = evals[gallery_model]
    report["worst"] = shown.worst()
    if gallery_dir is not None:
        from hairseg.model_card import gallery_rows, render_real_gallery

        for stale in Path(gallery_dir).glob("real_*.png"):
            stale.unlink()
        rows = gallery_rows(shown.per_image, cfg.real_gallery_typical, cfg.real_gallery_worst)
        render_real_gallery(
            Path(gallery_dir),
            real.test.images,
            real.test.masks,
            shown.predictions,
            shown.per_image,
            real.head_boxes,
            rows,
            cfg.gallery_shade,
        )
    s = report[gallery_model]
    return report, (
        f"{len(real)} real photos ({cfg.real_photos}): {gallery_model} IoU {s['real_iou']:.3f}, "
        f"hair outside head {s['real_outside_head']:.1%}, inner face {s['real_inner_face']:.1%}"
    )


def apply_person_filter(hair: np.ndarray, person: np.ndarray, dilate_px: int) -> np.ndarray:
    """Keep hair only inside the person mask grown by ``dilate_px`` (strands reach outside)."""
    import cv2

    grown = person
    if dilate_px > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate_px + 1,) * 2)
        grown = cv2.dilate(person, kernel)
    return np.where((hair > 127) & (grown > 127), 255, 0).astype(np.uint8)


class SelfieSegmenter(Closing):
    """Person (or hair) masks from a MediaPipe Tasks ``ImageSegmenter`` model file.

    Works for the selfie segmenter (a person-confidence mask) and the hair segmenter
    (category 1 = hair); ``category`` picks the channel. Use as a context manager.
    """

    def __init__(self, model: Path, *, category: int = 0, threshold: float = 0.5) -> None:
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.ImageSegmenterOptions(
            base_options=BaseOptions(model_asset_path=str(model)),
            output_confidence_masks=True,
            output_category_mask=False,
        )
        self._segmenter = vision.ImageSegmenter.create_from_options(options)
        self.category = category
        self.threshold = threshold

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """A 0/255 mask at the image's resolution."""
        import mediapipe as mp

        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        result = self._segmenter.segment(image)
        masks = result.confidence_masks
        channel = min(self.category, len(masks) - 1)
        conf = masks[channel].numpy_view()
        if conf.ndim == 3:
            conf = conf[..., 0]
        if conf.shape != rgb.shape[:2]:
            import cv2

            conf = cv2.resize(conf, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
        return np.where(conf >= self.threshold, 255, 0).astype(np.uint8)

    def close(self) -> None:
        if self._segmenter is not None:
            self._segmenter.close()
            self._segmenter = None
