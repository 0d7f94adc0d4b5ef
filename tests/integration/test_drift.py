"""The drift loop through the CLI: simulate traffic from a dataset, check it, read the exit code.

Real components end to end: a small dataset on disk, ``compute_image_stats`` for the
reference (as the ``validate`` stage does), ``hairseg monitor simulate`` writing a real
inference log, and ``hairseg monitor drift`` running Evidently. Nothing is faked.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from hairseg.data.manifest import write_manifest
from hairseg.data.stats import compute_image_stats, write_stats
from hairseg.imaging import write_png

from cli_support import run_cli, run_subprocess  # isort: skip

pytestmark = pytest.mark.slow

PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


def make_dataset(root: Path, n_train: int, n_test: int, size: int = 48, seed: int = 0) -> Path:
    """Portrait-like images: a tilted background, an elliptic hair region, noise."""
    rng = np.random.default_rng(seed)
    rows = []
    yy = np.mgrid[0:size, 0:size][0].astype(np.float32) / size
    for split, n in (("train", n_train), ("test", n_test)):
        for i in range(n):
            img = np.empty((size, size, 3), np.float32)
            img[:] = rng.integers(60, 230, 3)
            img += (yy * rng.uniform(-40, 40))[..., None]
            mask = np.zeros((size, size), np.uint8)
            centre = tuple(int(v) for v in rng.integers(size // 3, 2 * size // 3, 2))
            axes = tuple(int(v) for v in rng.integers(size // 6, size // 3, 2))
            cv2.ellipse(mask, centre, axes, 0, 0, 360, 255, -1)
            hair = rng.integers(10, 200, 3)
            img[mask > 0] = hair
            img += rng.normal(0, rng.uniform(2, 12), img.shape)
            image_id = f"{split}-{i:04d}"
            write_png(root / "images" / f"{image_id}.png", np.clip(img, 0, 255).astype(np.uint8))
            write_png(root / "masks" / f"{image_id}.png", mask)
            rows.append(
                {
                    "id": image_id,
                    "image_path": f"images/{image_id}.png",
                    "mask_path": f"masks/{image_id}.png",
                    "split": split,
                    "source": "test",
                    "licence": "CC0-1.0",
                    "width": size,
                    "height": size,
                    "hair_colour_family": "dark" if hair.mean() < 100 else "light",
                }
            )
    write_manifest(pd.DataFrame(rows), root)
    return root


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("drift")
    dataset = make_dataset(root / "data", n_train=150, n_test=100)
    write_stats(compute_image_stats(dataset), root / "artifacts" / "image_stats.parquet")
    return root


def _cli(
    cwd: Path, capsys: pytest.CaptureFixture[str], *args: str
) -> subprocess.CompletedProcess[str]:
    """The CLI in this process (tests/cli_support.py): exit code, stdout, stderr."""
    return run_cli(*args, cwd=cwd)


def _drift(
    world: Path, capsys: pytest.CaptureFixture[str], log: str, out: str
) -> tuple[int, str, dict]:
    result = _cli(
        world, capsys, "monitor", "drift", "--params", str(PARAMS), "--current", log,
        "--out", out, "--metrics", f"{out}/drift.json",
    )  # fmt: skip
    return result.returncode, result.stdout, json.loads((world / out / "drift.json").read_text())


def _simulate(
    world: Path, capsys: pytest.CaptureFixture[str], shift: str, log: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    return _cli(
        world, capsys, "monitor", "simulate", "--dataset", "data", "--shift", shift,
        "--out", log, *extra,
    )  # fmt: skip


def test_same_distribution_passes_and_shifts_fail_with_exit_3(
    world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for shift in ("none", "dark", "blur", "colour"):
        sim = _simulate(world, capsys, shift, f"logs/{shift}")
        assert sim.returncode == 0, sim.stderr
        assert "wrote 100 simulated" in sim.stdout

    code, text, metrics = _drift(world, capsys, "logs/none", "rep-none")
    assert code == 0, text
    assert text.startswith("no drift") and metrics["drifted"] is False
    assert metrics["n_reference"] == 150 and metrics["n_current"] == 100

    code, text, metrics = _drift(world, capsys, "logs/dark", "rep-dark")
    assert code == 3 and text.startswith("DRIFT")
    assert {"brightness", "contrast", "sharpness"} <= set(metrics["drifted_columns"])
    html = (world / "rep-dark" / "drift_report.html").read_text()
    for column in metrics["drifted_columns"]:
        assert column in html
    assert "Dataset Drift" in html or "drift" in html.lower()

    code, _, metrics = _drift(world, capsys, "logs/colour", "rep-colour")
    assert code == 3
    assert {"brightness", "saturation", "sharpness"} <= set(metrics["drifted_columns"])

    # Blur moves sharpness alone: the column is flagged; whether that is dataset drift is
    # the drift_share rule's call (1 of 6 columns < 0.5 here).
    code, _, metrics = _drift(world, capsys, "logs/blur", "rep-blur")
    assert "sharpness" in metrics["drifted_columns"]
    assert metrics["columns"]["sharpness"]["score"] < 1e-6
    assert code == (3 if metrics["share"] >= metrics["drift_share_threshold"] else 0)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "inference log logs/absent does not exist"),
        ("empty", "inference log logs/empty holds no part-*.parquet files"),
        (
            "few",
            "current column 'brightness' has 10 non-null value(s); the stat test needs at least monitor.min_rows = 50",
        ),
        ("columns", "reference data lacks drift column(s) ['sharpness']"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    world: Path, capsys: pytest.CaptureFixture[str], setup: str, message: str
) -> None:
    reference = world / "artifacts" / "image_stats.parquet"
    current = {"missing": "logs/absent", "empty": "logs/empty", "few": "logs/few"}.get(
        setup, "logs/none"
    )
    if setup == "empty":
        (world / "logs" / "empty").mkdir(parents=True, exist_ok=True)
    if setup == "few":
        assert _simulate(world, capsys, "none", "logs/few", "--n", "10").returncode == 0
    if setup == "columns":
        if not (world / "logs/none").exists():
            assert _simulate(world, capsys, "none", "logs/none").returncode == 0
        broken = world / "artifacts" / "no_sharpness.parquet"
        pd.read_parquet(reference).drop(columns="sharpness").to_parquet(broken)
        reference = broken
    before = sorted(p.name for p in (world / "artifacts").iterdir())
    result = _cli(
        world, capsys, "monitor", "drift", "--params", str(PARAMS), "--reference", str(reference),
        "--current", current, "--out", f"bad-{setup}", "--metrics", f"bad-{setup}/drift.json",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().startswith(f"hairseg: error: {message}")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (world / f"bad-{setup}" / "drift.json").exists()
    assert sorted(p.name for p in (world / "artifacts").iterdir()) == before


def test_simulate_rejects_unknown_split_and_shift(
    world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = _cli(world, capsys, "monitor", "simulate", "--dataset", "data", "--split", "val")
    assert result.returncode == 2
    assert "has no images in split 'val'; splits present: ['test', 'train']" in result.stderr
    result = run_subprocess("monitor", "simulate", "--shift", "sepia", cwd=world)
    assert result.returncode == 2 and "'sepia' is not one of" in result.stderr
