"""Hair segmentation networks in plain PyTorch, built by name from a small registry.

- ``lraspp_mnv3_small`` (default): a MobileNetV3-Small backbone (Howard et al. 2019) with
  a dilated last stage (output stride 16) and the Lite R-ASPP head from the same paper;
- ``lraspp_mnv3_fast``: the same table and head reshaped for ONNX Runtime on a CPU (ReLU,
  no squeeze-excite, a halved stride-32 tail, a stride-8 decoder, a stride-4 edge
  classifier): 2x+ faster in fp32 (docs/BENCHMARKS.md "A faster network");
- ``unet_small``: a compact U-Net, a simple baseline that needs no depthwise kernels.

Every network maps a normalised ``(N, 3, S, S)`` batch (:func:`hairseg.imaging.preprocess`)
to hair logits ``(N, 1, S, S)`` *at the input resolution* (bilinear upsampling happens
inside ``forward``), which is the ONNX artifact contract (see :mod:`hairseg.inference`).
Only export-friendly ops are used (conv, BN, ReLU, hardswish, hardsigmoid, global average
pooling, bilinear resize, squeeze/unsqueeze), all available at ONNX opset 17.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from hairseg.config import from_mapping
from hairseg.errors import EXIT_USAGE, HairsegError

__all__ = [
    "MODELS",
    "LRASPPMobileNetV3Fast",
    "LRASPPMobileNetV3Small",
    "ModelConfig",
    "UNetSmall",
    "build_model",
    "count_flops",
    "count_parameters",
    "load_model",
    "save_model",
]

Arch = Literal["lraspp_mnv3_small", "lraspp_mnv3_fast", "unet_small"]


@dataclass(frozen=True)
class ModelConfig:
    """``params.yaml`` section ``model``."""

    arch: Arch = "lraspp_mnv3_small"
    input_size: int = 256  # S: the network input (and output) is S x S
    width_mult: float = 1.0  # MobileNetV3 channel multiplier
    reduced_tail: bool = False  # halve the last stage's channels (torchvision's option)
    dilated: bool = True  # last stage at stride 16 (dilated) rather than 32
    head_channels: int = 128  # LR-ASPP inner channels
    unet_base: int = 16  # U-Net channels of the first level (doubling per level)
    unet_depth: int = 4  # U-Net levels

    def __post_init__(self) -> None:
        if self.input_size < 32 or self.input_size % 32:
            raise HairsegError(
                f"model.input_size must be a multiple of 32 and >= 32, got {self.input_size}",
                exit_code=EXIT_USAGE,
            )
        if self.width_mult <= 0:
            raise HairsegError(f"model.width_mult must be > 0, got {self.width_mult}", exit_code=2)
        if not 2 <= self.unet_depth <= 5:
            raise HairsegError(f"model.unet_depth must be 2..5, got {self.unet_depth}", exit_code=2)


def _divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of 8 (as MobileNet does), never down by more than 10%."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new


class ConvBNAct(nn.Sequential):
    """Conv → BatchNorm → activation: the unit every block is made of."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int = 3,
        stride: int = 1,
        groups: int = 1,
        dilation: int = 1,
        act: Callable[[], nn.Module] | None = nn.ReLU,
    ) -> None:
        padding = (kernel - 1) // 2 * dilation
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, out_ch, kernel, stride, padding, dilation, groups, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        if act is not None:
            layers.append(act())
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    """Channel attention from a global average (hardsigmoid gate, as in MobileNetV3)."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = F.hardsigmoid(self.fc2(F.relu(self.fc1(self.pool(x)))))
        return x * scale


class InvertedResidual(nn.Module):
    """MobileNetV3 bottleneck: expand 1x1 → depthwise kxk (→ SE) → project 1x1 (+ skip)."""

    def __init__(
        self,
        in_ch: int,
        kernel: int,
        expand_ch: int,
        out_ch: int,
        use_se: bool,
        act: Callable[[], nn.Module],
        stride: int,
        dilation: int,
    ) -> None:
        super().__init__()
        self.use_skip = stride == 1 and in_ch == out_ch
        layers: list[nn.Module] = []
        if expand_ch != in_ch:
            layers.append(ConvBNAct(in_ch, expand_ch, 1, act=act))
        layers.append(
            ConvBNAct(
                expand_ch,
                expand_ch,
                kernel,
                stride=1 if dilation > 1 else stride,
                groups=expand_ch,
                dilation=dilation,
                act=act,
            )
        )
        if use_se:
            layers.append(SqueezeExcite(expand_ch, _divisible(expand_ch // 4)))
        layers.append(ConvBNAct(expand_ch, out_ch, 1, act=None))
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return out + x if self.use_skip else out


# (kernel, expand, out, SE, activation, stride) per bottleneck of MobileNetV3-Small.
_MNV3_SMALL = [
    (3, 16, 16, True, "RE", 2),
    (3, 72, 24, False, "RE", 2),
    (3, 88, 24, False, "RE", 1),  # end of stride 8: the LR-ASPP low-level features
    (5, 96, 40, True, "HS", 2),
    (5, 240, 40, True, "HS", 1),
    (5, 240, 40, True, "HS", 1),
    (5, 120, 48, True, "HS", 1),
    (5, 144, 48, True, "HS", 1),
    (5, 288, 96, True, "HS", 2),  # last stage: dilated instead of strided for segmentation
    (5, 576, 96, True, "HS", 1),
    (5, 576, 96, True, "HS", 1),
]


class MobileNetV3SmallBackbone(nn.Module):
    """MobileNetV3-Small features: ``low`` at stride 8 and ``high`` at stride 16 (or 32)."""

    def __init__(
        self,
        width_mult: float = 1.0,
        reduced_tail: bool = False,
        dilated: bool = True,
        *,
        relu_only: bool = False,
        squeeze_excite: bool = True,
    ) -> None:
        super().__init__()
        # relu_only / squeeze_excite=False: the ORT-friendly variant (lraspp_mnv3_fast); the
        # defaults keep lraspp_mnv3_small's modules (and so its state-dict keys) unchanged.
        hswish = nn.ReLU if relu_only else nn.Hardswish
        acts: dict[str, Callable[[], nn.Module]] = {"RE": nn.ReLU, "HS": hswish}
        stem = _divisible(16 * width_mult)
        layers: list[nn.Module] = [ConvBNAct(3, stem, 3, stride=2, act=hswish)]
        in_ch = stem
        self.low_index = 3  # output of layers[:4] (stem + 3 blocks) is at stride 8
        for i, (k, exp, out, se, act, stride) in enumerate(_MNV3_SMALL):
            last_stage = i >= 8
            div = 2 if (reduced_tail and last_stage) else 1
            exp_ch = _divisible(exp * width_mult / div)
            out_ch = _divisible(out * width_mult / div)
            dilation = 2 if (dilated and last_stage) else 1
            layers.append(
                InvertedResidual(
                    in_ch, k, exp_ch, out_ch, se and squeeze_excite, acts[act], stride, dilation
                )
            )
            in_ch = out_ch
        self.last_ch = 6 * in_ch
        layers.append(ConvBNAct(in_ch, self.last_ch, 1, act=hswish))
        self.layers = nn.Sequential(*layers)
        self.low_ch = _divisible(24 * width_mult)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low = self.layers[: self.low_index + 1](x)
        high = self.layers[self.low_index + 1 :](low)
        return low, high


class LRASPPMobileNetV3Small(nn.Module):
    """Lite R-ASPP: a cheap global-context gate on the deep features plus a low-level skip."""

    def __init__(self, cfg: ModelConfig, backbone: MobileNetV3SmallBackbone | None = None) -> None:
        super().__init__()
        self.backbone = backbone or MobileNetV3SmallBackbone(
            cfg.width_mult, cfg.reduced_tail, cfg.dilated
        )
        high_ch, inner = self.backbone.last_ch, cfg.head_channels
        self.cbr = ConvBNAct(high_ch, inner, 1)
        self.scale = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(high_ch, inner, 1, bias=False), nn.Sigmoid()
        )
        self.low_classifier = nn.Conv2d(self.backbone.low_ch, 1, 1)
        self.high_classifier = nn.Conv2d(inner, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low, high = self.backbone(x)
        y = self.cbr(high) * self.scale(high)
        y = F.interpolate(y, size=low.shape[-2:], mode="bilinear", align_corners=False)
        y = self.low_classifier(low) + self.high_classifier(y)
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)


class LRASPPMobileNetV3Fast(LRASPPMobileNetV3Small):
    """LR-ASPP on MobileNetV3-Small, reshaped for ONNX Runtime on a CPU (``lraspp_mnv3_fast``).

    The same backbone table and head as :class:`LRASPPMobileNetV3Small`, with the changes the
    per-op ORT profile asked for (docs/BENCHMARKS.md "A faster network", ``bench/fast_network.py``):

    - ``classify_first``: the 1x1 ``high_classifier`` runs *before* the upsampling, so the
      Resize moves 1 channel instead of ``head_channels`` (exact: a 1x1 conv commutes with
      bilinear interpolation, whose weights sum to one);
    - ``static_resize``: resizes by constant scale factors, so the graph has no
      Shape/Gather/Concat chain computing output sizes at run time;
    - ``relu_only``: ReLU instead of HardSwish (HardSwish is HardSigmoid + Mul in ORT, and the
      int8 graph runs HardSigmoid in float between a Dequantize and a Quantize);
    - ``squeeze_excite=False``: no SE blocks (each is a GlobalAveragePool, two convs, a
      HardSigmoid and a Mul, none of them fused; in int8 the worst-quantized pattern);
    - ``reduced_tail`` / ``dilated``: the last stage's channels halved, and at output stride
      32 instead of a dilated 16 (the deep stage was a third of the fp32 time);
    - ``decoder``: the price of the coarser semantic path is paid back at stride 8: the deep
      features go up as ``decoder`` channels, are added to a 1x1 projection of the stride-8
      features, and a depthwise-separable conv (ReLU, dw 3x3, 1x1) gives the logit
      (0: LR-ASPP's two linear classifiers);
    - ``detail``: a light edge branch: one more 1x1 classifier on the stride-4 features,
      added after a 2x upsampling, so the final 4x upsampling starts from a finer map.

    ``model.width_mult`` and ``model.head_channels`` apply; ``model.reduced_tail`` and
    ``model.dilated`` are lraspp_mnv3_small's and are not read here (the keyword arguments
    are the ablation knobs of the benchmark).
    """

    def __init__(
        self,
        cfg: ModelConfig,
        *,
        relu_only: bool = True,
        squeeze_excite: bool = False,
        reduced_tail: bool = True,
        dilated: bool = False,
        classify_first: bool = True,
        static_resize: bool = True,
        detail: bool = True,
        decoder: int = 32,
        end_nchwc: bool = True,
    ) -> None:
        backbone = MobileNetV3SmallBackbone(
            cfg.width_mult,
            reduced_tail,
            dilated,
            relu_only=relu_only,
            squeeze_excite=squeeze_excite,
        )
        super().__init__(cfg, backbone)
        self.classify_first = classify_first
        self.static_resize = static_resize
        self.high_stride = 16 if dilated else 32
        # Stride-4 features: the output of the stem + first bottleneck (16 x width channels).
        self.detail_classifier = (
            nn.Conv2d(_divisible(16 * cfg.width_mult), 1, 1) if detail else None
        )
        self.end_nchwc = end_nchwc
        self.decoder: nn.Module | None = None
        if decoder:
            # The deep features go up as `decoder` channels (not 1), meet a 1x1 projection of
            # the stride-8 features, and a depthwise-separable conv decides the boundary.
            self.high_classifier = nn.Conv2d(cfg.head_channels, decoder, 1)
            self.low_classifier = ConvBNAct(self.backbone.low_ch, decoder, 1, act=None)
            self.decoder = nn.Sequential(
                nn.ReLU(),
                ConvBNAct(decoder, decoder, 3, groups=decoder),
                ConvBNAct(decoder, decoder, 1),
                nn.Conv2d(decoder, 1, 1),
            )

    def _up(self, y: torch.Tensor, factor: int, like: torch.Tensor) -> torch.Tensor:
        if self.static_resize:
            return F.interpolate(y, scale_factor=factor, mode="bilinear", align_corners=False)
        return F.interpolate(y, size=like.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layers = self.backbone.layers
        fine = layers[:2](x)  # stride 4
        low = layers[2 : self.backbone.low_index + 1](fine)  # stride 8
        high = layers[self.backbone.low_index + 1 :](low)
        y = self.cbr(high) * self.scale(high)
        factor = self.high_stride // 8
        if self.classify_first:
            y = self._up(self.high_classifier(y), factor, low)
        else:
            y = self.high_classifier(self._up(y, factor, low))
        y = self.low_classifier(low) + y
        if self.decoder is not None:
            y = self.decoder(y)
        if self.detail_classifier is None:
            return self._up(self._plain(y), 8, x)
        y = self._up(y, 2, fine) + self.detail_classifier(fine)
        return self._up(self._plain(y), 4, x)

    def _plain(self, y: torch.Tensor) -> torch.Tensor:
        """A no-op (Squeeze + Unsqueeze of the one channel) that ends ORT's NCHWc layout
        before the last Resize (``end_nchwc``): otherwise the 1-channel map is upsampled
        padded to a block of 16 channels (0.3 ms of 2 ms at 256² in the per-op profile)."""
        return y.squeeze(1).unsqueeze(1) if self.end_nchwc else y


class UNetSmall(nn.Module):
    """A compact U-Net: double convs, max-pool down, bilinear up, skip concatenation."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        chans = [cfg.unet_base * 2**i for i in range(cfg.unet_depth)]
        self.down = nn.ModuleList()
        in_ch = 3
        for ch in chans:
            self.down.append(nn.Sequential(ConvBNAct(in_ch, ch), ConvBNAct(ch, ch)))
            in_ch = ch
        self.up = nn.ModuleList()
        for ch in reversed(chans[:-1]):
            self.up.append(nn.Sequential(ConvBNAct(in_ch + ch, ch), ConvBNAct(ch, ch)))
            in_ch = ch
        self.classifier = nn.Conv2d(in_ch, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        y = x
        for i, block in enumerate(self.down):
            y = block(y if i == 0 else F.max_pool2d(y, 2))
            skips.append(y)
        for block, skip in zip(self.up, reversed(skips[:-1]), strict=True):
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = block(torch.cat([y, skip], dim=1))
        return self.classifier(y)


MODELS: dict[str, Callable[[ModelConfig], nn.Module]] = {
    "lraspp_mnv3_small": LRASPPMobileNetV3Small,
    "lraspp_mnv3_fast": LRASPPMobileNetV3Fast,
    "unet_small": UNetSmall,
}


def build_model(name: str | None = None, cfg: ModelConfig | None = None) -> nn.Module:
    """Build network ``name`` (default: ``cfg.arch``) from the registry."""
    cfg = cfg or ModelConfig()
    name = name or cfg.arch
    if name not in MODELS:
        raise HairsegError(
            f"unknown model {name!r}; accepted: {', '.join(sorted(MODELS))}", exit_code=EXIT_USAGE
        )
    return MODELS[name](cfg)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_flops(model: nn.Module, input_size: int) -> int:
    """Multiply-accumulates x 2 of one forward pass at ``input_size``² (convs and linears).

    Counted with forward hooks, so it follows whatever the network actually runs.
    """
    total = 0

    def conv_hook(mod: nn.Conv2d, _inp: Any, out: torch.Tensor) -> None:
        nonlocal total
        k = mod.kernel_size[0] * mod.kernel_size[1] * (mod.in_channels // mod.groups)
        total += 2 * out.numel() * k

    def linear_hook(mod: nn.Linear, _inp: Any, out: torch.Tensor) -> None:
        nonlocal total
        total += 2 * out.numel() * mod.in_features

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, input_size, input_size))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return total


def save_model(model: nn.Module, cfg: ModelConfig, weights_path: Path, config_path: Path) -> None:
    """Write the state dict and the config JSON (what fine-tuning and export load)."""
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), weights_path)
    config_path.write_text(json.dumps(asdict(cfg), indent=2, sort_keys=True) + "\n")


def load_model(weights_path: Path, config_path: Path) -> tuple[nn.Module, ModelConfig]:
    """Rebuild a network from :func:`save_model`'s files (in eval mode)."""
    if not Path(config_path).is_file() or not Path(weights_path).is_file():
        raise HairsegError(f"model files not found: {weights_path}, {config_path}", exit_code=2)
    cfg = from_mapping(ModelConfig, json.loads(Path(config_path).read_text()), where="model")
    model = build_model(cfg.arch, cfg)
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    model.eval()
    return model, cfg
