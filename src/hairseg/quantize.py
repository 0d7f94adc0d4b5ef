"""Export to ONNX and quantize to int8 with ONNX Runtime static QDQ quantization.

Both artifacts are kept (``model.fp32.onnx``, ``model.int8.onnx``). The int8 model ships
only when its validation IoU is within ``max_iou_drop`` of the fp32 model's *and* it is at
least ``min_int8_speedup`` times faster than fp32 on the machine that runs the stage
(model-only, batch 1, ``speed_threads`` ORT threads, the two timed interleaved so that a
noisy machine slows both alike); otherwise the fp32 model ships, and ``selected.json``
records both figures and says why. Calibration images come from the train
split and go through :func:`hairseg.imaging.preprocess`, exactly as in serving.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from hairseg import imaging
from hairseg.errors import EXIT_USAGE, HairsegError
from hairseg.inference import INPUT_NAME, INPUT_SIZE_KEY, OUTPUT_NAME, OnnxSegmenter
from hairseg.metrics import iou
from hairseg.model import ModelConfig

__all__ = [
    "FP32_FILE",
    "INT8_FILE",
    "SELECTED_FILE",
    "QuantizeConfig",
    "QuantizeResult",
    "choose_variant",
    "export_onnx",
    "mean_iou",
    "quantize",
    "quantize_int8",
    "set_metadata",
    "time_models",
]

log = logging.getLogger(__name__)

FP32_FILE = "model.fp32.onnx"
INT8_FILE = "model.int8.onnx"
SELECTED_FILE = "selected.json"


@dataclass(frozen=True)
class QuantizeConfig:
    """``params.yaml`` section ``quantize``."""

    opset: int = 17
    calibration_images: int = 64  # from the train split
    calibrate_method: Literal["minmax", "entropy", "percentile"] = "minmax"
    per_channel: bool = True
    # QDQ: QuantizeLinear/DequantizeLinear pairs that ORT fuses into QLinear* kernels at load;
    # qoperator: the QLinear* ops written into the file (docs/BENCHMARKS.md "int8").
    format: Literal["qdq", "qoperator"] = "qdq"
    activation_type: Literal["uint8", "int8"] = "uint8"
    weight_type: Literal["int8", "uint8"] = "int8"
    op_types: tuple[str, ...] = ()  # quantize only these op types (empty = all ORT can)
    exclude_op_types: tuple[str, ...] = ()  # ... and never these (they stay float)
    # Convs kept float: "stem" (the conv on the 3-channel input: int8 im2col with K = 27 ran
    # 2.7x slower than fp32) and/or "depthwise" (MLAS's int8 depthwise kernels were slower
    # than its fp32 NCHWc ones); docs/BENCHMARKS.md "int8".
    float_convs: tuple[Literal["stem", "depthwise"], ...] = ()
    pre_process: bool = True  # ORT quant_pre_process (shape inference + optimisation) first
    max_iou_drop: float = 0.01  # int8 ships only within this validation-IoU drop of fp32
    threshold: float = 0.5
    threads: int = 2
    min_int8_speedup: float = 1.3  # int8 ships only when fp32 ms / int8 ms >= this
    speed_repeats: int = 40  # timed runs per model (interleaved), median taken
    speed_threads: int = 1  # ORT intra-op threads for the timing (as one serving worker)

    def __post_init__(self) -> None:
        if self.min_int8_speedup <= 0 or self.speed_repeats < 1 or self.speed_threads < 1:
            raise HairsegError(
                "quantize.min_int8_speedup must be > 0, speed_repeats and speed_threads >= 1",
                exit_code=EXIT_USAGE,
            )
        if self.opset < 17:
            raise HairsegError(f"quantize.opset must be >= 17, got {self.opset}", exit_code=2)
        if self.calibration_images < 1:
            raise HairsegError("quantize.calibration_images must be >= 1", exit_code=EXIT_USAGE)
        if not 0 <= self.max_iou_drop <= 1:
            raise HairsegError("quantize.max_iou_drop must be within [0, 1]", exit_code=EXIT_USAGE)


@dataclass(frozen=True)
class QuantizeResult:
    """What shipped and why."""

    variant: Literal["fp32", "int8"]
    file: str
    reason: str
    fp32_val_iou: float
    int8_val_iou: float | None
    iou_drop: float | None
    max_abs_diff_vs_torch: float
    fp32_bytes: int
    int8_bytes: int | None
    fp32_ms: float | None = None  # model-only p50, batch 1, speed_threads
    int8_ms: float | None = None
    int8_speedup: float | None = None  # fp32_ms / int8_ms

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def set_metadata(path: Path, metadata: dict[str, str]) -> None:
    """Add (or overwrite) ``metadata_props`` of an ONNX file in place."""
    import onnx

    proto = onnx.load(str(path))
    existing = {p.key: p for p in proto.metadata_props}
    for key, value in metadata.items():
        if key in existing:
            existing[key].value = str(value)
        else:
            proto.metadata_props.add(key=key, value=str(value))
    onnx.save(proto, str(path))


def export_onnx(
    model: nn.Module,
    model_cfg: ModelConfig,
    path: Path,
    *,
    opset: int = 17,
    metadata: dict[str, str] | None = None,
) -> float:
    """Export ``model`` to ``path`` under the artifact contract; return max |ORT − torch|.

    Input ``image`` (N,3,S,S), output ``logits`` (N,1,S,S), dynamic batch axis, metadata
    ``hairseg.input_size`` = S plus ``metadata``. The exported graph is checked with
    ``onnx.checker`` and compared with PyTorch on a random batch of two.
    """
    import onnx
    import onnxruntime as ort

    size = model_cfg.input_size
    model = model.eval().to("cpu")
    path.parent.mkdir(parents=True, exist_ok=True)
    dummy = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    tmp = path.with_suffix(".tmp.onnx")
    with torch.no_grad():
        torch.onnx.export(
            model,
            (dummy,),
            str(tmp),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
        expected = model(dummy).numpy()
    set_metadata(
        tmp,
        {
            INPUT_SIZE_KEY: str(size),
            "hairseg.arch": model_cfg.arch,
            "hairseg.model_name": "hairseg",
            "hairseg.variant": "fp32",
            **(metadata or {}),
        },
    )
    onnx.checker.check_model(str(tmp))
    session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT_NAME], {INPUT_NAME: dummy.numpy()})[0]
    tmp.replace(path)
    return float(np.abs(got - expected).max())


class _CalibrationReader:
    """ORT ``CalibrationDataReader``: preprocessed batches of training images."""

    def __init__(self, images: np.ndarray, size: int, batch_size: int = 8) -> None:
        self.batches: Iterator[np.ndarray] = (
            imaging.preprocess(list(images[i : i + batch_size]), size)
            for i in range(0, len(images), batch_size)
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self.batches, None)
        return None if batch is None else {INPUT_NAME: batch}


def quantize_int8(
    fp32_path: Path,
    int8_path: Path,
    calibration: np.ndarray,
    size: int,
    cfg: QuantizeConfig,
) -> None:
    """Static int8 quantization: ``cfg.format`` (QDQ or QOperator), ``cfg.per_channel``
    weights of ``cfg.weight_type``, activations of ``cfg.activation_type``, the op types of
    ``cfg.op_types`` (all when empty) less ``cfg.exclude_op_types``."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(_CalibrationReader, CalibrationDataReader):
        pass

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    with tempfile.TemporaryDirectory(prefix="hairseg-quant-") as tmp_dir:
        source = fp32_path
        if cfg.pre_process:
            source = Path(tmp_dir) / "pre.onnx"
            quant_pre_process(str(fp32_path), str(source), skip_symbolic_shape=True)
        out = Path(tmp_dir) / "int8.onnx"
        types = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
        nodes_to_exclude = _float_nodes(source, cfg) or None
        quantize_static(
            str(source),
            str(out),
            Reader(calibration, size),
            quant_format=QuantFormat.QDQ if cfg.format == "qdq" else QuantFormat.QOperator,
            per_channel=cfg.per_channel,
            activation_type=types[cfg.activation_type],
            weight_type=types[cfg.weight_type],
            op_types_to_quantize=list(cfg.op_types) or None,
            nodes_to_exclude=nodes_to_exclude,
            calibrate_method=methods[cfg.calibrate_method],
            extra_options={"CalibTensorRangeSymmetric": False},
        )
        import onnx

        meta = {p.key: p.value for p in onnx.load(str(fp32_path)).metadata_props}
        set_metadata(out, {**meta, "hairseg.variant": "int8"})
        shutil.move(str(out), int8_path)


