"""The model card: a Markdown report and a PNG gallery under ``reports/model_card/``.

The gallery shows, per test image: the image, the true mask, the predicted mask, an
overlay and the recoloured try-on (through :func:`hairseg.tryon.recolour`, the serving
implementation), for a few typical cases and the worst ones. The real-photo gallery
(:func:`render_real_gallery`) shows, per real portrait: the photo with its head boxes, the
served mask, the mask against the coarse label, and the try-on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from hairseg import imaging
from hairseg.tryon import recolour

__all__ = ["gallery_rows", "render_gallery", "render_real_gallery", "write_model_card"]

_TILE = 160


def gallery_rows(per_image: pd.DataFrame, n_typical: int, n_worst: int) -> list[tuple[str, int]]:
    """Pick (label, row index): the ``n_worst`` lowest-IoU images, then typical ones.

    Typical ones are spread evenly over the IoU ranking of the rest, so the gallery shows
    the spread rather than only the best.
    """
    order = per_image["iou"].to_numpy().argsort(kind="stable")
    worst = [int(i) for i in order[:n_worst]]
    rest = [int(i) for i in order[n_worst:]]
    picks = []
    if rest and n_typical:
        step = len(rest) / n_typical
        picks = sorted(
            {rest[min(len(rest) - 1, int(step * k + step / 2))] for k in range(n_typical)}
        )
    return [("worst", i) for i in worst] + [("typical", i) for i in picks]


def _tile(rgb: np.ndarray, caption: str) -> np.ndarray:
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    tile = cv2.resize(rgb, (_TILE, _TILE), interpolation=cv2.INTER_AREA)
    tile = np.ascontiguousarray(tile)
    cv2.rectangle(tile, (0, 0), (_TILE, 16), (0, 0, 0), thickness=-1)
    cv2.putText(tile, caption, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (255, 255, 255), 1)
    return tile


def _letterbox(rgb: np.ndarray, caption: str) -> np.ndarray:
    """Like :func:`_tile` but keeps the aspect ratio (real photos are not square)."""
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    h, w = rgb.shape[:2]
    scale = _TILE / max(h, w)
    small = cv2.resize(
        rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
    )
    tile = np.full((_TILE, _TILE, 3), 255, np.uint8)
    y0, x0 = (_TILE - small.shape[0]) // 2, (_TILE - small.shape[1]) // 2
    tile[y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = small
    cv2.rectangle(tile, (0, 0), (_TILE, 16), (0, 0, 0), thickness=-1)
    cv2.putText(tile, caption, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (255, 255, 255), 1)
    return tile


def _with_boxes(rgb: np.ndarray, head_boxes: Sequence[Sequence[int]]) -> np.ndarray:
    out = np.ascontiguousarray(rgb.copy())
    thick = max(1, round(max(rgb.shape[:2]) / _TILE))
    for k, (x0, y0, x1, y1) in enumerate(head_boxes):
        cv2.rectangle(
            out, (x0, y0), (x1 - 1, y1 - 1), (0, 255, 0) if k == 0 else (0, 160, 255), thick
        )
    return out


def render_real_gallery(
    out_dir: Path,
    images: Sequence[np.ndarray],
    truths: Sequence[np.ndarray],
    predictions: Sequence[np.ndarray],
    per_image: pd.DataFrame,
    head_boxes: Sequence[Sequence[Sequence[int]]],
    rows: Sequence[tuple[str, int]],
    shade: str,
) -> list[Path]:
    """Real-photo gallery rows: photo (head boxes drawn) | served mask | mask vs the coarse
    label (green correct, red false hair, blue missed) | try-on. ``per_image`` is
    :class:`hairseg.evaluate.RealPhotoEvaluation`'s table. Writes one PNG per row plus
    ``real_gallery.png``."""
    named = []
    for rank, (label, i) in enumerate(rows):
        rgb, truth, pred = images[i], truths[i], predictions[i]
        row = per_image.iloc[i]
        strip = np.concatenate(
            [
                _letterbox(_with_boxes(rgb, head_boxes[i]), f"{label} IoU {row['iou']:.2f}"),
                _letterbox(pred, f"mask, {row['outside_head_share']:.0%} off-head"),
                _letterbox(
                    _overlay(rgb, truth, pred), f"vs label, face {row['inner_face_share']:.0%}"
                ),
                _letterbox(recolour(rgb, pred, shade), f"try-on: {shade}"),
            ],
            axis=1,
        )
        named.append((f"real_{rank:02d}_{label}_{row['id']}.png", strip))
    return _write_strips(out_dir, named, "real_gallery.png")


def _image_links(images: Sequence[Path], sheet: str, base: Path) -> list[str]:
    """Markdown image lines for the gallery rows (not the stacked ``sheet``), relative to ``base``."""
    return [f"![{p.stem}]({p.relative_to(base).as_posix()})" for p in images if p.name != sheet]


def _write_strips(out_dir: Path, named: list[tuple[str, np.ndarray]], sheet: str) -> list[Path]:
    """Each ``(file name, strip)`` as a PNG in ``out_dir``, plus all of them stacked as
    ``sheet`` (when there are any); the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, strip in named:
        imaging.write_png(out_dir / name, strip)
        paths.append(out_dir / name)
    if named:
        imaging.write_png(out_dir / sheet, np.concatenate([s for _, s in named], axis=0))
        paths.append(out_dir / sheet)
    return paths


