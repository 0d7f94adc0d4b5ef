"""Real-photo priors: geometry, fusion, the MediaPipe-absent path (one line, carry on),
and the real face detector on a committed public-domain crop when it has been fetched."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from hairseg_serving.testing import write_tiny_model

from hairseg import imaging
from hairseg.config import section
from hairseg.errors import HairsegError
from hairseg.inference import OnnxSegmenter
from hairseg.mediapipe_models import DEFAULT_MODELS_DIR, model_path
from hairseg.priors import (
    Face,
    Priors,
    PriorsConfig,
    fuse_logits,
    head_prior,
    inner_face_prior,
)

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / DEFAULT_MODELS_DIR
FACE_MODEL = model_path("face_detector", MODELS)
SOLVAY = REPO / "datasets/real_portraits/images/visp_solvay1927_f5.png"

# A face box in the middle of a 200 x 200 image, keypoints where BlazeFace puts them.
FACE = Face(
    box=(0.4, 0.4, 0.2, 0.2),
    keypoints=((0.45, 0.46), (0.55, 0.46), (0.5, 0.5), (0.5, 0.55), (0.4, 0.47), (0.6, 0.47)),
    score=0.9,
)


def test_head_prior_is_one_around_the_face_and_zero_far_away() -> None:
    cfg = PriorsConfig()
    prior = head_prior([FACE], 100, 200, 200, cfg)
    assert prior.shape == (100, 100) and prior.dtype == np.float32
    # Above the face box (the crown) and beside it: inside the head region.
    assert prior[30, 50] == 1.0 and prior[50, 33] == 1.0
    # Image corners (sky, suit) are several face sizes away: no hair there.
    assert prior[0, 0] == 0.0 and prior[99, 99] == 0.0 and prior[99, 0] == 0.0
    # No face, no head.
    assert head_prior([], 100, 200, 200, cfg).max() == 0.0


def test_inner_face_prior_suppresses_eyes_nose_mouth_not_the_crown() -> None:
    keep = inner_face_prior([FACE], 100, 200, 200, PriorsConfig())
    assert keep[50, 50] == 0.0  # the nose
    assert keep[46, 45] < 0.5  # an eye (its outer corner is on the soft rim)
    assert keep[30, 50] == 1.0  # the crown above the forehead
    assert keep[50, 20] == 1.0  # beside the head


def test_fuse_logits_multiplies_probabilities() -> None:
    logits = np.full((2, 1, 4, 4), 3.0, np.float32)
    prior = np.zeros((4, 4), np.float32)
    prior[:2] = 1.0
    fused = fuse_logits(logits, [prior, None])
    prob = imaging.sigmoid(fused)
    np.testing.assert_allclose(prob[0, 0, :2], imaging.sigmoid(np.float32(3.0)), rtol=1e-5)
    assert prob[0, 0, 2:].max() < 1e-5
    np.testing.assert_array_equal(fused[1], logits[1])  # None: unchanged
    assert fuse_logits(logits, [None, None]) is logits
    # A prior at another resolution is resized to the logits'.
    assert fuse_logits(logits, [np.ones((8, 8), np.float32), None]).shape == logits.shape
    with pytest.raises(ValueError, match="prior maps"):
        fuse_logits(logits, [prior])


def test_missing_mediapipe_models_are_one_line_and_fusion_carries_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    onnx = write_tiny_model(tmp_path / "tiny.onnx", size=32)
    cfg = PriorsConfig(models_dir=str(tmp_path / "no-models"), selfie_segmenter=True)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (40, 50, 3), dtype=np.uint8) for _ in range(2)]
    with caplog.at_level(logging.WARNING, logger="hairseg.priors"):
        fused = OnnxSegmenter(onnx, priors=cfg)
        masks = fused.predict(images)
        again = fused.predict(images)  # the models are looked up once, not per call
    lines = [r.getMessage() for r in caplog.records if r.name == "hairseg.priors"]
    assert len(lines) == 2, lines  # one line per missing model
    assert "face_detector not found" in lines[0] and "hairseg models fetch" in lines[0]
    assert "selfie_segmenter not found" in lines[1]
    assert fused.priors is not None and fused.priors.available == {
        "face_detector": False,
        "selfie_segmenter": False,
    }
    plain = OnnxSegmenter(onnx).predict(images)
    for a, b, c in zip(masks, again, plain, strict=True):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, c)
    fused.close()


def test_mediapipe_not_installed_is_one_line_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import hairseg.priors as priors_module

    (tmp_path / "face_detector.tflite").write_bytes(b"\x1c\x00\x00\x00TFL3")

    def no_mediapipe(*_args: object) -> None:
        raise ImportError("No module named 'mediapipe'")

    monkeypatch.setattr(priors_module, "_open_detector", no_mediapipe)
    with caplog.at_level(logging.WARNING, logger="hairseg.priors"):
        priors = Priors(PriorsConfig(models_dir=str(tmp_path)))
        assert priors.map_for(np.zeros((32, 32, 3), np.uint8), 16) is None
    lines = [r.getMessage() for r in caplog.records if r.name == "hairseg.priors"]
    assert len(lines) == 1 and "hairseg[vision]" in lines[0], lines


def test_priors_config_from_params_and_bad_values() -> None:
    cfg = section({"priors": {"head_above": 1.2, "no_face": "suppress"}}, "priors", PriorsConfig)
    assert cfg.head_above == 1.2 and cfg.no_face == "suppress" and cfg.active
    assert not PriorsConfig(enabled=False).active
    assert OnnxSegmenter.__init__.__kwdefaults__["priors"] is None
    with pytest.raises(HairsegError, match="unknown key"):
        section({"priors": {"head_abve": 1}}, "priors", PriorsConfig)
    with pytest.raises(HairsegError, match="head_falloff"):
        PriorsConfig(head_falloff=0)


def test_disabled_priors_build_no_models(tmp_path: Path) -> None:
    onnx = write_tiny_model(tmp_path / "tiny.onnx", size=32)
    assert OnnxSegmenter(onnx, priors=PriorsConfig(enabled=False)).priors is None


@pytest.mark.skipif(
    FACE_MODEL is None, reason="MediaPipe face model not fetched; run `hairseg models fetch`"
)
def test_real_face_detector_prior_on_a_public_domain_photo() -> None:
    rgb = imaging.read_image(SOLVAY)
    h, w = rgb.shape[:2]
    with Priors(PriorsConfig(models_dir=str(MODELS))) as priors:
        faces = priors.detect_faces(rgb)
        prior = priors.map_for(rgb, 64)
        none = priors.map_for(np.full((120, 160, 3), 128, np.uint8), 64)
    assert faces and len(faces[0].keypoints) == 6
    assert prior is not None and prior.shape == (64, 64)
    x, y, bw, bh = faces[0].box
    cx, cy = (x + bw / 2) * 64, (y + bh / 2) * 64
    # The crown (above the face box) may be hair; the nose may not; the bottom corners
    # of the crop (suits) may not.
    assert prior[max(int((y - 0.3 * bh) * 64), 0), int(cx)] == 1.0
    assert prior[int(cy), int(cx)] == 0.0
    assert prior[63, 0] == 0.0 and prior[63, 63] == 0.0
    assert none is None  # no face: keep the network's output
    assert (h, w) == rgb.shape[:2]
