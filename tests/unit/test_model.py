"""The networks: built by name, logits at input resolution, ONNX export under the contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hairseg.errors import HairsegError
from hairseg.inference import OnnxSegmenter
from hairseg.model import (
    MODELS,
    ModelConfig,
    build_model,
    count_flops,
    count_parameters,
    load_model,
    save_model,
)
from hairseg.quantize import export_onnx

torch.set_num_threads(1)


@pytest.mark.parametrize("arch", sorted(MODELS))
def test_logits_at_input_resolution(arch: str) -> None:
    cfg = ModelConfig(arch=arch, input_size=64, unet_base=8)
    model = build_model(cfg=cfg).eval()
    with torch.no_grad():
        out = model(torch.zeros(2, 3, 64, 64))
    assert out.shape == (2, 1, 64, 64)
    assert out.dtype == torch.float32


def test_default_model_size_and_compute() -> None:
    """The design target: about 1 M parameters and about 0.3 GFLOP at 256²."""
    model = build_model("lraspp_mnv3_small")
    assert 0.9e6 < count_parameters(model) < 1.2e6
    assert 0.25e9 < count_flops(model, 256) < 0.35e9


def test_unknown_model_and_bad_size_are_usage_errors() -> None:
    with pytest.raises(HairsegError, match="unknown model 'resnet'") as info:
        build_model("resnet")
    assert info.value.exit_code == 2
    with pytest.raises(HairsegError, match="multiple of 32"):
        ModelConfig(input_size=100)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    cfg = ModelConfig(input_size=64, head_channels=16)
    model = build_model(cfg=cfg).eval()
    save_model(model, cfg, tmp_path / "w.pt", tmp_path / "c.json")
    loaded, loaded_cfg = load_model(tmp_path / "w.pt", tmp_path / "c.json")
    assert loaded_cfg == cfg
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


@pytest.mark.parametrize("arch", sorted(MODELS))
def test_onnx_export_matches_pytorch(tmp_path: Path, arch: str) -> None:
    cfg = ModelConfig(arch=arch, input_size=64, head_channels=16, unet_base=8)
    torch.manual_seed(0)
    model = build_model(cfg=cfg).eval()
    path = tmp_path / "m.onnx"
    diff = export_onnx(model, cfg, path, metadata={"hairseg.version": "test"})
    assert diff < 1e-4
    seg = OnnxSegmenter(path)
    assert seg.input_size == 64
    assert seg.metadata["hairseg.variant"] == "fp32"
    assert seg.metadata["hairseg.arch"] == arch
    # Dynamic batch: 3 images through ONNX Runtime equal PyTorch on the same batch.
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        expected = model(x).numpy()
    got = seg.logits(x.numpy())
    assert got.shape == (3, 1, 64, 64)
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_fast_network_classify_first_is_exact() -> None:
    """The 1x1 classifier before the upsampling gives the same logits as after it (the
    change that moves the Resize from head_channels channels to one)."""
    from hairseg.model import LRASPPMobileNetV3Fast

    cfg = ModelConfig(arch="lraspp_mnv3_fast", input_size=64, head_channels=16)
    torch.manual_seed(0)
    first = LRASPPMobileNetV3Fast(cfg, classify_first=True).eval()
    after = LRASPPMobileNetV3Fast(cfg, classify_first=False).eval()
    after.load_state_dict(first.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(first(x), after(x), atol=1e-5, rtol=1e-5)


def test_fast_network_graph_is_static_and_quantizable(tmp_path: Path) -> None:
    """The exported fast network has no run-time shape arithmetic and none of the ops that
    int8 runs in float (HardSwish/HardSigmoid), and fewer nodes than LR-ASPP."""
    import onnx

    counts = {}
    for arch in ("lraspp_mnv3_small", "lraspp_mnv3_fast"):
        cfg = ModelConfig(arch=arch, input_size=64, head_channels=16)
        export_onnx(build_model(cfg=cfg).eval(), cfg, tmp_path / f"{arch}.onnx")
        ops = [n.op_type for n in onnx.load(str(tmp_path / f"{arch}.onnx")).graph.node]
        counts[arch] = len(ops)
        if arch == "lraspp_mnv3_fast":
            assert not {"Shape", "Gather", "HardSwish", "HardSigmoid"} & set(ops), set(ops)
            assert ops.count("Resize") == 3  # high to stride 8, to stride 4, to the input
    assert counts["lraspp_mnv3_fast"] < counts["lraspp_mnv3_small"]
