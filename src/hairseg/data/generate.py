"""Seeded procedural portraits with exact hair masks: the offline demo dataset.

Each image is drawn layer by layer (background, shoulders, back hair, neck, ears, face,
facial features, beard, front hair, stray strands, hat, hand). Every layer writes its
pixels *and* its label into a label map, so the mask is exact by construction: a pixel
is hair if and only if the last layer that painted it was hair. Eyebrows, beards, hats
and hands are separate labels and therefore never hair, even when they share the hair's
colour or cover it. Lighting, blur, noise and JPEG artefacts are applied to the image
only (the JPEG round trip happens in memory), so the mask stays exact.

Every image has its own RNG seeded from ``(seed, split, index)``: an image does not depend
on how many others are generated or in which order, and the same seed gives the same
bytes.

The task is learnable by context rather than colour alone: hair-like backgrounds (fur,
grass, strand textures in hair colours), same-coloured beards and eyebrows, dark hats
and skin-coloured hands make a colour threshold fail, while the hair is always attached
to a head.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from hairseg.data.manifest import SPLITS, write_manifest
from hairseg.errors import EXIT_USAGE, HairsegError
from hairseg.imaging import decode_image, encode_jpeg, write_png

__all__ = [
    "BACKGROUND_KINDS",
    "DEMO_LICENCE",
    "DEMO_SOURCE",
    "GENERATOR_FILE",
    "HAIR_COLOUR_FAMILIES",
    "HAIR_STYLES",
    "LIGHTINGS",
    "SKIN_TONES",
    "DataParams",
    "GenerateResult",
    "Label",
    "PortraitSpec",
    "Rendered",
    "generate_dataset",
    "read_generator_record",
    "render",
    "render_index",
    "replace_dir",
    "sample_spec",
]

DEMO_SOURCE = "hairseg-demo"
# Written into a generated dataset: the params that produced it (no timestamps or
# versions, so the bytes depend only on the params).
GENERATOR_FILE = "generator.json"
DEMO_LICENCE = "CC0-1.0"

HAIR_STYLES = ("bald", "short", "medium", "long", "curly", "bun", "fringe", "ponytail")
HAIR_COLOUR_FAMILIES = ("black", "brown", "blonde", "red", "grey", "dyed")
BACKGROUND_KINDS = ("plain", "indoor", "outdoor", "busy", "hairlike")
LIGHTINGS = ("even", "dim", "bright", "warm", "cool", "side")
SKIN_TONES = ("light", "medium", "dark")

# Monk Skin Tone scale (10 swatches, sRGB); groups of 3/3/4 become the skin_tone slice.
_MONK = np.array(
    [
        (246, 237, 228), (243, 231, 219), (247, 234, 208), (234, 218, 186), (215, 189, 150),
        (160, 126, 86), (130, 92, 67), (96, 65, 52), (58, 49, 42), (41, 36, 32),
    ],
    dtype=np.float32,
)  # fmt: skip
_MONK_GROUP = ("light",) * 3 + ("medium",) * 3 + ("dark",) * 4

_HAIR_PALETTE: dict[str, list[tuple[int, int, int]]] = {
    "black": [(22, 18, 16), (35, 28, 24), (28, 26, 30)],
    "brown": [(72, 48, 30), (100, 68, 42), (58, 40, 28), (120, 85, 55)],
    "blonde": [(205, 170, 110), (225, 195, 140), (180, 145, 90), (235, 215, 170)],
    "red": [(150, 68, 36), (170, 80, 40), (120, 50, 30), (190, 100, 55)],
    "grey": [(170, 168, 165), (200, 198, 195), (130, 128, 128), (225, 222, 218)],
    "dyed": [(225, 90, 160), (60, 95, 205), (125, 65, 175), (60, 165, 100), (205, 35, 45)],
}


class Label:
    """Label-map values; only :data:`HAIR` becomes 255 in the mask."""

    BACKGROUND = 0
    BODY = 1
    SKIN = 2
    HAIR = 3
    EYEBROW = 4
    BEARD = 5
    HAT = 6
    HAND = 7
    FEATURE = 8


@dataclass(frozen=True)
class DataParams:
    """``params.yaml`` section ``data``: demo dataset size and seed."""

    seed: int = 20261122
    image_size: int = 256
    n_train: int = 500
    n_val: int = 100
    n_test: int = 100

    def __post_init__(self) -> None:
        if not 32 <= self.image_size <= 2048:
            raise HairsegError(
                f"data.image_size must be between 32 and 2048, got {self.image_size}",
                exit_code=EXIT_USAGE,
            )
        for name in ("n_train", "n_val", "n_test"):
            value = getattr(self, name)
            if value < 0:
                raise HairsegError(f"data.{name} must be >= 0, got {value}", exit_code=EXIT_USAGE)
        if self.n_train + self.n_val + self.n_test == 0:
            raise HairsegError("data: n_train + n_val + n_test must be > 0", exit_code=EXIT_USAGE)

    def counts(self) -> dict[str, int]:
        return {"train": self.n_train, "val": self.n_val, "test": self.n_test}


@dataclass(frozen=True)
class PortraitSpec:
    """Everything random about one portrait except textures (drawn from the same RNG)."""

    size: int
    hair_style: str
    hair_colour_family: str
    hair_rgb: tuple[float, float, float]
    highlight_rgb: tuple[float, float, float] | None
    skin_index: int
    background_kind: str
    lighting: str
    cx: float
    cy: float
    rx: float
    ry: float
    beard: bool
    hat: bool
    hand: bool
    stray_strands: int
    blur_sigma: float
    noise_sigma: float
    jpeg_quality: int | None

    @property
    def skin_tone(self) -> str:
        return _MONK_GROUP[self.skin_index]

    @property
    def degradation(self) -> str:
        parts = [
            name
            for name, on in (
                ("blur", self.blur_sigma > 0),
                ("noise", self.noise_sigma > 0),
                ("jpeg", self.jpeg_quality is not None),
            )
            if on
        ]
        return "+".join(parts) or "none"


@dataclass(frozen=True)
class Rendered:
    image: np.ndarray  # (S, S, 3) uint8 RGB
    mask: np.ndarray  # (S, S) uint8, 0/255
    labels: np.ndarray  # (S, S) uint8, Label values before degradation


def _choice(rng: np.random.Generator, options, p=None):
    return options[int(rng.choice(len(options), p=p))]


def sample_spec(rng: np.random.Generator, size: int) -> PortraitSpec:
    """Draw the layout and appearance of one portrait."""
    style = _choice(rng, HAIR_STYLES, p=[0.06, 0.15, 0.15, 0.17, 0.12, 0.1, 0.13, 0.12])
    family = _choice(rng, HAIR_COLOUR_FAMILIES, p=[0.24, 0.26, 0.17, 0.1, 0.1, 0.13])
    base = np.array(_choice(rng, _HAIR_PALETTE[family]), dtype=np.float32)
    hair = np.clip(base * rng.uniform(0.85, 1.15) + rng.normal(0, 6, 3), 5, 250)
    highlight = None
    if rng.random() < 0.25:
        hl_family = _choice(rng, ("blonde", "dyed", "grey"))
        highlight = tuple(float(v) for v in _choice(rng, _HAIR_PALETTE[hl_family]))
    rx = size * rng.uniform(0.15, 0.2)
    bald_or_short = style in ("bald", "short")
    return PortraitSpec(
        size=size,
        hair_style=style,
        hair_colour_family=family,
        hair_rgb=tuple(float(v) for v in hair),
        highlight_rgb=highlight,
        skin_index=int(rng.integers(0, len(_MONK))),
        background_kind=_choice(rng, BACKGROUND_KINDS, p=[0.24, 0.26, 0.22, 0.16, 0.12]),
        lighting=_choice(rng, LIGHTINGS, p=[0.35, 0.13, 0.12, 0.13, 0.12, 0.15]),
        cx=size * rng.uniform(0.42, 0.58),
        cy=size * rng.uniform(0.38, 0.48),
        rx=rx,
        ry=rx * rng.uniform(1.22, 1.38),
        beard=bool(rng.random() < (0.35 if bald_or_short else 0.12)),
        hat=bool(rng.random() < 0.12 and style != "bald"),
        hand=bool(rng.random() < 0.12),
        stray_strands=int(rng.integers(0, 12)) if style != "bald" else 0,
        blur_sigma=float(rng.uniform(0.6, 1.6)) if rng.random() < 0.2 else 0.0,
        noise_sigma=float(rng.uniform(2.0, 7.0)) if rng.random() < 0.3 else 0.0,
        jpeg_quality=int(rng.integers(35, 90)) if rng.random() < 0.35 else None,
    )


# --------------------------------------------------------------------------- drawing


class _Canvas:
    """An RGB float canvas plus its label map; ``paint`` keeps both in step."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.rgb = np.zeros((size, size, 3), dtype=np.float32)
        self.labels = np.zeros((size, size), dtype=np.uint8)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        self.yy, self.xx = yy, xx

    def blank(self) -> np.ndarray:
        return np.zeros((self.size, self.size), dtype=np.uint8)

    def paint(self, region: np.ndarray, colour: np.ndarray, label: int) -> None:
        where = region.astype(bool)
        if colour.ndim == 1:
            self.rgb[where] = colour
        else:
            self.rgb[where] = colour[where]
        self.labels[where] = label


