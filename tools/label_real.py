"""Coarse labels for the real-photo evaluation set (``datasets/real_portraits``).

Not part of training or serving: it made the committed masks and boxes, and re-makes them
from the committed inputs so that anyone can check how they came about::

    python tools/label_real.py [--images DIR] [--out DIR] [--sheet PNG]

For each image:

1. The hair mask is the hand-drawn polygons of ``datasets/real_portraits/corrections.json``
   (drawn on a 50 px coordinate grid, erase polygons cut holes such as a hair bow),
   checked on the overlay sheet this script renders. Facial hair is not hair here.
   (MediaPipe selfie segmentation + GrabCut was tried as a seed and dropped: it took
   shoulders, hats and bald scalps for hair on most photos.)
2. The face detector of the pinned MediaPipe 0.10.21 wheel (see ``hairseg models
   fetch``) gives six keypoints per face; the boxes are derived from them.
3. Per-image overrides in the same file: head boxes for hats and for people the
   detector missed (``extra_head_boxes``), boxes set by hand where keypoints fail.

Boxes (pixels ``x0, y0, x1, y1``, exclusive right/bottom edge):

- **head box**: the tight box around one person's hair and face (face oval ∪ the hair
  pixels assigned to that face). One per visible head; the centred subject first.
- **inner-face box**: the region that is skin on every head, whatever the hairstyle:
  from just below the eyebrows to just below the mouth, between the outer eye corners
  (estimated from the keypoints, see :func:`inner_face_box`; checked by eye and set by
  hand where the estimate is off). Bangs stop above it; a moustache or beard can enter
  it (noted per image).

Writes ``OUT/masks/<id>.png`` (0/255) and ``OUT/labels.json`` (boxes per id), and an
overlay contact sheet to look at (``--sheet``; ``--grid 50`` adds the coordinate grid).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import zipfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from hairseg import imaging  # noqa: E402
from hairseg.data.real_portraits import build_manifests  # noqa: E402
from hairseg.mediapipe_models import WHEEL  # noqa: E402

DATASET = ROOT / "datasets" / "real_portraits"
# BlazeFace keypoints, in the detector's order.
RIGHT_EYE, LEFT_EYE, NOSE, MOUTH, RIGHT_EAR, LEFT_EAR = range(6)


class Priors:
    """Face keypoints from the MediaPipe face detector of the pinned wheel.

    The 468-point landmark model of that wheel does not run correctly under the 1.2.2
    Tasks FaceLandmarker (its points come out scattered), so faces are described by the
    detector's six keypoints (eyes, nose tip, mouth centre, ear tragions) and the face
    geometry below is derived from them.
    """

    def __init__(self, wheel_path: Path) -> None:
        os.environ.setdefault("GLOG_minloglevel", "2")
        from mediapipe.tasks.python import BaseOptions, vision

        self._tmp = tempfile.TemporaryDirectory()
        files = {}
        with zipfile.ZipFile(wheel_path) as zf:
            for name, member in (
                ("detector", "mediapipe/modules/face_detection/face_detection_short_range.tflite"),
            ):
                files[name] = Path(self._tmp.name) / f"{name}.tflite"
                files[name].write_bytes(zf.read(member))
        self._detector = vision.FaceDetector.create_from_options(
            vision.FaceDetectorOptions(
                base_options=BaseOptions(model_asset_path=str(files["detector"])),
                min_detection_confidence=0.5,
            )
        )

    def __call__(self, rgb: np.ndarray) -> list[np.ndarray]:
        """Keypoints ``(6, 2)`` per face, in pixels."""
        import mediapipe as mp

        h, w = rgb.shape[:2]
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        faces = [
            np.array([(k.x * w, k.y * h) for k in d.keypoints], dtype=np.float32)
            for d in self._detector.detect(image).detections
        ]
        return faces

    def close(self) -> None:
        self._detector.close()
        self._tmp.cleanup()


def _poly_mask(shape: tuple[int, int], points: np.ndarray | list) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(np.asarray(points)).astype(np.int32)], 1)
    return mask.astype(bool)


class Face:
    """A face frame from the keypoints: origin between the eyes, ``u`` along the eyes,
    ``v`` down the face; lengths in units of the eye-to-mouth distance ``m`` (vertical)
    and the eye distance ``e`` (horizontal). Proportions from average adult faces."""

    def __init__(self, kp: np.ndarray) -> None:
        self.kp = kp
        self.origin = (kp[RIGHT_EYE] + kp[LEFT_EYE]) / 2
        across = kp[LEFT_EYE] - kp[RIGHT_EYE]
        self.e = float(np.hypot(*across))
        self.u = across / max(self.e, 1e-6)
        self.v = np.array([-self.u[1], self.u[0]], np.float32)
        self.m = float(max(np.dot(kp[MOUTH] - self.origin, self.v), 0.6 * self.e))
        ears = abs(float(np.dot(kp[LEFT_EAR] - kp[RIGHT_EAR], self.u)))
        self.half_width = max(0.5 * ears, 0.95 * self.e)

    def to_xy(self, u: float, v: float) -> np.ndarray:
        return self.origin + u * self.u + v * self.v

    def uv(self, xx: np.ndarray, yy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dx, dy = xx - self.origin[0], yy - self.origin[1]
        return dx * self.u[0] + dy * self.u[1], dx * self.v[0] + dy * self.v[1]

    def oval(self, n: int = 48) -> np.ndarray:
        """Face outline: forehead top at v = -0.95 m, chin at v = 1.55 m."""
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        vc, b = 0.3 * self.m, 1.25 * self.m
        return np.array([self.to_xy(self.half_width * np.cos(a), vc + b * np.sin(a)) for a in t])

    @property
    def brow_v(self) -> float:  # the lower edge of the eyebrows
        return -0.25 * self.m

    @property
    def chin_v(self) -> float:
        return 1.55 * self.m

    @property
    def centre(self) -> np.ndarray:
        return self.to_xy(0.0, 0.3 * self.m)


def inner_face_box(face: Face, shape: tuple[int, int]) -> list[int]:
    """From just below the eyebrows (v = -0.2 m) to just below the mouth (v = 1.2 m),
    between the outer eye corners (u = ±0.74 e); axis-aligned around the rotated box."""
    corners = np.array([face.to_xy(u * 0.74 * face.e, v * face.m)
                        for u in (-1, 1) for v in (-0.2, 1.2)])  # fmt: skip
    h, w = shape
    x0, y0 = corners.min(0)
    x1, y1 = corners.max(0)
    return [max(0, math.floor(x0)), max(0, math.floor(y0)),
            min(w, math.ceil(x1)), min(h, math.ceil(y1))]  # fmt: skip


def hair_mask(shape: tuple[int, int], fix: dict) -> np.ndarray:
    """The hand-drawn hair polygons, less the erased ones; 0/255."""
    out = np.zeros(shape, np.uint8)
    for poly in fix.get("hair", []):
        out[_poly_mask(out.shape, poly)] = 255
    for poly in fix.get("erase", []):
        out[_poly_mask(out.shape, poly)] = 0
    return out


def head_boxes(
    mask: np.ndarray, faces: list[Face], main: int, extra: list[list[int]]
) -> list[list[int]]:
    """One tight box per face: its oval plus the hair pixels nearest to it."""
    h, w = mask.shape
    boxes = []
    if faces:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        # Each hair pixel belongs to the face whose centre is nearest (in face units).
        dist = []
        for f in faces:
            u, v = f.uv(xx, yy)
            dist.append(np.hypot(u / (2 * f.half_width), (v - 0.3 * f.m) / (2.5 * f.m)))
        dist = np.stack(dist)
        owner = dist.argmin(0)
        for i, f in enumerate(faces):
            ys, xs = np.nonzero((mask > 127) & (owner == i) & (dist[i] < 1.6))
            pts = f.oval()
            if xs.size:
                pts = np.concatenate([pts, np.stack([xs, ys], 1), np.stack([xs + 1, ys + 1], 1)])
            x0, y0 = pts.min(0)
            x1, y1 = pts.max(0)
            boxes.append([max(0, math.floor(x0)), max(0, math.floor(y0)),
                          min(w, math.ceil(x1)), min(h, math.ceil(y1))])  # fmt: skip
        boxes.insert(0, boxes.pop(main))
    return boxes + [list(map(int, b)) for b in extra]


def main_face(faces: list[Face], expected: tuple[float, float]) -> int:
    """Index of the centred subject: the face nearest to where the crop put it."""
    return int(np.argmin([np.hypot(*(f.centre - np.asarray(expected))) for f in faces]))


def expected_centre(face: dict) -> tuple[float, float]:
    """Where the crop of ``faces.json`` put the subject's face centre, in crop pixels."""
    x0, y0, x1, y1 = face["crop"]
    fx, fy, fw, fh = face["face"]
    scale = min(1.0, 512 / max(x1 - x0, y1 - y0))
    return ((fx + fw / 2 - x0) * scale, (fy + fh / 2 - y0) * scale)


