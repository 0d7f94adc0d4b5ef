"""Fine-tuning: AdamW + cosine schedule, Dice + BCE loss, early stopping on validation IoU.

Augmentation (flip, scale/crop, colour jitter, blur) works on ``uint8`` RGB and the result
goes through :func:`hairseg.imaging.preprocess`, the same function serving uses, so the
network never sees pixels prepared differently from production.

Training is resumable: after every epoch the full state (weights, optimiser, schedule,
RNGs, history) is written atomically to ``<checkpoint_dir>/last.pt`` under a fingerprint of
the configuration and data, and a rerun with the same fingerprint continues from the next
epoch. A finished run removes its checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from hairseg import imaging
from hairseg.data.manifest import read_manifest
from hairseg.errors import EXIT_USAGE, HairsegError
from hairseg.metrics import iou
from hairseg.model import ModelConfig, build_model, count_flops, count_parameters

__all__ = [
    "AugmentConfig",
    "PseudoTrainConfig",
    "Split",
    "TrainConfig",
    "TrainResult",
    "augment_batch",
    "fit",
    "load_split",
    "predict_probabilities",
    "recalibrate_batchnorm",
    "resolve_device",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AugmentConfig:
    """Random augmentation of training images (all on ``uint8`` before ``preprocess``)."""

    hflip: float = 0.5  # probability of a horizontal flip
    min_scale: float = 0.6  # random crop keeps this share of the area or more
    max_aspect: float = 1.33  # crop aspect ratio within [1/max_aspect, max_aspect]
    brightness: float = 0.25  # multiplicative jitter range (+/-)
    contrast: float = 0.25
    saturation: float = 0.25
    hue: float = 0.03  # hue rotation, fraction of the colour circle (+/-)
    blur: float = 0.2  # probability of a Gaussian blur (sigma 0.5..1.5)
    greyscale: float = 0.0  # probability of converting to luminance (old and B/W photos)


@dataclass(frozen=True)
class PseudoTrainConfig:
    """``train.pseudo``: after the synthetic epochs, fine-tune on the synthetic train split
    plus a pseudo-labelled real-photo set (``hairseg data pseudo-label``, DVC stage
    ``pseudo_label``), its loss weighted by the labels' per-pixel confidence (issue 11)."""

    data: str = ""  # the pseudo-labelled dataset folder; "" = off
    repeat: int = 2  # the set stands this many times beside the synthetic train split
    epochs: int = 3
    lr: float = 1e-3

    def __post_init__(self) -> None:
        if self.repeat < 1 or self.epochs < 1 or self.lr <= 0:
            raise HairsegError(
                f"invalid train.pseudo (repeat={self.repeat}, epochs={self.epochs}, "
                f"lr={self.lr}): repeat and epochs >= 1, lr > 0",
                exit_code=EXIT_USAGE,
            )


@dataclass(frozen=True)
class TrainConfig:
    """``params.yaml`` section ``train``."""

    init: str = "champion"  # 'champion' (falls back to scratch), 'scratch' or a models:/ URI
    epochs: int = 8
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 1e-4
    warmup_frac: float = 0.05  # share of steps with a linear warm-up before the cosine decay
    patience: int = 4  # early stopping: epochs without a better validation IoU
    bce_weight: float = 1.0
    dice_weight: float = 1.0
    crop_size: int = 0  # training crop (0 = model.input_size); smaller trains faster
    max_train_images: int = 0  # 0 = the whole train split
    bn_recalibration_images: int = 128  # "precise BN" before each validation (0 = off)
    seed: int = 0
    threads: int = 2
    device: str = "auto"  # auto (CUDA when present), cpu, cuda
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    pseudo: PseudoTrainConfig = field(default_factory=PseudoTrainConfig)

    def __post_init__(self) -> None:
        checks = {
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "lr": self.lr > 0,
            "patience": self.patience >= 1,
            "threads": self.threads >= 1,
            "crop_size": self.crop_size == 0 or self.crop_size % 32 == 0,
            "device": self.device in ("auto", "cpu", "cuda"),
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            values = ", ".join(f"train.{k}={getattr(self, k)!r}" for k in bad)
            raise HairsegError(
                f"invalid {values} (epochs/batch_size/patience/threads >= 1, lr > 0, "
                "crop_size 0 or a multiple of 32, device auto|cpu|cuda)",
                exit_code=EXIT_USAGE,
            )


@dataclass
class Split:
    """One split held in memory at the network resolution: images (N,S,S,3), masks (N,S,S)."""

    ids: list[str]
    images: np.ndarray
    masks: np.ndarray
    # Per-pixel label confidence (N,S,S) uint8 0-255, from a pseudo-labelled set's
    # ``confidence_path`` column; None = every pixel counts fully.
    weights: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @staticmethod
    def concat(*splits: Split) -> Split:
        """One split from several (weights of a split without them are 255)."""
        weighted = any(s.weights is not None for s in splits)
        return Split(
            [i for s in splits for i in s.ids],
            np.concatenate([s.images for s in splits]),
            np.concatenate([s.masks for s in splits]),
            np.concatenate(
                [s.weights if s.weights is not None else np.full_like(s.masks, 255) for s in splits]
            )
            if weighted
            else None,
        )


@dataclass
class TrainResult:
    """What :func:`fit` produced (the model itself is returned alongside)."""

    best_epoch: int
    best_val_iou: float
    epochs_run: int
    stopped_early: bool
    resumed_from_epoch: int
    init_source: str
    n_params: int
    gflops: float
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "history"}


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise HairsegError("train.device is 'cuda' but no CUDA device is available", exit_code=2)
    return torch.device(name)


