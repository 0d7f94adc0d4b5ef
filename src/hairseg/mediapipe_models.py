"""MediaPipe task models: where they come from, how they are verified, how to find them.

mediapipe 1.2.2 (our dependency) ships no model files. Two routes fetch them:

- **offline wheel** (works wherever PyPI is reachable, e.g. behind a package mirror): the
  mediapipe 0.10.21 manylinux cp311 wheel is downloaded (never installed), its sha256
  checked against :data:`WHEEL`, and the legacy-solution ``.tflite`` files that the
  1.2.2 Tasks API runs are extracted and checked against their pinned sha256.
- **official**: the model-card URLs on ``storage.googleapis.com/mediapipe-models``.
  Google publishes no checksums for them and they are re-uploaded under the same
  ``latest`` path, so none is pinned: the file is checked to be a TFLite flatbuffer of a
  plausible size and its sha256 is recorded in ``SHA256SUMS`` beside it (trust on first
  use); later fetches must match that record.

:func:`model_path` is the one way other code finds a model; a missing model is ``None``
and callers say so in one line and carry on where that is safe.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hairseg.closing import Closing
from hairseg.errors import EXIT_USAGE, HairsegError

__all__ = [
    "DEFAULT_MODELS_DIR",
    "MODELS",
    "WHEEL",
    "FaceDetector",
    "ModelSpec",
    "WheelSpec",
    "check_tflite",
    "extract_from_wheel",
    "fetch_official",
    "fetch_offline_wheel",
    "model_path",
    "resolve_wheel_url",
    "sha256_file",
]

DEFAULT_MODELS_DIR = Path(".hairseg/models/mediapipe")
SUMS_FILE = "SHA256SUMS"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    filename: str  # the file under the models folder
    wheel_member: str | None  # path inside the 0.10.21 wheel, if it carries the model
    wheel_sha256: str | None
    official_url: str
    official_sha256: str | None  # None: not published by Google (see module docstring)
    min_size: int
    max_size: int


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="face_detector",
            filename="face_detector.tflite",
            wheel_member="mediapipe/modules/face_detection/face_detection_short_range.tflite",
            wheel_sha256="bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
            official_url="https://storage.googleapis.com/mediapipe-models/face_detector/"
            "blaze_face_short_range/float16/1/blaze_face_short_range.tflite",
            official_sha256=None,
            min_size=100_000,
            max_size=2_000_000,
        ),
        ModelSpec(
            name="selfie_segmenter",
            filename="selfie_segmenter.tflite",
            wheel_member="mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
            wheel_sha256="9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
            official_url="https://storage.googleapis.com/mediapipe-models/image_segmenter/"
            "selfie_segmenter/float16/latest/selfie_segmenter.tflite",
            official_sha256=None,
            min_size=100_000,
            max_size=2_000_000,
        ),
        ModelSpec(
            name="hair_segmenter",
            filename="hair_segmenter.tflite",
            wheel_member=None,  # not in any mediapipe wheel
            wheel_sha256=None,
            official_url="https://storage.googleapis.com/mediapipe-models/image_segmenter/"
            "hair_segmenter/float32/latest/hair_segmenter.tflite",
            official_sha256=None,
            min_size=100_000,
            max_size=5_000_000,
        ),
    )
}


@dataclass(frozen=True)
class WheelSpec:
    project: str
    version: str
    filename: str
    sha256: str
    size: int
    members: dict[str, tuple[str, str]]  # model name -> (member path, sha256)


WHEEL = WheelSpec(
    project="mediapipe",
    version="0.10.21",
    filename="mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl",
    sha256="05dc4a9e593655a79558d05d6227d31018c2537a4bd3362b51e230cf22aecfe3",
    size=35_622_638,
    members={
        name: (spec.wheel_member, spec.wheel_sha256)
        for name, spec in MODELS.items()
        if spec.wheel_member and spec.wheel_sha256
    },
)


def _spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise HairsegError(
            f"unknown MediaPipe model {name!r}; known: {', '.join(MODELS)}", exit_code=EXIT_USAGE
        )
    return MODELS[name]


def model_path(name: str, models_dir: str | Path = DEFAULT_MODELS_DIR) -> Path | None:
    """The model file if it has been fetched, else None."""
    path = Path(models_dir) / _spec(name).filename
    return path if path.is_file() else None


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks (also the real-photo archives' check)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_atomic(dest: Path, data: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _download(url: str, dest: Path, *, timeout: float, expected_sha256: str | None) -> Path:
    """Stream ``url`` to ``dest`` via a temp file; verify sha256 before renaming."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as fh, urllib.request.urlopen(url, timeout=timeout) as resp:
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                digest.update(chunk)
                fh.write(chunk)
        if expected_sha256 and digest.hexdigest() != expected_sha256:
            raise HairsegError(
                f"download of {url} has sha256 {digest.hexdigest()}, expected {expected_sha256}"
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except OSError as exc:  # URLError is an OSError
        raise HairsegError(f"cannot download {url}: {getattr(exc, 'reason', exc)}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def resolve_wheel_url(
    wheel: WheelSpec = WHEEL, *, index_url: str = "https://pypi.org/simple", timeout: float = 30
) -> str:
    """Find the wheel's download URL with the PEP 691 JSON simple API (what pip/uv use).

    The index's sha256 for the file must equal the pinned one.
    """
    request = urllib.request.Request(
        f"{index_url.rstrip('/')}/{wheel.project}/",
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            files = json.load(resp)["files"]
    except (OSError, ValueError, KeyError) as exc:
        raise HairsegError(
            f"cannot read the package index {index_url} for {wheel.project}: "
            f"{getattr(exc, 'reason', exc)}"
        ) from None
    for entry in files:
        if entry.get("filename") == wheel.filename:
            index_sha = entry.get("hashes", {}).get("sha256")
            if index_sha != wheel.sha256:
                raise HairsegError(
                    f"{index_url} lists {wheel.filename} with sha256 {index_sha}, "
                    f"pinned {wheel.sha256}"
                )
            return str(entry["url"])
    raise HairsegError(f"{index_url} does not list {wheel.filename}")


def extract_from_wheel(
    wheel_path: str | Path, dest: str | Path, wheel: WheelSpec = WHEEL
) -> dict[str, Path]:
    """Verify the wheel and extract its model files into ``dest`` (verified, atomic)."""
    wheel_path, dest = Path(wheel_path), Path(dest)
    if not wheel_path.is_file():
        raise HairsegError(f"wheel not found: {wheel_path}", exit_code=EXIT_USAGE)
    actual = sha256_file(wheel_path)
    if actual != wheel.sha256:
        raise HairsegError(f"{wheel_path} has sha256 {actual}, expected {wheel.sha256}")
    written: dict[str, Path] = {}
    try:
        with zipfile.ZipFile(wheel_path) as zf:
            for name, (member, sha256) in wheel.members.items():
                try:
                    data = zf.read(member)
                except KeyError:
                    raise HairsegError(f"{wheel_path.name} has no member {member}") from None
                got = hashlib.sha256(data).hexdigest()
                if got != sha256:
                    raise HairsegError(
                        f"{member} in {wheel_path.name} has sha256 {got}, expected {sha256}"
                    )
                target = dest / _spec(name).filename
                _write_atomic(target, data)
                written[name] = target
    except zipfile.BadZipFile:
        raise HairsegError(f"{wheel_path} is not a zip/wheel file") from None
    return written


def fetch_offline_wheel(
    dest: str | Path = DEFAULT_MODELS_DIR,
    *,
    cache_dir: str | Path = Path(".hairseg/cache"),
    index_url: str = "https://pypi.org/simple",
    wheel_file: str | Path | None = None,
    wheel: WheelSpec = WHEEL,
    timeout: float = 300,
) -> dict[str, Path]:
    """Download (or reuse) the pinned mediapipe wheel and extract the models from it."""
    if wheel_file is None:
        cached = Path(cache_dir) / wheel.filename
        if not (cached.is_file() and sha256_file(cached) == wheel.sha256):
            url = resolve_wheel_url(wheel, index_url=index_url)
            _download(url, cached, timeout=timeout, expected_sha256=wheel.sha256)
        wheel_file = cached
    return extract_from_wheel(wheel_file, dest, wheel)


def _read_sums(dest: Path) -> dict[str, str]:
    sums = {}
    path = dest / SUMS_FILE
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.strip():
                digest, _, name = line.partition("  ")
                sums[name.strip()] = digest.strip()
    return sums


def check_tflite(path: Path, spec: ModelSpec) -> None:
    """A TFLite flatbuffer carries the identifier ``TFL3`` at bytes 4..8."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        header = fh.read(8)
    if header[4:8] != b"TFL3":
        raise HairsegError(f"{path} is not a TFLite model (no TFL3 identifier)")
    if not spec.min_size <= size <= spec.max_size:
        raise HairsegError(
            f"{path} is {size} bytes; a {spec.name} model is {spec.min_size}..{spec.max_size}"
        )


def fetch_official(
    dest: str | Path = DEFAULT_MODELS_DIR,
    *,
    names: tuple[str, ...] = tuple(MODELS),
    urls: dict[str, str] | None = None,
    timeout: float = 120,
) -> dict[str, Path]:
    """Download the models from their official URLs (see module docstring on checksums).

    ``urls`` maps a model name to another location of the same file (e.g. an internal
    mirror); the format check and the ``SHA256SUMS`` record apply all the same.
    """
    dest = Path(dest)
    sums = _read_sums(dest)
    written: dict[str, Path] = {}
    for name in names:
        spec = _spec(name)
        dest.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".official-", dir=dest))
        try:
            url = (urls or {}).get(name, spec.official_url)
            tmp = _download(
                url,
                staging / spec.filename,
                timeout=timeout,
                expected_sha256=spec.official_sha256,
            )
            check_tflite(tmp, spec)
            digest = sha256_file(tmp)
            if spec.filename in sums and sums[spec.filename] != digest:
                raise HairsegError(
                    f"{url} now has sha256 {digest}; {dest / SUMS_FILE} recorded "
                    f"{sums[spec.filename]} (the upstream file changed; delete the line to accept)"
                )
            sums[spec.filename] = digest
            os.replace(tmp, dest / spec.filename)
            written[name] = dest / spec.filename
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    _write_atomic(
        dest / SUMS_FILE, "".join(f"{d}  {n}\n" for n, d in sorted(sums.items())).encode()
    )
    return written


class FaceDetector(Closing):
    """Counts faces with the MediaPipe Tasks face detector (BlazeFace short range).

    Use as a context manager (or call :meth:`close`): MediaPipe's own finaliser fails at
    interpreter shutdown.
    """

    def __init__(self, model: str | Path, *, min_confidence: float = 0.5) -> None:
        # MediaPipe's glog warns per image about tensor alignment; keep errors only.
        os.environ.setdefault("GLOG_minloglevel", "2")
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_path=str(model)),
            min_detection_confidence=min_confidence,
        )
        self._detector = vision.FaceDetector.create_from_options(options)

    def detect(self, rgb: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Face boxes ``(x, y, width, height)`` in pixels."""
        import mediapipe as mp

        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        result = self._detector.detect(image)
        return [
            (
                d.bounding_box.origin_x,
                d.bounding_box.origin_y,
                d.bounding_box.width,
                d.bounding_box.height,
            )
            for d in result.detections
        ]

    def __call__(self, rgb: np.ndarray) -> int:
        return len(self.detect(rgb))

    def close(self) -> None:
        if self._detector is not None:
            self._detector.close()
            self._detector = None