def _blob(
    canvas: _Canvas,
    rng: np.random.Generator,
    centre: tuple[float, float],
    radii: tuple[float, float],
    *,
    wobble: float = 0.04,
    curls: float = 0.0,
    angle: float = 0.0,
) -> np.ndarray:
    """A filled ellipse whose outline is perturbed by low (and optional high) frequencies."""
    t = np.linspace(0, 2 * np.pi, 120, endpoint=False)
    r = np.ones_like(t)
    for k in range(2, 6):
        r += wobble / k * np.sin(k * t + rng.uniform(0, 2 * np.pi))
    if curls:
        k = rng.integers(14, 24)
        r += curls * np.abs(np.sin(k * t / 2 + rng.uniform(0, np.pi)))
    ca, sa = np.cos(angle), np.sin(angle)
    x = radii[0] * r * np.cos(t)
    y = radii[1] * r * np.sin(t)
    pts = np.stack([centre[0] + ca * x - sa * y, centre[1] + sa * x + ca * y], axis=1)
    region = canvas.blank()
    cv2.fillPoly(region, [np.round(pts).astype(np.int32)], 1)
    return region


def _poly(canvas: _Canvas, points) -> np.ndarray:
    region = canvas.blank()
    cv2.fillPoly(region, [np.round(np.asarray(points)).astype(np.int32)], 1)
    return region