def label_all(images: Path, out: Path, wheel: Path) -> dict[str, dict]:
    faces_spec = {f["id"]: f for f in json.loads((DATASET / "faces.json").read_text())}
    fixes = json.loads((DATASET / "corrections.json").read_text())
    ids = sorted(i for i, f in faces_spec.items() if f["split"] == "eval")
    priors = Priors(wheel)
    labels: dict[str, dict] = {}
    (out / "masks").mkdir(parents=True, exist_ok=True)
    try:
        for image_id in ids:
            rgb = imaging.read_image(images / f"{image_id}.png")
            fix = fixes.get(image_id, {})
            keypoints = priors(rgb)
            drop = set(fix.get("drop_faces", []))
            faces = [Face(kp) for i, kp in enumerate(keypoints) if i not in drop]
            shape = rgb.shape[:2]
            mask = hair_mask(shape, fix)
            if not faces and not ("head_boxes" in fix and "inner_face_box" in fix):
                print(f"{image_id}: the landmarker found no face; give its boxes by hand")
                fix = {**fix, "head_boxes": [[0, 0, 1, 1]], "inner_face_box": [0, 0, 1, 1]}
            main = main_face(faces, expected_centre(faces_spec[image_id])) if faces else 0
            heads = fix.get("head_boxes") or head_boxes(
                mask, faces, main, fix.get("extra_head_boxes", [])
            )
            inner = fix.get("inner_face_box") or inner_face_box(faces[main], shape)
            imaging.write_png(out / "masks" / f"{image_id}.png", mask)
            labels[image_id] = {"head_boxes": heads, "inner_face_box": inner,
                                "n_faces_found": len(faces), "note": fix.get("note", "")}  # fmt: skip
            print(f"{image_id}: {len(faces)} face(s), hair {np.mean(mask > 127):.1%}", flush=True)
    finally:
        priors.close()
    (out / "labels.json").write_text(json.dumps(labels, indent=1, sort_keys=True) + "\n")
    return labels


