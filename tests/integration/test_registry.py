"""Registration against a real MLflow: a SQLite tracking store and local artifacts in a
temp dir. Nothing is faked except, in the failure tests, the one MLflow call that is made
to fail (monkeypatched to raise) to simulate a crash mid-registration."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import lifecycle_support as ls
import numpy as np
import pytest
import torch

from hairseg import registry
from hairseg.errors import HairsegError
from hairseg.inference import OnnxSegmenter
from hairseg.model import ModelConfig, build_model, save_model
from hairseg.quantize import FP32_FILE, export_onnx

torch.set_num_threads(1)
pytestmark = pytest.mark.slow

LINEAGE = {
    "git_commit": "abc123",
    "data_md5": "d41d8cd9.dir",
    "params_hash": "p1",
    "pipeline_run_id": "run-7",
}


def make_model_dir(path: Path, seed: int = 0) -> Path:
    """A real (untrained) 64-px network exported as the quantize stage would leave it."""
    cfg = ModelConfig(input_size=ls.SIZE, head_channels=16)
    torch.manual_seed(seed)
    model = build_model(cfg=cfg).eval()
    path.mkdir(parents=True, exist_ok=True)
    save_model(model, cfg, path / "weights.pt", path / "model_config.json")
    export_onnx(model, cfg, path / FP32_FILE)
    (path / "selected.json").write_text(json.dumps({"variant": "fp32", "file": FP32_FILE}))
    return path


def register(model_dir: Path, uri: str, passed: bool = True, iou: float = 0.8):
    return registry.register_model(
        model_dir,
        tracking_uri=uri,
        metrics={"test_iou": iou, "test_latency_ms_b1_p50": 2.5},
        gate_passed=passed,
        gate_reasons=["test gate"],
        lineage=LINEAGE,
    )


def versions(uri: str) -> list[int]:
    found = registry.client(uri).search_model_versions(f"name='{registry.MODEL_NAME}'")
    return sorted(int(v.version) for v in found)


@pytest.fixture
def uri(tmp_path: Path) -> str:
    return registry.default_tracking_uri(tmp_path)


def test_register_promote_and_fetch(tmp_path: Path, uri: str) -> None:
    assert uri == f"sqlite:///{tmp_path.resolve()}/.hairseg/mlflow.db"
    model_dir = make_model_dir(tmp_path / "m1")
    first = register(model_dir, uri)
    assert first.version == 1
    assert first.aliases == (registry.CANDIDATE, registry.CHAMPION)  # bootstrap
    assert first.bootstrapped_champion
    info = registry.get_version(uri, registry.CHAMPION)
    assert info is not None and info.version == 1 and info.run_id == first.run_id
    for key, value in LINEAGE.items():
        assert info.tags[key] == value
    assert info.tags["gate"] == "pass" and info.tags["metric.test_iou"] == "0.8"
    assert info.tags["variant"] == "fp32"
    # Artifacts live beside the database, not in the working directory.
    assert (tmp_path / ".hairseg" / "mlartifacts").is_dir()
    assert not Path("mlruns").exists() or Path("mlruns").resolve() != (tmp_path / "mlruns")

    # The shipped ONNX and the PyTorch weights come back from the registry.
    fetched = registry.fetch_onnx("models:/hairseg@champion", tmp_path / "cache", uri)
    again = registry.fetch_onnx("models:/hairseg/1", tmp_path / "cache", uri)
    assert fetched == again and fetched.name == "model.onnx"
    x = np.random.default_rng(0).normal(size=(2, 3, ls.SIZE, ls.SIZE)).astype(np.float32)
    local = OnnxSegmenter(model_dir / FP32_FILE).logits(x)
    np.testing.assert_array_equal(OnnxSegmenter(fetched).logits(x), local)
    weights, config = registry.fetch_weights("models:/hairseg@champion", tmp_path / "cache", uri)
    assert json.loads(config.read_text())["input_size"] == ls.SIZE
    state = torch.load(weights, weights_only=True)
    assert set(state) == set(torch.load(model_dir / "weights.pt", weights_only=True))

    # A failed gate registers a version for the record but moves no alias.
    second = register(make_model_dir(tmp_path / "m2", seed=1), uri, passed=False, iou=0.5)
    assert second.version == 2 and second.aliases == ()
    assert registry.get_version(uri, registry.CANDIDATE).version == 1
    assert registry.get_version_number(uri, 2).tags["gate"] == "fail"

    # A passing one becomes candidate; the champion stays until the rollout promotes.
    third = register(make_model_dir(tmp_path / "m3", seed=2), uri)
    assert third.aliases == (registry.CANDIDATE,) and not third.bootstrapped_champion
    assert registry.get_version(uri, registry.CHAMPION).version == 1
    registry.promote_to_champion(uri, 3, "canary passed")
    champion = registry.get_version(uri, registry.CHAMPION)
    assert champion.version == 3 and champion.tags["promotion_reason"] == "canary passed"
    assert champion.tags["supersedes"] == "1"
    assert registry.get_version_number(uri, 1).tags["superseded_by"] == "3"
    registry.tag_version(uri, 3, {"rollout": {"steps": [10, 50]}})
    assert json.loads(registry.get_version_number(uri, 3).tags["rollout"]) == {"steps": [10, 50]}

    with pytest.raises(HairsegError, match="no version 9"):
        registry.promote_to_champion(uri, 9, "nope")
    with pytest.raises(HairsegError, match="does not exist"):
        registry.fetch_onnx("models:/hairseg@nosuchalias", tmp_path / "cache", uri)
    assert registry.get_version(uri, "nosuchalias") is None


def test_failure_mid_registration_leaves_nothing_behind(
    tmp_path: Path, uri: str, monkeypatch
) -> None:
    champion = register(make_model_dir(tmp_path / "m1"), uri)
    assert versions(uri) == [1]

    def crash(*_args, **_kwargs):
        raise ConnectionError("tracking server went away")

    # 1. Crash while tagging the new version (after MLflow created it).
    monkeypatch.setattr(registry, "tag_version", crash)
    with pytest.raises(HairsegError, match="rolled back: tracking server went away"):
        register(make_model_dir(tmp_path / "m2", seed=1), uri)
    monkeypatch.undo()
    assert versions(uri) == [1], "the half-registered version was deleted"
    assert registry.get_version(uri, registry.CANDIDATE).version == champion.version
    assert registry.get_version(uri, registry.CHAMPION).version == champion.version


def test_failure_after_moving_an_alias_restores_it(tmp_path: Path, uri: str, monkeypatch) -> None:
    """Bootstrap: candidate is set, then promotion to champion crashes."""

    def crash(*_args, **_kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(registry, "promote_to_champion", crash)
    with pytest.raises(HairsegError, match="rolled back"):
        register(make_model_dir(tmp_path / "m1"), uri)
    monkeypatch.undo()
    assert versions(uri) == []
    assert registry.get_version(uri, registry.CANDIDATE) is None
    assert registry.get_version(uri, registry.CHAMPION) is None


def test_init_from_champion(tmp_path: Path, uri: str) -> None:
    from hairseg.stages.lifecycle import resolve_init

    cfg = ModelConfig(input_size=ls.SIZE, head_channels=16)
    cache = tmp_path / "cache"
    assert resolve_init("champion", cfg, uri, cache) == (None, "scratch (no champion registered)")
    assert resolve_init("scratch", cfg, uri, cache) == (None, "scratch")
    register(make_model_dir(tmp_path / "m1"), uri)
    state, source = resolve_init("champion", cfg, uri, cache)
    assert source == "models:/hairseg@champion (v1)"
    model = build_model(cfg=cfg)
    model.load_state_dict(state)  # fits exactly
    other = ModelConfig(input_size=ls.SIZE, head_channels=32)
    assert resolve_init("champion", other, uri, cache)[1].startswith("scratch (champion v1 has")
    with pytest.raises(HairsegError, match="different model config"):
        resolve_init("models:/hairseg/1", other, uri, cache)
    with pytest.raises(HairsegError, match="not 'champion', 'scratch'"):
        resolve_init("latest", cfg, uri, cache)


def test_register_cli_rejects_a_missing_model(tmp_path: Path, uri: str) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "params.yaml").write_text("{}\n")
    (tmp_path / "eval.json").write_text(json.dumps({"candidate": {"iou": 0.9}}))
    (tmp_path / "gate.json").write_text(json.dumps({"passed": True, "reasons": []}))
    args = ["register", "--evaluation", "eval.json", "--gate", "gate.json", "--tracking-uri", uri]
    result = subprocess.run(
        [sys.executable, "-m", "hairseg", *args], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "hairseg: error: models/selected.json not found: run `hairseg quantize` first"
    )
    assert versions(uri) == []


def test_batch_predict_resolves_a_registered_alias(tmp_path: Path, uri: str) -> None:
    """`hairseg predict --model models:/hairseg@champion`: the registry's own resolution
    (download, selected.json) and the registered version in every row."""
    import pandas as pd
    from hairseg_serving.testing import synthetic_portrait

    from hairseg import imaging

    register(make_model_dir(tmp_path / "m1"), uri)
    src = tmp_path / "photos"
    src.mkdir()
    (src / "a.jpg").write_bytes(imaging.encode_jpeg(synthetic_portrait(80, 64)))
    result = subprocess.run(
        [sys.executable, "-m", "hairseg", "predict", str(src), str(tmp_path / "out"),
         "--model", "models:/hairseg@champion", "--tracking-uri", uri, "--workers", "1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (row,) = pd.read_parquet(tmp_path / "out" / "results.parquet").to_dict("records")
    assert row["status"] == "ok" and row["model_version"] == "models:/hairseg/1"
    bad = subprocess.run(
        [sys.executable, "-m", "hairseg", "predict", str(src), str(tmp_path / "out2"),
         "--model", "models:/hairseg@nosuchalias", "--tracking-uri", uri],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
