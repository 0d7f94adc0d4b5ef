"""The two full lifecycle runs of the suite, each done once per session and shared.

- :func:`dvc_first_repro`: a real ``dvc repro`` of a temp copy of the project
  (tests/integration/test_dvc_lifecycle.py continues from it);
- :func:`kfp_training_run`: ``hairseg pipeline run-local`` of ``hairseg-training`` under
  kfp.local (tests/integration/test_kfp_local.py checks it).

Both run the same tiny configuration, :func:`tiny_params` (``params.yaml`` with the
pipeline's ``--tiny`` overrides and :data:`OVERRIDES`), so the lineage-parity test
(tests/integration/test_lineage_parity.py) can compare what the two doors registered
without a third run. Each records its first registered version (:class:`Registered`)
right after registering, before a test moves on.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LIFECYCLE = ("train", "quantize", "evaluate", "gate", "register")
# On top of ``--tiny``, for both doors: a fixed seed, and fp32 always ships — the int8
# decision times both models (``min_int8_speedup``), and a timing must not decide whether
# two runs register the same variant (few timed repeats then suffice).
OVERRIDES: dict[str, dict[str, Any]] = {
    "train": {"seed": 3},
    "quantize": {"min_int8_speedup": 1000.0, "speed_repeats": 3},
}
KFP_ARGS = (
    "--tiny",
    *(
        arg
        for section, values in OVERRIDES.items()
        for key, value in values.items()
        for arg in ("--param", f"{section}.{key}={value}")
    ),
)


@dataclass
class Registered:
    """A registered MLflow version: its tags and its ONNX file's metadata."""

    version: str
    tags: dict[str, str]
    onnx_metadata: dict[str, str]


def registered(tracking_uri: str, version: str, cache: Path) -> Registered:
    """Read back version ``version`` of model ``hairseg`` (tags, shipped ONNX metadata)."""
    import onnx
    from mlflow import MlflowClient

    from hairseg import registry

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    mv = client.get_model_version(registry.MODEL_NAME, version)
    path = registry.fetch_onnx(f"models:/{registry.MODEL_NAME}/{version}", cache, tracking_uri)
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    return Registered(str(mv.version), dict(mv.tags), meta)


def tiny_params() -> dict[str, Any]:
    """``params.yaml`` as ``hairseg pipeline run-local`` :data:`KFP_ARGS` runs it."""
    from hairseg_pipelines.local import TINY, deep_merge

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for name, override in TINY.items():
        section = name.removesuffix("_params")
        params[section] = deep_merge(params.get(section) or {}, override)
    for section, values in OVERRIDES.items():
        params[section] = deep_merge(params.get(section) or {}, values)
    return params


# --- dvc repro ---------------------------------------------------------------------------


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DVC_NO_ANALYTICS": "1",
        "GX_ANALYTICS_ENABLED": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "TQDM_DISABLE": "1",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("HAIRSEG_GIT_COMMIT", None)
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


@dataclass
class DvcRun:
    project: Path
    stdout: str
    first: Registered

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.project / '.hairseg' / 'mlflow.db'}"


def make_project(root: Path) -> Path:
    """A temp copy of the repo's DVC project (data, validate, lifecycle) on tiny params."""
    shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__"))
    doc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    keep = ("data", "validate", "pseudo_label", *LIFECYCLE)
    doc["stages"] = {name: doc["stages"][name] for name in keep}
    # The Feast stages (which add feature-store slices to evaluation) are left out to keep
    # this test fast; tests/integration/test_feast.py and test_kfp_local.py cover them.
    evaluate = doc["stages"]["evaluate"]
    evaluate["cmd"] = evaluate["cmd"].replace(" --slices artifacts/eval_slices.parquet", "")
    evaluate["deps"].remove("artifacts/eval_slices.parquet")
    (root / "dvc.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    _committed_real_photos(root / "datasets" / "real_portraits")
    # The pseudo-label pool without its (fetched) images: the pseudo_label stage writes
    # unavailable.json and says why, as on a clone that never ran the fetch.
    pool = root / "datasets" / "real_portraits_pool"
    pool.mkdir(parents=True)
    shutil.copy2(REPO / "datasets" / "real_portraits_pool" / "manifest.parquet", pool)
    run(root, "git", "init", "-q")
    run(root, "dvc", "init", "-q")
    run(root, "dvc", "config", "core.analytics", "false")
    run(root, "hairseg", "data", "generate", "data")
    run(root, "dvc", "add", "-q", "data")
    return root


def _committed_real_photos(dest: Path) -> None:
    """The real-photo set cut down to its committed (public-domain) images, so the test
    scores the same photos on a fresh clone as after `tools/fetch_real_portraits.py`."""
    from hairseg.data.manifest import read_manifest, write_manifest

    src = REPO / "datasets" / "real_portraits"
    tracked = subprocess.run(
        ["git", "ls-files", "images"], cwd=src, capture_output=True, text=True, check=True
    ).stdout.split()
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("images", "masks"))
    for rel in tracked:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / rel, dest / rel)
    df = read_manifest(src)
    df = df[df["image_path"].isin(tracked)]
    shutil.copytree(src / "masks", dest / "masks")
    write_manifest(df.reset_index(drop=True), dest)


def dvc_first_repro(root: Path) -> DvcRun:
    """:func:`make_project` in ``root`` and its first ``dvc repro`` (registers v1)."""
    project = make_project(root)
    first = run(project, "dvc", "repro")
    version = str(json.loads((project / "metrics" / "register.json").read_text())["version"])
    uri = f"sqlite:///{project / '.hairseg' / 'mlflow.db'}"
    return DvcRun(project, first.stdout, registered(uri, version, root / "fetched"))


# --- kfp.local ---------------------------------------------------------------------------


@dataclass
class KfpRun:
    run: dict[str, Any]
    tracking_uri: str
    first: Registered | None


def run_local(tmp_path: Path, *args: str) -> dict[str, Any]:
    """``hairseg pipeline run-local ARGS`` in a subprocess; the run's ``local_run.json``."""
    pipeline_root = tmp_path / "kfp-root"
    env = {**os.environ, "TQDM_DISABLE": "1"}
    env.pop("HAIRSEG_GIT_COMMIT", None)
    result = subprocess.run(
        [
            sys.executable, "-m", "hairseg", "pipeline", "run-local", "--no-cache",
            "--pipeline-root", str(pipeline_root),
            "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", *args,
        ],
        cwd=REPO, capture_output=True, text=True, timeout=900, env=env,
    )  # fmt: skip
    assert result.returncode == 0, (result.stdout[-4000:], result.stderr[-4000:])
    (run_dir,) = [p for p in pipeline_root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return json.loads((run_dir / "local_run.json").read_text())


def kfp_training_run(tmp_path: Path) -> KfpRun:
    """``hairseg-training`` on :func:`tiny_params` under kfp.local, its registered version."""
    from mlflow import MlflowClient

    run = run_local(tmp_path, *KFP_ARGS)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    versions = MlflowClient(tracking_uri=uri, registry_uri=uri).search_model_versions(
        "name='hairseg'"
    )
    first = registered(uri, versions[0].version, tmp_path / "fetched") if versions else None
    return KfpRun(run, uri, first)
