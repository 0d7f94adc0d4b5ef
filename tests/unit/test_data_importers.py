"""Importers: tiny CelebAMask-HQ and Figaro1k trees in their published layouts → our format."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from hairseg.cli import main
from hairseg.data.importers import (
    CELEBAMASK_LICENCE,
    FIGARO_LICENCE,
    import_celebamask_hq,
    import_figaro1k,
)
from hairseg.data.manifest import read_manifest
from hairseg.errors import HairsegError
from hairseg.imaging import read_image, read_mask


def _rgb(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _write_bgr(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def _celeba(root: Path, with_mapping: bool = True) -> Path:
    """3 images at 64² with masks at 32² (the real ratio 1024:512); image 2 has no hair."""
    for n in range(3):
        _write_bgr(root / "CelebA-HQ-img" / f"{n}.jpg", _rgb(64, 64, n))
    for n in (0, 1):
        mask = np.zeros((32, 32, 3), np.uint8)  # the release stores 3-channel 0/255 PNGs
        mask[: 8 + 4 * n] = 255
        folder = root / "CelebAMask-HQ-mask-anno" / str(n // 2000)
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{n:05d}_hair.png"), mask)
    skin = np.zeros((32, 32), np.uint8)
    cv2.imwrite(str(root / "CelebAMask-HQ-mask-anno" / "0" / "00002_skin.png"), skin)
    if with_mapping:
        (root / "CelebA-HQ-to-CelebA-mapping.txt").write_text(
            "idx orig_idx orig_file\n0 119613 119614.jpg\n1 170000 170001.jpg\n2 190000 190001.jpg\n"
        )
    header = "Bald Bangs Black_Hair Blond_Hair Wavy_Hair"
    rows = ["0.jpg -1 -1 1 -1 1", "1.jpg -1 1 -1 1 -1", "2.jpg 1 -1 -1 -1 -1"]
    (root / "CelebAMask-HQ-attribute-anno.txt").write_text("\n".join(["3", header, *rows]) + "\n")
    return root


def test_celebamask_hq(tmp_path: Path) -> None:
    result = import_celebamask_hq(_celeba(tmp_path / "src"), tmp_path / "out")
    df = read_manifest(tmp_path / "out").set_index("id")
    assert list(df.index) == ["celebamask-00000", "celebamask-00001", "celebamask-00002"]
    # CelebA's official partition via the mapping file
    assert df["split"].tolist() == ["train", "val", "test"]
    assert result.counts == {"train": 1, "val": 1, "test": 1}
    assert set(df["licence"]) == {CELEBAMASK_LICENCE} and set(df["source"]) == {"celebamask-hq"}
    assert df["hair_colour_family"].tolist()[:2] == ["black", "blonde"]
    assert df["hair_style"].tolist() == ["wavy", "fringe", "bald"]
    for image_id, rows_of_hair in (("celebamask-00000", 8), ("celebamask-00001", 12)):
        image = read_image(tmp_path / "out" / df.loc[image_id, "image_path"])
        mask = read_mask(tmp_path / "out" / df.loc[image_id, "mask_path"])
        assert image.shape == (32, 32, 3) and mask.shape == (32, 32)  # image resized to mask
        assert set(np.unique(mask)) == {0, 255}
        assert (mask[:rows_of_hair] == 255).all() and not mask[rows_of_hair:].any()
    assert not read_mask(tmp_path / "out" / df.loc["celebamask-00002", "mask_path"]).any()
    assert (df["width"] == 32).all()


def test_celebamask_hq_without_mapping_splits_by_id_hash(tmp_path: Path) -> None:
    src = _celeba(tmp_path / "src", with_mapping=False)
    a = read_manifest(
        import_celebamask_hq(src, tmp_path / "a", val_fraction=0.3, test_fraction=0.3).path
    )
    b = read_manifest(
        import_celebamask_hq(src, tmp_path / "b", val_fraction=0.3, test_fraction=0.3).path
    )
    assert a["split"].tolist() == b["split"].tolist()
    assert set(a["split"]) <= {"train", "val", "test"}


def test_celebamask_hq_bad_input(tmp_path: Path) -> None:
    with pytest.raises(HairsegError, match="CelebAMask-HQ folder not found"):
        import_celebamask_hq(tmp_path / "missing", tmp_path / "out")
    src = _celeba(tmp_path / "src")
    (src / "CelebA-HQ-img" / "1.jpg").unlink()
    with pytest.raises(HairsegError, match=r"hair mask\(s\) without an image.*00001_hair.png"):
        import_celebamask_hq(src, tmp_path / "out")
    for p in (src / "CelebA-HQ-img").iterdir():
        p.unlink()
    with pytest.raises(HairsegError, match="no images"):
        import_celebamask_hq(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _figaro(root: Path) -> Path:
    frames = {"Training": (1, 151, 905), "Testing": (152,)}
    for part, numbers in frames.items():
        for n in numbers:
            _write_bgr(root / "Original" / part / f"Frame{n:05d}-org.jpg", _rgb(40, 30, n))
            gt = np.zeros((40, 30), np.uint8)
            gt[5:20, 3:27] = 255
            gt_path = root / "GT" / part / f"Frame{n:05d}-gt.pbm"
            gt_path.parent.mkdir(parents=True, exist_ok=True)
            assert cv2.imwrite(str(gt_path), gt)
    return root


def test_figaro1k(tmp_path: Path) -> None:
    src = _figaro(tmp_path / "src")
    import_figaro1k(src, tmp_path / "out", val_fraction=0.0)
    df = read_manifest(tmp_path / "out").set_index("id")
    assert df["split"].to_dict() == {
        "figaro-00001": "train", "figaro-00151": "train", "figaro-00152": "test",
        "figaro-00905": "train",
    }  # fmt: skip
    assert df["hair_style"].to_dict() == {
        "figaro-00001": "straight", "figaro-00151": "wavy", "figaro-00152": "wavy",
        "figaro-00905": "short",
    }  # fmt: skip
    assert set(df["licence"]) == {FIGARO_LICENCE}
    row = df.loc["figaro-00151"]
    original = (src / "Original" / "Training" / "Frame00151-org.jpg").read_bytes()
    assert (tmp_path / "out" / row["image_path"]).read_bytes() == original  # copied as is
    mask = read_mask(tmp_path / "out" / row["mask_path"])
    assert mask.shape == (40, 30) and mask[5:20, 3:27].all() and mask.sum() == 15 * 24 * 255
    assert (row["width"], row["height"]) == (30, 40)


def test_figaro1k_bad_input(tmp_path: Path) -> None:
    src = _figaro(tmp_path / "src")
    (src / "Original" / "Testing" / "Frame00152-org.jpg").unlink()
    with pytest.raises(HairsegError, match="mask without an image: .*Frame00152-gt.pbm"):
        import_figaro1k(src, tmp_path / "out")
    (src / "GT" / "Testing" / "Frame00152-gt.pbm").unlink()
    (src / "GT" / "Training" / "Frame00001-gt.pbm").unlink()
    with pytest.raises(HairsegError, match="image without a mask: .*Frame00001-org.jpg"):
        import_figaro1k(src, tmp_path / "out")
    (tmp_path / "no-gt" / "Original").mkdir(parents=True)
    with pytest.raises(HairsegError, match="Figaro1k mask folder GT/ not found"):
        import_figaro1k(tmp_path / "no-gt", tmp_path / "out")
    (tmp_path / "no-gt" / "GT").mkdir()
    with pytest.raises(HairsegError, match="no images"):
        import_figaro1k(tmp_path / "no-gt", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_import_errors_are_one_line(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "import", "figaro1k", str(tmp_path / "nope"), str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"hairseg: error: Figaro1k folder not found: {tmp_path / 'nope'}"]


def test_cli_import_refuses_to_overwrite(tmp_path: Path, capsys) -> None:
    src = _figaro(tmp_path / "src")
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep")
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "import", "figaro1k", str(src), str(out)])
    assert exit_info.value.code == 2 and "--overwrite" in capsys.readouterr().err
    assert (out / "precious.txt").read_text() == "keep"
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "import", "figaro1k", str(src), str(out), "--overwrite"])
    assert exit_info.value.code == 0
    assert len(read_manifest(out)) == 4 and not (out / "precious.txt").exists()
