"""Demo generator: byte-determinism, order independence, exact masks, atomic output."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest

from hairseg.data import generate as gen
from hairseg.data.generate import (
    BACKGROUND_KINDS,
    HAIR_STYLES,
    DataParams,
    Label,
    generate_dataset,
    render,
    render_index,
    sample_spec,
)
from hairseg.data.manifest import SLICE_COLUMNS, read_manifest
from hairseg.errors import HairsegError

TINY = DataParams(seed=11, image_size=64, n_train=4, n_val=2, n_test=2)


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    a = generate_dataset(tmp_path / "a", TINY).path
    b = generate_dataset(tmp_path / "b", TINY).path
    digests = _digests(a)
    assert len(digests) == 2 * 8 + 2  # images, masks, manifest, generator.json
    assert digests == _digests(b)
    c = generate_dataset(tmp_path / "c", dataclasses.replace(TINY, seed=12)).path
    assert _digests(c)["images/demo-train-00000.png"] != digests["images/demo-train-00000.png"]


def test_image_does_not_depend_on_how_many_others_are_generated(tmp_path: Path) -> None:
    small = generate_dataset(tmp_path / "s", dataclasses.replace(TINY, n_train=2, n_val=1)).path
    large = _digests(generate_dataset(tmp_path / "l", TINY).path)
    for name in ("images/demo-train-00001.png", "masks/demo-val-00000.png"):
        assert _digests(small)[name] == large[name]


def test_manifest_is_complete(tmp_path: Path) -> None:
    df = read_manifest(generate_dataset(tmp_path / "d", TINY).path)
    assert df["split"].value_counts().to_dict() == {"train": 4, "val": 2, "test": 2}
    assert set(df["source"]) == {"hairseg-demo"} and set(df["licence"]) == {"CC0-1.0"}
    assert (df["width"] == 64).all() and (df["height"] == 64).all()
    for column in SLICE_COLUMNS:
        if column != "hair_colour_family":  # null for bald portraits
            assert df[column].notna().all(), column
    assert set(df["hair_style"]) <= set(HAIR_STYLES)
    assert set(df["background_kind"]) <= set(BACKGROUND_KINDS)


@pytest.mark.parametrize("index", range(6))
def test_mask_is_binary_and_exactly_the_hair_label(index: int) -> None:
    spec, out = render_index(3, "train", index, 96)
    assert out.image.shape == (96, 96, 3) and out.image.dtype == np.uint8
    assert set(np.unique(out.mask)) <= {0, 255}
    np.testing.assert_array_equal(out.mask == 255, out.labels == Label.HAIR)
    if spec.hair_style == "bald":
        assert not out.mask.any()


def _forced(**changes: object):
    rng = np.random.default_rng(5)
    spec = sample_spec(rng, 128)
    spec = dataclasses.replace(spec, hair_style="long", **changes)
    return spec, render(spec, rng)


def test_occluders_and_facial_hair_are_never_hair() -> None:
    """Hat, hand, beard and eyebrows are drawn; none of their pixels is hair in the mask."""
    _, out = _forced(hat=True, hand=True, beard=True, stray_strands=20)
    for label in (Label.HAT, Label.HAND, Label.BEARD, Label.EYEBROW):
        drawn = out.labels == label
        assert drawn.sum() > 20, f"label {label} was not drawn"
        assert not out.mask[drawn].any(), f"label {label} leaked into the hair mask"
    assert (out.mask == 255).sum() > 500  # the hair is still there around the occluders


def test_hat_covers_hair_that_would_otherwise_be_there() -> None:
    _, bare = _forced(hat=False, hand=False, beard=False, stray_strands=0)
    _, hatted = _forced(hat=True, hand=False, beard=False, stray_strands=0)
    covered = (bare.labels == Label.HAIR) & (hatted.labels == Label.HAT)
    assert covered.sum() > 50
    assert not hatted.mask[covered].any()


def test_degradations_change_the_image_but_not_the_mask() -> None:
    _, clean = _forced(blur_sigma=0.0, noise_sigma=0.0, jpeg_quality=None, lighting="even")
    _, noisy = _forced(blur_sigma=1.2, noise_sigma=6.0, jpeg_quality=30, lighting="dim")
    np.testing.assert_array_equal(clean.mask, noisy.mask)
    assert np.abs(clean.image.astype(int) - noisy.image.astype(int)).mean() > 5


def test_bad_params_and_non_empty_destination_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(HairsegError, match="image_size"):
        DataParams(image_size=8)
    with pytest.raises(HairsegError, match="n_val"):
        DataParams(n_val=-1)
    dest = tmp_path / "d"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    with pytest.raises(HairsegError, match="not empty"):
        generate_dataset(dest, TINY)
    assert [p.name for p in dest.iterdir()] == ["keep.txt"]


def test_failed_generation_leaves_existing_data_untouched(tmp_path: Path, monkeypatch) -> None:
    dest = generate_dataset(tmp_path / "d", TINY).path
    before = _digests(dest)
    real = gen.render_index

    def boom(seed: int, split: str, index: int, size: int):
        if split == "val":
            raise RuntimeError("simulated crash mid-generation")
        return real(seed, split, index, size)

    monkeypatch.setattr(gen, "render_index", boom)
    with pytest.raises(RuntimeError):
        generate_dataset(dest, dataclasses.replace(TINY, seed=99), overwrite=True)
    assert _digests(dest) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # no temp folders left


def test_contact_sheet_grid(tmp_path: Path) -> None:
    from hairseg.data.sheet import contact_sheet
    from hairseg.imaging import read_image

    dataset = generate_dataset(tmp_path / "d", TINY).path
    sheet = read_image(contact_sheet(dataset, tmp_path / "sheet.png", count=3, columns=2, tile=32))
    assert sheet.shape == (2 * 64, 2 * 32, 3)  # 2 rows of (image over overlay), 2 columns
    assert not sheet[64:, 32:].any()  # the 4th cell is padding
    with pytest.raises(HairsegError, match="count and columns"):
        contact_sheet(dataset, tmp_path / "x.png", count=0)
