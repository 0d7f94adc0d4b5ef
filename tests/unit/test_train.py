"""Training on a tiny real dataset: the loss goes down, augmentation keeps masks aligned and
binary, and an interrupted run resumes from its last finished epoch."""

from __future__ import annotations

from pathlib import Path

import lifecycle_support as ls
import numpy as np
import pytest
import torch

from hairseg.errors import HairsegError
from hairseg.train import AugmentConfig, TrainConfig, _loss, augment_batch, fit, load_split

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def splits(tmp_path_factory: pytest.TempPathFactory):
    root = ls.make_dataset(tmp_path_factory.mktemp("toy"), {"train": 16, "val": 4})
    return load_split(root, "train", ls.SIZE), load_split(root, "val", ls.SIZE)


def _fixed_batch_loss(model: torch.nn.Module, split, cfg: TrainConfig) -> float:
    from hairseg.train import _to_tensors

    model.eval()
    x, y = _to_tensors(split.images, split.masks, ls.SIZE, torch.device("cpu"))
    with torch.no_grad():
        return float(_loss(model(x), y, cfg))


def test_training_lowers_the_loss(splits, tmp_path: Path) -> None:
    train, val = splits
    model_cfg, cfg = ls.tiny_configs(epochs=3)
    from hairseg.model import build_model

    torch.manual_seed(cfg.seed)
    untrained = build_model(cfg=model_cfg)  # the same initial weights fit() starts from
    model, result = fit(train, val, model_cfg, cfg, checkpoint_dir=tmp_path)
    before = _fixed_batch_loss(untrained, train, cfg)
    after = _fixed_batch_loss(model, train, cfg)
    assert after < 0.9 * before, (before, after)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.epochs_run == 3 and result.init_source == "scratch"
    assert not list(tmp_path.rglob("last.pt")), "a finished run removes its checkpoint"


def test_interrupted_run_resumes_from_its_last_epoch(splits, tmp_path: Path) -> None:
    train, val = splits
    model_cfg, cfg = ls.tiny_configs(epochs=2)

    class Interrupt(Exception):
        pass

    def interrupt_after_first(epoch: int, _metrics: dict) -> None:
        if epoch == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        fit(train, val, model_cfg, cfg, checkpoint_dir=tmp_path, on_epoch=interrupt_after_first)
    assert len(list(tmp_path.rglob("last.pt"))) == 1

    seen: list[int] = []
    _, resumed = fit(
        train, val, model_cfg, cfg, checkpoint_dir=tmp_path, on_epoch=lambda e, _m: seen.append(e)
    )
    assert seen == [2], "the rerun starts at epoch 2"
    assert resumed.resumed_from_epoch == 1
    assert [h["epoch"] for h in resumed.history] == [1.0, 2.0]

    # Same seeds, uninterrupted: the same history (the checkpoint restores RNGs too).
    _, straight = fit(train, val, model_cfg, cfg, checkpoint_dir=tmp_path / "fresh")
    assert straight.resumed_from_epoch == 0
    np.testing.assert_allclose(
        [h["train_loss"] for h in straight.history],
        [h["train_loss"] for h in resumed.history],
        rtol=1e-4,
    )


def test_a_changed_config_does_not_resume_a_stale_checkpoint(splits, tmp_path: Path) -> None:
    train, val = splits
    model_cfg, cfg = ls.tiny_configs(epochs=2)

    def stop(epoch: int, _m: dict) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(train, val, model_cfg, cfg, checkpoint_dir=tmp_path, on_epoch=stop)
    _, other = fit(train, val, model_cfg, ls.tiny_configs(epochs=1)[1], checkpoint_dir=tmp_path)
    assert other.resumed_from_epoch == 0


