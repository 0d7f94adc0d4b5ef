"""``train.pseudo``: the train stage fine-tunes on a pseudo-labelled set after its synthetic
epochs (a real tiny training run, MLflow on SQLite), records the set's hash for the
lineage, and carries on with synthetic data only, saying why, when the set is off or
unavailable; ``hairseg data pseudo-label --skip-unavailable`` writes that reason."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import lifecycle_support as ls
import pandas as pd
import pytest

from hairseg.data.ensure import dvc_dir_hash
from hairseg.errors import HairsegError
from hairseg.train import PseudoTrainConfig

REPO = Path(__file__).resolve().parents[2]


def test_off_and_unavailable_sets_train_on_synthetic_only(tmp_path: Path) -> None:
    from hairseg.stages.data import write_unavailable
    from hairseg.stages.lifecycle import pseudo_training_set

    off = pseudo_training_set(PseudoTrainConfig(data=""), ls.SIZE)
    assert off.split is None and off.md5 == "none" and off.note.startswith("off")
    gone = pseudo_training_set(PseudoTrainConfig(data=str(tmp_path / "nowhere")), ls.SIZE)
    assert gone.split is None and "is not a dataset" in gone.note
    write_unavailable(tmp_path / "pool", "the 109 images of the pool are absent")
    unavailable = pseudo_training_set(PseudoTrainConfig(data=str(tmp_path / "pool")), ls.SIZE)
    assert unavailable.split is None and unavailable.md5 == "none"
    assert unavailable.note == "unavailable: the 109 images of the pool are absent"
    assert unavailable.summary()["pseudo_images"] == 0


@pytest.mark.parametrize("bad", [{"repeat": 0}, {"epochs": 0}, {"lr": 0.0}])
def test_bad_pseudo_config_is_refused(bad: dict) -> None:
    with pytest.raises(HairsegError, match="train.pseudo"):
        PseudoTrainConfig(data="x", **bad)


def test_train_stage_fine_tunes_on_the_pseudo_set_after_the_synthetic_epochs(
    tmp_path: Path,
) -> None:
    from hairseg.stages.lifecycle import train_stage

    data = ls.make_dataset(tmp_path / "data", {"train": 8, "val": 4})
    pseudo = ls.make_dataset(tmp_path / "pseudo", {"train": 4}, seed=1)
    model_cfg, cfg = ls.tiny_configs(epochs=2)
    cfg = dataclasses.replace(cfg, pseudo=PseudoTrainConfig(data=str(pseudo), repeat=2, epochs=1))
    files = tmp_path / "files"
    result = train_stage(
        data,
        tmp_path / "models",
        model_cfg=model_cfg,
        train_cfg=cfg,
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        metrics_path=files / "train.json",
        plot_path=files / "curve.csv",
        run_info_path=files / "run.json",
        checkpoints=tmp_path / "checkpoints",
        init="scratch",
    )
    s = result.summary
    assert s["pseudo_images"] == 4 and s["pseudo_note"] == "4 images"
    assert s["synthetic_epochs_run"] == 2 and s["epochs_run"] == 1
    assert s["init_source"] == "scratch" and 0.0 <= s["synthetic_best_val_iou"] <= 1.0
    md5 = dvc_dir_hash(pseudo)[0]
    assert s["pseudo_data_md5"] == md5
    assert json.loads((files / "run.json").read_text())["pseudo_data_md5"] == md5
    curve = pd.read_csv(files / "curve.csv")
    assert curve["epoch"].tolist() == [1.0, 2.0, 3.0]  # two synthetic epochs, then one more
    assert (tmp_path / "models" / "weights.pt").is_file()


def _pseudo_label(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hairseg", "data", "pseudo-label", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_skip_unavailable_writes_the_reason_and_exits_zero(tmp_path: Path) -> None:
    # A dataset whose images were never fetched (the pool on a fresh clone).
    pool = tmp_path / "pool"
    pool.mkdir()
    shutil.copy2(REPO / "datasets" / "real_portraits_pool" / "manifest.parquet", pool)
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "stale.png").write_bytes(b"left from an earlier run")
    result = _pseudo_label(tmp_path, str(pool), str(dest), "--skip-unavailable")
    assert result.returncode == 0, result.stderr[-2000:]
    notices = [line for line in result.stderr.splitlines() if line.startswith("hairseg: notice")]
    assert len(notices) == 1 and "images of" in notices[0] and "fetch_real_portraits" in notices[0]
    assert sorted(p.name for p in dest.iterdir()) == ["unavailable.json"]
    assert "are absent" in json.loads((dest / "unavailable.json").read_text())["reason"]
    # No face detector: the same, naming `hairseg models fetch`.
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(REPO / "datasets/real_portraits/images/visp_solvay1927_f5.png", photos / "a.png")
    no_models = _pseudo_label(
        tmp_path, str(photos), str(dest), "--skip-unavailable",
        "--models-dir", str(tmp_path / "none"),
    )  # fmt: skip
    assert no_models.returncode == 0, no_models.stderr[-2000:]
    reason = json.loads((dest / "unavailable.json").read_text())["reason"]
    assert "face detector" in reason and "hairseg models fetch" in reason
    # Without the flag the same input is an error (exit 2), as before.
    strict = _pseudo_label(
        tmp_path, str(photos), str(tmp_path / "strict"), "--models-dir", str(tmp_path / "none")
    )
    assert strict.returncode == 2 and "face detector" in strict.stderr
