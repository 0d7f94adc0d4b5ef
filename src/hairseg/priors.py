"""Real-photo priors from MediaPipe, fused into the hair probabilities (one code path).

A network trained on procedural portraits marks suits, sky and shadows as hair on real
photos. Three facts about real portraits hold whatever the network thinks:

- hair grows on a head: around and above a detected face, never far from it
  (:func:`head_prior`, from the BlazeFace short-range face box);
- hair is not the inner face (eyes, nose, mouth, cheeks): an ellipse from the six BlazeFace
  keypoints (:func:`inner_face_prior`);
- hair belongs to a person: MediaPipe selfie segmentation (optional, it costs ~5 ms).

:class:`Priors` runs the models on an image and returns one soft map in ``[0, 1]`` at the
network resolution; :func:`fuse_logits` multiplies the hair probability by it and returns
logits again, so :func:`hairseg.imaging.logits_to_masks` (thresholding, upsampling) is
unchanged. :class:`hairseg.inference.OnnxSegmenter` owns a :class:`Priors`, so training-time
evaluation, the real-photo evaluation, the canary (through the served endpoint) and serving
all fuse the same way.

A missing MediaPipe model file is logged once, in one line, and that prior is skipped;
an image with no detected face keeps the network's output (``no_face: keep``) or loses
all hair (``no_face: suppress``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from hairseg.closing import Closing
from hairseg.config import require

__all__ = [
    "Face",
    "Priors",
    "PriorsConfig",
    "fuse_logits",
    "head_prior",
    "inner_face_prior",
]

log = logging.getLogger(__name__)

_EPS = 1e-6


@dataclass(frozen=True)
class PriorsConfig:
    """``params.yaml`` section ``priors``: which priors fuse into the hair probability.

    Geometry is in units of the detected face box (its width across, its height up and
    down), so it holds at any image size.
    """

    enabled: bool = True
    models_dir: str = ".hairseg/models/mediapipe"
    face_detector: bool = True  # head region + inner face (BlazeFace short range, ~2 ms)
    selfie_segmenter: bool = False  # person mask (~5 ms on one CPU core)
    min_face_confidence: float = 0.5
    detect_max_side: int = 512  # faces are detected on a copy no larger than this
    map_size: int = 64  # priors are drawn at this resolution (they are smooth), then resized
    head_above: float = 0.9  # head region: face-box heights above the box
    head_beside: float = 0.6  # face-box widths on each side
    head_below: float = 0.7  # face-box heights below the box (long hair on shoulders)
    head_falloff: float = 0.3  # soft edge outside the region, in face-box sizes
    inner_face: bool = True  # suppress an ellipse over eyes, nose, mouth and cheeks
    inner_across: float = 0.7  # half-width, in eye distances
    inner_above: float = 0.2  # top: above the eyes, in eye-to-mouth distances
    inner_below: float = 0.6  # bottom: below the mouth, in eye-to-mouth distances
    person_dilate: float = 0.15  # grow the person mask by this share of the face size
    person_floor: float = 0.0  # prior outside the person mask (0: no hair off the person)
    no_face: Literal["keep", "suppress"] = "keep"

    def __post_init__(self) -> None:
        checks = [
            (0.0 <= self.min_face_confidence <= 1.0, "min_face_confidence must be in [0, 1]"),
            (self.detect_max_side >= 64, "detect_max_side must be >= 64"),
            (self.map_size >= 8, "map_size must be >= 8"),
            (
                min(self.head_above, self.head_beside, self.head_below) >= 0,
                "head_above/head_beside/head_below must be >= 0",
            ),
            (self.head_falloff > 0, "head_falloff must be > 0"),
            (self.inner_across > 0 and self.inner_below > 0, "inner_* must be > 0"),
            (0.0 <= self.person_floor <= 1.0, "person_floor must be in [0, 1]"),
            (self.person_dilate >= 0, "person_dilate must be >= 0"),
            (self.no_face in ("keep", "suppress"), "no_face must be keep or suppress"),
        ]
        require((ok, f"params priors: {message}") for ok, message in checks)

    @property
    def active(self) -> bool:
        return self.enabled and (self.face_detector or self.selfie_segmenter)


@dataclass(frozen=True)
class Face:
    """One detected face in normalised image coordinates (``[0, 1]`` of width/height)."""

    box: tuple[float, float, float, float]  # x, y, width, height
    keypoints: tuple[tuple[float, float], ...]  # right eye, left eye, nose, mouth, ears
    score: float


def _grid(size: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres of a ``size``² map in the source image's pixel units (x, y)."""
    centres = (np.arange(size, dtype=np.float32) + 0.5) / size
    return centres[None, :] * width, centres[:, None] * height


