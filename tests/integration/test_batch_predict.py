"""``hairseg predict`` end to end, as a user runs it: a subprocess, worker processes, a real
ONNX model. A run killed with SIGKILL mid-way and rerun ends with the same table as an
uninterrupted run; bad files are rows with reasons and exit code 1 with one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hairseg_serving.testing import synthetic_portrait, write_tiny_model

from hairseg import imaging
from hairseg.batch import VOLATILE_COLUMNS, results_path

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]


def hairseg(*args: str | Path, cwd: Path, **kw) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "hairseg", *map(str, args)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the kill takes the workers too
        **kw,
    )


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    proc = hairseg(*args, cwd=cwd)
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("m") / "tiny.onnx", size=64, version="t-1")


def portraits(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        rgb = synthetic_portrait(160 + 8 * (i % 5), 144, seed=i)
        (folder / f"img{i:03d}.jpg").write_bytes(imaging.encode_jpeg(rgb))
    return folder


def stable(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=list(VOLATILE_COLUMNS)).sort_values("id").reset_index(drop=True)


def test_killed_run_resumes_to_the_same_table(tmp_path: Path, model: Path) -> None:
    n = 80
    src = portraits(tmp_path / "src", n)
    params = tmp_path / "params.yaml"
    params.write_text("batch:\n  workers: 2\n  flush_every: 3\n  flush_seconds: 0.5\n")
    common = ("--model", model, "--params", params, "--tryon", "copper")

    ref = run("predict", src, tmp_path / "ref", *common, cwd=tmp_path)
    assert ref.returncode == 0, ref.stderr
    reference = pd.read_parquet(results_path(tmp_path / "ref"))
    assert len(reference) == n and (reference["status"] == "ok").all()

    dest = tmp_path / "killed"
    proc = hairseg("predict", src, dest, *common, cwd=tmp_path)
    parts = dest / ".batch" / "shard-0-of-1"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(parts.glob("part-*.parquet"))) < 2:
        assert proc.poll() is None, "the run finished before it could be killed"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    flushed = pd.concat([pd.read_parquet(p) for p in parts.glob("part-*.parquet")])
    assert 0 < len(flushed) < n, "the kill must land mid-way"
    assert (
        not (dest / "results.parquet").is_file()
        or len(pd.read_parquet(dest / "results.parquet")) < n
    )

    again = run("predict", src, dest, *common, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"{n} inputs: {n} ok, 0 failed, {len(flushed)} already done" in again.stdout
    final = pd.read_parquet(results_path(dest))
    assert final["id"].is_unique and len(final) == n  # no duplicates, nothing missing
    pd.testing.assert_frame_equal(stable(final), stable(reference))
    assert not list(parts.glob("part-*.parquet"))  # compacted
    for row in final.itertuples():
        for column in ("mask_path", "tryon_path"):
            rel = getattr(row, column)
            assert (dest / rel).read_bytes() == (tmp_path / "ref" / rel).read_bytes(), rel
    # nothing half-written is left behind
    assert not [p for p in dest.rglob("*.tmp")]


def test_bad_files_are_rows_with_reasons_and_exit_code_1(tmp_path: Path, model: Path) -> None:
    src = portraits(tmp_path / "src", 3)
    good = (src / "img000.jpg").read_bytes()
    (src / "corrupt.jpg").write_bytes(good[: len(good) // 3])  # truncated JPEG
    (src / "zero.jpg").write_bytes(b"")
    (src / "readme.txt").write_text("not an image")
    big = np.zeros((700, 700, 3), dtype=np.uint8)  # 490 000 px > the 400 000 px limit
    (src / "huge.png").write_bytes(imaging.encode_png(big))
    result = run(
        "predict", src, tmp_path / "out", "--model", model, "--max-pixels", "400000",
        "--workers", "2", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("hairseg: error: 7 inputs: 3 ok, 4 failed"), lines[0]
    df = pd.read_parquet(results_path(tmp_path / "out")).set_index("id")
    assert len(df) == 7 and df.index.is_unique
    assert (df.loc[["img000", "img001", "img002"], "status"] == "ok").all()
    reasons = df["error"].to_dict()
    assert "corrupt or truncated" in reasons["corrupt"]
    assert reasons["zero"] == "image is empty (0 bytes)"
    assert reasons["readme"] == "bytes are not a decodable image (JPEG, PNG, WebP, BMP)"
    assert reasons["huge"] == "image is 700x700 = 490000 pixels; the limit is 400000 pixels"
    assert (df.loc[["corrupt", "zero", "readme", "huge"], "status"] == "failed").all()
    assert not (tmp_path / "out" / "masks" / "huge.png").exists()

    # a rerun redoes only the failed rows, which fail again: still one row each
    again = run("predict", src, tmp_path / "out", "--model", model, "--max-pixels", "400000",
                cwd=tmp_path)  # fmt: skip
    assert again.returncode == 1 and "3 already done" in again.stderr
    assert len(pd.read_parquet(results_path(tmp_path / "out"))) == 7


def test_usage_errors_are_one_line(tmp_path: Path, model: Path) -> None:
    src = portraits(tmp_path / "src", 1)
    for args, needle in [
        (("--shard", "3/3"), "is not i/n"),
        (("--tryon", "no-such-shade"), "unknown colour"),
        (("--model", tmp_path / "missing.onnx"), "not found"),
    ]:
        cmd = ["predict", src, tmp_path / "out", "--model", model, *args]
        result = run(*cmd, cwd=tmp_path)
        assert result.returncode != 0
        assert len(result.stderr.strip().splitlines()) == 1 and needle in result.stderr, (
            args,
            result.stderr,
        )
    result = run("predict", tmp_path / "nowhere", tmp_path / "out", "--model", model, cwd=tmp_path)
    assert result.returncode == 2 and "no such input" in result.stderr


def test_dest_inside_src_is_not_read_back_as_input(tmp_path: Path, model: Path) -> None:
    src = portraits(tmp_path / "src", 2)
    for _ in range(2):
        result = run("predict", src, src / "out", "--model", model, "--workers", "1", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    assert "2 inputs: 2 ok, 0 failed, 2 already done" in result.stdout
    assert sorted(pd.read_parquet(results_path(src / "out"))["id"]) == ["img000", "img001"]


MEDIAPIPE = ROOT / ".hairseg/models/mediapipe"
SOLVAY = [ROOT / f"datasets/real_portraits/images/visp_solvay1927_f{i}.png" for i in (5, 9)]


@pytest.mark.skipif(
    not (MEDIAPIPE / "face_detector.tflite").is_file(),
    reason="MediaPipe models not fetched (hairseg models fetch)",
)
def test_teacher_mode_writes_a_validated_pseudo_dataset(tmp_path: Path) -> None:
    """``predict --teacher``: the pseudo-label teacher (the MediaPipe priors; the tiny
    random model would only halve its confidence) in two worker processes; DEST is a dataset that passes the gate; a bad file is a failed row
    (exit 1), a face-less image a skipped one."""
    src = tmp_path / "src"
    src.mkdir()
    for path in SOLVAY:
        (src / path.name).write_bytes(path.read_bytes())
    ramp = np.linspace(0, 255, 120 * 160, dtype=np.float32).reshape(120, 160, 1)
    (src / "ramp.png").write_bytes(imaging.encode_png(np.repeat(ramp, 3, 2).astype(np.uint8)))
    (src / "notes.txt").write_text("not a photo")
    dest = tmp_path / "pseudo"
    result = run(
        "predict", src, dest, "--teacher", "--models-dir", MEDIAPIPE, "--workers", "2", "--reports", tmp_path / "reports", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "checks on 2 images" in result.stdout, result.stdout + result.stderr
    # (LiteRT's native INFO lines go to the same stderr; hairseg's own is one line)
    lines = [line for line in result.stderr.splitlines() if line.startswith("hairseg:")]
    assert len(lines) == 1 and "4 inputs: 2 ok, 1 failed, 1 declined by the teacher" in lines[0]
    rows = pd.read_parquet(results_path(dest)).set_index("id")
    assert rows["status"].to_dict() == {
        "visp_solvay1927_f5": "ok", "visp_solvay1927_f9": "ok", "ramp": "skipped",
        "notes": "failed",
    }  # fmt: skip
    assert rows["model_version"].str.fullmatch(r"teacher-[0-9a-f]{10}").all()
    assert len(rows["worker_pid"].dropna().unique()) >= 1
    manifest = pd.read_parquet(dest / "manifest.parquet").set_index("id")
    assert sorted(manifest.index) == ["visp_solvay1927_f5", "visp_solvay1927_f9"]
    assert set(manifest["source"]) == {"pseudo"}
    assert manifest["confidence"].between(0.5, 1.0).all()
    for row in manifest.itertuples():
        conf = imaging.read_mask(dest / row.confidence_path)
        assert conf.shape == imaging.read_mask(dest / row.mask_path).shape
        assert conf.shape == (row.height, row.width) and row.face_count >= 1

    # the rerun redoes only the failed file; the declined one is final for this teacher
    again = run("predict", src, dest, "--teacher", "--models-dir", MEDIAPIPE, "--no-validate",
                cwd=tmp_path)  # fmt: skip
    assert again.returncode == 1 and "3 already done" in again.stderr, again.stderr