def load_split(dataset: Path, split: str, size: int, limit: int = 0) -> Split:
    """Read one split of a dataset, resized to ``size``² (area for images, linear for masks)."""
    df = read_manifest(dataset)
    df = df[df["split"] == split].sort_values("id")
    if limit:
        df = df.head(limit)
    if df.empty:
        raise HairsegError(f"dataset {dataset} has no '{split}' images", exit_code=EXIT_USAGE)
    images = np.empty((len(df), size, size, 3), np.uint8)
    masks = np.empty((len(df), size, size), np.uint8)
    weighted = "confidence_path" in df.columns and df["confidence_path"].notna().any()
    weights = np.full((len(df), size, size), 255, np.uint8) if weighted else None
    for i, row in enumerate(df.itertuples()):
        rgb = imaging.read_image(Path(dataset) / row.image_path)
        mask = imaging.read_mask(Path(dataset) / row.mask_path)
        images[i] = _resize(rgb, size, cv2.INTER_AREA)
        masks[i] = np.where(_resize(mask, size, cv2.INTER_LINEAR) > 127, 255, 0)
        if weights is not None and isinstance(row.confidence_path, str) and row.confidence_path:
            conf = imaging.read_mask(Path(dataset) / row.confidence_path)
            weights[i] = _resize(conf, size, cv2.INTER_LINEAR)
    return Split(list(df["id"]), images, masks, weights)


def _resize(array: np.ndarray, size: int, interp: int) -> np.ndarray:
    if array.shape[:2] == (size, size):
        return array
    return cv2.resize(array, (size, size), interpolation=interp)


def augment_batch(
    images: np.ndarray,
    masks: np.ndarray,
    out_size: int,
    cfg: AugmentConfig,
    rng: np.random.Generator,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, ...]:
    """Randomly crop, flip, jitter and blur ``uint8`` images (masks follow the geometry).

    With ``weights`` (per-pixel confidences), they follow the geometry too and are
    returned third."""
    out_img = np.empty((len(images), out_size, out_size, 3), np.uint8)
    out_mask = np.empty((len(images), out_size, out_size), np.uint8)
    out_w = None if weights is None else np.empty((len(images), out_size, out_size), np.uint8)
    for i, (rgb, mask) in enumerate(zip(images, masks, strict=True)):
        h, w = mask.shape
        area = rng.uniform(cfg.min_scale, 1.0) * h * w
        aspect = math.exp(rng.uniform(-math.log(cfg.max_aspect), math.log(cfg.max_aspect)))
        ch = min(h, round(math.sqrt(area / aspect)))
        cw = min(w, round(math.sqrt(area * aspect)))
        y0 = int(rng.integers(0, h - ch + 1))
        x0 = int(rng.integers(0, w - cw + 1))
        crop = cv2.resize(rgb[y0 : y0 + ch, x0 : x0 + cw], (out_size, out_size), cv2.INTER_LINEAR)
        mcrop = cv2.resize(mask[y0 : y0 + ch, x0 : x0 + cw], (out_size, out_size), cv2.INTER_LINEAR)
        flip = rng.random() < cfg.hflip
        if flip:
            crop, mcrop = crop[:, ::-1], mcrop[:, ::-1]
        out_img[i] = _jitter(crop, cfg, rng)
        out_mask[i] = np.where(mcrop > 127, 255, 0)
        if out_w is not None:
            wcrop = cv2.resize(
                weights[i][y0 : y0 + ch, x0 : x0 + cw], (out_size, out_size), cv2.INTER_LINEAR
            )
            out_w[i] = wcrop[:, ::-1] if flip else wcrop
    if out_w is not None:
        return out_img, out_mask, out_w
    return out_img, out_mask