def _strand_texture(
    canvas: _Canvas,
    rng: np.random.Generator,
    origin: tuple[float, float],
    *,
    curly: bool,
    count: int,
    reach: float,
) -> np.ndarray:
    """A brightness-modulation map (around 1.0) of strands flowing out of ``origin``."""
    size = canvas.size
    tex = np.ones((size, size), dtype=np.float32)
    if curly:
        for _ in range(count * 2):
            centre = (int(rng.uniform(0, size)), int(rng.uniform(0, size)))
            axes = (int(rng.integers(2, 6)), int(rng.integers(2, 6)))
            start = float(rng.uniform(0, 360))
            cv2.ellipse(tex, centre, axes, 0, start, start + 240, float(rng.uniform(0.55, 1.35)), 1)
    else:
        ox, oy = origin
        for _ in range(count):
            angle = rng.uniform(0.05 * np.pi, 0.95 * np.pi)  # downwards fan
            length = reach * rng.uniform(0.6, 1.3)
            bend = rng.normal(0, 0.25)
            s = np.linspace(0, 1, 12)[:, None]
            direction = np.array([np.cos(angle), np.sin(angle)])
            normal = np.array([-direction[1], direction[0]])
            start = np.array([ox + rng.normal(0, reach * 0.15), oy + rng.normal(0, reach * 0.05)])
            pts = start + s * length * direction + (s**2) * bend * length * normal
            cv2.polylines(
                tex,
                [np.round(pts).astype(np.int32)],
                False,
                float(rng.uniform(0.6, 1.35)),
                1,
            )
    return cv2.GaussianBlur(tex, (0, 0), 0.6)


def _hair_colour(
    canvas: _Canvas, rng: np.random.Generator, spec: PortraitSpec, tex: np.ndarray
) -> np.ndarray:
    """Hair RGB over the whole canvas: base colour × strand texture × highlight band."""
    base = np.array(spec.hair_rgb, dtype=np.float32)
    band_y = spec.cy - spec.ry * rng.uniform(0.6, 1.0)
    band = 1.0 + rng.uniform(0.15, 0.45) * np.exp(-(((canvas.yy - band_y) / (spec.ry * 0.2)) ** 2))
    shade = (tex * band)[..., None]
    colour = base * shade + (shade - 1.0).clip(0) * 60.0  # sheen lifts dark hair too
    if spec.highlight_rgb is not None:
        streaks = canvas.blank()
        for _ in range(int(rng.integers(4, 10))):
            x0 = spec.cx + rng.uniform(-1.2, 1.2) * spec.rx
            pts = [
                (x0, spec.cy - spec.ry * 1.3),
                (x0 + rng.normal(0, spec.rx * 0.2), spec.cy + spec.ry * 2.5),
            ]
            cv2.line(
                streaks,
                tuple(np.round(pts[0]).astype(int)),
                tuple(np.round(pts[1]).astype(int)),
                1,
                int(max(1, spec.rx * rng.uniform(0.05, 0.14))),
            )
        hl = np.array(spec.highlight_rgb, dtype=np.float32) * tex[..., None]
        colour = np.where(streaks[..., None] > 0, 0.45 * colour + 0.55 * hl, colour)
    return np.clip(colour, 0, 255)


