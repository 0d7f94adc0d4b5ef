"""Hair recolouring for the virtual try-on: the one implementation used by the model card
gallery and by the KServe predictor.

The hue and saturation of hair pixels move towards the target shade while the value
channel keeps its relative texture (strands and highlights stay visible); the mask edge is
feathered so the result has no hard seam. Pixels farther than ``feather_px`` from the mask
are returned bit-for-bit unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import cv2
import numpy as np

from hairseg.errors import HairsegError

__all__ = ["SHADES", "Shade", "parse_shade", "recolour"]


@dataclass(frozen=True)
class Shade:
    """A target hair colour, as sRGB."""

    name: str
    rgb: tuple[int, int, int]


# A small catalogue of named shades; any '#rrggbb' is accepted too.
SHADES: dict[str, tuple[int, int, int]] = {
    "jet_black": (20, 20, 24),
    "espresso": (59, 36, 24),
    "chestnut": (112, 58, 30),
    "auburn": (145, 50, 30),
    "copper": (184, 92, 40),
    "burgundy": (110, 20, 45),
    "honey_blonde": (214, 168, 96),
    "platinum": (229, 222, 205),
    "rose_gold": (214, 142, 130),
    "pastel_pink": (240, 160, 190),
    "lavender": (170, 140, 210),
    "teal": (20, 128, 128),
    "electric_blue": (30, 80, 220),
}

_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")


def parse_shade(colour: str) -> Shade:
    """Resolve a shade name (case-insensitive, '-' or ' ' for '_') or a '#rrggbb' string."""
    if not isinstance(colour, str) or not colour.strip():
        raise HairsegError("colour must be a shade name or '#rrggbb'")
    key = colour.strip().lower().replace("-", "_").replace(" ", "_")
    if key in SHADES:
        return Shade(key, SHADES[key])
    match = _HEX.match(colour.strip())
    if match:
        h = match.group(1)
        return Shade(f"#{h.lower()}", (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)))
    raise HairsegError(
        f"unknown colour {colour!r}; accepted: '#rrggbb' or one of {', '.join(sorted(SHADES))}"
    )


def recolour(
    rgb: np.ndarray,
    mask: np.ndarray,
    shade: Shade | str,
    *,
    intensity: float = 0.8,
    feather_px: int = 3,
) -> np.ndarray:
    """Recolour the hair in ``rgb`` (``uint8`` H×W×3) where ``mask`` (H×W, 0/255) says hair.

    ``intensity`` in [0, 1] blends between the original (0) and the full shade (1).
    """
    if not 0.0 <= float(intensity) <= 1.0:
        raise HairsegError(f"intensity must be between 0 and 1, got {intensity}")
    if rgb.shape[:2] != mask.shape[:2]:
        raise ValueError(f"image {rgb.shape[:2]} and mask {mask.shape[:2]} differ in size")
    if isinstance(shade, str):
        shade = parse_shade(shade)
    alpha = (mask > 127).astype(np.float32)
    if feather_px > 0:
        k = 2 * feather_px + 1
        # A box-sized Gaussian kernel is exactly zero beyond feather_px: no bleed further out.
        alpha = cv2.GaussianBlur(
            alpha, (k, k), sigmaX=feather_px / 2.0, borderType=cv2.BORDER_REFLECT
        )
    alpha *= float(intensity)
    if not np.any(alpha > 0):
        return rgb.copy()

    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV_FULL).astype(np.float32)
    target = cv2.cvtColor(np.array([[shade.rgb]], dtype=np.uint8), cv2.COLOR_RGB2HSV_FULL)[0, 0]
    target = target.astype(np.float32)
    hair = mask > 127
    mean_v = float(hsv[..., 2][hair].mean()) if hair.any() else float(hsv[..., 2].mean())
    # Keep relative texture: scale value so the hair's mean value moves half-way to the
    # target's, bounded so very dark hair cannot blow out to white noise.
    gain = np.clip((0.5 * mean_v + 0.5 * target[2]) / max(mean_v, 1.0), 0.5, 2.5)
    out = hsv.copy()
    out[..., 0] = target[0]
    out[..., 1] = 0.25 * hsv[..., 1] + 0.75 * target[1]
    out[..., 2] = np.clip(hsv[..., 2] * gain, 0, 255)
    dyed = cv2.cvtColor(out.round().astype(np.uint8), cv2.COLOR_HSV2RGB_FULL).astype(np.float32)

    a = alpha[..., None]
    blended = (rgb.astype(np.float32) * (1.0 - a) + dyed * a).round().astype(np.uint8)
    # Bit-exact outside the feathered region.
    return np.where(a > 0, blended, rgb)
