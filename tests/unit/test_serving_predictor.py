"""The predictor called directly (``load()`` then KServe's ``Model.__call__``), as
kserve's own sklearnserver tests do, plus its parsers, config and micro-batcher.

The model is a real (tiny) ONNX network run by ONNX Runtime; nothing is faked."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import time

import cv2
import numpy as np
import pytest
from hairseg_serving.batching import MicroBatcher
from hairseg_serving.predictor import HairsegModel, model_version_of
from hairseg_serving.protocol import parse_v1
from hairseg_serving.server import endpoint_of, parse_v2_binary
from hairseg_serving.settings import ServeConfig, load_serve_config
from hairseg_serving.testing import synthetic_portrait, write_tiny_model
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest, InferResponse

from hairseg import imaging
from hairseg.errors import HairsegError
from hairseg.inference import OnnxSegmenter


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("m") / "tiny.onnx", size=64)


@pytest.fixture(scope="module")
def model(model_path):
    m = HairsegModel("hairseg", model_path, ServeConfig(max_instances=3, max_pixels=500_000))
    assert m.ready is False
    assert m.load() is True and m.ready is True
    yield m
    m.stop()


def call(model: HairsegModel, body, headers=None):
    response, response_headers = asyncio.run(model(body, headers=headers or {"x-request-id": "t"}))
    return response, response_headers


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_v1_call_returns_mask_equal_to_offline(model, model_path):
    rgb = synthetic_portrait(150, 130, seed=1)
    data = imaging.encode_jpeg(rgb)
    response, headers = call(model, {"instances": [{"image_b64": b64(data), "output": "both"}]})
    pred = response["predictions"][0]
    mask = cv2.imdecode(
        np.frombuffer(base64.b64decode(pred["mask_png_b64"]), np.uint8), cv2.IMREAD_UNCHANGED
    )
    # Offline inference with the same priors config: the one fused code path.
    offline = OnnxSegmenter(model_path, priors=model.config.priors)
    expected = offline.predict([imaging.decode_image(data)])[0]
    offline.close()
    np.testing.assert_array_equal(mask, expected)
    assert pred["color"] == "auburn" and pred["intensity"] == 0.7 and pred["tryon_format"] == "jpeg"
    assert response["model_version"] == model_version_of(model_path, {})
    stages = ["decode", "infer", "priors", "matte", "recolour", "postprocess", "encode"]
    priors = model.segmenter.priors
    if priors is None or not any(priors.available.values()):  # no prior model: no stage
        stages.remove("priors")
    assert [p.split(";")[0] for p in headers["server-timing"].split(", ")] == stages
    assert pred["tier"] == "standard"  # ServeConfig.default_tier
    assert list(response["processing_ms"]) == stages
    assert all(v >= 0 for v in response["processing_ms"].values())


@pytest.mark.parametrize("tier", ["fast", "standard", "premium"])
def test_v1_tier_is_per_request_and_premium_runs_a_second_pass(model, tier):
    rgb = synthetic_portrait(200, 180, seed=5)
    instance = {"image_b64": b64(imaging.encode_png(rgb)), "output": "tryon", "tier": tier}
    instance.update({"tryon_format": "png", "intensity": 1.0, "color": "electric_blue"})
    response, _headers = call(model, {"instances": [instance]})
    pred = response["predictions"][0]
    assert pred["tier"] == tier
    assert ("refine_infer" in response["processing_ms"]) == (tier == "premium")
    tryon = imaging.decode_image(base64.b64decode(pred["tryon_b64"]))
    assert tryon.shape == rgb.shape
    assert tryon[..., 2].astype(int).mean() > rgb[..., 2].mean() + 5  # hair went blue


def test_tier_errors_name_the_choices(model):
    body = {
        "instances": [
            {"image_b64": b64(imaging.encode_png(synthetic_portrait(40, 40))), "tier": "ultra"}
        ]
    }
    with pytest.raises(InvalidInput, match="tier 'ultra' is not accepted.*fast, standard, premium"):
        call(model, body)
    with pytest.raises(HairsegError, match="default_tier must be one of"):
        ServeConfig(default_tier="ultra")


def test_v2_call_with_infer_request_object(model, model_path):
    data = imaging.encode_png(synthetic_portrait(80, 96, seed=2))
    inp = InferInput("image", [1], "BYTES", data=[b64(data)])
    response, _ = call(
        model, InferRequest("hairseg", [inp], request_id="r1", parameters={"output": "mask"})
    )
    assert isinstance(response, InferResponse)
    assert [o.name for o in response.outputs] == ["mask", "hair_coverage"]
    offline = OnnxSegmenter(model_path, priors=model.config.priors)
    expected = offline.predict([imaging.decode_image(data)])[0]
    offline.close()
    coverage = float(response.outputs[1].data[0])
    assert coverage == pytest.approx(np.count_nonzero(expected) / expected.size, abs=1e-6)


def test_v2_tier_parameter_selects_the_tier(model):
    data = imaging.encode_png(synthetic_portrait(120, 110, seed=6))
    outputs = {}
    for tier in ("fast", "premium"):
        inp = InferInput("image", [1], "BYTES", data=[b64(data)])
        params = {"output": "tryon", "tier": tier, "tryon_format": "png", "intensity": 1.0}
        response, headers = call(model, InferRequest("hairseg", [inp], parameters=params))
        assert ("refine_infer" in headers["server-timing"]) == (tier == "premium")
        out = {o.name: o for o in response.outputs}["tryon"]
        outputs[tier] = imaging.decode_image(base64.b64decode(out.data[0]))
    assert outputs["fast"].shape == outputs["premium"].shape == (120, 110, 3)
    inp = InferInput("image", [1], "BYTES", data=[b64(data)])
    with pytest.raises(InvalidInput, match="parameters.tier 'best' is not accepted"):
        call(model, InferRequest("hairseg", [inp], parameters={"tier": "best"}))


@pytest.mark.parametrize(
    ("instance", "message"),
    [
        ({"image_b64": "%%%"}, "not valid base64"),
        ({"image_b64": b64(b"GIF89a-not-really")}, "instances[0]: "),
        ({"image_b64": b64(b"x"), "intensity": True}, "must be a number"),
        ({"image_b64": b64(b"x"), "intensity": float("nan")}, "between 0 and 1"),
        ({"image_b64": b64(b"x"), "color": 7}, "colour must be a shade name"),
        ({"image_b64": b64(b"x"), "customer_id": ""}, "customer_id must be a string"),
        ({"image_b64": 5}, "must be a base64 string"),
        ("just a string", "must be an object with image_b64"),
    ],
)
def test_v1_bad_instances_raise_invalid_input(model, instance, message):
    with pytest.raises(InvalidInput) as err:
        call(model, {"instances": [instance]})
    assert message in str(err.value)


def test_pixel_limit_applies_before_decoding(model):
    big = imaging.encode_png(np.zeros((800, 800, 3), np.uint8))  # 640 000 > 500 000
    with pytest.raises(InvalidInput, match="the limit is 500000 pixels"):
        call(model, {"instances": [{"image_b64": b64(big)}]})


def test_v1_limits_and_shapes():
    with pytest.raises(InvalidInput, match="too many instances: 3; the limit is 2"):
        parse_v1({"instances": [{"image_b64": "AA=="}] * 3}, max_instances=2)
    with pytest.raises(InvalidInput, match="the body is not valid JSON"):
        parse_v1(b"\xff\xd8raw jpeg", max_instances=2)
    assert len(parse_v1(b'{"instances": [{"image_b64": "AA=="}]}', max_instances=2)) == 1
    with pytest.raises(InvalidInput, match="must be a JSON object"):
        parse_v1([1, 2], max_instances=2)
    jobs = parse_v1({"instances": [{"image_b64": "data:image/png;base64,AAEC"}]}, max_instances=2)
    assert jobs[0].data == b"\x00\x01\x02"  # data URLs from browsers are accepted


def test_data_url_and_profile_free_defaults(model):
    data = imaging.encode_png(synthetic_portrait(64, 64))
    response, _ = call(model, {"instances": [{"image_b64": "data:image/png;base64," + b64(data)}]})
    assert "tryon_b64" not in response["predictions"][0]


def test_parse_v2_binary_keeps_raw_bytes():
    payload = b"\xff\xd8\xff\x00binary"
    blob = struct.pack("<I", len(payload)) + payload
    header = json.dumps(
        {
            "id": "x",
            "inputs": [
                {
                    "name": "image",
                    "shape": [1],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(blob)},
                }
            ],
            "outputs": [{"name": "mask", "parameters": {"binary_data": True}}],
            "parameters": {"output": "mask"},
        }
    ).encode()
    request = parse_v2_binary(header + blob, str(len(header)), "hairseg")
    assert request.id == "x" and request.parameters == {"output": "mask"}
    assert list(request.inputs[0].as_numpy()) == [payload]
    assert request.request_outputs[0].binary_data is True
    with pytest.raises(InvalidInput, match="unexpected byte"):
        parse_v2_binary(header + blob + b"!", str(len(header)), "hairseg")
    with pytest.raises(InvalidInput, match="not valid JSON"):
        parse_v2_binary(b"{x" + blob, "2", "hairseg")


def test_endpoint_labels():
    assert endpoint_of("/v1/models/hairseg:predict") == "v1"
    assert endpoint_of("/v2/models/hairseg/infer") == "v2"
    assert endpoint_of("/v2/health/ready") == "health"
    assert endpoint_of("/v1/models/hairseg") == "health"
    assert endpoint_of("/metrics") == "metrics"
    assert endpoint_of("/docs") == "other"


def test_config_reads_params_and_rejects_bad_values(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("serve:\n  port: 9001\n  max_instances: 4\n  default_color: teal\n")
    cfg = load_serve_config(params, port=None, workers=2)
    assert (cfg.port, cfg.max_instances, cfg.default_color, cfg.workers) == (9001, 4, "teal", 2)
    assert load_serve_config(tmp_path / "missing.yaml") == ServeConfig()
    with pytest.raises(HairsegError, match="unknown colour"):
        ServeConfig(default_color="sparkly")
    with pytest.raises(HairsegError, match="max_body_bytes"):
        ServeConfig(max_body_bytes=10)
    params.write_text("serve:\n  prot: 9001\n")
    with pytest.raises(HairsegError, match="unknown key"):
        load_serve_config(params)
    # The priors come from the shared top-level priors: section, not from serve:.
    params.write_text("serve:\n  port: 9001\npriors:\n  enabled: false\n  head_above: 1.1\n")
    cfg = load_serve_config(params)
    assert cfg.priors.enabled is False and cfg.priors.head_above == 1.1
    assert load_serve_config(tmp_path / "missing.yaml").priors.enabled is True
    params.write_text("serve:\n  priors:\n    enabled: false\n")
    with pytest.raises(HairsegError, match="top-level priors"):
        load_serve_config(params)


def test_stop_is_idempotent_and_model_pickles_as_a_recipe(model_path):
    import pickle

    m = HairsegModel("hairseg", model_path, ServeConfig(max_batch_size=1))
    m.load()
    clone = pickle.loads(pickle.dumps(m))  # what KServe's multi-worker mode does
    assert clone.ready and clone.segmenter is not m.segmenter
    assert clone.model_version == m.model_version
    m.stop()
    m.stop()
    assert not m.ready
    clone.stop()


def test_micro_batcher_merges_concurrent_submissions():
    calls: list[int] = []

    def run(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        time.sleep(0.05)  # the network is busy: later submissions queue up
        return batch * 2

    batcher = MicroBatcher(run, max_batch_size=4)

    async def main():
        items = [np.full((1, 1), i, np.float32) for i in range(7)]
        return await asyncio.gather(*(batcher.submit(x) for x in items))

    try:
        outs = asyncio.run(main())
    finally:
        batcher.close()
    assert [float(o[0, 0]) for o in outs] == [2.0 * i for i in range(7)]
    assert sum(calls) == 7 and max(calls) <= 4 and len(calls) < 7


def test_micro_batcher_hands_errors_to_every_waiter():
    def run(batch: np.ndarray) -> np.ndarray:
        raise RuntimeError("network failed")

    batcher = MicroBatcher(run, max_batch_size=4)

    async def main():
        return await asyncio.gather(
            *(batcher.submit(np.zeros((1, 1))) for _ in range(3)), return_exceptions=True
        )

    try:
        results = asyncio.run(main())
    finally:
        batcher.close()
    assert all(isinstance(r, RuntimeError) for r in results)


def test_no_champion_is_one_clear_line(tmp_path, monkeypatch):
    """``hairseg serve`` with no --model on a fresh project: the embedded MLflow store has
    no champion, and the message says what to do."""
    from hairseg_serving.model_source import NO_CHAMPION, resolve_model

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(HairsegError) as err:
        resolve_model("models:/hairseg@champion", cache_dir=tmp_path / "c", project_root=tmp_path)
    assert str(err.value).startswith(NO_CHAMPION)
    assert err.value.exit_code == 2
    with pytest.raises(HairsegError, match="storage initializer"):
        resolve_model("s3://bucket/model", cache_dir=tmp_path / "c")
    local = write_tiny_model(tmp_path / "dir" / "model.onnx")
    assert resolve_model(str(local.parent), cache_dir=tmp_path / "c") == local  # /mnt/models


def test_demo_page_is_self_contained_and_calls_v1_with_the_defaults():
    import re

    from hairseg_serving.server import _DEMO_CSP, demo_html

    page = demo_html(ServeConfig(model_name="m1", default_tier="premium", default_color="teal"))
    assert 'const MODEL = "m1"' in page and "/v1/models/${MODEL}:predict" in page
    assert 'DEFAULT_TIER = "premium"' in page and 'DEFAULT_SHADE = "teal"' in page
    assert "__" not in re.sub(r"[a-z]__[a-z]", "", page)  # every placeholder filled
    assert "://" not in page and "//cdn" not in page  # nothing fetched from elsewhere
    assert "default-src 'none'" in _DEMO_CSP and "connect-src 'self'" in _DEMO_CSP
