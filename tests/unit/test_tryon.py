"""Recolour: changes hair only, honours intensity, rejects unknown shades."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from hairseg.errors import HairsegError
from hairseg.tryon import parse_shade, recolour


def _scene() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    rgb = rng.integers(40, 200, (64, 64, 3), dtype=np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[8:30, 10:50] = 255
    return rgb, mask


def test_recolour_changes_hair_and_leaves_everything_outside_the_feather_unchanged() -> None:
    rgb, mask = _scene()
    out = recolour(rgb, mask, "copper", intensity=1.0, feather_px=3)
    outside = cv2.dilate(mask, np.ones((7, 7), np.uint8)) == 0
    assert np.array_equal(out[outside], rgb[outside])
    inside = mask > 0
    assert np.abs(out[inside].astype(int) - rgb[inside]).mean() > 10


def test_intensity_zero_is_identity_and_bounds_are_checked() -> None:
    rgb, mask = _scene()
    assert np.array_equal(recolour(rgb, mask, "#ff0000", intensity=0.0), rgb)
    with pytest.raises(HairsegError, match="between 0 and 1"):
        recolour(rgb, mask, "teal", intensity=1.5)


def test_parse_shade_accepts_names_and_hex_and_names_the_choices_on_error() -> None:
    assert parse_shade("Rose Gold").rgb == (214, 142, 130)
    assert parse_shade("#0A0B0c").rgb == (10, 11, 12)
    with pytest.raises(HairsegError, match="unknown colour 'mauve'.*copper"):
        parse_shade("mauve")


# -- soft matte, LAB recolour, anti-bleed ------------------------------------------------


def _textured_hair(l_mean: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A 96x96 portrait-ish frame: strands (fine vertical streaks) in a cap, grey elsewhere."""
    from hairseg.colour import lab_to_rgb

    rng = np.random.default_rng(seed)
    h = w = 96
    lab = np.zeros((h, w, 3), np.float32)
    lab[..., 0] = 70.0
    hair = np.zeros((h, w), bool)
    hair[6:50, 12:84] = True
    streaks = 6.0 * np.sin(np.arange(w) * 1.9)[None, :] + rng.normal(0, 2.0, (h, w))
    lab[..., 0] = np.where(hair, l_mean + streaks, 70.0)
    lab[..., 1] = np.where(hair, 6.0, 0.0)
    lab[..., 2] = np.where(hair, 10.0, 0.0)
    return lab_to_rgb(lab), hair.astype(np.uint8) * 255


def test_guided_filter_snaps_a_blurry_probability_to_the_guide_edge() -> None:
    from hairseg.tryon import guided_filter

    guide = np.zeros((64, 64), np.float32)
    guide[:, 32:] = 1.0
    blurry = cv2.GaussianBlur(guide, (0, 0), 3.0)
    refined = guided_filter(guide, blurry, radius=6, eps=1e-3)
    # The step across the guide's edge: soft in the input, a clear jump after refinement.
    assert blurry[0, 32] - blurry[0, 31] < 0.2
    assert refined[0, 32] - refined[0, 31] > 0.5
    near = slice(29, 35)
    assert (
        np.abs(refined[:, near] - guide[:, near]).mean()
        < 0.6 * np.abs(blurry[:, near] - guide[:, near]).mean()
    )
    # Colour guide of the same edge agrees.
    colour = guided_filter(np.repeat(guide[..., None], 3, axis=2), blurry, radius=6, eps=1e-3)
    np.testing.assert_allclose(colour, refined, atol=0.02)


@pytest.mark.parametrize("tier", ["fast", "standard", "premium"])
def test_soft_matte_is_solid_in_the_core_zero_outside_and_at_image_size(tier: str) -> None:
    from hairseg.tryon import soft_matte

    rgb, mask = _textured_hair(20.0)
    prob = cv2.resize((mask > 0).astype(np.float32), (32, 32), interpolation=cv2.INTER_AREA)
    alpha = soft_matte(rgb, prob, tier)
    assert alpha.shape == mask.shape and alpha.dtype == np.float32
    assert alpha.min() >= 0.0 and alpha.max() <= 1.0
    core = cv2.erode(mask, np.ones((9, 9), np.uint8)) > 0
    far = cv2.dilate(mask, np.ones((15, 15), np.uint8)) == 0
    assert alpha[core].min() > 0.95 and alpha[far].max() == 0.0
    band = (cv2.dilate(mask, np.ones((7, 7), np.uint8)) > 0) & ~core
    error = np.abs(alpha - mask / 255.0)[band].mean()
    if tier == "fast":  # a soft ramp from the 32 px grid
        assert np.count_nonzero((alpha > 0.05) & (alpha < 0.95)) > 50
    else:  # refined with the image as guide: the matte sits on the image's own edge
        fast = soft_matte(rgb, prob, "fast")
        assert error < 0.6 * np.abs(fast - mask / 255.0)[band].mean()