def _float_nodes(model_path: Path, cfg: QuantizeConfig) -> list[str]:
    """Names of the nodes that ``cfg.exclude_op_types`` and ``cfg.float_convs`` keep float."""
    if not cfg.exclude_op_types and not cfg.float_convs:
        return []
    import onnx

    graph = onnx.load(str(model_path)).graph
    inputs = {i.name for i in graph.input}
    names = []
    for node in graph.node:
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        if (
            node.op_type in cfg.exclude_op_types
            or (node.op_type == "Conv" and "stem" in cfg.float_convs and node.input[0] in inputs)
            or (node.op_type == "Conv" and "depthwise" in cfg.float_convs and group > 1)
        ):
            names.append(node.name)
    return names


def mean_iou(model_path: Path, images: np.ndarray, masks: np.ndarray, cfg: QuantizeConfig) -> float:
    """Mean per-image IoU of an ONNX model (through :class:`OnnxSegmenter`)."""
    seg = OnnxSegmenter(model_path, threshold=cfg.threshold, intra_op_threads=cfg.threads)
    scores = []
    for start in range(0, len(images), 16):
        preds = seg.predict(list(images[start : start + 16]))
        scores += [iou(p, m) for p, m in zip(preds, masks[start : start + 16], strict=True)]
    return float(np.mean(scores))


