"""Session-scoped real stores (tests/stores.py), started on first use and stopped at the
end, and the suite's two full lifecycle runs (lifecycle_runs.py), each done once."""

from __future__ import annotations

import pytest

import lifecycle_runs  # isort: skip
import stores  # isort: skip


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    svc = stores.redis(tmp_path_factory.mktemp("redis")).start()
    yield svc
    svc.stop()


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory):
    svc = stores.postgres(tmp_path_factory.mktemp("postgres")).start()
    yield svc
    stores.remove(svc)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    svc = stores.s3(tmp_path_factory.mktemp("s3")).start()
    stores.create_bucket(svc.url)
    yield svc
    svc.stop()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory, postgres_server, s3_server):
    backend = stores.create_database(postgres_server, "mlflow")
    svc = stores.mlflow(tmp_path_factory.mktemp("mlflow"), backend, s3_server.url).start()
    svc.backend_uri = backend
    yield svc
    svc.stop()


@pytest.fixture(scope="session")
def dvc_lifecycle(tmp_path_factory) -> lifecycle_runs.DvcRun:
    """The first `dvc repro` of a tiny project copy (test_dvc_lifecycle.py continues it)."""
    return lifecycle_runs.dvc_first_repro(tmp_path_factory.mktemp("dvc-lifecycle"))


@pytest.fixture(scope="session")
def kfp_training(tmp_path_factory) -> lifecycle_runs.KfpRun:
    """hairseg-training under kfp.local on the same tiny params."""
    pytest.importorskip("kfp")
    return lifecycle_runs.kfp_training_run(tmp_path_factory.mktemp("kfp-training"))
