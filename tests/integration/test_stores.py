"""The cluster's stores for real (tests/stores.py): Feast on Redis, MLflow on PostgreSQL + S3.

Nothing here is faked. Redis, PostgreSQL, an S3 endpoint (moto) and ``mlflow server`` run
as processes on 127.0.0.1 (session fixtures, tests/integration/conftest.py); each hairseg
step runs as the CLI (register in this process through ``hairseg.cli.main``, the rest in
their own processes), configured as on the cluster:

- Feast: the repo's ``feature_store.yaml`` *is* ``feature_store.cluster.yaml`` (as in the
  serving image), with its ``${VAR}``s from the environment: the registry in the bucket
  (``s3://…/feast/registry.db``), the online store on Redis;
- MLflow: ``--tracking-uri http://…`` only; the server holds the PostgreSQL backend store
  and proxies artifacts to ``s3://hairseg-artifacts/mlflow`` (``--serve-artifacts``).

- KFP: the ``build_features`` and ``register_model`` components under kfp.local
  (SubprocessRunner, no venv; pipeline in kfp_stores_support.py) against the same services.

Then the outages (at the end: moto loses its objects when killed): Redis killed under a
running predictor, the MLflow server killed before a register and during a rollout, the
S3 endpoint killed before a register. Each must fail (exit 1, one readable line) or fall
back as documented, leave no half-written model version and move no alias.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

from hairseg import imaging
from hairseg.features.store import INFERENCE_STATS_COLUMNS

from cli_support import run_cli  # isort: skip
import rollout_support as rs  # isort: skip
import stores  # isort: skip
from test_feast import _image_stats  # isort: skip

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
HAIRSEG = str(ROOT / ".venv" / "bin" / "hairseg")
PARAMS = ROOT / "params.yaml"


def _default_color() -> str:
    from hairseg_serving.settings import ServeConfig

    return ServeConfig().default_color


DEFAULT_COLOR = _default_color()


# -- the world ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory, redis_server, s3_server, mlflow_server):
    root = tmp_path_factory.mktemp("stores-world")
    env = {
        **os.environ,
        **stores.AWS_ENV,
        "FEAST_REGISTRY_URI": f"s3://{stores.BUCKET}/feast/registry.db",
        "FEAST_S3_ENDPOINT_URL": s3_server.url,
        "FEAST_REDIS_CONNECTION_STRING": redis_server.url,
        "HAIRSEG_FEATURE_SOURCE_ROOT": str(root / "features"),
        "MLFLOW_TRACKING_URI": mlflow_server.url,
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    repo = root / "feature_repo"
    shutil.copytree(ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("data"))
    shutil.copy(repo / "feature_store.cluster.yaml", repo / "feature_store.yaml")
    (root / "features").mkdir()
    _image_stats().to_parquet(root / "features" / "image_stats.parquet", index=False)
    # The push source's offline file, provisioned beside the bucket on a cluster.
    empty = pd.DataFrame({c: pd.Series(dtype=t) for c, t in INFERENCE_STATS_COLUMNS.items()})
    empty.to_parquet(root / "features" / "inference_stats.parquet", index=False)
    onnx = rs.build_models(root / "onnx")
    return {
        "root": root,
        "env": env,
        "repo": repo,
        "onnx": onnx,
        "dataset": rs.make_dataset(root / "data"),
        "redis": redis_server,
        "s3": s3_server,
        "mlflow": mlflow_server,
    }


# During an outage the MLflow client fails at once instead of retrying for minutes.
NO_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


def run(
    world: dict, *args: str, timeout: int = 300, env: dict | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HAIRSEG, *args], cwd=world["root"], env={**world["env"], **(env or {})},
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def cli(world: dict, *args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    """``hairseg ARGS`` in this process in the world's root (no second import of MLflow,
    ONNX and friends: ~20 s a process on 2 cores). Same exit codes and messages."""
    return run_cli(*args, cwd=world["root"], env=env)


def registry_rows(world: dict) -> dict:
    """What PostgreSQL holds: versions (number -> status) and aliases (alias -> version)."""
    import psycopg

    url = world["mlflow"].backend_uri.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(url) as conn:
        versions = dict(
            conn.execute(
                "SELECT version, status FROM model_versions WHERE name = 'hairseg'"
            ).fetchall()
        )
        aliases = dict(
            conn.execute(
                "SELECT alias, version FROM registered_model_aliases WHERE name = 'hairseg'"
            ).fetchall()
        )
    return {"versions": versions, "aliases": aliases}


def _version_tags(world: dict, version: int) -> dict[str, str]:
    """A model version's tags, as PostgreSQL holds them."""
    import psycopg

    url = world["mlflow"].backend_uri.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(url) as conn:
        return dict(
            conn.execute(
                "SELECT key, value FROM model_version_tags WHERE name = 'hairseg' AND version = %s",
                (version,),
            ).fetchall()
        )


