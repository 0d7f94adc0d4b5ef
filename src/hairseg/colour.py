"""Perceptual colour helpers shared by the try-on, its golden tests and its benchmark.

- :func:`rgb_to_lab`: sRGB ``uint8`` to CIE L*a*b* (D65; L in 0-100), through OpenCV;
- :func:`delta_e2000`: the CIEDE2000 colour difference (Sharma, Wu & Dalal 2005), vectorised;
- :func:`ssim`: the structural similarity of two images' luma (Wang et al. 2004, Gaussian
  window σ = 1.5, K1 = 0.01, K2 = 0.03), optionally averaged over a mask;
- :func:`high_frequency_energy`: the energy of luma minus its Gaussian blur, over a mask
  (the texture that strands and highlights carry).
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["delta_e2000", "high_frequency_energy", "lab_to_rgb", "rgb_to_lab", "ssim"]


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """``uint8`` (…×3 sRGB) to float32 L*a*b* (L 0-100, a/b about ±128)."""
    arr = np.asarray(rgb)
    flat = arr.reshape(-1, 1, 3).astype(np.float32) / 255.0
    return cv2.cvtColor(flat, cv2.COLOR_RGB2Lab).reshape(arr.shape).astype(np.float32)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """float32 L*a*b* to ``uint8`` sRGB (out-of-gamut values clipped)."""
    arr = np.asarray(lab, dtype=np.float32)
    rgb = cv2.cvtColor(arr.reshape(-1, 1, 3), cv2.COLOR_Lab2RGB).reshape(arr.shape)
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


def delta_e2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 between two broadcastable arrays of L*a*b* triples (last axis 3)."""
    lab1 = np.asarray(lab1, dtype=np.float64)
    lab2 = np.asarray(lab2, dtype=np.float64)
    L1, a1, b1 = lab1[..., 0], lab1[..., 1], lab1[..., 2]
    L2, a2, b2 = lab2[..., 0], lab2[..., 1], lab2[..., 2]
    c1 = np.hypot(a1, b1)
    c2 = np.hypot(a2, b2)
    c_bar7 = ((c1 + c2) / 2.0) ** 7
    g = 0.5 * (1.0 - np.sqrt(c_bar7 / (c_bar7 + 25.0**7)))
    a1p, a2p = (1.0 + g) * a1, (1.0 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360.0
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360.0
    dLp = L2 - L1
    dCp = c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180.0, dh - 360.0, np.where(dh < -180.0, dh + 360.0, dh))
    dh = np.where(c1p * c2p == 0, 0.0, dh)
    dHp = 2.0 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh) / 2.0)
    L_bar = (L1 + L2) / 2.0
    C_bar = (c1p + c2p) / 2.0
    h_sum = h1p + h2p
    h_bar = np.where(
        c1p * c2p == 0,
        h_sum,
        np.where(
            np.abs(h1p - h2p) <= 180.0,
            h_sum / 2.0,
            np.where(h_sum < 360.0, (h_sum + 360.0) / 2.0, (h_sum - 360.0) / 2.0),
        ),
    )
    t = (
        1.0
        - 0.17 * np.cos(np.radians(h_bar - 30.0))
        + 0.24 * np.cos(np.radians(2.0 * h_bar))
        + 0.32 * np.cos(np.radians(3.0 * h_bar + 6.0))
        - 0.20 * np.cos(np.radians(4.0 * h_bar - 63.0))
    )
    d_theta = 30.0 * np.exp(-(((h_bar - 275.0) / 25.0) ** 2))
    c_bar7p = C_bar**7
    r_c = 2.0 * np.sqrt(c_bar7p / (c_bar7p + 25.0**7))
    s_l = 1.0 + 0.015 * (L_bar - 50.0) ** 2 / np.sqrt(20.0 + (L_bar - 50.0) ** 2)
    s_c = 1.0 + 0.045 * C_bar
    s_h = 1.0 + 0.015 * C_bar * t
    r_t = -np.sin(np.radians(2.0 * d_theta)) * r_c
    return np.sqrt(
        (dLp / s_l) ** 2 + (dCp / s_c) ** 2 + (dHp / s_h) ** 2 + r_t * (dCp / s_c) * (dHp / s_h)
    )


def _luma(img: np.ndarray) -> np.ndarray:
    if img.ndim == 3:
        img = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)
    return img.astype(np.float64)


def ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean SSIM of the luma of two same-sized ``uint8`` images (over ``mask`` if given)."""
    if a.shape != b.shape:
        raise ValueError(f"ssim: shapes differ {a.shape} vs {b.shape}")
    x, y = _luma(a), _luma(b)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(z: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(z, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mx, my = blur(x), blur(y)
    vx = blur(x * x) - mx * mx
    vy = blur(y * y) - my * my
    cxy = blur(x * y) - mx * my
    smap = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    if mask is not None:
        sel = np.asarray(mask) > 0
        return float(smap[sel].mean()) if sel.any() else 1.0
    return float(smap.mean())


def high_frequency_energy(rgb: np.ndarray, mask: np.ndarray, sigma: float = 2.0) -> float:
    """Mean squared luma minus its Gaussian blur (σ ``sigma`` px) over ``mask`` > 0."""
    y = _luma(rgb)
    hp = y - cv2.GaussianBlur(y, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    sel = np.asarray(mask) > 0
    return float(np.mean(hp[sel] ** 2)) if sel.any() else 0.0
