"""Weak hair labels for unlabelled portraits: ``hairseg data pseudo-label SRC DEST``.

A teacher made of the real-photo priors (:mod:`hairseg.priors`) plus, optionally, the
current model turns a folder of portraits into a dataset in the project's format
(:mod:`hairseg.data.manifest`) with ``source = pseudo``, a per-pixel confidence map
(``confidence/<id>.png``, 0-255) and a per-image ``confidence`` column.

Per image, with the BlazeFace face box ``(x, y, w, h)`` and keypoints of every face:

1. **Seeds.** Hair is only looked for in the head region *above the chin and around the
   face* (``head_above``/``head_beside`` face sizes, down to the chin), inside the selfie
   person mask. Inside that region the **face oval** (from the keypoints) and
   **skin-coloured pixels** (a Lab colour model fitted to the cheeks of that face) are
   background, so bald scalps and foreheads are not hair. Below the chin, only a band
   beside the face may be hair (long hair on the shoulders), and only as "probable".
   Everything outside the head regions and off the person is certain background, so
   shoulders, suits and sky never become hair.
2. **GrabCut** refines the probable pixels with colour models of the seeds.
3. **Confidence**: 1 on certain background, rising from ``edge_confidence`` at the hair
   boundary to 1 at ``edge_band`` face heights from it; probable pixels where GrabCut
   overrode its seed get ``flip_confidence``. With ``--model``, pixels where the fused
   model and the teacher disagree lose half their confidence. The image's confidence is the
   mean over its head regions times the face detector's score; images below
   ``min_image_confidence`` are dropped (listed, with the reason).

Limits (see README): hats and headscarves are not skin, so they come out as hair; grey or
blond hair close to skin colour is partly lost; profiles without both eyes are skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from hairseg import imaging
from hairseg.errors import EXIT_USAGE, HairsegError
from hairseg.priors import Face, Priors, PriorsConfig, inner_face_prior

__all__ = [
    "UNAVAILABLE_NAME",
    "PseudoLabel",
    "PseudoLabelConfig",
    "PseudoLabelResult",
    "Skipped",
    "Teacher",
    "TeacherSpec",
    "label_image",
    "validate_pseudo_dataset",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PseudoLabelConfig:
    """``params.yaml`` section ``pseudo_label``."""

    head_above: float = 1.2  # face-box heights above the box
    head_beside: float = 0.6  # face-box widths on each side
    chin: float = 0.05  # the chin line: face-box heights below the box bottom
    long_hair_below: float = 1.2  # the band beside the face below the chin (probable only)
    long_hair_inset: float = 0.15  # that band reaches this share of the face width inwards
    skin_radius: float = 2.5  # Mahalanobis radius of the skin colour model (Lab)
    person_threshold: float = 0.5
    grabcut_iters: int = 4
    edge_band: float = 0.06  # face heights over which confidence recovers from an edge
    edge_confidence: float = 0.4
    flip_confidence: float = 0.3
    min_image_confidence: float = 0.5
    min_face_confidence: float = 0.6
    max_side: int = 512  # images are shrunk to this long side before labelling

    def __post_init__(self) -> None:
        if not 0 <= self.min_image_confidence <= 1 or not 0 <= self.edge_confidence <= 1:
            raise HairsegError(
                "params pseudo_label: confidences must be in [0, 1]", exit_code=EXIT_USAGE
            )
        if self.grabcut_iters < 0 or self.max_side < 64:
            raise HairsegError(
                "params pseudo_label: grabcut_iters >= 0 and max_side >= 64", exit_code=EXIT_USAGE
            )


@dataclass
class PseudoLabel:
    mask: np.ndarray  # 0/255
    confidence_map: np.ndarray  # float32 [0, 1]
    confidence: float
    n_faces: int


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str

    def line(self) -> str:
        return f"skipped {self.path}: {self.reason}"


@dataclass
class PseudoLabelResult:
    path: Path
    n_labelled: int
    skipped: list[Skipped] = field(default_factory=list)
    mean_confidence: float = 0.0


def _box_px(face: Face, width: int, height: int) -> tuple[float, float, float, float]:
    x, y, w, h = face.box
    return x * width, y * height, w * width, h * height


def _skin_model(lab: np.ndarray, face: Face, width: int, height: int) -> tuple | None:
    """Mean and inverse covariance of Lab colour on the cheeks and nose bridge of a face."""
    if len(face.keypoints) < 4:
        return None
    pts = np.array(face.keypoints[:4], dtype=np.float32) * np.array([width, height])
    right_eye, left_eye, nose = pts[:3]
    eye_dist = float(np.hypot(*(left_eye - right_eye)))
    if eye_dist < 4:
        return None
    samples = []
    radius = max(2, int(0.18 * eye_dist))
    # Cheeks (below each eye, beside the nose) and the nose bridge: skin on every face,
    # beards start lower, fringes stop higher.
    for centre in (
        right_eye + 0.55 * (nose - right_eye) + np.array([0, 0.2 * eye_dist]),
        left_eye + 0.55 * (nose - left_eye) + np.array([0, 0.2 * eye_dist]),
        (right_eye + left_eye) / 2 + 0.4 * (nose - (right_eye + left_eye) / 2),
    ):
        cx, cy = round(float(centre[0])), round(float(centre[1]))
        patch = lab[
            max(cy - radius, 0) : cy + radius + 1, max(cx - radius, 0) : cx + radius + 1
        ].reshape(-1, 3)
        samples.append(patch)
    data = np.concatenate(samples).astype(np.float32)
    if len(data) < 10:
        return None
    # Trimmed by lightness: on small faces the patches catch eyes, glasses and shadows,
    # which would make "skin" everything from hair-dark to highlight-bright.
    lo, hi = np.percentile(data[:, 0], [25, 75])
    core = data[(data[:, 0] >= lo) & (data[:, 0] <= hi)]
    if len(core) < 10:
        core = data
    mean = np.median(core, axis=0)
    # A floor on the spread: lighting varies over a head more than over three patches.
    cov = np.cov(core, rowvar=False) + np.diag([40.0, 8.0, 8.0]).astype(np.float32)
    return mean, np.linalg.inv(cov)


def _skin_mask(lab: np.ndarray, model: tuple, radius: float) -> np.ndarray:
    mean, inv = model
    d = lab.reshape(-1, 3).astype(np.float32) - mean
    dist2 = np.einsum("ij,jk,ik->i", d, inv, d)
    return (dist2 <= radius * radius).reshape(lab.shape[:2])


def label_image(
    rgb: np.ndarray,
    faces: list[Face],
    person: np.ndarray | None,
    cfg: PseudoLabelConfig,
    *,
    model_prob: np.ndarray | None = None,
) -> PseudoLabel:
    """The teacher on one image (pure: faces and person prob come from the caller).

    ``person`` and ``model_prob`` are ``(H, W)`` probabilities at the image's resolution.
    """
    height, width = rgb.shape[:2]
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    probable_fg = np.zeros((height, width), bool)
    possible = np.zeros((height, width), bool)  # may be hair at all
    not_hair = np.zeros((height, width), bool)  # certain background inside the regions
    crown = np.zeros((height, width), bool)
    face_hs = []
    for face in faces:
        x, y, w, h = _box_px(face, width, height)
        face_hs.append(h)
        chin = y + h + cfg.chin * h
        above = (
            (xs >= x - cfg.head_beside * w)
            & (xs < x + w + cfg.head_beside * w)
            & (ys >= y - cfg.head_above * h)
            & (ys < chin)
        )
        inset = cfg.long_hair_inset * w
        below = (
            (ys >= chin)
            & (ys < chin + cfg.long_hair_below * h)
            & (
                ((xs >= x - cfg.head_beside * w) & (xs < x + inset))
                | ((xs >= x + w - inset) & (xs < x + w + cfg.head_beside * w))
            )
        )
        skin_model = _skin_model(lab, face, width, height)
        skin = (
            _skin_mask(lab, skin_model, cfg.skin_radius)
            if skin_model is not None
            else np.zeros((height, width), bool)
        )
        face_oval = _face_oval(face, width, height)
        # The crown: just above the face box, between the eyes' outer corners. Hair on
        # nearly every head that is not bald (skin) or hatted; GrabCut's certain seeds.
        crown |= (
            (xs >= x + 0.2 * w)
            & (xs < x + 0.8 * w)
            & (ys >= y - 0.3 * h)
            & (ys < y + 0.05 * h)
            & ~skin
        )
        not_hair |= (above | below) & (skin | face_oval)
        probable_fg |= above & ~skin & ~face_oval
        possible |= above | below
    if person is not None:
        on_person = person >= cfg.person_threshold
        face_h = max(face_hs) if face_hs else 0.0
        grow = max(1, round(0.04 * face_h))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1,) * 2)
        on_person = cv2.dilate(on_person.astype(np.uint8), kernel) > 0
        possible &= on_person
    probable_fg &= possible & ~not_hair
    gc = np.full((height, width), cv2.GC_BGD, np.uint8)
    gc[possible] = cv2.GC_PR_BGD
    gc[probable_fg] = cv2.GC_PR_FGD
    gc[possible & not_hair] = cv2.GC_BGD
    if model_prob is not None:
        gc[possible & ~not_hair & (model_prob >= 0.5)] = cv2.GC_PR_FGD
    gc[crown & probable_fg] = cv2.GC_FGD
    seed_fg = np.isin(gc, (cv2.GC_PR_FGD, cv2.GC_FGD))
    hair = _grabcut(rgb, gc, possible | not_hair, cfg, max(face_hs)) if seed_fg.any() else seed_fg
    hair &= possible & ~not_hair
    # Speckles are not hair: drop components smaller than 1 % of a face area.
    hair = _drop_small(hair, 0.01 * (max(face_hs) if face_hs else 1.0) ** 2)
    mask = hair.astype(np.uint8) * 255
    confidence = _confidence(hair, seed_fg, possible, cfg, max(face_hs) if face_hs else 1.0)
    if model_prob is not None:
        disagree = possible & ((model_prob >= 0.5) != hair)
        confidence[disagree] *= 0.5
    region = possible | not_hair
    image_conf = float(confidence[region].mean()) if region.any() else 0.0
    image_conf *= max((f.score for f in faces), default=0.0)
    return PseudoLabel(mask, confidence, image_conf, len(faces))


def _grabcut(
    rgb: np.ndarray, gc: np.ndarray, region: np.ndarray, cfg: PseudoLabelConfig, face_h: float
) -> np.ndarray:
    """GrabCut on a crop around the head regions, so the background colour model is the
    background *near* the head (a whole-frame model swallows dark hair into dark suits)."""
    seeds = np.isin(gc, (cv2.GC_PR_FGD, cv2.GC_FGD))
    if not cfg.grabcut_iters or not (gc == cv2.GC_BGD).any():
        return seeds
    ys, xs = np.nonzero(region)
    pad = int(0.3 * face_h) + 2
    y0, y1 = max(ys.min() - pad, 0), min(ys.max() + pad + 1, gc.shape[0])
    x0, x1 = max(xs.min() - pad, 0), min(xs.max() + pad + 1, gc.shape[1])
    work = np.ascontiguousarray(gc[y0:y1, x0:x1])
    if not (work == cv2.GC_BGD).any():
        return seeds
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    # GrabCut seeds its colour models' k-means from OpenCV's global RNG: without a fixed
    # seed an image's label depends on what the process labelled before it (measured: the
    # eval-set IoU moved 0.258 -> 0.282 with the call order alone).
    cv2.setRNGSeed(0)
    try:
        cv2.grabCut(
            np.ascontiguousarray(cv2.cvtColor(rgb[y0:y1, x0:x1], cv2.COLOR_RGB2BGR)),
            work,
            None,
            bgd,
            fgd,
            cfg.grabcut_iters,
            cv2.GC_INIT_WITH_MASK,
        )
    except cv2.error as exc:  # degenerate colour models: keep the seeds
        log.debug("grabcut failed: %s", exc)
        return seeds
    hair = np.zeros_like(seeds)
    hair[y0:y1, x0:x1] = np.isin(work, (cv2.GC_FGD, cv2.GC_PR_FGD))
    return hair


def _face_oval(face: Face, width: int, height: int) -> np.ndarray:
    """The inner face (eyes to below the mouth), as the fusion prior suppresses it."""
    cfg = PriorsConfig(inner_above=0.35, inner_below=1.1, inner_across=0.85)
    keep = inner_face_prior([face], max(width, height), width, height, cfg)
    keep = cv2.resize(keep, (width, height), interpolation=cv2.INTER_LINEAR)
    return keep < 0.5


def _drop_small(mask: np.ndarray, min_area: float) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = np.zeros(n, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_area
    return keep[labels]


def _confidence(
    hair: np.ndarray,
    seed_fg: np.ndarray,
    possible: np.ndarray,
    cfg: PseudoLabelConfig,
    face_h: float,
) -> np.ndarray:
    edges = cv2.Canny(hair.astype(np.uint8) * 255, 50, 150) > 0
    dist = cv2.distanceTransform((~edges).astype(np.uint8), cv2.DIST_L2, 3)
    band = max(1.0, cfg.edge_band * face_h)
    conf = cfg.edge_confidence + (1 - cfg.edge_confidence) * np.clip(dist / band, 0, 1)
    conf = conf.astype(np.float32)
    conf[possible & (hair != seed_fg)] = cfg.flip_confidence
    conf[~possible] = 1.0
    return conf


@dataclass(frozen=True)
class TeacherSpec:
    """What a batch worker needs to build the teacher (picklable: configs and a path)."""

    cfg: PseudoLabelConfig
    priors: PriorsConfig
    model_path: str | None = None  # an ONNX model whose fused masks join the teacher

    def version(self, model_version: str | None = None) -> str:
        """The ``model_version`` of the rows this teacher writes: a rerun redoes every image
        when the teacher's settings or its model change (``teacher-<hash>[+<model>]``)."""
        import hashlib
        import json
        from dataclasses import asdict

        text = json.dumps({"cfg": asdict(self.cfg), "priors": asdict(self.priors)}, sort_keys=True)
        tag = "teacher-" + hashlib.sha256(text.encode()).hexdigest()[:10]
        return f"{tag}+{model_version}" if model_version else tag


