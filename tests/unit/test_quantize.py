"""ONNX export + int8 static QDQ quantization of a tiny model trained on a toy dataset."""

from __future__ import annotations

import json
from pathlib import Path

import lifecycle_support as ls
import pytest
import torch

from hairseg import quantize as q
from hairseg.inference import OnnxSegmenter
from hairseg.train import fit, load_split

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    root = ls.make_dataset(tmp_path_factory.mktemp("toy"), {"train": 24, "val": 8}, seed=1)
    train = load_split(root, "train", ls.SIZE)
    val = load_split(root, "val", ls.SIZE)
    model_cfg, cfg = ls.tiny_configs(epochs=8)
    model, result = fit(train, val, model_cfg, cfg, checkpoint_dir=tmp_path_factory.mktemp("ck"))
    assert result.best_val_iou > 0.5, "the toy model must have learnt something to be a test"
    return model, model_cfg, train, val


def test_int8_stays_within_the_gate(trained, tmp_path: Path) -> None:
    model, model_cfg, train, val = trained
    # min_int8_speedup near 0: this test is about the IoU rule and the artifact, not speed.
    cfg = q.QuantizeConfig(
        calibration_images=16, max_iou_drop=0.01, threads=1, min_int8_speedup=1e-6
    )
    result = q.quantize(model, model_cfg, tmp_path, train.images, val.images, val.masks, cfg)
    assert result.max_abs_diff_vs_torch < 1e-4
    assert result.fp32_ms > 0 and result.int8_ms > 0
    assert result.int8_speedup == pytest.approx(result.fp32_ms / result.int8_ms)
    assert result.int8_val_iou is not None and result.iou_drop is not None
    assert result.iou_drop <= cfg.max_iou_drop, result
    assert result.variant == "int8" and result.file == q.INT8_FILE
    assert result.int8_bytes < 0.5 * result.fp32_bytes  # int8 weights: about 4x smaller
    selected = json.loads((tmp_path / q.SELECTED_FILE).read_text())
    assert selected["variant"] == "int8"
    assert selected["int8_speedup"] == result.int8_speedup  # both figures are recorded
    int8 = OnnxSegmenter(tmp_path / q.INT8_FILE)
    assert int8.metadata["hairseg.variant"] == "int8"
    assert int8.input_size == ls.SIZE
    ops = {n.op_type for n in __import__("onnx").load(str(tmp_path / q.INT8_FILE)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # QDQ format


def test_fp32_ships_when_quantization_fails(trained, tmp_path: Path, monkeypatch) -> None:
    """ORT quantization is replaced by a failing function (a stand-in for an ORT error)."""
    model, model_cfg, train, val = trained

    def broken(*_args, **_kwargs):
        raise RuntimeError("unsupported op")

    monkeypatch.setattr(q, "quantize_int8", broken)
    cfg = q.QuantizeConfig(calibration_images=4, threads=1)
    result = q.quantize(model, model_cfg, tmp_path, train.images, val.images, val.masks, cfg)
    assert result.variant == "fp32" and result.file == q.FP32_FILE
    assert "int8 quantization failed: RuntimeError: unsupported op" in result.reason
    assert not (tmp_path / q.INT8_FILE).exists()


def test_fp32_ships_when_int8_drops_too_much(trained, tmp_path: Path, monkeypatch) -> None:
    """The int8 IoU is reported 0.2 lower than fp32 (a stand-in for a bad quantization)."""
    model, model_cfg, train, val = trained
    real = q.mean_iou

    def pessimistic(path: Path, *args, **kwargs) -> float:
        return real(path, *args, **kwargs) - (0.2 if path.name == q.INT8_FILE else 0.0)

    monkeypatch.setattr(q, "mean_iou", pessimistic)
    cfg = q.QuantizeConfig(calibration_images=4, threads=1)
    result = q.quantize(model, model_cfg, tmp_path, train.images, val.images, val.masks, cfg)
    assert result.variant == "fp32"
    assert "> max_iou_drop 0.01" in result.reason
    assert (tmp_path / q.INT8_FILE).is_file(), "both artifacts are kept"


def test_int8_that_is_not_fast_enough_does_not_ship(trained, tmp_path: Path) -> None:
    """A speedup bar no model can reach: fp32 ships and the reason gives the measured ratio."""
    model, model_cfg, train, val = trained
    cfg = q.QuantizeConfig(calibration_images=4, threads=1, max_iou_drop=1.0, min_int8_speedup=1e6)
    result = q.quantize(model, model_cfg, tmp_path, train.images, val.images, val.masks, cfg)
    assert result.variant == "fp32" and result.file == q.FP32_FILE
    assert f"{result.int8_speedup:.2f}x as fast" in result.reason
    assert "< min_int8_speedup 1000000.0" in result.reason
    selected = json.loads((tmp_path / q.SELECTED_FILE).read_text())
    assert selected["fp32_ms"] > 0 and selected["int8_ms"] > 0


@pytest.mark.parametrize(
    ("int8_iou", "speedup", "variant", "why"),
    [
        (0.795, 1.5, "int8", "1.50x as fast (>= 1.3)"),  # within the drop and fast enough
        (0.795, 1.29, "fp32", "only 1.29x as fast"),  # accurate but not fast enough
        (0.70, 3.0, "fp32", "> max_iou_drop"),  # fast but too inaccurate
        (None, None, "fp32", "no int8 model"),
    ],
)
def test_choose_variant_needs_both_accuracy_and_speed(int8_iou, speedup, variant, why) -> None:
    cfg = q.QuantizeConfig(max_iou_drop=0.01, min_int8_speedup=1.3)
    chosen, reason = q.choose_variant(0.80, int8_iou, speedup, cfg)
    assert chosen == variant and why in reason, reason


def test_quantize_config_rejects_a_bad_speed_bar() -> None:
    from hairseg.errors import HairsegError

    with pytest.raises(HairsegError, match="min_int8_speedup"):
        q.QuantizeConfig(min_int8_speedup=0)


def test_int8_settings_reach_the_graph(trained, tmp_path: Path) -> None:
    """QOperator writes QLinearConv into the file; float_convs keeps the stem and the
    depthwise convs float (their weights stay float initializers, not DequantizeLinear)."""
    import onnx

    model, model_cfg, train, _val = trained
    fp32 = tmp_path / "m.fp32.onnx"
    q.export_onnx(model, model_cfg, fp32)
    qop = tmp_path / "qop.onnx"
    q.quantize_int8(fp32, qop, train.images[:8], ls.SIZE, q.QuantizeConfig(format="qoperator"))
    assert "QLinearConv" in {n.op_type for n in onnx.load(str(qop)).graph.node}

    mixed = tmp_path / "mixed.onnx"
    cfg = q.QuantizeConfig(float_convs=("stem", "depthwise"))
    q.quantize_int8(fp32, mixed, train.images[:8], ls.SIZE, cfg)
    graph = onnx.load(str(mixed)).graph
    floats = {i.name for i in graph.initializer if i.data_type == onnx.TensorProto.FLOAT}
    dequantized = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    float_convs = [n for n in convs if n.input[1] in floats]
    int8_convs = [n for n in convs if n.input[1] in dequantized]
    groups = {n.name: next((a.i for a in n.attribute if a.name == "group"), 1) for n in convs}
    assert float_convs and int8_convs
    assert all(groups[n.name] == 1 for n in int8_convs)  # no depthwise conv was quantized
    assert any(n.input[0] == graph.input[0].name for n in float_convs)  # the stem