def _background(canvas: _Canvas, rng: np.random.Generator, spec: PortraitSpec) -> None:
    size = canvas.size
    top = rng.uniform(30, 230, 3).astype(np.float32)
    bottom = rng.uniform(30, 230, 3).astype(np.float32)
    w = (canvas.yy / size)[..., None]
    canvas.rgb[:] = top * (1 - w) + bottom * w
    kind = spec.background_kind
    if kind == "indoor":
        for _ in range(int(rng.integers(3, 9))):
            x0, y0 = rng.uniform(-0.1, 0.9, 2) * size
            x1, y1 = x0 + rng.uniform(0.1, 0.5) * size, y0 + rng.uniform(0.1, 0.6) * size
            colour = rng.uniform(20, 240, 3).astype(np.float32)
            region = canvas.blank()
            cv2.rectangle(region, (int(x0), int(y0)), (int(x1), int(y1)), 1, -1)
            canvas.paint(region, colour, Label.BACKGROUND)
    elif kind == "outdoor":
        sky = np.array([rng.uniform(120, 200), rng.uniform(160, 220), 240], dtype=np.float32)
        canvas.rgb[: size // 2] = sky
        for _ in range(int(rng.integers(10, 30))):
            c = (rng.uniform(0, size), rng.uniform(0.2, 1.0) * size)
            r = rng.uniform(0.04, 0.15) * size
            green = np.array(
                [rng.uniform(20, 90), rng.uniform(70, 160), rng.uniform(20, 70)], dtype=np.float32
            )
            canvas.paint(_blob(canvas, rng, c, (r, r * 0.8), wobble=0.2), green, Label.BACKGROUND)
    elif kind == "busy":
        for _ in range(int(rng.integers(15, 40))):
            colour = tuple(float(v) for v in rng.uniform(0, 255, 3))
            p = tuple(int(v) for v in rng.uniform(0, size, 2))
            q = tuple(int(v) for v in rng.uniform(0, size, 2))
            thickness = int(rng.integers(1, 6))
            if rng.random() < 0.5:
                cv2.line(canvas.rgb, p, q, colour, thickness)
            else:
                cv2.circle(canvas.rgb, p, int(rng.uniform(3, size * 0.12)), colour, -1)
    elif kind == "hairlike":
        # Fur, straw or a strand-textured fabric in a hair colour: only context tells it
        # apart from hair (it is not attached to a head).
        family = spec.hair_colour_family if rng.random() < 0.5 else _choice(rng, ("black", "brown", "blonde", "red"))  # fmt: skip
        base = np.array(_choice(rng, _HAIR_PALETTE[family]), dtype=np.float32)
        origin = (rng.uniform(0, size), rng.uniform(-0.3, 0.3) * size)
        tex = _strand_texture(
            canvas, rng, origin, curly=rng.random() < 0.3, count=250, reach=size * 1.2
        )
        region = canvas.blank()
        x0 = rng.uniform(-0.2, 0.5) * size
        y0 = rng.uniform(-0.2, 0.5) * size
        cv2.rectangle(
            region,
            (int(x0), int(y0)),
            (int(x0 + rng.uniform(0.5, 1.2) * size), int(y0 + rng.uniform(0.5, 1.2) * size)),
            1,
            -1,
        )
        canvas.paint(region, np.clip(base * tex[..., None], 0, 255), Label.BACKGROUND)
    # plain: gradient only


def _hair_regions(
    canvas: _Canvas, rng: np.random.Generator, spec: PortraitSpec
) -> tuple[np.ndarray, np.ndarray]:
    """(back hair, front hair) regions for the style; front hair is drawn over the face."""
    cx, cy, rx, ry = spec.cx, spec.cy, spec.rx, spec.ry
    style = spec.hair_style
    back = canvas.blank()
    if style == "bald":
        return back, back
    scale = {"short": 1.08, "bun": 1.06, "ponytail": 1.06, "medium": 1.26}.get(style, 1.14)
    cap = _blob(canvas, rng, (cx, cy - 0.06 * ry), (rx * scale, ry * (scale - 0.02)))
    # How far down the sides the cap reaches (in face radii below the centre).
    reach = {"short": -0.2, "bun": -0.1, "ponytail": -0.1, "fringe": 0.55}.get(style, 0.95)
    cap[int(max(0, cy + reach * ry)) :] = 0
    back |= cap
    if style == "long":
        bottom = cy + ry * rng.uniform(1.9, 2.8)
        flare = rng.uniform(1.25, 1.55)
        curtain = _poly(
            canvas,
            [
                (cx - rx * 1.12, cy - 0.2 * ry),
                (cx - rx * flare, bottom),
                (cx - rx * 0.4, bottom + rng.uniform(-0.1, 0.1) * ry),
                (cx + rx * 0.4, bottom + rng.uniform(-0.1, 0.1) * ry),
                (cx + rx * flare, bottom),
                (cx + rx * 1.12, cy - 0.2 * ry),
            ],
        )
        back |= curtain
    elif style == "curly":
        volume = _blob(
            canvas,
            rng,
            (cx, cy - 0.25 * ry),
            (rx * rng.uniform(1.45, 1.8), ry * rng.uniform(1.2, 1.45)),
            wobble=0.08,
            curls=0.06,
        )
        volume[int(cy + ry * rng.uniform(0.4, 1.1)) :] = 0
        back |= volume
    elif style == "bun":
        r = rx * rng.uniform(0.38, 0.5)
        back |= _blob(canvas, rng, (cx + rng.normal(0, rx * 0.2), cy - ry * 1.05 - r * 0.3), (r, r))
    elif style == "ponytail":
        side = 1 if rng.random() < 0.5 else -1
        top = (cx + side * rx * 0.75, cy - ry * 0.55)
        end = (cx + side * rx * rng.uniform(1.2, 1.6), cy + ry * rng.uniform(0.8, 1.6))
        width = rx * rng.uniform(0.22, 0.35)
        back |= _poly(
            canvas,
            [
                (top[0] - width, top[1]),
                (top[0] + width * side * 1.5, top[1] + width),
                (end[0] + width * 0.4, end[1]),
                (end[0] - width * 0.4, end[1]),
            ],
        )
        back |= _blob(canvas, rng, top, (width * 1.1, width * 1.1))
    # Front hair: the part of the cap above a hairline that dips at the temples.
    if style == "fringe":
        hairline = cy - ry * rng.uniform(0.22, 0.32)
        dip = 0.1
    else:
        hairline = cy - ry * rng.uniform(0.48, 0.62)
        dip = 0.35
    jag = rng.normal(0, ry * (0.03 if style == "fringe" else 0.01), canvas.size)
    line = hairline + dip * ry * ((canvas.xx[0] - cx) / rx) ** 2 + jag
    front = (cap > 0) & (canvas.yy < line[None, :])
    if style == "curly":
        front = (back > 0) & (canvas.yy < line[None, :] + 0.05 * ry)
    return back, front.astype(np.uint8)


def _face(canvas: _Canvas, rng: np.random.Generator, spec: PortraitSpec) -> np.ndarray:
    """Neck, ears and face with simple shading; returns the face region."""
    cx, cy, rx, ry = spec.cx, spec.cy, spec.rx, spec.ry
    skin = _MONK[spec.skin_index] * rng.uniform(0.9, 1.05)
    shade = 1.0 - 0.18 * (((canvas.xx - cx) / (rx * 1.2)) ** 2).clip(0, 1)[..., None]
    skin_img = np.clip(skin * shade, 0, 255)
    neck = _poly(
        canvas,
        [
            (cx - rx * 0.5, cy + ry * 0.5),
            (cx - rx * 0.55, cy + ry * 1.7),
            (cx + rx * 0.55, cy + ry * 1.7),
            (cx + rx * 0.5, cy + ry * 0.5),
        ],
    )
    canvas.paint(neck, skin_img * 0.85, Label.SKIN)
    if spec.hair_style not in ("long", "curly", "medium"):
        for side in (-1, 1):
            ear = _blob(canvas, rng, (cx + side * rx * 0.98, cy), (rx * 0.16, ry * 0.2), wobble=0)
            canvas.paint(ear, skin_img * 0.92, Label.SKIN)
    face = _blob(canvas, rng, (cx, cy), (rx, ry), wobble=0.02)
    chin = _blob(canvas, rng, (cx, cy + ry * 0.45), (rx * 0.72, ry * 0.55), wobble=0)
    face |= chin
    canvas.paint(face, skin_img, Label.SKIN)
    return face


def _features(canvas: _Canvas, rng: np.random.Generator, spec: PortraitSpec) -> None:
    """Eyes, eyebrows (never hair), nose and mouth."""
    cx, cy, rx, ry = spec.cx, spec.cy, spec.rx, spec.ry
    eye_dx = rx * rng.uniform(0.36, 0.44)
    eye_y = cy - ry * 0.08
    brow_colour = np.array(spec.hair_rgb, dtype=np.float32) * rng.uniform(0.5, 0.9)
    if spec.hair_colour_family in ("dyed", "grey"):  # brows keep a natural colour
        brow_colour = np.array((60, 45, 35), dtype=np.float32) * rng.uniform(0.5, 1.2)
    thick = max(1, round(ry * rng.uniform(0.05, 0.09)))
    iris = rng.uniform(30, 140, 3).astype(np.float32)
    for side in (-1, 1):
        ex = cx + side * eye_dx
        eye = canvas.blank()
        cv2.ellipse(
            eye, (int(ex), int(eye_y)), (int(rx * 0.2), max(2, int(ry * 0.07))), 0, 0, 360, 1, -1
        )
        canvas.paint(eye, np.array((235, 235, 230), dtype=np.float32), Label.FEATURE)
        pupil = canvas.blank()
        cv2.circle(pupil, (int(ex), int(eye_y)), max(2, int(ry * 0.06)), 1, -1)
        canvas.paint(pupil, iris, Label.FEATURE)
        brow = canvas.blank()
        cv2.ellipse(
            brow,
            (int(ex), int(eye_y + ry * 0.02)),
            (int(rx * 0.26), int(ry * 0.2)),
            0,
            205 if side < 0 else 215,
            325 if side < 0 else 335,
            1,
            thick,
        )
        canvas.paint(brow, brow_colour, Label.EYEBROW)
    skin = _MONK[spec.skin_index]
    nose = canvas.blank()
    cv2.line(nose, (int(cx), int(cy)), (int(cx + rx * 0.06), int(cy + ry * 0.28)), 1, 2)
    canvas.paint(nose, skin * 0.75, Label.FEATURE)
    mouth = canvas.blank()
    cv2.ellipse(
        mouth,
        (int(cx), int(cy + ry * 0.52)),
        (int(rx * rng.uniform(0.25, 0.38)), max(2, int(ry * 0.06))),
        0,
        0,
        360,
        1,
        -1,
    )
    lips = np.array((rng.uniform(120, 200), rng.uniform(40, 80), rng.uniform(50, 90)))
    canvas.paint(mouth, (0.5 * lips + 0.5 * skin * 0.7).astype(np.float32), Label.FEATURE)


def _beard(canvas: _Canvas, rng: np.random.Generator, spec: PortraitSpec, face: np.ndarray) -> None:
    """Beard and moustache: textured like hair, labelled BEARD (not hair)."""
    cx, cy, rx, ry = spec.cx, spec.cy, spec.rx, spec.ry
    jaw = _blob(canvas, rng, (cx, cy + ry * 0.55), (rx * 1.02, ry * 0.62), wobble=0.05)
    beard = (jaw > 0) & (canvas.yy > cy + ry * rng.uniform(0.32, 0.45))
    beard &= (face > 0) | (canvas.yy < cy + ry * 1.15)
    mouth = _blob(canvas, rng, (cx, cy + ry * 0.52), (rx * 0.3, ry * 0.07), wobble=0)
    beard &= mouth == 0
    moustache = _blob(canvas, rng, (cx, cy + ry * 0.41), (rx * 0.36, ry * 0.07), wobble=0.1)
    region = (beard | (moustache > 0)).astype(np.uint8)
    tex = _strand_texture(canvas, rng, (cx, cy + ry * 0.2), curly=True, count=120, reach=ry)
    colour = np.array(spec.hair_rgb, dtype=np.float32)
    if rng.random() < 0.3:
        colour = colour * 0.6 + np.array((120, 118, 115), dtype=np.float32) * 0.4
    canvas.paint(region, np.clip(colour * tex[..., None], 0, 255), Label.BEARD)


def _stray_strands(
    canvas: _Canvas, rng: np.random.Generator, spec: PortraitSpec, colour: np.ndarray
) -> None:
    """Flyaway strands leaving the hair outline; they are hair in the mask."""
    hair = (canvas.labels == Label.HAIR).astype(np.uint8)
    contours, _ = cv2.findContours(hair, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return
    outline = np.concatenate([c[:, 0, :] for c in contours]).astype(np.float32)
    outline = outline[outline[:, 1] < spec.cy + spec.ry * 0.5]  # upper part of the head
    if len(outline) == 0:
        return
    strands = canvas.blank()
    for _ in range(spec.stray_strands):
        start = outline[int(rng.integers(0, len(outline)))]
        away = start - np.array((spec.cx, spec.cy - spec.ry * 0.3), dtype=np.float32)
        away /= np.linalg.norm(away) + 1e-6
        normal = np.array((-away[1], away[0]))
        length = spec.size * rng.uniform(0.03, 0.07)
        s = np.linspace(0, 1, 8)[:, None]
        pts = start + s * length * away + s**2 * rng.normal(0, 0.4) * length * normal
        cv2.polylines(strands, [np.round(pts).astype(np.int32)], False, 1, 1)
    canvas.paint(strands, colour, Label.HAIR)


def _hat(canvas: _Canvas, rng: np.random.Generator, spec: PortraitSpec) -> None:
    cx, cy, rx, ry = spec.cx, spec.cy, spec.rx, spec.ry
    colour = rng.uniform(10, 230, 3).astype(np.float32)
    if rng.random() < 0.3:
        colour = np.array(spec.hair_rgb, dtype=np.float32) * 0.8  # a hat the hair's colour
    brim_y = cy - ry * rng.uniform(0.45, 0.6)
    if rng.random() < 0.5:  # brimmed hat
        crown = _poly(
            canvas,
            [
                (cx - rx * 0.95, brim_y),
                (cx - rx * 0.85, brim_y - ry * 0.85),
                (cx + rx * 0.85, brim_y - ry * 0.85),
                (cx + rx * 0.95, brim_y),
            ],
        )
        brim = _blob(canvas, rng, (cx, brim_y), (rx * 1.7, ry * 0.13), wobble=0)
        region = crown | brim
    else:  # beanie
        region = _blob(canvas, rng, (cx, brim_y), (rx * 1.18, ry * 0.95), wobble=0.02)
        region[int(brim_y + ry * 0.12) :] = 0
    shade = 1.0 - 0.25 * ((canvas.yy - brim_y) / ry).clip(-1, 0)[..., None] ** 2
    canvas.paint(region, np.clip(colour * shade, 0, 255), Label.HAT)


def _hand(canvas: _Canvas, rng: np.random.Generator, spec: PortraitSpec) -> None:
    """A hand (and forearm from the bottom edge) over the side of the head."""
    cx, cy, rx, ry = spec.cx, spec.cy, spec.rx, spec.ry
    side = 1 if rng.random() < 0.5 else -1
    px = cx + side * rx * rng.uniform(0.9, 1.3)
    py = cy + ry * rng.uniform(-0.6, 0.4)
    skin = _MONK[spec.skin_index] * rng.uniform(0.85, 1.05)
    palm = _blob(canvas, rng, (px, py), (rx * 0.36, ry * 0.38), wobble=0.03)
    fingers = canvas.blank()
    finger_w = max(2, int(rx * 0.13))
    for k in range(4):
        fx = px + (k - 1.5) * finger_w * 1.1
        tip = (fx - side * rng.uniform(0, rx * 0.1), py - ry * rng.uniform(0.55, 0.8))
        cv2.line(fingers, (int(fx), int(py)), (int(tip[0]), int(tip[1])), 1, finger_w)
    arm = _poly(
        canvas,
        [
            (px - rx * 0.3, py + ry * 0.2),
            (px + side * rx * 0.5 - rx * 0.35, spec.size + 2),
            (px + side * rx * 0.5 + rx * 0.35, spec.size + 2),
            (px + rx * 0.3, py + ry * 0.2),
        ],
    )
    canvas.paint(arm | fingers | palm, np.clip(skin, 0, 255), Label.HAND)


def _light_and_degrade(
    rgb: np.ndarray, canvas: _Canvas, rng: np.random.Generator, spec: PortraitSpec
) -> np.ndarray:
    """Lighting, blur, sensor noise and an in-memory JPEG round trip (image only)."""
    gain = np.ones(3, dtype=np.float32)
    if spec.lighting == "dim":
        rgb = rgb * rng.uniform(0.5, 0.75)
    elif spec.lighting == "bright":
        rgb = rgb * rng.uniform(1.2, 1.5) + 15
    elif spec.lighting == "warm":
        gain = np.array((1.12, 1.0, 0.8), dtype=np.float32)
    elif spec.lighting == "cool":
        gain = np.array((0.82, 0.95, 1.15), dtype=np.float32)
    elif spec.lighting == "side":
        ramp = (canvas.xx / spec.size) if rng.random() < 0.5 else 1 - canvas.xx / spec.size
        rgb = rgb * (0.45 + 0.8 * ramp)[..., None]
    rgb = rgb * gain
    if spec.blur_sigma > 0:
        rgb = cv2.GaussianBlur(rgb, (0, 0), spec.blur_sigma)
    if spec.noise_sigma > 0:
        rgb = rgb + rng.normal(0, spec.noise_sigma, rgb.shape).astype(np.float32)
    out = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
    if spec.jpeg_quality is not None:
        out = decode_image(encode_jpeg(out, quality=spec.jpeg_quality))
    return out


def render(spec: PortraitSpec, rng: np.random.Generator) -> Rendered:
    """Draw one portrait; ``rng`` supplies the textures and outline perturbations."""
    canvas = _Canvas(spec.size)
    _background(canvas, rng, spec)
    cx, cy, rx, ry = spec.cx, spec.cy, spec.rx, spec.ry
    clothing = rng.uniform(15, 235, 3).astype(np.float32)
    body = _blob(canvas, rng, (cx, cy + ry * 2.55), (rx * 2.6, ry * 1.2), wobble=0.03)
    canvas.paint(body, clothing, Label.BODY)
    back, front = _hair_regions(canvas, rng, spec)
    tex = _strand_texture(
        canvas,
        rng,
        (cx + rng.normal(0, rx * 0.2), cy - ry * 1.05),
        curly=spec.hair_style == "curly",
        count=160,
        reach=ry * (3.0 if spec.hair_style == "long" else 1.8),
    )
    hair_rgb = _hair_colour(canvas, rng, spec, tex)
    canvas.paint(back, hair_rgb, Label.HAIR)
    face = _face(canvas, rng, spec)
    _features(canvas, rng, spec)
    if spec.beard:
        _beard(canvas, rng, spec, face)
    canvas.paint(front, hair_rgb, Label.HAIR)
    if spec.stray_strands:
        _stray_strands(canvas, rng, spec, np.array(spec.hair_rgb, dtype=np.float32))
    if spec.hat:
        _hat(canvas, rng, spec)
    if spec.hand:
        _hand(canvas, rng, spec)
    image = _light_and_degrade(canvas.rgb, canvas, rng, spec)
    mask = np.where(canvas.labels == Label.HAIR, 255, 0).astype(np.uint8)
    return Rendered(image=image, mask=mask, labels=canvas.labels)


def _rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, SPLITS.index(split), index])