@dataclass
class TeacherOutput:
    rgb: np.ndarray  # the image as labelled (shrunk to ``max_side``)
    label: PseudoLabel | None
    reason: str = ""  # why there is no label


class Teacher:
    """The MediaPipe priors (faces, person) plus, optionally, the current model's fused
    masks, on one image at a time (one per batch worker)."""

    def __init__(self, spec: TeacherSpec, *, intra_op_threads: int = 1) -> None:
        self.spec = spec
        self.cfg = spec.cfg
        self.priors = Priors(
            PriorsConfig(
                enabled=True,
                models_dir=spec.priors.models_dir,
                face_detector=True,
                selfie_segmenter=True,
                min_face_confidence=spec.cfg.min_face_confidence,
                detect_max_side=spec.cfg.max_side,
            )
        )
        self.segmenter = None
        if spec.model_path is not None:
            from hairseg.inference import OnnxSegmenter

            self.segmenter = OnnxSegmenter(
                spec.model_path, priors=spec.priors, intra_op_threads=intra_op_threads
            )

    def check(self) -> None:
        """Raise (exit 2) without the face detector; warn without the person segmenter."""
        available = self.priors.available
        if not available["face_detector"]:
            raise HairsegError(
                f"pseudo-label needs the MediaPipe face detector in {self.spec.priors.models_dir} "
                "(run `hairseg models fetch`)",
                exit_code=EXIT_USAGE,
            )
        if not available["selfie_segmenter"]:
            log.warning(
                "pseudo-label: no selfie segmenter in %s; labelling without the person mask",
                self.spec.priors.models_dir,
            )

    def label(self, rgb: np.ndarray) -> TeacherOutput:
        cfg = self.cfg
        rgb = _shrink(rgb, cfg.max_side)
        faces = self.priors.detect_faces(rgb) or []
        faces = [f for f in faces if len(f.keypoints) >= 4]
        if not faces:
            return TeacherOutput(rgb, None, "no face detected (MediaPipe face detector)")
        height, width = rgb.shape[:2]
        person = self.priors.person(rgb, max(height, width))
        if person is not None:
            person = cv2.resize(person, (width, height), interpolation=cv2.INTER_LINEAR)
        prob = None
        if self.segmenter is not None:
            logits = self.segmenter.fused_logits([rgb])[0, 0]
            prob = cv2.resize(imaging.sigmoid(logits), (width, height))
        label = label_image(rgb, faces, person, cfg, model_prob=prob)
        if label.confidence < cfg.min_image_confidence:
            return TeacherOutput(
                rgb,
                None,
                f"label confidence {label.confidence:.2f} is below "
                f"min_image_confidence {cfg.min_image_confidence}",
            )
        return TeacherOutput(rgb, label)

    def close(self) -> None:
        self.priors.close()
        if self.segmenter is not None:
            self.segmenter.close()