def head_prior(
    faces: Sequence[Face], size: int, width: int, height: int, cfg: PriorsConfig
) -> np.ndarray:
    """Soft head region, ``(size, size)`` in ``[0, 1]``: 1 inside the expanded face box of
    any face, falling linearly to 0 over ``head_falloff`` face sizes outside it."""
    xs, ys = _grid(size, width, height)
    out = np.zeros((size, size), dtype=np.float32)
    for face in faces:
        x, y, w, h = face.box
        fw, fh = w * width, h * height
        x0, x1 = x * width - cfg.head_beside * fw, (x + w) * width + cfg.head_beside * fw
        y0, y1 = y * height - cfg.head_above * fh, (y + h) * height + cfg.head_below * fh
        dx = np.maximum(np.maximum(x0 - xs, xs - x1), 0.0) / (cfg.head_falloff * fw)
        dy = np.maximum(np.maximum(y0 - ys, ys - y1), 0.0) / (cfg.head_falloff * fh)
        np.maximum(out, np.clip(1.0 - np.sqrt(dx * dx + dy * dy), 0.0, 1.0), out=out)
    return out


def inner_face_prior(
    faces: Sequence[Face], size: int, width: int, height: int, cfg: PriorsConfig
) -> np.ndarray:
    """``(size, size)`` in ``[0, 1]``: 0 on the inner face of every face, 1 elsewhere.

    A superellipse (power 3: boxier than an ellipse, so the outer eye corners are inside
    while the forehead above stays out) tilted with the eye line: across
    ``inner_across`` eye distances each way, from ``inner_above`` eye-to-mouth distances
    above the eyes to ``inner_below`` below the mouth, with a soft rim.
    """
    xs, ys = _grid(size, width, height)
    keep = np.ones((size, size), dtype=np.float32)
    for face in faces:
        if len(face.keypoints) < 4:
            continue
        pts = np.array(face.keypoints[:4], dtype=np.float32) * np.array([width, height])
        right_eye, left_eye, _nose, mouth = pts
        eyes = (right_eye + left_eye) / 2
        across = left_eye - right_eye
        eye_dist = float(np.hypot(*across))
        down = mouth - eyes
        eye_mouth = float(np.hypot(*down))
        if eye_dist < 1 or eye_mouth < 1:
            continue
        u = across / eye_dist  # unit vector along the eye line
        v = down / eye_mouth  # unit vector eyes -> mouth
        top = -cfg.inner_above * eye_mouth
        bottom = eye_mouth * (1.0 + cfg.inner_below)
        centre = eyes + v * (top + bottom) / 2
        semi_v = (bottom - top) / 2
        semi_u = cfg.inner_across * eye_dist
        px, py = xs - centre[0], ys - centre[1]
        a = (px * u[0] + py * u[1]) / semi_u
        b = (px * v[0] + py * v[1]) / semi_v
        r = np.cbrt(np.abs(a) ** 3 + np.abs(b) ** 3)
        # 0 inside r <= 0.85, rising to 1 at r = 1.15: the rim is where fringes and
        # sideburns meet the face, so it is left to the network.
        np.minimum(keep, np.clip((r - 0.85) / 0.3, 0.0, 1.0), out=keep)
    return keep