def _overlay(rgb: np.ndarray, truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Green: correct hair; red: false hair; blue: missed hair."""
    out = rgb.astype(np.float32)
    t, p = truth > 127, pred > 127
    for sel, colour in (((t & p), (0, 255, 0)), ((~t & p), (255, 0, 0)), ((t & ~p), (0, 80, 255))):
        out[sel] = 0.5 * out[sel] + 0.5 * np.array(colour, np.float32)
    return out.round().astype(np.uint8)


def render_gallery(
    out_dir: Path,
    images: Sequence[np.ndarray],
    truths: Sequence[np.ndarray],
    predictions: Sequence[np.ndarray],
    per_image: pd.DataFrame,
    rows: Sequence[tuple[str, int]],
    shade: str,
) -> list[Path]:
    """Write one PNG per gallery row plus ``gallery.png`` (all rows); return the paths."""
    named = []
    for rank, (label, i) in enumerate(rows):
        rgb, truth, pred = images[i], truths[i], predictions[i]
        score = float(per_image["iou"].iloc[i])
        strip = np.concatenate(
            [
                _tile(rgb, f"{label} IoU {score:.2f}"),
                _tile(truth, "truth"),
                _tile(pred, "prediction"),
                _tile(_overlay(rgb, truth, pred), "overlay"),
                _tile(recolour(rgb, pred, shade), f"try-on: {shade}"),
            ],
            axis=1,
        )
        named.append((f"{rank:02d}_{label}_{per_image['id'].iloc[i]}.png", strip))
    return _write_strips(out_dir, named, "gallery.png")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


def write_model_card(
    path: Path,
    *,
    train: Mapping[str, Any],
    quantize: Mapping[str, Any],
    evaluation: Mapping[str, Any],
    gate: Mapping[str, Any],
    slices: pd.DataFrame,
    gallery: Sequence[Path],
    model_config: Mapping[str, Any],
    real_photos: Mapping[str, Any] | None = None,
    real_gallery: Sequence[Path] = (),
) -> Path:
    """Write the Markdown model card from the stages' recorded outputs.

    ``real_photos`` (model name -> :meth:`RealPhotoEvaluation.summary`, plus optional
    ``"worst"``) and ``real_gallery`` add the real-photo section.
    """
    models = evaluation.get("models", {})
    metric_cols = [
        "iou",
        "dice",
        "boundary_f1",
        "latency_ms_b1_p50",
        "latency_ms_b1_p95",
        "latency_ms_b8_p50",
        "size_mb",
    ]
    model_rows = [{"model": name, **m} for name, m in models.items()]
    verdict = "PASS" if gate.get("passed") else "FAIL"
    lines = [
        "# Model card: hairseg hair segmentation",
        "",
        "Generated by `hairseg gate` from the outputs of the train, quantize and evaluate "
        "stages; every number below was measured by those stages on this run.",
        "",
        "## Model",
        "",
        f"- Architecture: `{model_config.get('arch')}` at {model_config.get('input_size')}² input",
        f"- Parameters: {train.get('n_params', 'n/a'):,}"
        if isinstance(train.get("n_params"), int)
        else "- Parameters: n/a",
        f"- Compute: {_fmt(train.get('gflops', float('nan')))} GFLOP per image (2 x MACs)",
        f"- Initialised from: `{train.get('init_source', 'n/a')}`",
        f"- Training: best epoch {train.get('best_epoch')} of {train.get('epochs_run')}, "
        f"validation IoU {_fmt(train.get('best_val_iou', float('nan')))}",
        f"- Shipped variant: **{quantize.get('variant')}** — {quantize.get('reason')}",
        "",
        "## Intended use",
        "",
        "Hair masks for a hair-colour virtual try-on: one photo of a person, mostly frontal. "
        "Not for identification. The default training data are procedurally generated "
        "portraits (see the data section of the README); "
        + (
            "real photographs are scored below (section 'Real photos')."
            if real_photos
            else "this card has no real-photo evaluation."
        ),
        "",
        f"## Evaluation (split `{evaluation.get('split', 'test')}`, "
        f"{evaluation.get('n_images', 'n/a')} images, threshold {evaluation.get('threshold')})",
        "",
        _table(model_rows, ["model", *metric_cols]),
        "",
        f"Boundary F1 tolerance: {evaluation.get('boundary_tolerance_px')} px. Latency: ONNX "
        "Runtime, model only (preprocessed input), CPU, "
        f"{evaluation.get('threads')} intra-op threads, on the machine that ran the stage.",
        "",
    ]
    for key, note in evaluation.get("notes", {}).items():
        lines.append(f"- {key}: {note}")
    if real_photos:
        real_cols = ["real_iou", "real_outside_head", "real_inner_face", "real_n_images"]
        real_rows = [{"model": n, **m} for n, m in real_photos.items() if n != "worst"]
        lines += [
            "",
            "## Real photos (`datasets/real_portraits`, coarse labels)",
            "",
            _table(real_rows, ["model", *real_cols]),
            "",
            "real_outside_head: share of the predicted hair pixels outside every head box "
            "(pooled); real_inner_face: share of the inner-face box (brows to below the "
            "mouth) marked hair (mean per photo).",
            "",
        ]
        lines += _image_links(real_gallery, "real_gallery.png", path.parent)
    lines += ["", "## Promotion gate", "", f"**{verdict}**", ""]
    lines += [f"- {reason}" for reason in gate.get("reasons", [])]
    lines += ["", "## IoU per slice (shipped model)", ""]
    if slices.empty:
        lines.append("The manifest carries no slice metadata.")
    else:
        lines.append(_table(slices.to_dict("records"), ["slice", "value", "n", "iou"]))
    lines += [
        "",
        "## Gallery",
        "",
        "image | truth | prediction | overlay (green correct, red "
        "false hair, blue missed) | recoloured try-on. Worst cases first.",
        "",
    ]
    lines += _image_links(gallery, "gallery.png", path.parent)
    lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path