def render_index(seed: int, split: str, index: int, size: int) -> tuple[PortraitSpec, Rendered]:
    """The portrait with this (seed, split, index): independent of every other image."""
    rng = _rng(seed, split, index)
    spec = sample_spec(rng, size)
    return spec, render(spec, rng)


# --------------------------------------------------------------------------- dataset


@dataclass(frozen=True)
class GenerateResult:
    path: Path
    counts: dict[str, int]
    manifest_sha256: str


def replace_dir(src: Path, dest: Path) -> None:
    """Swap ``src`` in as ``dest`` so readers see either the old or the new folder."""
    dest = Path(dest)
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{src.name}")
        dest.rename(old)
    try:
        src.rename(dest)
    except BaseException:
        if old is not None:
            old.rename(dest)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def generate_dataset(
    dest: str | Path,
    params: DataParams,
    *,
    overwrite: bool = False,
    progress: bool = False,
) -> GenerateResult:
    """Generate the demo dataset into ``dest`` (built in a temp folder, then swapped in)."""
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise HairsegError(f"{dest} exists and is not a folder", exit_code=EXIT_USAGE)
    if dest.is_dir() and any(dest.iterdir()) and not overwrite:
        raise HairsegError(
            f"{dest} is not empty; pass --overwrite to replace it", exit_code=EXIT_USAGE
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        rows = []
        jobs = [(split, i) for split, n in params.counts().items() for i in range(n)]
        for split, i in tqdm(jobs, desc="generate", unit="img", disable=None if progress else True):
            spec, out = render_index(params.seed, split, i, params.image_size)
            image_id = f"demo-{split}-{i:05d}"
            write_png(tmp / "images" / f"{image_id}.png", out.image)
            write_png(tmp / "masks" / f"{image_id}.png", out.mask)
            rows.append(
                {
                    "id": image_id,
                    "image_path": f"images/{image_id}.png",
                    "mask_path": f"masks/{image_id}.png",
                    "split": split,
                    "source": DEMO_SOURCE,
                    "licence": DEMO_LICENCE,
                    "width": params.image_size,
                    "height": params.image_size,
                    "hair_colour_family": None
                    if spec.hair_style == "bald"
                    else spec.hair_colour_family,
                    "hair_style": spec.hair_style,
                    "skin_tone": spec.skin_tone,
                    "background_kind": spec.background_kind,
                    "lighting": spec.lighting,
                    "degradation": spec.degradation,
                    "occluders": "+".join(n for n in ("hat", "hand", "beard") if getattr(spec, n))
                    or "none",
                }
            )
        columns = list(rows[0]) if rows else None
        manifest = write_manifest(pd.DataFrame(rows, columns=columns), tmp)
        digest = hashlib.sha256(manifest.read_bytes()).hexdigest()
        (tmp / GENERATOR_FILE).write_text(
            json.dumps(
                {"generator": DEMO_SOURCE, "params": dataclasses.asdict(params)},
                indent=2,
                sort_keys=True,
            )
            + "\n"
        )
        replace_dir(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return GenerateResult(path=dest, counts=params.counts(), manifest_sha256=digest)


def read_generator_record(dataset: str | Path) -> dict[str, object] | None:
    """The generator params recorded in a generated dataset, or None for other data."""
    path = Path(dataset) / GENERATOR_FILE
    if not path.is_file():
        return None
    try:
        return dict(json.loads(path.read_text())["params"])
    except (ValueError, KeyError, TypeError):
        raise HairsegError(
            f"{path} is not a generator record (expected {{'params': {{...}}}})"
        ) from None