def fuse_logits(logits: np.ndarray, prior_maps: Sequence[np.ndarray | None]) -> np.ndarray:
    """Multiply each image's hair probability by its prior map; return logits again.

    ``logits`` is ``(N, 1, S, S)``; a ``None`` map leaves that image unchanged.
    """
    if logits.ndim != 4 or logits.shape[1] != 1:
        raise ValueError(f"expected logits of shape (N, 1, S, S), got {logits.shape}")
    if len(prior_maps) != logits.shape[0]:
        raise ValueError(f"{len(prior_maps)} prior maps for a batch of {logits.shape[0]}")
    if all(m is None for m in prior_maps):
        return logits
    out = logits.astype(np.float32, copy=True)
    for i, prior in enumerate(prior_maps):
        if prior is None:
            continue
        if prior.shape != out.shape[2:]:
            prior = cv2.resize(prior, out.shape[:1:-1], interpolation=cv2.INTER_LINEAR)
        prob = 0.5 * (np.tanh(0.5 * out[i, 0]) + 1.0)
        fused = np.clip(prob * prior, _EPS, 1.0 - _EPS)
        out[i, 0] = np.log(fused) - np.log1p(-fused)
    return out


@dataclass
class _Loaded:
    detector: object | None = None
    segmenter: object | None = None
    notes: list[str] = field(default_factory=list)