def test_unknown_tier_names_the_choices() -> None:
    from hairseg.tryon import soft_matte

    with pytest.raises(HairsegError, match="unknown tier 'ultra'.*fast, standard, premium"):
        soft_matte(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.float32), "ultra")


def test_dark_hair_to_platinum_is_light_not_grey_and_keeps_its_strands() -> None:
    from hairseg.colour import delta_e2000, high_frequency_energy, rgb_to_lab

    rgb, mask = _textured_hair(18.0)
    shade = parse_shade("honey_blonde")
    out = recolour(rgb, (mask > 0).astype(np.float32), shade, intensity=1.0)
    hair = cv2.erode(mask, np.ones((5, 5), np.uint8)) > 0
    lab_in, lab_out = rgb_to_lab(rgb)[hair], rgb_to_lab(out)[hair]
    gap = shade.lab[0] - lab_in[:, 0].mean()
    assert lab_out[:, 0].mean() - lab_in[:, 0].mean() > 0.8 * gap  # lifted, not left dark
    chroma = np.hypot(lab_out[:, 1], lab_out[:, 2]).mean()
    assert chroma > 0.8 * np.hypot(shade.lab[1], shade.lab[2])  # coloured, not grey
    assert delta_e2000(lab_out, shade.lab).mean() < 10
    ratio = high_frequency_energy(out, hair) / high_frequency_energy(rgb, hair)
    assert ratio >= 0.8


def test_intensity_scales_smoothly_and_alpha_zero_pixels_are_bit_exact() -> None:
    from hairseg.colour import delta_e2000, rgb_to_lab

    rgb, mask = _textured_hair(30.0)
    alpha = cv2.GaussianBlur((mask > 0).astype(np.float32), (0, 0), 2.0)
    alpha[alpha < 0.01] = 0.0
    hair = mask > 0
    moved = []
    for t in np.linspace(0, 1, 11):
        out = recolour(rgb, alpha, "copper", intensity=float(t))
        np.testing.assert_array_equal(out[alpha == 0], rgb[alpha == 0])
        moved.append(delta_e2000(rgb_to_lab(out)[hair], rgb_to_lab(rgb)[hair]).mean())
    steps = np.diff(moved)
    assert moved[0] == 0.0 and np.all(steps > 0)  # monotone
    assert steps.max() < 2.5 * steps.mean()  # no jump


def test_skin_guard_pulls_the_soft_edge_off_skin_but_not_the_core() -> None:
    from hairseg.tryon import skin_likelihood

    skin = np.full((32, 32, 3), (222, 172, 140), np.uint8)
    grey = np.full((32, 32, 3), (128, 128, 128), np.uint8)
    assert skin_likelihood(skin).min() > 0.6 and skin_likelihood(grey).max() < 0.05
    rgb = np.concatenate([skin, grey], axis=1)
    edge = np.full((32, 64), 0.4, np.float32)
    guarded = recolour(rgb, edge, "electric_blue", intensity=1.0)
    unguarded = recolour(rgb, edge, "electric_blue", intensity=1.0, skin_guard=False)
    change = np.abs(guarded.astype(int) - rgb).sum(axis=2)
    change_off = np.abs(unguarded.astype(int) - rgb).sum(axis=2)
    assert change[:, :32].mean() < 0.5 * change_off[:, :32].mean()  # skin edge protected
    assert change[:, 32:].mean() > 0.9 * change_off[:, 32:].mean()  # grey edge still dyed
    core = np.ones((32, 64), np.float32)  # solid hair: dyed even when skin-coloured
    solid = recolour(rgb, core, "electric_blue", intensity=1.0)
    assert np.abs(solid.astype(int) - rgb)[:, :32].sum(axis=2).mean() > 60


def test_face_boxes_keep_the_inner_face_unchanged() -> None:
    rng = np.random.default_rng(1)
    rgb = rng.integers(60, 200, (80, 80, 3), dtype=np.uint8)
    alpha = np.ones((80, 80), np.float32)  # a matte that wrongly covers everything
    box = (20, 10, 40, 50)  # x, y, w, h
    out = recolour(rgb, alpha, "teal", intensity=1.0, face_boxes=[box])
    cx, cy = 40, int(10 + 0.65 * 50)
    inner = (slice(cy - 7, cy + 7), slice(cx - 7, cx + 7))
    np.testing.assert_array_equal(out[inner], rgb[inner])
    assert np.abs(out[:5].astype(int) - rgb[:5]).mean() > 10  # outside the face: dyed
