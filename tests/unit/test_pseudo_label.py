"""``hairseg data pseudo-label``: the teacher on a drawn portrait (pure), and the command on
a tiny folder with a real public-domain photo, a non-image and a photo with no face."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hairseg import imaging
from hairseg.data.manifest import read_manifest
from hairseg.data.pseudo_label import PseudoLabelConfig, label_image
from hairseg.mediapipe_models import DEFAULT_MODELS_DIR, model_path
from hairseg.priors import Face

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / DEFAULT_MODELS_DIR
HAVE_MODELS = (
    model_path("face_detector", MODELS) is not None
    and model_path("selfie_segmenter", MODELS) is not None
)
# Committed public-domain crops (Solvay 1927, see datasets/real_portraits/README.md).
SOLVAY = [REPO / f"datasets/real_portraits/images/visp_solvay1927_f{i}.png" for i in (5, 9)]


def _hairseg(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hairseg", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def _drawn_portrait() -> tuple[np.ndarray, Face]:
    """200 x 200: grey-blue background, a skin-coloured face, dark hair on the crown,
    a dark suit below the chin (dark like the hair, which the teacher must not take)."""
    rgb = np.full((200, 200, 3), (150, 170, 200), np.uint8)
    yy, xx = np.mgrid[0:200, 0:200]
    rgb[(yy >= 150)] = (30, 28, 26)  # suit
    rgb[((xx - 100) / 32) ** 2 + ((yy - 100) / 40) ** 2 <= 1] = (224, 172, 140)  # face
    hair = (((xx - 100) / 42) ** 2 + ((yy - 78) / 38) ** 2 <= 1) & (yy < 72)
    rgb[hair] = (40, 30, 22)
    face = Face(
        box=(0.34, 0.33, 0.32, 0.36),
        keypoints=((0.43, 0.47), (0.57, 0.47), (0.5, 0.53), (0.5, 0.6), (0.35, 0.48), (0.65, 0.48)),
        score=0.95,
    )
    return rgb, face


def test_teacher_marks_the_crown_not_the_face_nor_the_suit() -> None:
    rgb, face = _drawn_portrait()
    person = np.zeros((200, 200), np.float32)
    person[40:, 50:150] = 1.0  # head and body
    label = label_image(rgb, [face], person, PseudoLabelConfig())
    hair = label.mask > 127
    assert hair[55, 100] and hair[50, 90]  # the crown
    assert not hair[100, 100] and not hair[120, 85]  # nose, cheek
    assert not hair[180, 100]  # the suit: dark, on the person, but below the chin
    assert not hair[10, 10]  # sky
    assert label.confidence_map.shape == (200, 200)
    assert label.confidence_map.min() >= 0.0 and label.confidence_map.max() <= 1.0
    assert 0.5 < label.confidence <= 1.0 and label.n_faces == 1
    # A model that disagrees everywhere on the head lowers the confidence there.
    doubtful = label_image(
        rgb, [face], person, PseudoLabelConfig(), model_prob=1.0 - hair.astype(np.float32)
    )
    assert doubtful.confidence < label.confidence


def test_teacher_labels_do_not_depend_on_what_ran_before() -> None:
    """GrabCut seeds its colour models from OpenCV's global RNG; on a colourful image an
    unseeded teacher gave a different mask per RNG state (300-1300 pixels here), so a
    pseudo-label run's labels depended on which images a worker had labelled first."""
    import cv2

    rgb, face = _drawn_portrait()
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 256, (10, 10, 3)).astype(np.uint8)
    blocks = cv2.resize(blocks, (200, 200), interpolation=cv2.INTER_NEAREST)
    background = (rgb == np.array((150, 170, 200), np.uint8)).all(-1)
    rgb[background] = blocks[background]
    rgb = np.clip(rgb.astype(int) + rng.integers(-25, 26, rgb.shape), 0, 255).astype(np.uint8)
    person = np.zeros((200, 200), np.float32)
    person[40:, 50:150] = 1.0
    masks = []
    for seed in (1, 7920, 23758):
        cv2.setRNGSeed(seed)
        masks.append(label_image(rgb, [face], person, PseudoLabelConfig()).mask)
    for mask in masks[1:]:
        np.testing.assert_array_equal(mask, masks[0])