def s3_keys(world: dict, prefix: str) -> list[str]:
    client = stores.s3_client(world["s3"].url)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=stores.BUCKET, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def register_files(world: dict, name: str) -> list[str]:
    """What the register stage reads: models/ (selected.json …), evaluate.json, gate.json."""
    work = world["root"] / f"reg-{name}"
    model_dir = work / "models"
    model_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(world["onnx"][name], model_dir / "model.onnx")
    (model_dir / "selected.json").write_text(json.dumps({"file": "model.onnx", "variant": "fp32"}))
    (model_dir / "weights.pt").write_bytes(b"\0" * 16)
    (model_dir / "model_config.json").write_text(json.dumps({"name": name}))
    (work / "evaluate.json").write_text(json.dumps({"candidate": {"iou": 0.9, "dice": 0.94}}))
    (work / "gate.json").write_text(json.dumps({"passed": True, "reasons": [f"test {name}"]}))
    return [
        "register", "--model-dir", str(model_dir), "--evaluation", str(work / "evaluate.json"),
        "--gate", str(work / "gate.json"), "--out", str(work / "register.json"),
        "--card-dir", str(work / "card"), "--tracking-uri", world["mlflow"].url,
        "--params", str(PARAMS), "--data-dvc", str(ROOT / "data.dvc"),
    ]  # fmt: skip