def overlay(rgb: np.ndarray, mask: np.ndarray, label: dict, grid: int = 0) -> np.ndarray:
    vis = rgb.astype(np.float32).copy()
    hair = mask > 127
    vis[hair] = 0.45 * vis[hair] + 0.55 * np.array([255, 0, 255], np.float32)
    vis = vis.astype(np.uint8)
    contours, _ = cv2.findContours(hair.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(vis, contours, -1, (255, 255, 0), 1)
    for i, b in enumerate(label["head_boxes"]):
        cv2.rectangle(
            vis, (b[0], b[1]), (b[2] - 1, b[3] - 1), (0, 255, 0) if i == 0 else (0, 160, 255), 2
        )
    b = label["inner_face_box"]
    cv2.rectangle(vis, (b[0], b[1]), (b[2] - 1, b[3] - 1), (255, 60, 0), 2)
    if grid:
        h, w = mask.shape
        for x in range(0, w, grid):
            cv2.line(vis, (x, 0), (x, h), (255, 255, 255), 1)
            cv2.putText(vis, str(x), (x + 1, 10), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (255, 255, 255), 1)
        for y in range(0, h, grid):
            cv2.line(vis, (0, y), (w, y), (255, 255, 255), 1)
            cv2.putText(vis, str(y), (1, y + 10), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (255, 255, 255), 1)
    return vis


def contact_sheet(images: Path, out: Path, labels: dict[str, dict], sheet: Path, grid: int) -> None:
    from PIL import Image, ImageDraw

    tile, cols = 512 if grid else 256, 2 if grid else 6
    ids = sorted(labels)
    rows = math.ceil(len(ids) / cols)
    canvas = Image.new("RGB", (cols * tile, rows * (tile + 14)), "white")
    draw = ImageDraw.Draw(canvas)
    for k, image_id in enumerate(ids):
        rgb = imaging.read_image(images / f"{image_id}.png")
        mask = imaging.read_mask(out / "masks" / f"{image_id}.png")
        vis = Image.fromarray(overlay(rgb, mask, labels[image_id], grid))
        vis.thumbnail((tile, tile))
        x, y = (k % cols) * tile, (k // cols) * (tile + 14)
        canvas.paste(vis, (x, y + 14))
        draw.text((x + 2, y + 1), image_id, fill="black")
    canvas.save(sheet)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, default=DATASET / "images")
    parser.add_argument("--out", type=Path, default=DATASET)
    parser.add_argument("--wheel", type=Path, default=Path(".hairseg/cache") / WHEEL.filename)
    parser.add_argument("--sheet", type=Path, default=None, help="write an overlay contact sheet")
    parser.add_argument("--grid", type=int, default=0, help="sheet: coordinate grid every N px")
    parser.add_argument(
        "--sheet-only", action="store_true", help="re-render from OUT, no labelling"
    )
    args = parser.parse_args(argv)
    if not args.wheel.is_file():
        parser.error(f"{args.wheel} missing: run `hairseg models fetch` (offline wheel) first")
    if args.sheet_only:
        labels = json.loads((args.out / "labels.json").read_text())
    else:
        labels = label_all(args.images, args.out, args.wheel)
    if not args.sheet_only and args.out == DATASET:
        for path in build_manifests(DATASET, DATASET.parent / "real_portraits_pool"):
            print(f"wrote {path.relative_to(ROOT)}")
    if args.sheet:
        contact_sheet(args.images, args.out, labels, args.sheet, args.grid)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
