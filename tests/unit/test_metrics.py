"""IoU, Dice and boundary F1 on hand-built masks, where the answer is known exactly."""

from __future__ import annotations

import numpy as np
import pytest

from hairseg.metrics import (
    boundary_f1,
    box_mask,
    dice,
    inner_face_counts,
    inner_face_share,
    iou,
    outside_head_counts,
    outside_head_share,
)


def square(size: int, top: int, left: int, side: int) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    mask[top : top + side, left : left + side] = 255
    return mask


def test_iou_and_dice_of_overlapping_squares() -> None:
    a = square(10, 0, 0, 4)  # 16 px
    b = square(10, 0, 2, 4)  # 16 px, overlap 2 x 4 = 8 px
    assert iou(a, b) == pytest.approx(8 / 24)
    assert dice(a, b) == pytest.approx(2 * 8 / 32)


def test_identical_disjoint_and_empty_masks() -> None:
    a = square(8, 1, 1, 3)
    empty = np.zeros_like(a)
    assert iou(a, a) == 1.0 and dice(a, a) == 1.0 and boundary_f1(a, a) == 1.0
    assert iou(a, square(8, 5, 5, 2)) == 0.0 and dice(a, square(8, 5, 5, 2)) == 0.0
    assert iou(empty, empty) == 1.0 and dice(empty, empty) == 1.0
    assert boundary_f1(empty, empty) == 1.0
    assert iou(a, empty) == 0.0 and boundary_f1(a, empty) == 0.0


def test_bool_and_uint8_masks_agree() -> None:
    a, b = square(12, 2, 2, 6), square(12, 3, 3, 6)
    assert iou(a, b) == iou(a > 127, b > 127)


def test_boundary_f1_tolerance() -> None:
    truth = square(40, 10, 10, 20)
    shifted = square(40, 10, 12, 20)  # moved 2 px to the right
    # Boundary of a 20x20 square: 76 px. Shifted by 2 px, the top and bottom edges overlap
    # for 18 of 20 columns; the left/right edges are exactly 2 px away.
    assert boundary_f1(shifted, truth, tolerance_px=2) == 1.0
    strict = boundary_f1(shifted, truth, tolerance_px=0)
    # At tolerance 0 only the shared stretches of the top and bottom edges match (columns
    # 12..29: 18 px each); the vertical edges are 2 px apart. 36 of 76 px on both sides.
    assert strict == pytest.approx(36 / 76)
    assert boundary_f1(shifted, truth, tolerance_px=1) < 1.0


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        iou(np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8))


def test_feature_store_slices_join_by_id_and_add_per_slice_iou() -> None:
    """Slice labels from artifacts/eval_slices.parquet add slices; order and scores are kept."""
    import pandas as pd

    from hairseg.errors import HairsegError
    from hairseg.evaluate import ModelEvaluation, attach_feature_slices

    per_image = pd.DataFrame({"id": ["b", "a", "c"], "iou": [0.2, 0.8, 0.5]})
    labels = pd.DataFrame(
        {
            "image_id": ["a", "b"],
            "split": ["test", "test"],
            "brightness_bucket": ["bright", "dark"],
            "coverage_bucket": ["low", "low"],
            "face_count_bucket": ["1", "1"],
        }
    )
    joined = attach_feature_slices(per_image, labels)
    assert joined["id"].tolist() == ["b", "a", "c"]
    assert joined["brightness_bucket"].tolist()[:2] == ["dark", "bright"]
    assert pd.isna(joined.loc[2, "brightness_bucket"])
    slices = ModelEvaluation("m", joined).slices()
    got = {(r.slice, r.value): (r.n, r.iou) for r in slices.itertuples()}
    assert got[("brightness_bucket", "dark")] == (1, 0.2)
    assert got[("coverage_bucket", "low")] == (2, 0.5)
    with pytest.raises(HairsegError, match="face_count_bucket"):
        attach_feature_slices(per_image, labels.drop(columns=["face_count_bucket"]))


def test_outside_head_share_counts_hair_outside_every_box() -> None:
    pred = np.zeros((10, 10), np.uint8)
    pred[0:2, :] = 255  # 20 px: the top two rows
    # Two head boxes cover x 0..3 and x 6..9 of those rows: 4 + 4 columns -> 16 px inside.
    boxes = [(0, 0, 4, 5), (6, 0, 10, 5)]
    assert outside_head_counts(pred, boxes) == (4, 20)
    assert outside_head_share(pred, boxes) == pytest.approx(4 / 20)
    assert outside_head_share(pred, [(0, 0, 10, 10)]) == 0.0
    assert outside_head_share(pred, []) == 1.0
    assert outside_head_share(np.zeros_like(pred), boxes) == 0.0  # nothing predicted


def test_inner_face_share_is_the_hair_fraction_of_the_box() -> None:
    pred = np.zeros((10, 10), np.uint8)
    pred[4:6, 0:10] = 255
    assert inner_face_counts(pred, (2, 2, 8, 8)) == (12, 36)
    assert inner_face_share(pred, (2, 2, 8, 8)) == pytest.approx(12 / 36)
    # Clipped to the image; an empty box scores 0.
    assert inner_face_counts(pred, (8, 4, 20, 6)) == (4, 4)
    assert inner_face_share(pred, (3, 3, 3, 3)) == 0.0


def test_box_mask_rejects_inverted_boxes() -> None:
    assert box_mask((4, 4), [(1, 1, 3, 2)]).sum() == 2
    with pytest.raises(ValueError, match="not"):
        box_mask((4, 4), [(3, 0, 1, 2)])
