"""The real-photo sets: archives re-derived offline (sdist, wheel and .deb built here), sha256
checks, the manifests, the loader's message when images are absent, and the real-photo
scoring path (a tiny hand-built ONNX model through OnnxSegmenter, as serving runs it)."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from hairseg import imaging
from hairseg.data import real_portraits as rp
from hairseg.data.manifest import read_manifest
from hairseg.errors import HairsegError

REPO = Path(__file__).resolve().parents[2]


def _photo(w: int = 120, h: int = 90) -> bytes:
    rng = np.random.default_rng(3)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sdist(path: Path, member: str, data: bytes) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(member)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def _wheel(path: Path, member: str, data: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, data)
    return path


def _deb(path: Path, member: str, data: bytes) -> Path:
    """A minimal Debian package: ar archive of debian-binary, control.tar.gz, data.tar.xz."""
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w:xz") as tar:
        info = tarfile.TarInfo(member)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    entries = [("debian-binary", b"2.0\n"), ("control.tar.gz", b"\0" * 3), ("data.tar.xz", payload.getvalue())]  # fmt: skip
    out = bytearray(b"!<arch>\n")
    for name, body in entries:
        header = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(body):<10}`\n"
        out += header.encode() + body + (b"\n" if len(body) % 2 else b"")
    path.write_bytes(bytes(out))
    return path


@pytest.mark.parametrize(
    ("maker", "archive", "member"),
    [
        (_sdist, "pkg-1.0.tar.gz", "pkg-1.0/data/face.jpg"),
        (_wheel, "pkg-1.0-py3-none-any.whl", "pkg/assets/face.jpg"),
        (_deb, "pkg_1.0_all.deb", "./usr/share/doc/pkg/face.jpg"),
    ],
)
def test_extract_member_from_each_archive_kind(tmp_path: Path, maker, archive, member) -> None:
    data = _photo()
    path = maker(tmp_path / archive, member, data)
    assert rp.extract_member(path, member, _sha(data)) == data
    with pytest.raises(HairsegError, match="sha256"):
        rp.extract_member(path, member, "0" * 64)
    with pytest.raises(HairsegError, match="has no member"):
        rp.extract_member(path, "nope.jpg", _sha(data))


def _mini_sets(tmp_path: Path) -> tuple[Path, Path, Path, bytes]:
    """A two-photo eval/pool spec whose archives sit in the cache (no network)."""
    eval_dir, pool_dir, cache = tmp_path / "eval", tmp_path / "pool", tmp_path / "cache"
    eval_dir.mkdir()
    cache.mkdir()
    photo = _photo()
    archive = _sdist(cache / "pkg-1.0.tar.gz", "pkg-1.0/a.jpg", photo)
    common = {"registry": "pypi", "package": "pkg", "version": "1.0", "archive": archive.name,
              "archive_sha256": _sha(archive.read_bytes()), "sha256": _sha(photo),
              "package_licence": "MIT", "image_licence": "unknown"}  # fmt: skip
    sources = {
        "a.jpg": {**common, "member": "pkg-1.0/a.jpg", "redistributable": "no"},
        "b.jpg": {**common, "member": "pkg-1.0/a.jpg", "redistributable": "yes"},
    }
    faces = [
        {"id": "a_f0", "source": "a.jpg", "face": [10, 10, 30, 30], "crop": [0, 0, 100, 80], "split": "eval"},
        {"id": "b_f0", "source": "b.jpg", "face": [10, 10, 30, 30], "crop": [10, 20, 80, 110], "split": "pool", "rotate": 90},
    ]  # fmt: skip
    (eval_dir / "sources.json").write_text(json.dumps(sources))
    (eval_dir / "faces.json").write_text(json.dumps(faces))
    (eval_dir / "labels.json").write_text(
        json.dumps(
            {
                "a_f0": {
                    "head_boxes": [[5, 5, 60, 70], [70, 0, 100, 30]],
                    "inner_face_box": [15, 20, 45, 50],
                    "note": "x",
                }
            }
        )
    )
    pd.DataFrame(
        [{"id": "a_f0", "skin_tone": "light", "hair_colour_family": "brown", "hair_style": "short",
          "background_kind": "plain", "lighting": "even", "photo_kind": "colour", "occlusion": None}]
    ).to_csv(eval_dir / "attributes.csv", index=False)  # fmt: skip
    imaging.write_png(eval_dir / "masks" / "a_f0.png", np.zeros((80, 100), np.uint8))
    return eval_dir, pool_dir, cache, photo


def test_materialise_from_cached_archives_and_build_manifests(tmp_path: Path) -> None:
    eval_dir, pool_dir, cache, photo = _mini_sets(tmp_path)
    ev, pool = rp.build_manifests(eval_dir, pool_dir)
    with pytest.raises(HairsegError, match="absent .*fetch_real_portraits"):
        rp.require_images(eval_dir)
    report = rp.materialise(eval_dir, pool_dir, cache_dir=cache, index_url="http://127.0.0.1:9")
    assert sorted(report.written) == ["a_f0", "b_f0"] and len(report.archives) == 1
    rp.require_images(eval_dir)  # now present
    # The crop is exactly the documented geometry: rotate, crop, shrink to <= 512.
    want = np.asarray(Image.open(io.BytesIO(photo)).convert("RGB").rotate(90, expand=True))
    got = imaging.read_image(pool_dir / "images" / "b_f0.png")
    assert np.array_equal(got, want[20:110, 10:80])
    df, dp = read_manifest(eval_dir), read_manifest(pool_dir)
    assert ev.name == pool.name == "manifest.parquet"
    row = df.iloc[0]
    assert (row.split, row.label_quality, row.width, row.height) == ("test", "coarse", 100, 80)
    assert json.loads(row.head_boxes)[1] == [70, 0, 100, 30]
    assert (row.inner_x0, row.inner_y1, row.skin_tone) == (15, 50, "light")
    assert rp.head_boxes(df)[0][0] == (5, 5, 60, 70)
    assert rp.inner_face_boxes(df) == [(15, 20, 45, 50)]
    assert (dp.iloc[0].split, dp.iloc[0].mask_path, dp.iloc[0].redistributable) == (
        "train",
        "",
        "yes",
    )
    assert "MIT" in row.licence and row.source_sha256 == _sha(photo)
    again = rp.materialise(eval_dir, pool_dir, cache_dir=cache)
    assert again.written == [] and sorted(again.present) == ["a_f0", "b_f0"]


def test_a_source_in_both_eval_and_pool_is_refused(tmp_path: Path) -> None:
    eval_dir, pool_dir, _, _ = _mini_sets(tmp_path)
    faces = json.loads((eval_dir / "faces.json").read_text())
    faces[1]["source"] = "a.jpg"
    (eval_dir / "faces.json").write_text(json.dumps(faces))
    with pytest.raises(HairsegError, match="both eval and pool: a.jpg"):
        rp.build_manifests(eval_dir, pool_dir)


def test_a_changed_archive_is_not_trusted(tmp_path: Path) -> None:
    eval_dir, pool_dir, cache, _ = _mini_sets(tmp_path)
    rp.build_manifests(eval_dir, pool_dir)
    archive = cache / "pkg-1.0.tar.gz"
    _sdist(archive, "pkg-1.0/a.jpg", _photo(64, 64))  # same name, other bytes
    # The cached copy fails its sha256, so the registry is asked; it is unreachable here.
    with pytest.raises(HairsegError, match="cannot read the package index"):
        rp.materialise(eval_dir, pool_dir, cache_dir=cache, index_url="http://127.0.0.1:9")
    assert not (eval_dir / "images" / "a_f0.png").exists()


@pytest.mark.parametrize(("w", "h"), [(300, 200), (700, 650), (650, 700), (1000, 1000)])
def test_crop_size_matches_the_shrink(w: int, h: int) -> None:
    face = rp.FaceCrop("x", "s", (0, 0, 1, 1), (0, 0, w, h), "eval")
    img = Image.new("RGB", (w, h))
    img.thumbnail((rp.MAX_SIDE, rp.MAX_SIDE), Image.LANCZOS)
    assert rp.crop_size(face) == img.size


def test_committed_sets_are_consistent() -> None:
    """The committed eval set: 28 faces, disjoint from the pool, every label in range."""
    eval_dir = REPO / rp.EVAL_DIR
    df = read_manifest(eval_dir)
    pool = read_manifest(REPO / rp.POOL_DIR)
    assert len(df) >= 15 and (df["label_quality"] == "coarse").all()
    assert set(df["source_member"]).isdisjoint(pool["source_member"])
    for row, heads in zip(df.itertuples(), rp.head_boxes(df), strict=True):
        mask = imaging.read_mask(eval_dir / row.mask_path)
        assert mask.shape == (row.height, row.width) and set(np.unique(mask)) <= {0, 255}
        assert (
            row.inner_x0 < row.inner_x1 <= row.width and row.inner_y0 < row.inner_y1 <= row.height
        )
        assert all(0 <= b[0] < b[2] <= row.width and 0 <= b[1] < b[3] <= row.height for b in heads)
    sources = rp.load_sources(eval_dir)
    assert {f.source for f in rp.load_faces(eval_dir)} <= set(sources)


def _tiny_onnx(path: Path, size: int = 32) -> Path:
    """logits = red - blue (normalised): hair where a pixel is redder than it is blue."""
    import onnx
    from onnx import TensorProto, helper

    weight = helper.make_tensor("w", TensorProto.FLOAT, [1, 3, 1, 1], [4.0, 0.0, -4.0])
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w"], ["logits"])],
        "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 1, size, size])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    entry = model.metadata_props.add()
    entry.key, entry.value = "hairseg.input_size", str(size)
    onnx.save(model, str(path))
    return path


def test_evaluate_real_photos_scores_through_the_serving_segmenter(tmp_path: Path) -> None:
    from hairseg.data.manifest import write_manifest
    from hairseg.evaluate import EvaluateConfig, evaluate_real_photos, load_real_set

    ds = tmp_path / "real"
    img = np.full((64, 80, 3), (40, 40, 200), np.uint8)  # blue everywhere ...
    img[0:16, 0:40] = (220, 30, 30)  # ... red "hair" top-left: 640 px, 320 outside the head
    truth = np.zeros((64, 80), np.uint8)
    truth[0:16, 0:20] = 255
    imaging.write_png(ds / "images" / "r0.png", img)
    imaging.write_png(ds / "masks" / "r0.png", truth)
    write_manifest(
        pd.DataFrame([{"id": "r0", "image_path": "images/r0.png", "mask_path": "masks/r0.png",
                       "split": "test", "source": "real_photo", "licence": "CC0", "width": 80,
                       "height": 64, "head_boxes": json.dumps([[0, 0, 20, 40]]),
                       "inner_x0": 0, "inner_y0": 8, "inner_x1": 10, "inner_y1": 24}]),
        ds,
    )  # fmt: skip
    real = load_real_set(ds)
    result = evaluate_real_photos("tiny", _tiny_onnx(tmp_path / "m.onnx"), real, EvaluateConfig())
    row = result.per_image.iloc[0]
    assert row["iou"] == pytest.approx(320 / 640)
    assert row["outside_head_share"] == pytest.approx(320 / 640)
    assert row["inner_face_share"] == pytest.approx(80 / 160)  # rows 8..15 of 16 are hair
    summary = result.summary()
    assert summary["real_outside_head"] == pytest.approx(0.5)
    assert summary["real_n_images"] == 1
    assert summary["real_recall"] == pytest.approx(1.0) and summary[
        "real_precision"
    ] == pytest.approx(0.5)
    assert result.worst(1)["iou"] == [{"id": "r0", "iou": 0.5}]
    # Images gone: one line that says how to get them back.
    shutil.rmtree(ds / "images")
    with pytest.raises(HairsegError, match="fetch_real_portraits"):
        load_real_set(ds)


def test_real_gallery_rows_are_written(tmp_path: Path) -> None:
    from hairseg.model_card import render_real_gallery

    rgb = np.full((50, 70, 3), 128, np.uint8)
    mask = np.zeros((50, 70), np.uint8)
    mask[:10] = 255
    per_image = pd.DataFrame(
        [{"id": "p", "iou": 0.5, "outside_head_share": 0.25, "inner_face_share": 0.0}]
    )
    paths = render_real_gallery(
        tmp_path, [rgb], [mask], [mask], per_image, [[(0, 0, 30, 30)]], [("worst", 0)], "copper"
    )
    assert [p.name for p in paths] == ["real_00_worst_p.png", "real_gallery.png"]
    strip = imaging.read_image(paths[0])
    assert strip.shape == (160, 4 * 160, 3)


def test_model_card_has_a_real_photo_section(tmp_path: Path) -> None:
    from hairseg.model_card import write_model_card

    gallery = tmp_path / "card" / "gallery" / "real_00_worst_p.png"
    gallery.parent.mkdir(parents=True)
    gallery.write_bytes(b"")
    card = write_model_card(
        tmp_path / "card" / "README.md",
        train={}, quantize={}, evaluation={}, gate={"passed": False, "reasons": ["r"]},
        slices=pd.DataFrame(), gallery=[], model_config={},
        real_photos={"candidate": {"real_iou": 0.138, "real_outside_head": 0.317,
                                   "real_inner_face": 0.046, "real_n_images": 28}},
        real_gallery=[gallery],
    )  # fmt: skip
    text = card.read_text()
    assert "## Real photos" in text and "| candidate | 0.138 | 0.317 | 0.046 | 28 |" in text
    assert "![real_00_worst_p](gallery/real_00_worst_p.png)" in text
    without = write_model_card(
        tmp_path / "plain.md", train={}, quantize={}, evaluation={}, gate={}, slices=pd.DataFrame(),
        gallery=[], model_config={},
    )  # fmt: skip
    assert "Real photos" not in without.read_text()
