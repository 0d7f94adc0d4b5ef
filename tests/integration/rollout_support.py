"""Tiny real models, a tiny dataset and a real SQLite MLflow registry for rollout tests.

Every model is a real ONNX file exported from a small torch net (the artifact contract:
input ``image`` (N,3,S,S), output ``logits`` (N,1,S,S), metadata ``hairseg.input_size``),
registered through :func:`hairseg.registry.register_model` like the pipeline does. The
faulty candidates are faulty *models*, not serving-side fault flags:

- ``errors``: loads, warms up and answers the (dark) smoke image, but its graph reshapes the
  logits to an impossible shape when the input is bright (mean normalised value > 0.8; the
  predictor's uniform-noise warm-up is ≈ 0.23), so ONNX Runtime fails at run time on the
  bright half of the traffic;
- ``slow``: the stable net plus an input-dependent chain of 3x3 convolutions whose result
  is folded in with weight 1e-6 (≈ 10x the stable latency, masks unchanged);
- ``garbage``: the stable net with negated logits (inverted masks);
- ``corrupt``: a valid registration whose stored ``model.onnx`` is then overwritten with
  junk (storage corruption): it cannot load.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import torch
from onnx import TensorProto, helper

from hairseg import registry
from hairseg.data.manifest import write_manifest

from lifecycle_support import write_example  # isort: skip

SIZE = 32  # network input size: keeps every request cheap on a shared 2-core box
IMAGE = 64  # dataset image size


class TinyNet(torch.nn.Module):
    """A 1x1 convolution: hair where a fixed colour projection is positive."""

    def __init__(self, weight: np.ndarray, bias: float, heavy: int = 0) -> None:
        super().__init__()
        self.head = torch.nn.Conv2d(3, 1, 1)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor(weight, dtype=torch.float32).view(1, 3, 1, 1))
            self.head.bias.fill_(bias)
        self.heavy = torch.nn.ModuleList(
            [torch.nn.Conv2d(3 if i == 0 else 48, 48, 3, padding=1) for i in range(heavy)]
        )
        self.up = torch.nn.Upsample(scale_factor=4) if heavy else None

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        logits = self.head(image)
        if self.heavy:
            h = self.up(image)
            for conv in self.heavy:
                h = torch.relu(conv(h))
            logits = logits + 1e-6 * h.mean()
        return logits


STABLE_W = np.array([1.0, -0.6, -0.4], dtype=np.float32)
STABLE_B = 0.1


def export(net: torch.nn.Module, path: Path) -> Path:
    net.eval()
    torch.onnx.export(
        net,
        (torch.zeros(1, 3, SIZE, SIZE),),
        str(path),
        dynamo=False,
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": {0: "n"}, "logits": {0: "n"}},
        opset_version=17,
    )
    model = onnx.load(str(path))
    _set_size(model)
    onnx.save(model, str(path))
    return path


def _set_size(model: onnx.ModelProto) -> None:
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = "hairseg.input_size", str(SIZE)


def make_erroring(stable: Path, path: Path) -> Path:
    """The stable graph + a Reshape to (-1, 1, S, S + [mean(image) > 0.8]): fails on bright input."""
    model = onnx.load(str(stable))
    graph = model.graph
    for node in graph.node:
        node.output[:] = ["logits_raw" if o == "logits" else o for o in node.output]
    graph.initializer.extend(
        [
            helper.make_tensor("bright_above", TensorProto.FLOAT, [], [0.8]),
            helper.make_tensor("base_shape", TensorProto.INT64, [4], [-1, 1, SIZE, SIZE]),
            helper.make_tensor("axes_last", TensorProto.INT64, [1], [3]),
        ]
    )
    graph.node.extend(
        [
            helper.make_node("ReduceMean", ["image"], ["mean"], keepdims=0),
            helper.make_node("Greater", ["mean", "bright_above"], ["bright"]),
            helper.make_node("Cast", ["bright"], ["bright_i"], to=TensorProto.INT64),
            helper.make_node("Unsqueeze", ["bright_i", "axes_zero"], ["bright_1"]),
            helper.make_node("Pad", ["bright_1", "pads"], ["delta"]),
            helper.make_node("Add", ["base_shape", "delta"], ["shape"]),
            helper.make_node("Reshape", ["logits_raw", "shape"], ["logits"]),
        ]
    )
    graph.initializer.extend(
        [
            helper.make_tensor("axes_zero", TensorProto.INT64, [1], [0]),
            helper.make_tensor("pads", TensorProto.INT64, [2], [3, 0]),
        ]
    )
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def make_dataset(root: Path, n_test: int = 12) -> Path:
    """``n_test`` test images: alternately dark and bright (first dark), with masks."""
    rng = np.random.default_rng(7)
    rows = []
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:IMAGE, 0:IMAGE]
    for i in range(n_test):
        bright = i % 2 == 1
        base = 200 if bright else 40
        img = np.clip(base + rng.normal(0, 25, (IMAGE, IMAGE, 3)), 0, 255).astype(np.uint8)
        cy, cx, r = rng.integers(16, 48), rng.integers(16, 48), rng.integers(10, 22)
        blob = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
        img[blob] = [230, 60, 40] if bright else [150, 20, 10]  # reddish "hair"
        mask = (blob * 255).astype(np.uint8)
        rows.append(
            write_example(
                root, f"t{i:03d}", img, mask, split="test", source="rollout-test", licence="CC0"
            )
        )
    write_manifest(pd.DataFrame(rows), root)
    return root


def build_models(root: Path) -> dict[str, Path]:
    """Export every test model; returns name -> ONNX path."""
    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    paths = {
        "stable": export(TinyNet(STABLE_W, STABLE_B), root / "stable.onnx"),
        "good": export(TinyNet(STABLE_W * 1.02, STABLE_B), root / "good.onnx"),
        "garbage": export(TinyNet(-STABLE_W, -STABLE_B), root / "garbage.onnx"),
        "slow": export(TinyNet(STABLE_W, STABLE_B, heavy=6), root / "slow.onnx"),
    }
    paths["errors"] = make_erroring(paths["stable"], root / "errors.onnx")
    paths["corrupt"] = paths["stable"]  # registered valid, corrupted in storage afterwards
    return paths


def register(onnx_path: Path, tracking_uri: str, work: Path, name: str) -> int:
    """Register ``onnx_path`` the way the pipeline's register stage does."""
    model_dir = work / f"model-{name}"
    model_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(onnx_path, model_dir / "model.onnx")
    (model_dir / "selected.json").write_text(json.dumps({"file": "model.onnx", "variant": "fp32"}))
    torch.save({}, model_dir / "weights.pt")
    (model_dir / "model_config.json").write_text(json.dumps({"name": name}))
    result = registry.register_model(
        model_dir,
        tracking_uri=tracking_uri,
        metrics={"test_iou": 0.9},
        gate_passed=True,
        gate_reasons=[f"test model {name}"],
        lineage={"test_model": name},
    )
    return result.version


