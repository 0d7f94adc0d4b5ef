"""MediaPipe models: verified extraction from a wheel (a zip built here, no network),
lookup, format checks, and face counting with the real model when it has been fetched."""

from __future__ import annotations

import dataclasses
import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest

from hairseg.cli import main
from hairseg.data.generate import render_index
from hairseg.errors import HairsegError
from hairseg.mediapipe_models import (
    DEFAULT_MODELS_DIR,
    MODELS,
    WHEEL,
    FaceDetector,
    check_tflite,
    extract_from_wheel,
    model_path,
)

REPO = Path(__file__).resolve().parents[2]
FACE_MODEL = model_path("face_detector", REPO / DEFAULT_MODELS_DIR)


def _fake_tflite(tag: bytes) -> bytes:
    return b"\x1c\x00\x00\x00TFL3" + tag * 100


def _wheel(tmp_path: Path, members: dict[str, bytes]):
    path = tmp_path / "mediapipe-test.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mediapipe/__init__.py", "")
        for name, data in members.items():
            zf.writestr(name, data)
    spec = dataclasses.replace(
        WHEEL,
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        members={
            model: (member, hashlib.sha256(members[member]).hexdigest())
            for model, (member, _) in WHEEL.members.items()
        },
    )
    return path, spec


def _members() -> dict[str, bytes]:
    return {member: _fake_tflite(member.encode()) for member, _ in WHEEL.members.values()}


def test_extract_verifies_and_writes_every_model(tmp_path: Path) -> None:
    members = _members()
    path, spec = _wheel(tmp_path, members)
    written = extract_from_wheel(path, tmp_path / "models", spec)
    assert set(written) == {"face_detector", "selfie_segmenter"}
    for name, target in written.items():
        assert target.read_bytes() == members[MODELS[name].wheel_member]
        assert model_path(name, tmp_path / "models") == target
    assert model_path("hair_segmenter", tmp_path / "models") is None
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [
        "face_detector.tflite",
        "selfie_segmenter.tflite",
    ]


def test_wheel_and_member_checksums_are_enforced(tmp_path: Path) -> None:
    members = _members()
    path, spec = _wheel(tmp_path, members)
    with pytest.raises(HairsegError, match="has sha256 .*, expected"):
        extract_from_wheel(path, tmp_path / "m1", dataclasses.replace(spec, sha256="0" * 64))
    tampered = dict(spec.members)
    tampered["face_detector"] = (tampered["face_detector"][0], "f" * 64)
    with pytest.raises(HairsegError, match="face_detection_short_range.tflite in .* has sha256"):
        extract_from_wheel(path, tmp_path / "m2", dataclasses.replace(spec, members=tampered))
    assert not (tmp_path / "m2" / "face_detector.tflite").exists()
    missing = dict(spec.members, extra=("mediapipe/not/there.tflite", "0" * 64))
    with pytest.raises(HairsegError, match="has no member mediapipe/not/there.tflite"):
        extract_from_wheel(path, tmp_path / "m3", dataclasses.replace(spec, members=missing))


def test_pinned_wheel_is_the_manylinux_cp311_one() -> None:
    assert WHEEL.filename == "mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl"
    assert all(len(sha) == 64 for _, sha in WHEEL.members.values())


def test_unknown_model_and_tflite_format_check(tmp_path: Path) -> None:
    with pytest.raises(HairsegError, match="unknown MediaPipe model 'hair'"):
        model_path("hair")
    bogus = tmp_path / "x.tflite"
    bogus.write_bytes(b"<html>not a model</html>")
    with pytest.raises(HairsegError, match="not a TFLite model"):
        check_tflite(bogus, MODELS["face_detector"])
    small = tmp_path / "y.tflite"
    small.write_bytes(_fake_tflite(b"x"))
    with pytest.raises(HairsegError, match="bytes; a face_detector model is"):
        check_tflite(small, MODELS["face_detector"])


def test_cli_fetch_with_a_wrong_wheel_fails_in_one_line(tmp_path: Path, capsys) -> None:
    path, _ = _wheel(tmp_path, _members())
    with pytest.raises(SystemExit) as exit_info:
        main(["models", "fetch", "--wheel", str(path), "--dest", str(tmp_path / "m")])
    assert exit_info.value.code == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("hairseg: error: ") and WHEEL.sha256 in line
    assert not (tmp_path / "m").exists()