class Priors(Closing):
    """The MediaPipe models behind the priors, opened on first use.

    ``maps(images, size)`` returns one ``(size, size)`` prior per image (``None`` where no
    prior applies). Thread-safe (MediaPipe task objects are not). Use :meth:`close` or a
    ``with`` block; MediaPipe's own finaliser fails at interpreter shutdown.
    """

    def __init__(self, cfg: PriorsConfig | None = None) -> None:
        self.cfg = cfg or PriorsConfig()
        self._loaded: _Loaded | None = None
        self._lock = threading.Lock()

    # -- models ------------------------------------------------------------------------

    def _load(self) -> _Loaded:
        if self._loaded is not None:
            return self._loaded
        from hairseg.mediapipe_models import model_path

        cfg, loaded = self.cfg, _Loaded()
        if cfg.active:
            os.environ.setdefault("GLOG_minloglevel", "2")
            wanted = [
                ("face_detector", cfg.face_detector, "head region and inner face"),
                ("selfie_segmenter", cfg.selfie_segmenter, "person mask"),
            ]
            for name, on, what in wanted:
                if not on:
                    continue
                path = model_path(name, cfg.models_dir)
                if path is None:
                    note = (
                        f"priors: MediaPipe {name} not found in {cfg.models_dir} "
                        f"(run `hairseg models fetch`); fusing without the {what} prior"
                    )
                    log.warning(note)
                    loaded.notes.append(note)
                    continue
                try:
                    if name == "face_detector":
                        loaded.detector = _open_detector(path, cfg.min_face_confidence)
                    else:
                        loaded.segmenter = _open_segmenter(path)
                except ImportError as exc:  # e.g. an image built without the vision extra
                    note = (
                        f"priors: cannot load MediaPipe {name} ({exc}; install hairseg[vision]); "
                        f"fusing without the {what} prior"
                    )
                    log.warning(note)
                    loaded.notes.append(note)
        self._loaded = loaded
        return loaded

    @property
    def available(self) -> dict[str, bool]:
        """Which priors will be applied (after opening the models)."""
        with self._lock:
            loaded = self._load()
        return {
            "face_detector": loaded.detector is not None,
            "selfie_segmenter": loaded.segmenter is not None,
        }

    @property
    def notes(self) -> list[str]:
        with self._lock:
            return list(self._load().notes)

    def close(self) -> None:
        with self._lock:
            if self._loaded is not None:
                for model in (self._loaded.detector, self._loaded.segmenter):
                    if model is not None:
                        model.close()
            self._loaded = _Loaded(notes=["closed"]) if self._loaded is not None else None

    # -- inference ---------------------------------------------------------------------

    def detect_faces(self, rgb: np.ndarray) -> list[Face] | None:
        """Faces in ``rgb`` (normalised coordinates); ``None`` without a face detector."""
        with self._lock:
            loaded = self._load()
            if loaded.detector is None:
                return None
            small = _shrink(rgb, self.cfg.detect_max_side)
            result = loaded.detector.detect(_mp_image(small))
        faces = []
        for d in result.detections:
            b = d.bounding_box
            h, w = small.shape[:2]
            faces.append(
                Face(
                    box=(b.origin_x / w, b.origin_y / h, b.width / w, b.height / h),
                    keypoints=tuple((float(k.x), float(k.y)) for k in d.keypoints),
                    score=float(d.categories[0].score) if d.categories else 1.0,
                )
            )
        return faces

    def person(self, rgb: np.ndarray, size: int) -> np.ndarray | None:
        """Person confidence ``(size, size)`` in ``[0, 1]``; ``None`` without the model."""
        with self._lock:
            loaded = self._load()
            if loaded.segmenter is None:
                return None
            small = _shrink(rgb, max(size, 256))
            masks = loaded.segmenter.segment(_mp_image(small)).confidence_masks
            conf = np.array(masks[0].numpy_view(), dtype=np.float32)
        if conf.ndim == 3:
            conf = conf[..., 0]
        return cv2.resize(conf, (size, size), interpolation=cv2.INTER_LINEAR)

    def map_for(self, rgb: np.ndarray, size: int) -> np.ndarray | None:
        """The fused prior for one image at ``min(size, map_size)``², or ``None`` (leave it
        unchanged); :func:`fuse_logits` resizes it to the logits."""
        cfg = self.cfg
        if not cfg.active:
            return None
        size = min(size, cfg.map_size)
        height, width = rgb.shape[:2]
        faces = self.detect_faces(rgb) if cfg.face_detector else None
        prior: np.ndarray | None = None
        if faces is not None:
            if not faces:
                if cfg.no_face == "suppress":
                    return np.zeros((size, size), dtype=np.float32)
                # keep: no face, no head prior; the person prior still applies.
            else:
                prior = head_prior(faces, size, width, height, cfg)
                if cfg.inner_face:
                    prior *= inner_face_prior(faces, size, width, height, cfg)
        if cfg.selfie_segmenter:
            person = self.person(rgb, size)
            if person is not None:
                if cfg.person_dilate > 0 and faces:
                    face_px = max(f.box[3] for f in faces) * size
                    radius = max(1, round(cfg.person_dilate * face_px))
                    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1,) * 2)
                    person = cv2.dilate(person, kernel)
                person = cfg.person_floor + (1.0 - cfg.person_floor) * person
                prior = person if prior is None else prior * person
        return prior

    def maps(self, images: Sequence[np.ndarray], size: int) -> list[np.ndarray | None]:
        return [self.map_for(rgb, size) for rgb in images]

    def fuse(self, images: Sequence[np.ndarray], logits: np.ndarray) -> np.ndarray:
        """``logits`` (for ``images``, at the network resolution) with the priors fused."""
        if not self.cfg.active:
            return logits
        return fuse_logits(logits, self.maps(images, logits.shape[-1]))


def _shrink(rgb: np.ndarray, max_side: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return np.ascontiguousarray(rgb)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.ascontiguousarray(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA))


def _mp_image(rgb: np.ndarray) -> object:
    import mediapipe as mp

    return mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))


def _open_detector(path: Path, min_confidence: float) -> object:
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.FaceDetectorOptions(
        base_options=BaseOptions(model_asset_path=str(path)),
        min_detection_confidence=min_confidence,
    )
    return vision.FaceDetector.create_from_options(options)


def _open_segmenter(path: Path) -> object:
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.ImageSegmenterOptions(
        base_options=BaseOptions(model_asset_path=str(path)),
        output_confidence_masks=True,
        output_category_mask=False,
    )
    return vision.ImageSegmenter.create_from_options(options)