def _jitter(rgb: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    img = rgb.astype(np.float32)
    img *= rng.uniform(1 - cfg.brightness, 1 + cfg.brightness)
    mean = img.mean()
    img = (img - mean) * rng.uniform(1 - cfg.contrast, 1 + cfg.contrast) + mean
    img = np.clip(img, 0, 255).astype(np.uint8)
    if cfg.saturation or cfg.hue:
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV_FULL).astype(np.float32)
        hsv[..., 0] = (hsv[..., 0] + 256 * rng.uniform(-cfg.hue, cfg.hue)) % 256
        hsv[..., 1] *= rng.uniform(1 - cfg.saturation, 1 + cfg.saturation)
        img = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB_FULL)
    if rng.random() < cfg.blur:
        img = cv2.GaussianBlur(img, (0, 0), sigmaX=float(rng.uniform(0.5, 1.5)))
    if cfg.greyscale and rng.random() < cfg.greyscale:  # no draw when off: same stream
        img = np.repeat(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    return img


def _loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    cfg: TrainConfig,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """BCE + soft Dice; ``weight`` (per-pixel label confidence in [0, 1]) scales both."""
    if weight is None:
        bce = F.binary_cross_entropy_with_logits(logits, target)
    else:
        bce = F.binary_cross_entropy_with_logits(logits, target, weight=weight)
    prob = torch.sigmoid(logits).flatten(1)
    t = target.flatten(1)
    if weight is not None:
        w = weight.flatten(1)
        prob, t = prob * w, t * w
    soft_dice = (2 * (prob * t).sum(1) + 1) / (prob.sum(1) + t.sum(1) + 1)
    return cfg.bce_weight * bce + cfg.dice_weight * (1 - soft_dice.mean())


def _to_tensors(
    images: np.ndarray, masks: np.ndarray, size: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(imaging.preprocess(list(images), size)).to(device)
    y = torch.from_numpy((masks > 127).astype(np.float32)[:, None]).to(device)
    return x, y


@torch.no_grad()
def _predict_logits(
    model: nn.Module, images: np.ndarray, size: int, device: torch.device, batch_size: int
) -> torch.Tensor:
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(imaging.preprocess(list(images[start : start + batch_size]), size))
        out.append(model(x.to(device)).cpu())
    return torch.cat(out)


@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module, images: np.ndarray, size: int, device: torch.device, batch_size: int
) -> None:
    """Recompute BatchNorm running statistics as an exact average over ``images``.

    With few steps per epoch and a high learning rate the exponential running averages lag
    far behind the weights, and eval-mode predictions collapse ("precise BN", Wu & Johnson
    2021). A forward pass in train mode over un-augmented training images fixes that.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or len(images) == 0:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    model.train()
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        if len(chunk) < 2:
            break
        model(torch.from_numpy(imaging.preprocess(list(chunk), size)).to(device))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    model.eval()


def predict_probabilities(
    model: nn.Module, images: np.ndarray, size: int, device: torch.device, batch_size: int = 16
) -> np.ndarray:
    """Hair probabilities ``(N, S, S)`` of a PyTorch model (eval mode) on ``uint8`` images."""
    return torch.sigmoid(_predict_logits(model, images, size, device, batch_size))[:, 0].numpy()


def _fingerprint(
    model_cfg: ModelConfig, cfg: TrainConfig, train: Split, val: Split, init: str
) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([asdict(model_cfg), asdict(cfg), init], sort_keys=True).encode())
    for split in (train, val):
        h.update("\n".join(split.ids).encode())
        h.update(hashlib.sha256(split.images.tobytes()).digest())
        h.update(hashlib.sha256(split.masks.tobytes()).digest())
    return h.hexdigest()[:16]


def _save_atomic(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def fit(
    train: Split,
    val: Split,
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    *,
    checkpoint_dir: Path,
    init_state: dict[str, torch.Tensor] | None = None,
    init_source: str = "scratch",
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> tuple[nn.Module, TrainResult]:
    """Train a ``model_cfg.arch`` network; return the best-on-validation model and a summary.

    ``init_state`` (a state dict, e.g. the champion's weights) starts fine-tuning from it.
    ``on_epoch(epoch, metrics)`` is called after each epoch's checkpoint is on disk (the
    CLI logs to MLflow there); an exception it raises interrupts training resumably.
    """
    started = time.perf_counter()
    torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    size = model_cfg.input_size
    crop = cfg.crop_size or size
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)

    model = build_model(model_cfg.arch, model_cfg)
    n_params, gflops = count_parameters(model), count_flops(model, size) / 1e9
    if init_state is not None:
        try:
            model.load_state_dict(init_state)
        except RuntimeError as exc:
            raise HairsegError(
                f"initial weights ({init_source}) do not fit model {model_cfg.arch}: "
                f"{str(exc).splitlines()[0]}"
            ) from None
    model.to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    warmup = max(1, int(cfg.warmup_frac * total_steps))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, schedule)

    fingerprint = _fingerprint(model_cfg, cfg, train, val, init_source)
    ckpt_path = Path(checkpoint_dir) / fingerprint / "last.pt"
    start_epoch, best_iou, best_loss, best_epoch, bad_epochs = 1, -1.0, float("inf"), 0, 0
    best_state: dict[str, torch.Tensor] = {}
    history: list[dict[str, float]] = []
    resumed_from = 0
    if ckpt_path.is_file():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        scheduler.load_state_dict(state["scheduler"])
        rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])
        start_epoch = state["epoch"] + 1
        best_iou, best_loss = state["best_iou"], state["best_loss"]
        best_epoch, bad_epochs = state["best_epoch"], state["bad"]
        best_state, history = state["best_state"], state["history"]
        resumed_from = state["epoch"]
        log.info("resuming from %s (epoch %d done)", ckpt_path, resumed_from)

    stopped_early = False
    epoch = start_epoch - 1
    for epoch in range(start_epoch, cfg.epochs + 1):
        if bad_epochs >= cfg.patience:
            stopped_early = True
            break
        model.train()
        order = rng.permutation(len(train))
        losses = []
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch}/{cfg.epochs}", leave=False)
        for step in bar:
            idx = np.sort(order[step * cfg.batch_size : (step + 1) * cfg.batch_size])
            if len(idx) < 2 and len(train) >= 2:
                continue  # BatchNorm needs two samples; skip a lone remainder
            weight = None
            if train.weights is None:
                imgs, msks = augment_batch(
                    train.images[idx], train.masks[idx], crop, cfg.augment, rng
                )
            else:
                imgs, msks, wts = augment_batch(
                    train.images[idx], train.masks[idx], crop, cfg.augment, rng, train.weights[idx]
                )
                weight = torch.from_numpy(wts.astype(np.float32)[:, None] / 255.0).to(device)
            x, y = _to_tensors(imgs, msks, crop, device)
            loss = _loss(model(x), y, cfg, weight)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            scheduler.step()
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        if cfg.bn_recalibration_images:
            pick = np.sort(rng.permutation(len(train))[: cfg.bn_recalibration_images])
            recalibrate_batchnorm(model, train.images[pick], size, device, cfg.batch_size)
        val_logits = _predict_logits(model, val.images, size, device, cfg.batch_size)
        val_target = torch.from_numpy((val.masks > 127).astype(np.float32)[:, None])
        val_loss = float(_loss(val_logits, val_target, cfg))
        val_prob = torch.sigmoid(val_logits)[:, 0].numpy()
        val_iou = float(
            np.mean([iou(p >= 0.5, m) for p, m in zip(val_prob, val.masks, strict=True)])
        )
        metrics = {
            "train_loss": float(np.mean(losses)) if losses else float("nan"),
            "val_loss": val_loss,
            "val_iou": val_iou,
            "lr": float(scheduler.get_last_lr()[0]),
        }
        history.append({"epoch": float(epoch), **metrics})
        # Better = higher validation IoU; on a tie (e.g. all-empty early predictions), lower loss.
        if (val_iou, -val_loss) > (best_iou, -best_loss):
            best_iou, best_loss, best_epoch, bad_epochs = val_iou, val_loss, epoch, 0
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            bad_epochs += 1
        log.info(
            "epoch %d: train_loss %.4f val_loss %.4f val_iou %.4f",
            epoch,
            metrics["train_loss"],
            val_loss,
            val_iou,
        )
        _save_atomic(
            {
                "epoch": epoch,
                "model": model.state_dict(),
                "optimiser": optimiser.state_dict(),
                "scheduler": scheduler.state_dict(),
                "numpy_rng": rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(),
                "best_iou": best_iou,
                "best_loss": best_loss,
                "best_epoch": best_epoch,
                "bad": bad_epochs,
                "best_state": best_state,
                "history": history,
            },
            ckpt_path,
        )
        if on_epoch is not None:
            on_epoch(epoch, metrics)

    model.load_state_dict(best_state)
    model.to("cpu").eval()
    ckpt_path.unlink(missing_ok=True)
    result = TrainResult(
        best_epoch=best_epoch,
        best_val_iou=best_iou,
        epochs_run=len(history),
        stopped_early=stopped_early,
        resumed_from_epoch=resumed_from,
        init_source=init_source,
        n_params=n_params,
        gflops=gflops,
        seconds=time.perf_counter() - started,
        history=history,
    )
    return model, result