@pytest.mark.skipif(
    FACE_MODEL is None,
    reason=f"MediaPipe face model not fetched ({DEFAULT_MODELS_DIR}); run `hairseg models fetch`",
)
def test_real_face_detector_counts_demo_faces() -> None:
    assert FACE_MODEL is not None
    with FaceDetector(FACE_MODEL) as detector:
        counts = [detector(render_index(20261122, "test", i, 256)[1].image) for i in range(6)]
        blank = detector(np.full((256, 256, 3), 128, np.uint8))
    assert sum(c == 1 for c in counts) >= 5, counts
    assert blank == 0


@pytest.fixture
def loopback_http(tmp_path: Path):
    """A real HTTP server on 127.0.0.1 serving ``tmp_path/www``: stands in for PyPI and
    storage.googleapis.com, which tests must not reach."""
    import functools
    import http.server
    import threading

    root = tmp_path / "www"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_offline_wheel_route_over_http(tmp_path: Path, loopback_http) -> None:
    """PEP 691 index lookup → sha256-checked download → verified extraction, end to end."""
    import json

    from hairseg.mediapipe_models import fetch_offline_wheel

    www, base = loopback_http
    path, spec = _wheel(tmp_path, _members())
    spec = dataclasses.replace(spec, filename="mediapipe-test-py3-none-any.whl")
    (www / "files").mkdir()
    (www / "files" / spec.filename).write_bytes(path.read_bytes())
    (www / "simple" / "mediapipe").mkdir(parents=True)
    index = {"files": [{"filename": spec.filename, "url": f"{base}/files/{spec.filename}",
                        "hashes": {"sha256": spec.sha256}}]}  # fmt: skip
    (www / "simple" / "mediapipe" / "index.html").write_text(json.dumps(index))
    written = fetch_offline_wheel(
        tmp_path / "models", cache_dir=tmp_path / "cache", index_url=f"{base}/simple", wheel=spec
    )
    assert set(written) == {"face_detector", "selfie_segmenter"}
    assert (tmp_path / "cache" / spec.filename).read_bytes() == path.read_bytes()
    # An index that lists a different hash for the pinned file is refused before download.
    index["files"][0]["hashes"]["sha256"] = "0" * 64
    (www / "simple" / "mediapipe" / "index.html").write_text(json.dumps(index))
    with pytest.raises(HairsegError, match="pinned"):
        fetch_offline_wheel(
            tmp_path / "m2", cache_dir=tmp_path / "c2", index_url=f"{base}/simple", wheel=spec
        )


def test_official_route_records_and_enforces_checksums(tmp_path: Path, loopback_http) -> None:
    from hairseg.mediapipe_models import SUMS_FILE, fetch_official

    www, base = loopback_http
    model = b"\x1c\x00\x00\x00TFL3" + bytes(200_000)
    (www / "hair.tflite").write_bytes(model)
    urls = {"hair_segmenter": f"{base}/hair.tflite"}
    dest = tmp_path / "models"
    written = fetch_official(dest, names=("hair_segmenter",), urls=urls)
    assert written["hair_segmenter"].read_bytes() == model
    digest = hashlib.sha256(model).hexdigest()
    assert (dest / SUMS_FILE).read_text() == f"{digest}  hair_segmenter.tflite\n"
    (www / "hair.tflite").write_bytes(model[:-1] + b"\x01")  # upstream changed
    with pytest.raises(HairsegError, match="now has sha256"):
        fetch_official(dest, names=("hair_segmenter",), urls=urls)
    assert written["hair_segmenter"].read_bytes() == model  # the verified file is kept
    (www / "page.tflite").write_text("<html>captive portal</html>")
    with pytest.raises(HairsegError, match="not a TFLite model"):
        fetch_official(
            tmp_path / "m2", names=("face_detector",), urls={"face_detector": f"{base}/page.tflite"}
        )
    assert not (tmp_path / "m2" / "face_detector.tflite").exists()
    with pytest.raises(HairsegError, match="cannot download"):
        fetch_official(
            tmp_path / "m3", names=("face_detector",), urls={"face_detector": f"{base}/missing"}
        )