def test_pseudo_label_without_mediapipe_models_is_one_clear_line(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(SOLVAY[0], src / "a.png")
    result = _hairseg(
        tmp_path, "data", "pseudo-label", str(src), str(tmp_path / "out"),
        "--models-dir", str(tmp_path / "none"),
    )  # fmt: skip
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("hairseg: error")]
    assert len(errors) == 1 and "face detector" in errors[0] and "hairseg models fetch" in errors[0]
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(not HAVE_MODELS, reason="MediaPipe models not fetched (hairseg models fetch)")
def test_pseudo_label_tiny_folder_end_to_end(tmp_path: Path) -> None:
    src = tmp_path / "portraits"
    (src / "sub").mkdir(parents=True)
    shutil.copy(SOLVAY[0], src / "solvay_a.png")
    shutil.copy(SOLVAY[1], src / "sub" / "solvay_b.png")
    (src / "notes.txt").write_text("not a photo\n")
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    ramp = np.linspace(0, 255, 160 * 240, dtype=np.float32).reshape(160, 240, 1)
    imaging.write_png(src / "landscape.png", np.repeat(ramp, 3, axis=2).astype(np.uint8))
    dest = tmp_path / "pseudo"
    result = _hairseg(
        tmp_path, "data", "pseudo-label", str(src), str(dest),
        "--models-dir", str(MODELS), "--reports", str(tmp_path / "reports"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    notices = [line for line in result.stderr.splitlines() if line.startswith("hairseg: notice")]
    by_file = {Path(line.split("skipped ")[1].split(":")[0]).name: line for line in notices}
    assert set(by_file) == {"notes.txt", "broken.jpg", "landscape.png"}, notices
    assert "not an image" in by_file["notes.txt"]
    assert "not an image" in by_file["broken.jpg"]
    assert "no face detected" in by_file["landscape.png"]
    assert "pseudo-labelled 2 image(s)" in result.stdout
    assert "passed" in result.stdout and "checks on 2 images" in result.stdout
    df = read_manifest(dest)
    assert sorted(df["id"]) == ["solvay_a", "sub_solvay_b"]
    assert set(df["source"]) == {"pseudo"} and set(df["split"]) == {"train"}
    assert df["confidence"].between(0.5, 1.0).all()
    for row in df.itertuples():
        mask = imaging.read_mask(dest / row.mask_path)
        conf = imaging.read_mask(dest / row.confidence_path)
        assert mask.shape == conf.shape == (row.height, row.width)
        assert set(np.unique(mask)) <= {0, 255} and (mask > 0).any()
    assert (tmp_path / "reports" / "result.json").is_file()
    # It ran on the batch path: one results row per file, the teacher's refusals as
    # "skipped", unreadable files as "failed".
    rows = pd.read_parquet(dest / "results.parquet").set_index("id")
    assert rows["status"].to_dict() == {
        "solvay_a": "ok", "sub_solvay_b": "ok", "notes": "failed", "broken": "failed",
        "landscape": "skipped",
    }  # fmt: skip
    assert rows.loc["landscape", "error"].startswith("no face detected")
    # A run that died before its manifest resumes: the labelled images are not redone.
    (dest / "manifest.parquet").unlink()
    resumed = _hairseg(tmp_path, "data", "pseudo-label", str(src), str(dest), "--no-validate",
                       "--models-dir", str(MODELS))  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    after = pd.read_parquet(dest / "results.parquet").set_index("id")
    kept = ["solvay_a", "sub_solvay_b", "landscape"]  # the failed files are retried
    pd.testing.assert_series_equal(after.loc[kept, "finished_at"], rows.loc[kept, "finished_at"])
    pd.testing.assert_frame_equal(read_manifest(dest), df)
    # DEST now holds a dataset: a second run refuses to overwrite it without --overwrite.
    again = _hairseg(tmp_path, "data", "pseudo-label", str(src), str(dest), "--no-validate")
    assert again.returncode == 2 and "--overwrite" in again.stderr


def test_pseudo_label_folder_with_nothing_usable_fails(tmp_path: Path) -> None:
    if not HAVE_MODELS:
        pytest.skip("MediaPipe models not fetched (hairseg models fetch)")
    src = tmp_path / "src"
    src.mkdir()
    (src / "readme.md").write_text("# no photos here\n")
    result = _hairseg(
        tmp_path, "data", "pseudo-label", str(src), str(tmp_path / "out"),
        "--models-dir", str(MODELS),
    )  # fmt: skip
    assert result.returncode == 2
    assert "no image in" in result.stderr and "could be labelled" in result.stderr
    assert not (tmp_path / "out").exists()