def test_augmentation_keeps_masks_binary_and_aligned() -> None:
    rng = np.random.default_rng(0)
    img = np.zeros((2, 64, 64, 3), np.uint8)
    img[:, :, 32:] = 255  # right half white ...
    mask = np.zeros((2, 64, 64), np.uint8)
    mask[:, :, 32:] = 255  # ... is the "hair"
    cfg = AugmentConfig(brightness=0, contrast=0, saturation=0, hue=0, blur=0)
    out_img, out_mask = augment_batch(img, mask, 32, cfg, rng)
    assert out_img.shape == (2, 32, 32, 3) and out_mask.shape == (2, 32, 32)
    assert set(np.unique(out_mask)) <= {0, 255}
    # Geometry follows the image: white pixels are exactly the mask (bar the resampled edge).
    agree = (out_img[..., 0] > 127) == (out_mask > 127)
    assert agree.mean() > 0.95


def test_greyscale_augmentation_converts_and_is_a_no_op_when_off() -> None:
    colour = np.random.default_rng(1).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    mask = np.zeros((4, 32, 32), np.uint8)
    grey, _ = augment_batch(
        colour, mask, 32, AugmentConfig(greyscale=1.0), np.random.default_rng(0)
    )
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    # Off, it draws no random number: the stream (and every other augmentation) is unchanged.
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    a, _ = augment_batch(colour, mask, 24, AugmentConfig(), rng_a)
    b, _ = augment_batch(colour, mask, 24, AugmentConfig(greyscale=0.0), rng_b)
    assert np.array_equal(a, b) and rng_a.random() == rng_b.random()
    assert not (a[..., 0] == a[..., 1]).all()


def test_bad_train_config_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(HairsegError, match=r"train\.epochs=0"):
        TrainConfig(epochs=0)
    with pytest.raises(HairsegError, match="no 'test' images"):
        load_split(ls.make_dataset(tmp_path, {"train": 1}), "test", 64)


def test_pseudo_label_confidence_weights_follow_the_geometry_and_scale_the_loss(
    tmp_path: Path,
) -> None:
    import pandas as pd

    from hairseg import imaging
    from hairseg.data.manifest import write_manifest
    from hairseg.train import Split

    # A pseudo-labelled set: its confidence map is 255 on the left half, 0 on the right.
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    mask = np.zeros((40, 40), np.uint8)
    mask[:, :20] = 255
    conf = np.zeros((40, 40), np.uint8)
    conf[:, :20] = 255
    imaging.write_png(tmp_path / "images/a.png", rgb)
    imaging.write_png(tmp_path / "masks/a.png", mask)
    imaging.write_png(tmp_path / "confidence/a.png", conf)
    row = {"id": "a", "image_path": "images/a.png", "mask_path": "masks/a.png",
           "confidence_path": "confidence/a.png", "split": "train", "source": "pseudo",
           "licence": "test", "width": 40, "height": 40}  # fmt: skip
    write_manifest(pd.DataFrame([row]), tmp_path)
    split = load_split(tmp_path, "train", 32)
    assert split.weights is not None and split.weights[0, :, :14].min() == 255
    assert split.weights[0, :, 18:].max() == 0
    # Mixed with a split without confidences: those pixels count fully.
    mixed = Split.concat(split, Split(["b"], split.images, split.masks))
    assert mixed.weights is not None and mixed.weights[1].min() == 255
    # Crops and flips move the weights with the mask: hair (left) stays confident.
    cfg = AugmentConfig(min_scale=0.5, hflip=1.0)
    _imgs, msks, wts = augment_batch(
        split.images, split.masks, 24, cfg, np.random.default_rng(1), split.weights
    )
    assert wts.shape == msks.shape == (1, 24, 24)
    assert np.corrcoef(wts[0].ravel(), msks[0].ravel())[0, 1] > 0.9
    # Zero-confidence pixels do not count: a wrong logit there costs nothing.
    target = torch.zeros(1, 1, 4, 4)
    logits = torch.full((1, 1, 4, 4), -8.0)
    wrong = logits.clone()
    wrong[..., 2:] = 8.0
    weight = torch.ones(1, 1, 4, 4)
    weight[..., 2:] = 0.0
    tc = TrainConfig()
    assert float(_loss(wrong, target, tc, weight)) == pytest.approx(
        float(_loss(logits, target, tc, weight)), abs=1e-3
    )
    assert float(_loss(wrong, target, tc)) > float(_loss(logits, target, tc)) + 1.0