def corrupt_stored_onnx(tracking_uri: str, version: int) -> None:
    """Overwrite a registered version's stored ``model.onnx`` with junk bytes."""
    client = registry.client(tracking_uri)
    source = client.get_model_version_download_uri(registry.MODEL_NAME, str(version))
    path = Path(source.removeprefix("file://"))
    hits = list(path.rglob("model.onnx")) if path.is_dir() else []
    assert hits, f"no stored model.onnx under {path}"
    for hit in hits:
        hit.write_bytes(b"this is not an ONNX protobuf" * 10)


def build_registry(root: Path) -> tuple[str, dict[str, int], Path]:
    """A SQLite registry holding every test model: (tracking_uri, name -> version, db path)."""
    models = build_models(root / "onnx")
    db = root / "mlflow.db"
    tracking_uri = f"sqlite:///{db}"
    versions = {}
    for name in ("stable", "good", "garbage", "slow", "errors", "corrupt"):
        versions[name] = register(models[name], tracking_uri, root / "staging", name)
    corrupt_stored_onnx(tracking_uri, versions["corrupt"])
    return tracking_uri, versions, db


def fresh_registry(template_db: Path, dst: Path, *, champion: int, candidate: int) -> str:
    """A per-test copy of the template registry (artifacts stay shared, read-only)."""
    dst.mkdir(parents=True, exist_ok=True)
    db = dst / "mlflow.db"
    shutil.copy(template_db, db)
    tracking_uri = f"sqlite:///{db}"
    client = registry.client(tracking_uri)
    client.set_registered_model_alias(registry.MODEL_NAME, registry.CHAMPION, str(champion))
    client.set_registered_model_alias(registry.MODEL_NAME, registry.CANDIDATE, str(candidate))
    return tracking_uri


_SHARED: dict[str, tuple[Path, dict[str, int], Path]] = {}


def shared_template(tmp_path_factory) -> tuple[Path, dict[str, int], Path]:
    """One template registry + dataset per test session (MLflow's first SQLite migration
    alone takes ~15 s); each test copies the database with :func:`fresh_registry`."""
    if "template" not in _SHARED:
        root = tmp_path_factory.mktemp("rollout-template")
        _, versions, db = build_registry(root)
        _SHARED["template"] = (db, versions, make_dataset(root / "data"))
    return _SHARED["template"]
