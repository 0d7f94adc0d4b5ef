"""The KServe predictor through a real server: ``hairseg serve`` (KServe's ModelServer,
uvicorn) on a free loopback port, with a real ONNX model, a real Feast repo (SQLite online
store) and the real inference-log writer. Nothing is faked.

Masks must equal offline inference (``OnnxSegmenter.predict``) on the same bytes; the
try-on may change hair pixels only; every kind of bad input gets a 4xx JSON naming the
problem, and the next good request still succeeds.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import socket
import struct
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
import pandas as pd
import pytest
from hairseg_serving.testing import (
    start_server,
    stop_server,
    synthetic_portrait,
    write_tiny_model,
)
from PIL import Image

from hairseg import imaging
from hairseg.inference import OnnxSegmenter

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
REACH = 12  # px: ~3 network pixels at 240 px, plus the guided filter radius
MAX_BODY = 2 * 1024 * 1024
MAX_PIXELS = 1_000_000
MAX_INSTANCES = 4
MAX_INFLIGHT = 2


def make_feature_repo(tmp: Path) -> Path:
    """A copy of feature_repo/ with customer_profile_v1 applied and three customers online."""
    from feast import FeatureStore

    repo = tmp / "feature_repo"
    repo.mkdir()
    for name in ("feature_store.yaml", "feature_definitions.py"):
        (repo / name).write_text((REPO / "feature_repo" / name).read_text())
    spec = importlib.util.spec_from_file_location(
        "hairseg_test_defs", repo / "feature_definitions.py"
    )
    defs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(defs)
    now = pd.Timestamp.now(tz="UTC")
    profiles = pd.DataFrame(
        {
            "customer_id": ["cust-consent", "cust-private", "cust-monitor-only"],
            "event_timestamp": [now, now, now],
            "preferred_shade": ["teal", "platinum", "copper"],
            "preferred_intensity": [0.9, 0.4, 0.5],
            "consent_monitoring": [True, False, True],
            "consent_personalisation": [True, False, False],
        }
    )
    (repo / "data").mkdir()
    profiles.to_parquet(repo / "data" / "customers.parquet")  # apply checks the source
    store = FeatureStore(repo_path=str(repo))
    store.apply([defs.customer, defs.customer_profile_v1])
    store.write_to_online_store("customer_profile_v1", profiles)
    return repo


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("serving")
    model = write_tiny_model(tmp / "tiny.onnx", size=64, version="tiny-1")
    repo = make_feature_repo(tmp)
    log_dir = tmp / "inference_log"
    proc, url, log_path = start_server(
        model,
        tmp,
        "--feature-repo", str(repo),
        "--inference-log-dir", str(log_dir),
        "--max-body-bytes", str(MAX_BODY),
        "--max-pixels", str(MAX_PIXELS),
        "--max-instances", str(MAX_INSTANCES),
        "--max-batch-size", "4",  # the micro-batcher path (the shutdown test runs inline)
        "--max-inflight", str(MAX_INFLIGHT),  # the other tests send one request at a time
    )  # fmt: skip
    client = httpx.Client(base_url=url, timeout=30)
    yield {
        "url": url,
        "client": client,
        "model": model,
        "segmenter": OnnxSegmenter(model),
        "log_dir": log_dir,
        "log_path": log_path,
        "proc": proc,
    }
    client.close()
    stop_server(proc)


def jpeg(rgb: np.ndarray, quality: int = 92) -> bytes:
    return imaging.encode_jpeg(rgb, quality=quality)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def png_mask(text: str) -> np.ndarray:
    mask = cv2.imdecode(np.frombuffer(base64.b64decode(text), np.uint8), cv2.IMREAD_UNCHANGED)
    assert mask is not None and mask.ndim == 2
    return mask


def offline_mask(env: dict, data: bytes) -> np.ndarray:
    return env["segmenter"].predict([imaging.decode_image(data)])[0]


def v1(env: dict, *instances: dict, **kw) -> httpx.Response:
    return env["client"].post(
        "/v1/models/hairseg:predict", json={"instances": list(instances)}, **kw
    )


def good_request_works(env: dict) -> None:
    data = jpeg(synthetic_portrait(96, 80, seed=9))
    r = v1(env, {"image_b64": b64(data)})
    assert r.status_code == 200, r.text
    np.testing.assert_array_equal(
        png_mask(r.json()["predictions"][0]["mask_png_b64"]), offline_mask(env, data)
    )


# -- health and metadata ------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/", "/v2/health/live", "/v2/health/ready", "/v1/models/hairseg", "/v2/models/hairseg/ready"],
)
def test_health_endpoints(env, path):
    r = env["client"].get(path)
    assert r.status_code == 200, r.text


def test_unknown_model_is_404_json(env):
    r = env["client"].post("/v1/models/nope:predict", json={"instances": []})
    assert r.status_code == 404
    assert "nope" in r.json()["error"]


# -- V1 -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "fmt"),
    [((256, 256), "jpeg"), ((300, 200), "png"), ((64, 64), "jpeg"), ((517, 389), "png")],
)
def test_v1_mask_equals_offline_inference(env, shape, fmt):
    rgb = synthetic_portrait(*shape, seed=shape[0])
    data = jpeg(rgb) if fmt == "jpeg" else imaging.encode_png(rgb)
    r = v1(env, {"image_b64": b64(data)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_version"] == "tiny-1"
    pred = body["predictions"][0]
    mask = png_mask(pred["mask_png_b64"])
    expected = offline_mask(env, data)
    assert mask.shape == shape
    np.testing.assert_array_equal(mask, expected)
    assert 0.05 < pred["hair_coverage"] < 0.95  # the portrait has hair and not-hair
    assert pred["hair_coverage"] == pytest.approx(
        np.count_nonzero(expected) / expected.size, abs=1e-6
    )
    assert (pred["width"], pred["height"]) == (shape[1], shape[0])
    assert "tryon_b64" not in pred  # default output: mask


def test_v1_accepts_json_sent_as_a_form_like_curl_d(env):
    data = jpeg(synthetic_portrait(64, 64, seed=8))
    body = json.dumps({"instances": [{"image_b64": b64(data)}]})
    r = env["client"].post(
        "/v1/models/hairseg:predict",
        content=body,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200, r.text
    np.testing.assert_array_equal(
        png_mask(r.json()["predictions"][0]["mask_png_b64"]), offline_mask(env, data)
    )


def test_v1_several_instances_keep_their_order(env):
    datas = [jpeg(synthetic_portrait(120 + 16 * i, 100, seed=i)) for i in range(3)]
    r = v1(env, *({"image_b64": b64(d)} for d in datas))
    assert r.status_code == 200, r.text
    for pred, data in zip(r.json()["predictions"], datas, strict=True):
        np.testing.assert_array_equal(png_mask(pred["mask_png_b64"]), offline_mask(env, data))


def test_v1_tryon_changes_hair_pixels_only(env):
    rgb = synthetic_portrait(240, 200, seed=3)
    data = imaging.encode_png(rgb)  # lossless in, lossless out: pixel-exact comparison
    r = v1(
        env,
        {
            "image_b64": b64(data),
            "output": "both",
            "color": "electric_blue",
            "intensity": 1.0,
            "tryon_format": "png",
        },
    )
    assert r.status_code == 200, r.text
    pred = r.json()["predictions"][0]
    assert (pred["tryon_format"], pred["color"], pred["intensity"]) == ("png", "electric_blue", 1.0)
    mask = png_mask(pred["mask_png_b64"])
    tryon = imaging.decode_image(base64.b64decode(pred["tryon_b64"]))
    assert tryon.shape == rgb.shape
    # The soft matte (probabilities upsampled from the 64 px network grid, then the guided
    # filter) reaches at most REACH pixels beyond the hard mask: outside that, bit-exact.
    reach = cv2.dilate(mask, np.ones((2 * REACH + 1, 2 * REACH + 1), np.uint8)) > 0
    assert np.count_nonzero(~reach) > 0.2 * mask.size
    np.testing.assert_array_equal(tryon[~reach], rgb[~reach])
    # Inside the hair the colour moved towards blue, clearly.
    hair = mask > 0
    diff = np.abs(tryon.astype(int) - rgb.astype(int)).sum(axis=2)
    assert np.mean(diff[hair] > 30) > 0.9
    assert tryon[hair][:, 2].mean() > rgb[hair][:, 2].mean() + 40


def test_v1_tryon_jpeg_is_a_jpeg_of_the_input_size(env):
    rgb = synthetic_portrait(180, 160, seed=4)
    r = v1(env, {"image_b64": b64(jpeg(rgb)), "output": "tryon", "color": "#ff0000"})
    assert r.status_code == 200, r.text
    pred = r.json()["predictions"][0]
    raw = base64.b64decode(pred["tryon_b64"])
    assert raw[:2] == b"\xff\xd8" and pred["tryon_format"] == "jpeg"
    assert Image.open(io.BytesIO(raw)).size == (160, 180)
    assert pred["color"] == "#ff0000"


def test_grayscale_and_alpha_images_are_accepted(env):
    rgb = synthetic_portrait(128, 128, seed=5)
    gray = Image.fromarray(rgb).convert("L")
    rgba = Image.fromarray(rgb).convert("RGBA")
    for img in (gray, rgba):
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        r = v1(env, {"image_b64": b64(buf.getvalue())})
        assert r.status_code == 200, r.text
        np.testing.assert_array_equal(
            png_mask(r.json()["predictions"][0]["mask_png_b64"]), offline_mask(env, buf.getvalue())
        )


# -- V2 -----------------------------------------------------------------------------------


def test_v2_json_mask_and_coverage_equal_offline(env):
    datas = [
        jpeg(synthetic_portrait(200, 150, seed=11)),
        jpeg(synthetic_portrait(90, 130, seed=12)),
    ]
    body = {
        "inputs": [
            {"name": "image", "shape": [2], "datatype": "BYTES", "data": [b64(d) for d in datas]}
        ],
        "parameters": {"output": "both", "color": "copper", "tryon_format": "png"},
    }
    r = env["client"].post("/v2/models/hairseg/infer", json=body)
    assert r.status_code == 200, r.text
    out = {o["name"]: o for o in r.json()["outputs"]}
    assert set(out) == {"mask", "hair_coverage", "tryon"}
    assert out["mask"]["datatype"] == "BYTES" and out["mask"]["parameters"]["encoding"] == "base64"
    assert out["hair_coverage"]["datatype"] == "FP32" and out["hair_coverage"]["shape"] == [2]
    for i, data in enumerate(datas):
        expected = offline_mask(env, data)
        np.testing.assert_array_equal(png_mask(out["mask"]["data"][i]), expected)
        assert out["hair_coverage"]["data"][i] == pytest.approx(
            np.count_nonzero(expected) / expected.size, abs=1e-6
        )
        tryon = imaging.decode_image(base64.b64decode(out["tryon"]["data"][i]))
        assert tryon.shape[:2] == expected.shape


def parse_binary_response(r: httpx.Response) -> tuple[dict, dict[str, np.ndarray]]:
    """Split a binary-extension response into its JSON header and output arrays.

    (KServe 0.21's ``InferResponse.from_bytes`` decodes BYTES outputs as UTF-8, which PNG
    bytes are not, so the client side is parsed with its lower-level helpers.)"""
    from kserve.protocol.infer_type import deserialize_bytes_tensor

    n = int(r.headers["inference-header-content-length"])
    header = json.loads(r.content[:n])
    arrays, offset = {}, n
    for out in header["outputs"]:
        size = out["parameters"]["binary_data_size"]
        raw = r.content[offset : offset + size]
        offset += size
        arrays[out["name"]] = (
            deserialize_bytes_tensor(raw)
            if out["datatype"] == "BYTES"
            else np.frombuffer(raw, np.float32)
        )
    assert offset == len(r.content)
    return header, arrays


def test_v2_binary_extension_with_kserve_client_types(env):
    """The request is built by KServe's own InferRequest (binary-data extension); every
    output comes back raw."""
    from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput

    datas = [
        jpeg(synthetic_portrait(160, 120, seed=21)),
        imaging.encode_png(synthetic_portrait(70, 90, seed=22)),
    ]
    inp = InferInput("image", [2], "BYTES")
    inp.set_data_from_numpy(np.array(datas, dtype=np.object_), binary_data=True)
    wanted = ("mask", "hair_coverage", "tryon")
    request = InferRequest(
        "hairseg",
        [inp],
        request_id="bin-1",
        parameters={"output": "both"},
        request_outputs=[RequestedOutput(name, {"binary_data": True}) for name in wanted],
    )
    payload, json_length = request.to_rest()
    assert isinstance(payload, bytes) and json_length
    r = env["client"].post(
        "/v2/models/hairseg/infer",
        content=payload,
        headers={
            "Inference-Header-Content-Length": str(json_length),
            "Content-Type": "application/octet-stream",
        },
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/octet-stream"
    header, outputs = parse_binary_response(r)
    assert header["id"] == "bin-1" and header["model_version"] == "tiny-1"
    assert [o["name"] for o in header["outputs"]] == list(wanted)
    for i, data in enumerate(datas):
        expected = offline_mask(env, data)
        mask = cv2.imdecode(np.frombuffer(outputs["mask"][i], np.uint8), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(mask, expected)
        assert outputs["hair_coverage"][i] == pytest.approx(
            np.count_nonzero(expected) / expected.size, abs=1e-6
        )
        assert imaging.decode_image(bytes(outputs["tryon"][i])).shape[:2] == expected.shape


def binary_request(data: bytes, **extra) -> tuple[bytes, dict[str, str]]:
    """The wire format written out by hand: JSON header, then 4-byte length + bytes."""
    blob = struct.pack("<I", len(data)) + data
    spec = {"name": "image", "shape": [1], "datatype": "BYTES"}
    spec["parameters"] = {"binary_data_size": len(blob)}
    header = json.dumps({"inputs": [spec], **extra}).encode()
    return header + blob, {"Inference-Header-Content-Length": str(len(header))}


def test_v2_binary_hand_made_request(env):
    """The wire format written out by hand: JSON header, then 4-byte length + bytes."""
    data = jpeg(synthetic_portrait(100, 100, seed=31))
    body, headers = binary_request(data, parameters={"binary_data_output": True})
    r = env["client"].post("/v2/models/hairseg/infer", content=body, headers=headers)
    assert r.status_code == 200, r.text
    n = int(r.headers["inference-header-content-length"])
    meta = json.loads(r.content[:n])
    names = [o["name"] for o in meta["outputs"]]
    assert names == ["mask", "hair_coverage"]
    mask_size = meta["outputs"][0]["parameters"]["binary_data_size"]
    raw = r.content[n : n + mask_size]
    (length,) = struct.unpack("<I", raw[:4])
    mask = cv2.imdecode(np.frombuffer(raw[4 : 4 + length], np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(mask, offline_mask(env, data))
    (coverage,) = struct.unpack("<f", r.content[n + mask_size : n + mask_size + 4])
    assert coverage == pytest.approx(np.count_nonzero(mask) / mask.size, abs=1e-6)


# -- request id, metrics, logs -------------------------------------------------------------


def test_request_id_is_echoed_or_generated(env):
    data = b64(jpeg(synthetic_portrait(64, 64)))
    r = v1(env, {"image_b64": data}, headers={"X-Request-Id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r2 = v1(env, {"image_b64": data})
    assert len(r2.headers["x-request-id"]) == 32
    r3 = v1(env, {"image_b64": data}, headers={"X-Request-Id": "bad id with spaces"})
    assert r3.headers["x-request-id"] != "bad id with spaces"
    bad = env["client"].post(
        "/v1/models/hairseg:predict",
        content=b"{",
        headers={"X-Request-Id": "err-9", "content-type": "application/json"},
    )
    assert bad.headers["x-request-id"] == "err-9"
    assert "server-timing" in r.headers and "infer;dur=" in r.headers["server-timing"]
    lines = [json.loads(x) for x in env["log_path"].read_text().splitlines() if x.startswith("{")]
    assert any(
        x.get("request_id") == "abc-123" and x.get("msg") == "request" and x["status"] == 200
        for x in lines
    )


def test_metrics_have_stage_histograms_and_request_counts(env):
    good_request_works(env)
    text = env["client"].get("/metrics").text
    for stage in ("decode", "infer", "postprocess", "encode"):
        count = [
            ln
            for ln in text.splitlines()
            if ln.startswith(f'hairseg_stage_seconds_count{{stage="{stage}"}}')
        ]
        assert count and float(count[0].split()[-1]) >= 1, stage
    assert 'hairseg_requests_total{code="200",endpoint="v1"}' in text
    assert "request_predict_seconds_bucket" in text  # KServe's own
    batches = [ln for ln in text.splitlines() if ln.startswith("hairseg_batch_size_count")]
    assert batches and float(batches[0].split()[-1]) >= 1


# -- Feast and the monitoring log ----------------------------------------------------------


def test_customer_profile_fills_omitted_options(env):
    data = b64(jpeg(synthetic_portrait(96, 96, seed=41)))
    consent = v1(env, {"image_b64": data, "output": "tryon", "customer_id": "cust-consent"}).json()[
        "predictions"
    ][0]
    assert (consent["color"], consent["intensity"]) == ("teal", 0.9)
    explicit = v1(
        env,
        {
            "image_b64": data,
            "output": "tryon",
            "customer_id": "cust-consent",
            "color": "auburn",
            "intensity": 0.2,
        },
    ).json()["predictions"][0]
    assert (explicit["color"], explicit["intensity"]) == ("auburn", 0.2)
    private = v1(env, {"image_b64": data, "output": "tryon", "customer_id": "cust-private"}).json()[
        "predictions"
    ][0]
    assert (private["color"], private["intensity"]) == ("auburn", 0.7)  # no consent: defaults
    unknown = v1(env, {"image_b64": data, "output": "tryon", "customer_id": "cust-unknown"})
    assert unknown.status_code == 200
    assert (
        unknown.json()["predictions"][0]["color"],
        unknown.json()["predictions"][0]["intensity"],
    ) == ("auburn", 0.7)


# -- bad input -----------------------------------------------------------------------------


def _truncated_jpeg() -> bytes:
    data = jpeg(synthetic_portrait(128, 128))
    return data[: len(data) // 2]


def _bomb_png() -> bytes:
    # 1.2 Mpx of zeros in a few kB: over the test server's 1 Mpx limit, refused from the
    # header before any pixel is decoded.
    img = Image.new("L", (2000, 600))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _zero_size_image() -> bytes:
    data = bytearray(imaging.encode_png(np.zeros((4, 4), np.uint8)))
    data[16:24] = struct.pack(">II", 0, 0)  # IHDR width/height = 0
    return bytes(data)


GOOD = b64(imaging.encode_jpeg(synthetic_portrait(64, 64)))
JSON = {"content-type": "application/json"}

BAD_V1 = [
    ("empty body", b"", 400, "body is empty"),
    ("invalid json", b'{"instances": [', 400, "Unrecognized request format"),
    ("instances missing", b'{"images": []}', 400, 'no "instances"'),
    ("instances not a list", b'{"instances": "x"}', 400, "must be a list"),
    ("instances empty", b'{"instances": []}', 400, "is empty"),
    (
        "too many instances",
        json.dumps({"instances": [{"image_b64": GOOD}] * (MAX_INSTANCES + 1)}).encode(),
        400,
        "too many instances",
    ),
    ("missing image_b64", b'{"instances": [{"color": "teal"}]}', 400, "has no image_b64"),
    ("wrong base64", b'{"instances": [{"image_b64": "not*base64"}]}', 400, "not valid base64"),
    (
        "non-image bytes",
        json.dumps({"instances": [{"image_b64": b64(b"hello, this is text")}]}).encode(),
        400,
        "not a decodable image",
    ),
    (
        "truncated jpeg",
        json.dumps({"instances": [{"image_b64": b64(_truncated_jpeg())}]}).encode(),
        400,
        "truncated",
    ),
    (
        "zero-size image",
        json.dumps({"instances": [{"image_b64": b64(_zero_size_image())}]}).encode(),
        400,
        "instances[0]: bytes are not a decodable image",
    ),
    (
        "huge dimensions",
        json.dumps({"instances": [{"image_b64": b64(_bomb_png())}]}).encode(),
        400,
        "the limit is 1000000 pixels",
    ),
    (
        "unknown colour",
        json.dumps({"instances": [{"image_b64": GOOD, "color": "mauve-ish"}]}).encode(),
        400,
        "unknown colour 'mauve-ish'",
    ),
    (
        "intensity above 1",
        json.dumps({"instances": [{"image_b64": GOOD, "intensity": 1.5}]}).encode(),
        400,
        "between 0 and 1",
    ),
    (
        "intensity below 0",
        json.dumps({"instances": [{"image_b64": GOOD, "intensity": -0.1}]}).encode(),
        400,
        "between 0 and 1",
    ),
    (
        "intensity not a number",
        json.dumps({"instances": [{"image_b64": GOOD, "intensity": "high"}]}).encode(),
        400,
        "must be a number",
    ),
    (
        "unknown output",
        json.dumps({"instances": [{"image_b64": GOOD, "output": "video"}]}).encode(),
        400,
        "'video' is not accepted",
    ),
    (
        "unknown field",
        json.dumps({"instances": [{"image_b64": GOOD, "colour": "teal"}]}).encode(),
        400,
        "unknown field(s) 'colour'",
    ),
    (
        "unknown tryon_format",
        json.dumps({"instances": [{"image_b64": GOOD, "tryon_format": "gif"}]}).encode(),
        400,
        "tryon_format",
    ),
    (
        "body over the limit",
        b'{"instances": [{"image_b64": "' + b"A" * (MAX_BODY + 10) + b'"}]}',
        413,
        "the limit is 2097152 bytes",
    ),
]


@pytest.mark.parametrize(("case", "body", "status", "message"), BAD_V1, ids=[c[0] for c in BAD_V1])
def test_v1_bad_input_is_4xx_json_and_server_keeps_serving(env, case, body, status, message):
    r = env["client"].post("/v1/models/hairseg:predict", content=body, headers=JSON)
    assert r.status_code == status, (case, r.text)
    assert message in r.json()["error"], (case, r.json())
    good_request_works(env)


def test_declared_content_length_over_limit_is_413_before_reading(env):
    with socket.create_connection(("127.0.0.1", int(env["url"].rsplit(":", 1)[1]))) as s:
        s.sendall(
            b"POST /v1/models/hairseg:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 999999999\r\n\r\n{"
        )
        s.settimeout(10)
        reply = b""
        while b'"error"' not in reply:
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert b'"error"' in reply
    good_request_works(env)


def _inflight(env: dict) -> float:
    for line in env["client"].get("/metrics").text.splitlines():
        if line.startswith("hairseg_inflight_requests "):
            return float(line.split()[-1])
    raise AssertionError("no hairseg_inflight_requests gauge on /metrics")


def test_requests_past_max_inflight_get_a_fast_503_json(env):
    """Hold MAX_INFLIGHT requests open (headers sent, body half sent: the worker waits in
    the middle of reading them), then one more request is shed with 503 + JSON +
    Retry-After while health and metrics still answer; once the held connections close,
    requests are served again. No timing: the gauge says when the worker holds them."""
    port = int(env["url"].rsplit(":", 1)[1])
    head = (
        b"POST /v1/models/hairseg:predict HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
    )
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(MAX_INFLIGHT)]
    try:
        for s in held:
            s.sendall(head)
        for _ in range(100):  # poll until the worker holds them (bounded; not timed)
            if _inflight(env) >= MAX_INFLIGHT:
                break
            time.sleep(0.05)
        assert _inflight(env) == MAX_INFLIGHT
        r = v1(env, {"image_b64": GOOD})
        assert r.status_code == 503, r.text
        assert r.headers["content-type"] == "application/json"
        assert r.headers["retry-after"] == "1"
        assert "x-request-id" in r.headers
        assert f"serve.max_inflight {MAX_INFLIGHT}" in r.json()["error"]
        assert env["client"].get("/v2/health/ready").status_code == 200
        assert (
            'hairseg_requests_total{code="503",endpoint="v1"}' in env["client"].get("/metrics").text
        )
    finally:
        for s in held:
            s.close()
    for _ in range(100):
        if _inflight(env) == 0:
            break
        time.sleep(0.05)
    assert _inflight(env) == 0
    good_request_works(env)


def test_chunked_body_over_limit_is_413(env):
    """No Content-Length (chunked upload): the limit is enforced on the bytes read."""

    def chunks():
        yield b'{"instances": [{"image_b64": "'
        for _ in range(MAX_BODY // 65536 + 2):
            yield b"A" * 65536

    r = env["client"].post("/v1/models/hairseg:predict", content=chunks(), headers=JSON)
    assert r.status_code == 413, r.text
    assert "exceeds the limit of 2097152 bytes" in r.json()["error"]
    good_request_works(env)


def _v2(inputs=None, **extra) -> bytes:
    body = {
        "inputs": inputs
        if inputs is not None
        else [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [GOOD]}],
        **extra,
    }
    return json.dumps(body).encode()


BAD_V2 = [
    ("empty body", b"", {}, 400, "body is empty"),
    ("invalid json", b"{nope", {}, 400, "not valid JSON"),
    ("inputs missing", b'{"id": "x"}', {}, 400, "inputs"),
    (
        "wrong input name",
        _v2([{"name": "img", "shape": [1], "datatype": "BYTES", "data": [GOOD]}]),
        {},
        400,
        "exactly one input named 'image'",
    ),
    (
        "wrong datatype",
        _v2([{"name": "image", "shape": [1], "datatype": "FP32", "data": [1.0]}]),
        {},
        400,
        "must have datatype BYTES",
    ),
    (
        "shape mismatch",
        _v2([{"name": "image", "shape": [2], "datatype": "BYTES", "data": [GOOD]}]),
        {},
        400,
        "holds 1 element",
    ),
    (
        "too many images",
        _v2([{"name": "image", "shape": [5], "datatype": "BYTES", "data": [GOOD] * 5}]),
        {},
        400,
        "too many images",
    ),
    (
        "wrong base64",
        _v2([{"name": "image", "shape": [1], "datatype": "BYTES", "data": ["@@@"]}]),
        {},
        400,
        "not valid base64",
    ),
    ("unknown colour", _v2(parameters={"color": "plaid"}), {}, 400, "unknown colour 'plaid'"),
    ("intensity out of range", _v2(parameters={"intensity": 7}), {}, 400, "between 0 and 1"),
    ("unknown output value", _v2(parameters={"output": "all"}), {}, 400, "'all' is not accepted"),
    ("unknown parameter", _v2(parameters={"colour": "teal"}), {}, 400, "unknown field(s) 'colour'"),
    (
        "unknown requested output",
        _v2(outputs=[{"name": "depth"}]),
        {},
        400,
        "unknown output(s) ['depth']",
    ),
    (
        "binary header not an integer",
        b"{}",
        {"Inference-Header-Content-Length": "ten"},
        400,
        "must be an integer",
    ),
    (
        "binary header longer than body",
        b"{}",
        {"Inference-Header-Content-Length": "50"},
        400,
        "the body has 2 bytes",
    ),
    (
        "binary sizes beyond body",
        b'{"inputs":[{"name":"image","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":100}}]}xx',
        {"Inference-Header-Content-Length": "98"},
        400,
        "only 2 follow",
    ),
    (
        "binary tensor malformed",
        b'{"inputs":[{"name":"image","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":3}}]}abc',
        {"Inference-Header-Content-Length": "96"},
        400,
        "length-prefixed",
    ),
    ("binary truncated jpeg", None, {}, 400, "truncated"),
]


@pytest.mark.parametrize(
    ("case", "body", "headers", "status", "message"), BAD_V2, ids=[c[0] for c in BAD_V2]
)
def test_v2_bad_input_is_4xx_json_and_server_keeps_serving(
    env, case, body, headers, status, message
):
    if body is None:  # a truncated JPEG sent through the binary extension
        body, headers = binary_request(_truncated_jpeg())
    if (
        "Inference-Header-Content-Length" in headers
        and case.startswith("binary")
        and headers["Inference-Header-Content-Length"].isdigit()
    ):
        assert int(headers["Inference-Header-Content-Length"]) <= len(body) or "longer" in case
    r = env["client"].post(
        "/v2/models/hairseg/infer",
        content=body,
        headers={"content-type": "application/json", **headers},
    )
    assert r.status_code == status, (case, r.text)
    assert message in r.json()["error"], (case, r.json())
    good_request_works(env)


# -- last: the monitoring log (written at shutdown) ------------------------------------------


def test_zz_inference_log_has_consenting_customers_only_and_no_pixels(env):
    """Runs last in this module: stops the server with SIGTERM, which must flush the log."""
    from hairseg.monitoring.inference_log import read_inference_log

    data = b64(jpeg(synthetic_portrait(100, 80, seed=51)))
    for rid, customer in [
        ("log-a", "cust-consent"),
        ("log-b", "cust-private"),
        ("log-c", "cust-monitor-only"),
        ("log-d", None),
    ]:
        inst = {"image_b64": data, **({"customer_id": customer} if customer else {})}
        assert v1(env, inst, headers={"X-Request-Id": rid}).status_code == 200
    assert stop_server(env["proc"]) == 0
    log = read_inference_log(env["log_dir"])
    logged = log[log["request_id"].str.startswith("log-")]
    assert sorted(logged["request_id"]) == ["log-a", "log-c"]  # consent_monitoring only
    row = logged[logged["request_id"] == "log-a"].iloc[0]
    assert row["customer_id"] == "cust-consent" and row["model_version"] == "tiny-1"
    assert (row["width"], row["height"]) == (80, 100)
    assert 0 < row["hair_coverage"] < 1
    assert not any("image" in c or "pixel" in c for c in log.columns)