def rollout_args(world: dict, tag: str) -> list[str]:
    """A local-backend rollout against the server. Two steps (50 %, 100 %): each analysed
    step is a round of requests through both predictors, and what these tests check (the
    alias moves on the server, a kill during the 50 % step) needs no 10 % step."""
    work = world["root"] / f"rollout-{tag}"
    work.mkdir(exist_ok=True)
    # max_p95_ratio is off: loopback p95 of identical nets is noise on a loaded 2-core box.
    params = {
        "rollout": {
            "backend": "local",
            "policy": {
                "steps": [50, 100], "min_requests": 10, "min_mirrored": 3,
                "max_error_rate": 0.05, "max_p95_ratio": 1000.0, "max_p95_ms": 5000.0,
                "max_disagreement": 0.2, "max_holds": 1,
            },
            "local": {"mirror_fraction": 0.5, "max_requests_per_step": 400, "seed": 5},
        }
    }  # fmt: skip
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    return [
        "rollout", "--backend", "local", "--tracking-uri", world["mlflow"].url,
        "--dataset", str(world["dataset"]), "--params", str(work / "params.yaml"),
        "--state", str(work / "state.json"), "--reports-dir", str(work / "reports"),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def customers(world) -> pd.DataFrame:
    out = world["root"] / "features" / "customers.parquet"
    # in this process: a pure table (no Feast), not worth a second interpreter start-up
    proc = cli(world, "features", "demo-customers", "--params", str(PARAMS), "--n", "20",
               "--out", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return pd.read_parquet(out)


# -- Feast on Redis ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def feast_built(world, customers) -> dict:
    proc = run(
        world, "features", "build", "--params", str(PARAMS), "--repo", str(world["repo"]),
        "--image-stats", str(world["root"] / "features" / "image_stats.parquet"),
        "--summary", str(world["root"] / "features_summary.json"),
        "--slices", str(world["root"] / "eval_slices.parquet"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-1500:] + proc.stderr[-1500:]
    return json.loads((world["root"] / "features_summary.json").read_text())


def test_feast_apply_materialise_and_online_reads_on_redis(world, customers, feast_built):
    import redis

    assert feast_built["materialized"]["customer_profile_v1"]["online"] == 20
    # The registry lives in the bucket, the rows in Redis (Feast hashes one key per entity).
    assert s3_keys(world, "feast/") == ["feast/registry.db"]
    client = redis.Redis(host="127.0.0.1", port=world["redis"].port)
    assert client.dbsize() >= 20 + 24  # 20 customers + 24 images
    row = customers.iloc[3]
    proc = run(world, "features", "online", "--params", str(PARAMS), "--repo",
               str(world["repo"]), str(row["customer_id"]))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["customer_id"] == row["customer_id"]
    assert got["preferred_shade"] == row["preferred_shade"]
    assert got["consent_personalisation"] == bool(row["consent_personalisation"])
    assert got["preferred_intensity"] == pytest.approx(row["preferred_intensity"])


# -- MLflow server on PostgreSQL + S3 --------------------------------------------------------


@pytest.fixture(scope="module")
def registered(world) -> dict:
    versions = {}
    for name in ("stable", "good"):
        proc = cli(world, *register_files(world, name))
        assert proc.returncode == 0, proc.stdout[-1500:] + proc.stderr[-1500:]
        # MLflow prints its run links (random run names) to the same stdout: match our line.
        versions[name] = int(re.search(r"^registered hairseg v(\d+);", proc.stdout, re.M)[1])
    return versions


def test_register_writes_postgres_rows_and_s3_artifacts(world, registered):
    rows = registry_rows(world)
    assert rows["versions"] == {1: "READY", 2: "READY"}
    # The first version bootstrapped champion; both got candidate in turn.
    assert rows["aliases"] == {"champion": 1, "candidate": 2}
    keys = s3_keys(world, "mlflow/")
    onnx = [k for k in keys if k.endswith("/model.onnx")]
    assert len(onnx) >= 2, keys[:20]
    body = stores.s3_client(world["s3"].url).get_object(Bucket=stores.BUCKET, Key=onnx[0])
    assert len(body["Body"].read()) > 100


@pytest.fixture(scope="module")
def served(world, registered, feast_built):
    """``hairseg serve --model models:/hairseg@champion`` with the Redis-backed Feast repo."""
    port = stores.free_port()
    log = (world["root"] / "serve.log").open("wb")
    params = world["root"] / "serve-params.yaml"
    # No profile cache: every request asks Redis (the outage test needs to see it).
    params.write_text(yaml.safe_dump({"serve": {"feature_cache_seconds": 0.0}}))
    proc = subprocess.Popen(
        [HAIRSEG, "serve", "--model", "models:/hairseg@champion", "--port", str(port),
         "--host", "127.0.0.1", "--feature-repo", str(world["repo"]),
         "--inference-log-dir", "", "--params", str(params)],
        cwd=world["root"], env=world["env"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, (world["root"] / "serve.log").read_text()[-2000:]
        assert time.monotonic() < deadline, "hairseg serve never became ready"
        time.sleep(0.2)
    yield {"url": url, "proc": proc}
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)
    log.close()


def _tryon(served: dict, customer: str) -> dict:
    rgb = np.random.default_rng(0).integers(0, 256, (48, 48, 3), np.uint8)
    body = {"instances": [{"image_b64": base64.b64encode(imaging.encode_png(rgb)).decode(),
                           "output": "tryon", "customer_id": customer}]}  # fmt: skip
    resp = httpx.post(f"{served['url']}/v1/models/hairseg:predict", json=body, timeout=60)
    assert resp.status_code == 200, resp.text
    return resp.json()["predictions"][0]


def _lookups(served: dict) -> dict[str, float]:
    text = httpx.get(f"{served['url']}/metrics", timeout=10).text
    out = {}
    for line in text.splitlines():
        if line.startswith("hairseg_feature_lookups_total{"):
            key = line.split('result="')[1].split('"')[0]
            out[key] = float(line.rsplit(" ", 1)[1])
    return out


def _fan(customers: pd.DataFrame) -> pd.Series:
    """A consenting customer whose preferred shade is not the predictor's default."""
    default = DEFAULT_COLOR
    ok = customers[
        customers["consent_personalisation"].astype(bool)
        & customers["preferred_shade"].notna()
        & (customers["preferred_shade"] != default)
    ]
    assert len(ok), "no consenting customer with a non-default shade in the demo table"
    return ok.iloc[0]


def test_serve_champion_from_the_server_with_profiles_from_redis(world, served, customers):
    fan = _fan(customers)
    pred = _tryon(served, str(fan["customer_id"]))
    assert pred["color"] == fan["preferred_shade"]
    assert pred["intensity"] == pytest.approx(float(fan["preferred_intensity"]), abs=1e-6)
    assert _lookups(served).get("hit", 0) >= 1


def test_local_rollout_end_to_end_against_the_server(world, registered):
    proc = run(world, *rollout_args(world, "e2e"))
    assert proc.returncode == 0, proc.stdout[-1500:] + proc.stderr[-1500:]
    assert "rollout promoted" in proc.stdout
    rows = registry_rows(world)
    assert rows["aliases"]["champion"] == registered["good"]


# -- the KFP path: the features and register components, kfp.local, these services ----------


def test_kfp_features_and_register_steps_run_against_the_services(
    world, registered, feast_built, monkeypatch
):
    """kfp.local (SubprocessRunner, no venv) runs the components as the cluster would:
    Feast's registry in the bucket and its online store on Redis, the register step against
    the MLflow server (PostgreSQL rows, artifacts in S3)."""
    import redis
    from hairseg_pipelines.local import run_local
    from kfp_stores_support import stores_pipeline

    for key in ("FEAST_REGISTRY_URI", "FEAST_S3_ENDPOINT_URL", "FEAST_REDIS_CONNECTION_STRING",
                "HAIRSEG_FEATURE_SOURCE_ROOT", *stores.AWS_ENV):  # fmt: skip
        monkeypatch.setenv(key, world["env"][key])  # the step subprocesses inherit these
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    src = world["root"] / "kfp-src"
    register_files(world, "good")  # writes the files the register stage reads
    work = world["root"] / "reg-good"
    shutil.copytree(world["dataset"], src / "data")
    shutil.copytree(work / "models", src / "models")
    (src / "eval").mkdir()
    shutil.copy(work / "evaluate.json", src / "eval" / "evaluate.json")
    (src / "gate").mkdir()
    shutil.copy(work / "gate.json", src / "gate" / "gate.json")
    (src / "train").mkdir()  # no train_run.json: the version gets no training run link
    shutil.copy(world["root"] / "features" / "image_stats.parquet", src / "image_stats.parquet")
    before = registry_rows(world)
    onnx_before = [k for k in s3_keys(world, "mlflow/") if k.endswith("/model.onnx")]
    registry_key = "feast/registry.db"
    s3 = stores.s3_client(world["s3"].url)
    registry_before = s3.head_object(Bucket=stores.BUCKET, Key=registry_key)["ETag"]
    online = redis.Redis(host="127.0.0.1", port=world["redis"].port)
    online.flushall()  # what the step materialises must come from this step

    run = run_local(
        stores_pipeline(yaml.safe_load(PARAMS.read_text())),
        {"src": str(src), "feast_repo": str(world["repo"]), "tracking_uri": world["mlflow"].url},
        world["root"] / "kfp-root",
    )  # fmt: skip

    # features: applied to the registry in the bucket, materialised into Redis
    assert s3.head_object(Bucket=stores.BUCKET, Key=registry_key)["ETag"] != registry_before
    assert online.dbsize() >= 20 + 24  # the customers and images, again
    summary = json.loads(
        next(run.run_dir.glob("build-features/features_summary/features_summary.json")).read_text()
    )
    assert summary["materialized"]["customer_profile_v1"]["online"] == 20
    assert len(pd.read_parquet(run.run_dir / "build-features" / "eval_slices")) > 0
    # register: one new READY version in PostgreSQL, now the candidate, with the
    # pipeline's lineage tags; its ONNX file in S3; champion did not move
    rows = registry_rows(world)
    (new,) = set(rows["versions"]) - set(before["versions"])
    assert rows["versions"][new] == "READY"
    assert rows["aliases"] == {**before["aliases"], "candidate": new}
    assert run.outputs["Output"] == f"models:/hairseg/{new}"
    tags = _version_tags(world, new)
    assert tags["pipeline_name"] == "hairseg-stores-test" and tags["git_commit"] == "0123abc"
    onnx_after = [k for k in s3_keys(world, "mlflow/") if k.endswith("/model.onnx")]
    assert len(onnx_after) > len(onnx_before)  # the new version's model, in the bucket


# -- outages ----------------------------------------------------------------------------------


def test_redis_outage_predictor_falls_back_to_defaults(world, served, customers):
    fan = _fan(customers)
    default = DEFAULT_COLOR
    errors_before = _lookups(served).get("error", 0)
    world["redis"].kill()
    try:
        pred = _tryon(served, str(fan["customer_id"]))  # 200, not 5xx
        assert pred["color"] == default
        assert _lookups(served).get("error", 0) == errors_before + 1
    finally:
        world["redis"].start()  # append-only file: the profiles come back
    pred = _tryon(served, str(fan["customer_id"]))
    assert pred["color"] == fan["preferred_shade"]


def _one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.startswith("hairseg: error:")]
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr[-2000:]
    return lines[0]


def test_mlflow_server_outage_register_fails_cleanly(world, registered):
    before = registry_rows(world)
    world["mlflow"].kill()
    try:
        proc = cli(world, *register_files(world, "good"), env=NO_RETRIES)
    finally:
        world["mlflow"].start()
    line = _one_line_error(proc)
    assert world["mlflow"].url.split("//")[1] in line or "MLflow" in line, line
    assert registry_rows(world) == before  # no version, no alias moved


def test_mlflow_server_killed_mid_rollout_moves_no_alias(world, registered):
    """Killed while the 50 % step runs: the promotion cannot move the alias, so the run
    fails with the traffic journalled as 'promoting'; run again, it completes."""
    proc = cli(world, *register_files(world, "stable"))  # v3: a fresh candidate
    assert proc.returncode == 0, proc.stderr[-1500:]
    before = registry_rows(world)
    args = rollout_args(world, "mid")
    state_path = world["root"] / "rollout-mid" / "state.json"
    child = subprocess.Popen(
        [HAIRSEG, *args], cwd=world["root"], env={**world["env"], **NO_RETRIES},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while True:
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the 50 % step never started"
            try:
                saved = json.loads(state_path.read_text())["rollout"]
            except (OSError, ValueError, KeyError, TypeError):
                saved = None
            if saved and saved.get("percent") == 50:
                world["mlflow"].kill()
                break
            time.sleep(0.01)
        out, err = child.communicate(timeout=600)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    try:
        assert child.returncode == 1, out[-1000:] + err[-1000:]
    finally:
        world["mlflow"].start()
    after = registry_rows(world)
    assert after == before  # 0 versions written, 0 aliases moved
    again = run(world, *args)
    assert again.returncode == 0, again.stdout[-1500:] + again.stderr[-1500:]
    assert registry_rows(world)["aliases"]["champion"] == before["aliases"]["candidate"]


def test_s3_outage_register_leaves_no_half_written_version(world, registered):
    """Last: moto keeps objects in memory, so the endpoint comes back empty."""
    before = registry_rows(world)
    world["s3"].kill()
    try:
        proc = cli(world, *register_files(world, "good"), env=NO_RETRIES)
        line = _one_line_error(proc)
        assert line
        assert registry_rows(world) == before  # the run may exist; no version, no alias
    finally:
        world["s3"].start()
        stores.create_bucket(world["s3"].url)
