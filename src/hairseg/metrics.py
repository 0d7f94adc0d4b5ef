"""Segmentation metrics on binary masks (pure numpy), shared by training and evaluation.

Masks are ``uint8`` 0/255 (or bool); a pixel is hair when it is > 127. Per-image scores
are averaged over images (the mean a user experiences), and an image where prediction and
truth are both empty scores 1.0 (nothing to find, nothing found).

Label-light metrics for real photos take boxes ``(x0, y0, x1, y1)`` in pixels with
exclusive right/bottom edges (clipped to the image): hair predicted outside every head box
is certainly wrong (suits, sky, tripods), hair predicted inside the inner-face box (brows to
below the mouth, between the outer eye corners) is certainly wrong too.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

__all__ = [
    "binarise",
    "boundary_f1",
    "box_mask",
    "dice",
    "inner_face_counts",
    "inner_face_share",
    "iou",
    "outside_head_counts",
    "outside_head_share",
]


def binarise(mask: np.ndarray) -> np.ndarray:
    """Boolean hair mask from a 0/255 ``uint8`` (or bool) mask."""
    return mask if mask.dtype == bool else mask > 127


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two masks."""
    p, t = binarise(pred), binarise(truth)
    if p.shape != t.shape:
        raise ValueError(f"mask shapes differ: {p.shape} vs {t.shape}")
    union = np.count_nonzero(p | t)
    return 1.0 if union == 0 else np.count_nonzero(p & t) / union


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice coefficient (F1 over pixels) of two masks."""
    p, t = binarise(pred), binarise(truth)
    if p.shape != t.shape:
        raise ValueError(f"mask shapes differ: {p.shape} vs {t.shape}")
    total = np.count_nonzero(p) + np.count_nonzero(t)
    return 1.0 if total == 0 else 2.0 * np.count_nonzero(p & t) / total


def _boundary(mask: np.ndarray) -> np.ndarray:
    """Mask pixels with a 4-neighbour outside the mask (the image border is outside)."""
    m = mask.astype(np.uint8)
    eroded = cv2.erode(m, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return (m > 0) & (eroded == 0)


def boundary_f1(pred: np.ndarray, truth: np.ndarray, tolerance_px: int = 2) -> float:
    """Boundary F1 (Csurka et al. 2013): boundary pixels matched within ``tolerance_px``.

    Precision is the share of predicted boundary pixels within ``tolerance_px`` (Euclidean)
    of a true boundary pixel; recall the converse. Both boundaries empty scores 1.0, one
    empty scores 0.0.
    """
    p, t = binarise(pred), binarise(truth)
    if p.shape != t.shape:
        raise ValueError(f"mask shapes differ: {p.shape} vs {t.shape}")
    bp, bt = _boundary(p), _boundary(t)
    n_p, n_t = np.count_nonzero(bp), np.count_nonzero(bt)
    if n_p == 0 and n_t == 0:
        return 1.0
    if n_p == 0 or n_t == 0:
        return 0.0
    # Distance from every pixel to the nearest boundary pixel of the other mask.
    dist_to_t = cv2.distanceTransform((~bt).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    dist_to_p = cv2.distanceTransform((~bp).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    precision = np.count_nonzero(dist_to_t[bp] <= tolerance_px + 1e-6) / n_p
    recall = np.count_nonzero(dist_to_p[bt] <= tolerance_px + 1e-6) / n_t
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def box_mask(shape: tuple[int, int], boxes: Sequence[Sequence[int]]) -> np.ndarray:
    """Boolean mask of the union of ``boxes`` (clipped to ``shape``)."""
    h, w = shape
    out = np.zeros((h, w), bool)
    for box in boxes:
        x0, y0, x1, y1 = (int(v) for v in box)
        if x1 < x0 or y1 < y0:
            raise ValueError(f"box {tuple(box)} is not (x0, y0, x1, y1) with x0 <= x1, y0 <= y1")
        out[max(0, y0) : min(h, y1), max(0, x0) : min(w, x1)] = True
    return out


def outside_head_counts(pred: np.ndarray, head_boxes: Sequence[Sequence[int]]) -> tuple[int, int]:
    """(predicted hair pixels outside every head box, predicted hair pixels)."""
    p = binarise(pred)
    outside = p & ~box_mask(p.shape, head_boxes)
    return int(np.count_nonzero(outside)), int(np.count_nonzero(p))


def outside_head_share(pred: np.ndarray, head_boxes: Sequence[Sequence[int]]) -> float:
    """Share of the predicted hair pixels that lie outside every head box (0 when none)."""
    outside, total = outside_head_counts(pred, head_boxes)
    return 0.0 if total == 0 else outside / total


def inner_face_counts(pred: np.ndarray, inner_box: Sequence[int]) -> tuple[int, int]:
    """(inner-face-box pixels predicted hair, inner-face-box pixels inside the image)."""
    p = binarise(pred)
    region = box_mask(p.shape, [inner_box])
    return int(np.count_nonzero(p & region)), int(np.count_nonzero(region))


def inner_face_share(pred: np.ndarray, inner_box: Sequence[int]) -> float:
    """Share of the inner-face box marked hair (0 for an empty box)."""
    hair, area = inner_face_counts(pred, inner_box)
    return 0.0 if area == 0 else hair / area
