"""``bench/gpu_serve.py`` on a machine without CUDA: one clear line, exit 2, nothing
measured (the GPU path itself needs an NVIDIA GPU and is not tested here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_gpu_bench_without_cuda_exits_2_with_one_line(tmp_path):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has a CUDA provider: the no-GPU exit path does not apply")
    r = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu_serve.py"), "--write-docs"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu_serve: no GPU to measure: "), r.stderr
    assert "CUDAExecutionProvider" in lines[0]
    assert r.stdout == ""