def time_models(
    paths: dict[str, Path], input_size: int, *, repeats: int, threads: int, warmup: int = 5
) -> dict[str, float]:
    """Model-only median ms per model at batch 1, timed interleaved (A, B, A, B, …) on one
    random preprocessed input, so that load on a shared machine slows every model alike."""
    import time

    import onnxruntime as ort

    sessions = {}
    for name, path in paths.items():
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        sessions[name] = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((1, 3, input_size, input_size), np.float32)
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for k in range(warmup + repeats):
        for name, sess in sessions.items():
            t0 = time.perf_counter()
            sess.run(None, {INPUT_NAME: x})
            if k >= warmup:
                times[name].append((time.perf_counter() - t0) * 1000)
    return {name: float(np.median(v)) for name, v in times.items()}


def choose_variant(
    fp32_iou: float, int8_iou: float | None, speedup: float | None, cfg: QuantizeConfig
) -> tuple[Literal["fp32", "int8"], str]:
    """The shipping rule (pure): int8 only within ``max_iou_drop`` and at least
    ``min_int8_speedup`` times faster; (variant, the reason in one line)."""
    if int8_iou is None or speedup is None:
        return "fp32", "no int8 model to compare"
    drop = fp32_iou - int8_iou
    if drop > cfg.max_iou_drop:
        return "fp32", (
            f"int8 val IoU {int8_iou:.4f} drops {drop:.4f} > max_iou_drop "
            f"{cfg.max_iou_drop} below fp32 {fp32_iou:.4f}: shipping fp32"
        )
    iou_part = f"int8 val IoU {int8_iou:.4f} within {cfg.max_iou_drop} of fp32 {fp32_iou:.4f}"
    if speedup < cfg.min_int8_speedup:
        return "fp32", (
            f"{iou_part}, but int8 is only {speedup:.2f}x as fast as fp32 "
            f"(< min_int8_speedup {cfg.min_int8_speedup}): shipping fp32"
        )
    return "int8", f"{iou_part} and {speedup:.2f}x as fast (>= {cfg.min_int8_speedup})"


def quantize(
    model: nn.Module,
    model_cfg: ModelConfig,
    out_dir: Path,
    calibration: np.ndarray,
    val_images: np.ndarray,
    val_masks: np.ndarray,
    cfg: QuantizeConfig,
    *,
    metadata: dict[str, str] | None = None,
) -> QuantizeResult:
    """Export fp32, quantize int8, compare on validation, write ``selected.json``."""
    if len(calibration) == 0 or len(val_images) == 0:
        raise HairsegError("quantize needs calibration (train) and validation images", exit_code=2)
    out_dir.mkdir(parents=True, exist_ok=True)
    fp32 = out_dir / FP32_FILE
    int8 = out_dir / INT8_FILE
    diff = export_onnx(model, model_cfg, fp32, opset=cfg.opset, metadata=metadata)
    if diff > 1e-3:
        raise HairsegError(f"ONNX export disagrees with PyTorch (max |diff| {diff:.2e} > 1e-3)")
    fp32_iou = mean_iou(fp32, val_images, val_masks, cfg)
    int8_iou: float | None = None
    ms: dict[str, float] = {}
    failure = ""
    try:
        quantize_int8(fp32, int8, calibration[: cfg.calibration_images], model_cfg.input_size, cfg)
        int8_iou = mean_iou(int8, val_images, val_masks, cfg)
        ms = time_models(
            {"fp32": fp32, "int8": int8},
            model_cfg.input_size,
            repeats=cfg.speed_repeats,
            threads=cfg.speed_threads,
        )
    except HairsegError:
        raise
    except Exception as exc:  # ORT quantization errors are many and varied: ship fp32
        log.warning("int8 quantization failed, shipping fp32: %s", exc)
        int8.unlink(missing_ok=True)
        int8_iou = None
        failure = f"int8 quantization failed: {type(exc).__name__}: {exc}"
    speedup = ms["fp32"] / ms["int8"] if ms else None
    variant, reason = choose_variant(fp32_iou, int8_iou, speedup, cfg)
    if int8_iou is None:
        reason = failure
    result = QuantizeResult(
        variant=variant,
        file=INT8_FILE if variant == "int8" else FP32_FILE,
        reason=reason,
        fp32_val_iou=fp32_iou,
        int8_val_iou=int8_iou,
        iou_drop=None if int8_iou is None else fp32_iou - int8_iou,
        max_abs_diff_vs_torch=diff,
        fp32_bytes=fp32.stat().st_size,
        int8_bytes=int8.stat().st_size if int8.is_file() else None,
        fp32_ms=ms.get("fp32"),
        int8_ms=ms.get("int8"),
        int8_speedup=speedup,
    )
    (out_dir / SELECTED_FILE).write_text(json.dumps(result.as_dict(), indent=2) + "\n")
    return result