def _images_in(src: Path) -> Iterator[tuple[str, Path, dict[str, str]]]:
    """(id, path, manifest extras) for each file in ``src``: a dataset with a manifest
    (its rows, licences carried over) or a plain folder (every file, non-images included,
    so that they are reported)."""
    from hairseg.data.manifest import MANIFEST_NAME, read_manifest

    if (src / MANIFEST_NAME).is_file():
        df = read_manifest(src)
        for row in df.itertuples(index=False):
            yield str(row.id), src / str(row.image_path), {"licence": str(row.licence)}
        return
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        if path.name.startswith("."):
            continue
        ident = "_".join(path.relative_to(src).with_suffix("").parts)
        yield ident, path, {}


FOLDER_LICENCE = "unknown (pseudo-labelled from a folder)"
#: What ``hairseg data pseudo-label --skip-unavailable`` writes into DEST, instead of a
#: dataset, when there is nothing it can label (``{"reason": ...}``); ``train.pseudo``
#: reads it and trains on the synthetic data only.
UNAVAILABLE_NAME = "unavailable.json"


def validate_pseudo_dataset(
    dest: str | Path,
    params: dict,
    *,
    split: str,
    models_dir: str | Path,
    reports_dir: str | Path,
    on_failure: Callable[[str], None] = lambda _line: None,
) -> str:
    """The Great Expectations gate on a pseudo-labelled ``dest`` (params ``validate``,
    ``required_splits`` = the split written; faces counted with the MediaPipe detector
    when it is there). Returns the success line; raises with the failed checks' names
    after calling ``on_failure`` once per failed check."""
    import dataclasses
    from contextlib import ExitStack

    from hairseg.config import section
    from hairseg.data.validate import ValidateParams, validate_dataset
    from hairseg.mediapipe_models import FaceDetector, model_path

    vparams = dataclasses.replace(
        section(params, "validate", ValidateParams), required_splits=(split,)
    )
    with ExitStack() as stack:
        detector = model_path("face_detector", models_dir)
        counter = (
            stack.enter_context(FaceDetector(detector, min_confidence=vparams.face_min_confidence))
            if detector is not None
            else None
        )
        report = validate_dataset(dest, vparams, reports_dir=reports_dir, face_counter=counter)
    if not report.success:
        for failure in report.failures:
            on_failure(failure.line())
        raise HairsegError(
            f"pseudo-labelled dataset {dest} failed {len(report.failures)} of "
            f"{report.n_expectations} checks ({', '.join(sorted({f.check for f in report.failures}))}); "
            f"see {report.result_json}"
        )
    return (
        f"dataset {dest} passed {report.n_expectations} checks on {report.n_images} images; "
        f"Data Docs: {report.data_docs}"
    )


def _skip_reason(status: str, error: str) -> str:
    """A failed row is a file the teacher could not read; a declined one has its reason."""
    if status == "failed" and not error.startswith("read failed"):
        return f"not an image: {error}"
    return error


def _shrink(rgb: np.ndarray, max_side: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return rgb
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
